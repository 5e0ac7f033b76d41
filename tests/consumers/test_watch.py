"""consumers.watch: the watchdog's rules find the red flags the simulator plants, and nothing else; the bot
finds them through a real feed server."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import orjson
import pytest

from consumers.watch import (
    MESSAGES,
    RULES_NAMES,
    Alert,
    Rules,
    Watchdog,
    alert_text,
    short_tender_period,
    single_bidder,
    watch,
)
from core.merge import RecordMerger
from core.schema import OcdsSchema
from producers.simulator import RED_FLAGS, simulate
from tests.feed_server.test_api import StoreWriter
from tests.support.pipeline import count
from tests.support.stack import Process, base_settings, free_port, fresh_stack, wait_http


@pytest.fixture(scope="module")
def stream_alerts(schema: OcdsSchema) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """(planted, alerted) (ocid, rule) pairs over 1,500 whole simulated processes, merged as the worker does."""
    merger = RecordMerger(schema, versioned=False)
    dog = Watchdog()
    records: dict[str, object] = {}
    planted, alerted = set(), set()
    for event in simulate(seed=11, processes=1500):
        ocid = event.release["ocid"]
        planted |= {(ocid, flag) for flag in event.red_flags}
        record = merger.step(records.get(ocid), event.release).record  # type: ignore[arg-type]
        records[ocid] = record
        alerted |= {(a.ocid, a.rule) for a in dog.check(ocid, record.compiled)}
    return planted, alerted


def test_watchdog_raises_no_alert_the_simulator_did_not_plant(
        stream_alerts: tuple[set[tuple[str, str]], set[tuple[str, str]]]) -> None:
    """Precision: every alert names a process the simulator planted that very red flag in."""
    planted, alerted = stream_alerts
    assert alerted - planted == set()


def test_watchdog_finds_the_planted_red_flags_of_every_rule(
        stream_alerts: tuple[set[tuple[str, str]], set[tuple[str, str]]]) -> None:
    """Recall: each rule finds every process the simulator planted its red flag in (and each rule has some)."""
    planted, alerted = stream_alerts
    want, got = Counter(rule for _, rule in planted), Counter(rule for _, rule in alerted & planted)
    assert set(want) == set(RED_FLAGS) == set(RULES_NAMES)
    assert all(want[rule] > 10 for rule in RED_FLAGS), want
    assert got == want


def test_each_process_and_rule_is_reported_once(schema: OcdsSchema) -> None:
    """A process that keeps the red flag through later releases is reported only the first time."""
    compiled = {"tender": {"procurementMethod": "open", "numberOfTenderers": 1,
                           "tenderPeriod": {"startDate": "2024-01-01T00:00:00Z", "endDate": "2024-01-02T00:00:00Z"}},
                "awards": [{"id": "a1", "value": {"amount": 10.0, "currency": "MXN"}}]}
    dog = Watchdog()
    assert {a.rule for a in dog.check("ocds-1", compiled)} == {"single-bidder", "short-tender-period"}
    assert dog.check("ocds-1", compiled) == []


def test_rules_ignore_direct_awards_and_unreadable_dates() -> None:
    """Single bidder and short tender period concern competitive procedures with readable, zoned dates."""
    direct = {"tender": {"procurementMethod": "direct", "numberOfTenderers": 1}, "awards": [{"id": "a"}]}
    assert single_bidder(direct) is None
    odd = {"tender": {"procurementMethod": "open", "tenderPeriod": {"startDate": "ayer", "endDate": "2024-01-02"}}}
    assert short_tender_period(odd, Rules()) is None


@pytest.mark.integration
def test_watch_bot_alerts_through_the_feed_server(schema: OcdsSchema, tmp_path: Path) -> None:
    """``watch`` follows a real feed server with ``detail=full`` and writes one JSON line per planted red flag."""
    events = list(simulate(seed=11, processes=400))
    planted = {(e.release["ocid"], flag) for e in events for flag in e.red_flags}
    with fresh_stack(base_settings(), port=free_port()) as settings:
        StoreWriter(settings, schema, versioned=False).write([e.release for e in events])
        server = Process(settings, "serve", log=tmp_path / "serve.log")
        try:
            wait_http(f"{settings.base_url}/healthz")
            lines: list[bytes] = []
            url = f"{settings.base_url.replace('http', 'ws', 1)}/ws/changes"
            written = asyncio.run(asyncio.wait_for(
                watch(url, Rules(), after="start", out=lines.append, flush=lambda: None,
                      limit=count(settings, "changes")), 120))
        finally:
            server.stop()
    alerts = [orjson.loads(line) for line in lines]
    assert written == len(alerts) == len(planted) > 10
    assert {(a["ocid"], a["rule"]) for a in alerts} == planted
    assert all(a["message"] and a["record_url"] == f"{settings.base_url}/api/records/{a['ocid']}" for a in alerts)


def test_text_alert_names_the_rule_the_process_and_its_record() -> None:
    """``--text`` lines say which rule fired on which process, in Spanish and English, with the record's link."""
    line = alert_text(Alert("single-bidder", "ocds-07smqs-1", MESSAGES["single-bidder"], 7,
                            "http://x/api/records/ocds-07smqs-1")).decode()
    assert line.startswith("ALERT single-bidder") and line.endswith("http://x/records/ocds-07smqs-1\n")
    assert "ocds-07smqs-1" in line and "Un solo licitante / Single bidder" in line
