"""``ocds-live status``: percentiles, lag and rendering (pure), and the figures read from the real stack."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from core.kafka_state import RetriedCoordinatorLookups, SlowSteps, wait_for_coordinator
from core.settings import Settings
from core.status import Delay, Lag, Status, lags_of, parse_date, percentile, render
from tests.support import pipeline
from tests.support.stack import REPO, Process, base_settings, cli, env_for, fresh_stack


def test_percentile_is_the_nearest_rank() -> None:
    """p50 and p99 of 1..100 are 50 and 99; one value is every percentile; none gives None."""
    values = [float(v) for v in range(100, 0, -1)]
    assert (percentile(values, 0.5), percentile(values, 0.99), percentile(values, 1.0)) == (50.0, 99.0, 100.0)
    assert percentile([3.0], 0.99) == 3.0
    assert percentile([], 0.5) is None


def test_lag_per_group_and_partition() -> None:
    """Each group gets a row per partition of each topic it committed on; a partition never committed lags fully."""
    ends = {"r": {0: 10, 1: 5}, "c": {0: 7}}
    lags = lags_of(ends, {"g": {("r", 0): 4}}, "store")
    assert [(x.group, x.topic, x.partition, x.lag) for x in lags] == [("g", "r", 0, 6), ("g", "r", 1, 5)]
    assert Lag("g", "r", 0, 12, 10, "kafka").lag == 0


def test_release_dates_without_an_offset_count_as_utc() -> None:
    """Dates with Z, with an offset, without one, and unreadable ones."""
    assert parse_date("2024-01-01T00:00:00Z") == 1704067200.0
    assert parse_date("2024-01-01T00:00:00-06:00") == 1704067200.0 + 6 * 3600
    assert parse_date("2024-01-01T00:00:00") == 1704067200.0
    assert parse_date("yesterday") is None


def test_render_names_every_figure() -> None:
    """The human table shows topics, lag, counts, the head, both freshness delays and any problem."""
    status = Status(taken_at=time.time(), topics={"ocds.releases": {0: 5, 1: 7}},
                    lags=[Lag("ocds-live", "ocds.releases", 0, 5, 5, "store")], counts={"releases": 12},
                    head=9, published=8, produced_to_commit=Delay(0.25, 0.5, 12), date_to_commit=Delay(None, None, 0),
                    problems=["kafka: down"], generation=2, projects=20, projects_waiting=3)
    text = render(status)
    for part in ("ocds.releases", "0:5  1:7   total 12", "ocds-live", "[0] 5/5 = 0  (store)", "releases 12",
                 "generation 2", "projects: 20 built, 3 waiting for the project builder",
                 "head 9", "through 8", "p50 250 ms, p99 500 ms", "12 releases", "PROBLEM: kafka: down"):
        assert part in text


def test_retried_coordinator_lookups_are_warnings() -> None:
    """aiokafka's ERROR for a retriable coordinator error becomes a WARNING; other errors stay errors."""
    from kafka.errors import CoordinatorNotAvailableError, GroupAuthorizationFailedError

    def record(err: Exception) -> logging.LogRecord:
        rec = logging.LogRecord("aiokafka.consumer.group_coordinator", logging.ERROR, "x", 1,
                                "Group Coordinator Request failed: %s", (err,), None)
        RetriedCoordinatorLookups().filter(rec)
        return rec

    assert record(CoordinatorNotAvailableError()).levelname == "WARNING"
    assert record(GroupAuthorizationFailedError()).levelname == "ERROR"


def test_slow_step_diagnostics_are_info() -> None:
    """kafka-python's slow-step timing warning is logged at INFO (shown with -v); its other warnings stay."""
    slow = logging.LogRecord("kafka.net.selector", logging.WARNING, "x", 1, "Task <t> ran for 0.117s (>0.100s "
                             "threshold). It is blocking the event loop -- likely a tight sync loop", None, None)
    other = logging.LogRecord("kafka.net.selector", logging.WARNING, "x", 1, "Task left RUNNING", None, None)
    SlowSteps().filter(slow)
    SlowSteps().filter(other)
    assert (slow.levelname, other.levelname) == ("INFO", "WARNING")


@pytest.mark.integration
def test_status_of_a_running_pipeline(tmp_path: Path) -> None:
    """After a worker processed releases, status shows the end offsets, zero lag, the counts, the head and the
    freshness of every release, as text and as JSON; without Kafka it names the problem and exits 1."""
    releases = pipeline.outgoing(pipeline.simulated(seed=9, count=60, processes=10))
    with fresh_stack(base_settings()) as settings:
        assert wait_for_coordinator(settings, settings.app_id) < 30
        worker = Process(settings, "process", log=tmp_path / "worker.log")
        try:
            pipeline.send(settings, releases)
            pipeline.wait_caught_up(settings)
        finally:
            worker.stop()
        done = cli(settings, "status", "--json")
        assert done.returncode == 0, done.stderr
        status = orjson.loads(done.stdout)
        ends = {p["partition"]: p["end_offset"] for p in status["topics"][settings.releases_topic]}
        assert sum(ends.values()) == 60 and len(ends) == settings.partitions
        stored = [lag for lag in status["lags"] if lag["source"] == "store" and lag["group"] == settings.app_id]
        assert len(stored) == settings.partitions and all(lag["lag"] == 0 for lag in stored)
        assert status["counts"]["releases"] == 60
        assert status["generation"] == 1 and status["projects"] > 0 and status["projects_waiting"] == 0
        assert status["head"] == status["counts"]["changes"] > 0
        fresh = status["produced_to_commit"]
        assert fresh["samples"] == 60 and 0 < fresh["p50"] <= fresh["p99"] < 60
        assert status["date_to_commit"]["samples"] == 60
        assert status["problems"] == []

        text = cli(settings, "status")
        assert f"{settings.releases_topic}" in text.stdout and "produced-at -> commit" in text.stdout
        down = cli(settings, "status", "--bootstrap-servers", "127.0.0.1:1", timeout=60)
        assert down.returncode == 1
        assert "PROBLEM: kafka: cannot reach Kafka at 127.0.0.1:1" in down.stdout
        assert "releases 60" in down.stdout
        assert "ERROR" not in worker.output()
        assert _watch_refreshes(settings, tmp_path) >= 2


def _watch_refreshes(settings: Settings, tmp_path: Path) -> int:
    """How many tables ``status --watch 0.2`` printed within 20 s (stopped at its second)."""
    log = tmp_path / "watch.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "ocds_live.cli", "status", "--watch", "0.2"],
                                env=env_for(settings), stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and log.read_text().count("ocds-live status at") < 2:
                time.sleep(0.2)
        finally:
            proc.terminate()
            proc.wait(10)
    return log.read_text().count("ocds-live status at")
