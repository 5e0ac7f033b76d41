"""``ocds-live replay --switch``: rebuild beside the live store while it serves, switch over, and tell subscribers."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import websockets

from consumers.client import ChangeClient, StoreRebuilt
from consumers.switchover import STRIDE, SwitchSummary, rebuild_and_switch
from core.profiles import Profiles
from core.settings import Settings
from core.store import projects
from core.store.connection import connect
from tests.support import pipeline
from tests.support.kafka import read_topic
from tests.support.stack import Process, base_settings, cli, free_port, fresh_stack, wait_http

pytestmark = pytest.mark.integration


def _ws(settings: Settings, query: str) -> str:
    return f"{settings.base_url.replace('http', 'ws', 1)}/ws/changes?{query}"


async def _raw(url: str, messages: list[dict[str, Any]]) -> int:
    """Every message of one connection, until the server closes it; returns the close code."""
    async with websockets.connect(url, max_size=None) as ws:
        try:
            async for text in ws:
                messages.append(orjson.loads(text))
        except websockets.ConnectionClosed:
            pass
        assert ws.close_code is not None
        return ws.close_code


def _changes(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for m in messages:
        out += [m["change"]] if m["type"] == "change" else m.get("changes", []) if m["type"] == "changes" else []
    return out


def _releases(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """The (ocid, release id) of each release change (project events depend on batching: see pipeline.py)."""
    return sorted((e["ocid"], e["release_id"]) for e in events if not e["kind"].startswith("project"))


def _keep_sending(settings: Settings, stop: threading.Event, sent: list[int]) -> None:
    """Live traffic while the rebuild runs: 40 releases every 0.3s until ``stop``."""
    releases = pipeline.outgoing(pipeline.simulated(seed=12, count=3000, processes=600))
    while not stop.is_set() and sent[0] < len(releases):
        pipeline.send(settings, releases[sent[0]:sent[0] + 40])
        sent[0] += 40
        time.sleep(0.3)


def test_switch_over_with_live_subscribers(tmp_path: Path) -> None:
    """While releases keep arriving, a rebuild switches over: subscribers get the old log whole and once, then an
    explicit store-rebuilt error; the client resumes in the new log with no gap and no repeat; old cursors get 410."""
    with fresh_stack(base_settings(), port=free_port(), batch_size=100) as settings:
        worker = Process(settings, "process", log=tmp_path / "worker.log")
        server = Process(settings, "serve", log=tmp_path / "serve.log")
        try:
            pipeline.send(settings, pipeline.outgoing(pipeline.simulated(seed=11, count=800, processes=200)))
            pipeline.wait_caught_up(settings)
            wait_http(f"{settings.base_url}/healthz", 60)
            summary, raw, code, client, received, sent = asyncio.run(_scenario(settings, tmp_path))
            _check(settings, summary, raw, code, client, received, sent)
        finally:
            server.stop()
            worker.stop()


async def _scenario(settings: Settings, tmp_path: Path) -> tuple[
        SwitchSummary, list[dict[str, Any]], int, ChangeClient, list[dict[str, Any]], int]:
    raw: list[dict[str, Any]] = []
    raw_task = asyncio.ensure_future(_raw(_ws(settings, "after=start&batch=50"), raw))
    rebuilds: list[StoreRebuilt] = []
    url = f"{settings.base_url.replace('http', 'ws', 1)}/ws/changes"
    client = ChangeClient(url, after="start", batch=50, on_rebuilt=rebuilds.append)
    received: list[dict[str, Any]] = []

    async def follow() -> None:
        async for change in client:
            received.append(change)

    client_task = asyncio.ensure_future(follow())
    stop, sent = threading.Event(), [0]
    sender = threading.Thread(target=_keep_sending, args=(settings, stop, sent))
    sender.start()
    try:
        with (tmp_path / "rebuild.log").open("wb") as log:
            summary = await asyncio.to_thread(rebuild_and_switch, settings, timeout=180, log=log)
    finally:
        stop.set()
        await asyncio.to_thread(sender.join)
    print(f"\n{summary.report()}")
    code = await asyncio.wait_for(raw_task, 30)
    # after the switch the live worker goes on in the rebuilt store: wait for everything sent
    await asyncio.to_thread(pipeline.wait_caught_up, settings)
    head = int(pipeline.query(settings, "SELECT last FROM feed_counter")[0][0])
    deadline = time.monotonic() + 60
    while not received or received[-1]["cursor"] < head:
        assert time.monotonic() < deadline, f"the client reached {received[-1]['cursor']}, the head is {head}"
        await asyncio.sleep(0.2)
    client_task.cancel()
    await client.close()
    assert rebuilds and rebuilds[0].missed == 0, rebuilds
    return summary, raw, code, client, received, sent[0]


def _check(settings: Settings, summary: SwitchSummary, raw: list[dict[str, Any]], code: int, client: ChangeClient,
           received: list[dict[str, Any]], sent: int) -> None:
    retired = summary.retired
    old_log = [orjson.loads(e) for (e,) in pipeline.query(settings, f"SELECT event FROM {retired}.changes "  # noqa: S608
                                                          "ORDER BY cursor")]
    new_log = [orjson.loads(e) for (e,) in pipeline.query(settings, "SELECT event FROM changes ORDER BY cursor")]
    assert summary.generation == 2 and summary.previous_head == len(old_log) > 0
    assert [e["cursor"] for e in new_log] == list(range(STRIDE + 1, STRIDE + 1 + len(new_log)))
    assert sent > 0 and pipeline.count(settings, "releases") == 800 + sent  # nothing lost across the switch

    # a subscriber connected through the switch: the old log whole, once, in order; then the explicit error
    got = _changes(raw)
    assert [e["cursor"] for e in got] == list(range(1, summary.previous_head + 1))
    error = raw[-1]
    assert (error["type"], error["code"], error["previous_head"], error["resume_after"], code) == (
        "error", "store-rebuilt", summary.previous_head, summary.resume_after, 4410)
    assert "resume with after=" in error["message"]

    # the rebuilt log up to resume_after holds the same releases as the old log; the client went on from there
    at_switch = [e for e in new_log if e["cursor"] <= summary.resume_after]
    assert _releases(at_switch) == _releases(old_log)
    cursors = [e["cursor"] for e in received]
    old_part = [c for c in cursors if c <= summary.previous_head]
    assert old_part == list(range(1, summary.previous_head + 1))
    assert cursors[len(old_part):] == list(range(summary.resume_after + 1, new_log[-1]["cursor"] + 1))
    assert _releases(received) == sorted({*_releases(old_log), *_releases(new_log)})  # every release once

    # old cursors: explicit errors on every feed; new ones work
    answer = httpx.get(f"{settings.base_url}/api/changes", params={"after": 5})
    assert answer.status_code == 410 and answer.json()["code"] == "store-rebuilt", answer.text
    assert answer.json()["resume_after"] == summary.resume_after
    answer = httpx.get(f"{settings.base_url}/api/changes", params={"after": summary.resume_after, "limit": 5})
    assert answer.status_code == 200 and answer.json()["changes"][0]["cursor"] == summary.resume_after + 1
    assert httpx.get(f"{settings.base_url}/feeds/changes.atom", params={"after": 100}).status_code == 410
    feed = httpx.get(f"{settings.base_url}/feeds/changes.atom")  # the rebuilt log's archives chain from its base
    link = re.search(r'<link[^>]*rel="prev-archive"[^>]*>', feed.text)
    prev = re.search(r"after=(\d+)", link.group(0)) if link else None
    assert feed.status_code == 200 and prev is not None and int(prev.group(1)) >= STRIDE, feed.text[:2000]
    archive = httpx.get(f"{settings.base_url}/feeds/changes.atom", params={"after": prev.group(1)})
    assert archive.status_code == 200 and "<fh:archive" in archive.text
    messages: list[dict[str, Any]] = []
    assert asyncio.run(_raw(_ws(settings, "after=7"), messages)) == 4410
    assert messages[-1]["code"] == "store-rebuilt"

    # Kafka-native subscribers got the old history once and the new changes once: nothing sent again
    expected = summary.previous_head + (new_log[-1]["cursor"] - summary.resume_after)
    deadline = time.monotonic() + 30
    while len(published := read_topic(settings, settings.changes_topic, 2000)) < expected:
        assert time.monotonic() < deadline, f"{len(published)} changes published, expected {expected}"
    assert len(published) == expected


def test_replay_switch_command_twice(tmp_path: Path, profiles: Profiles) -> None:
    """`ocds-live replay --switch` run twice switches to generations 2 and 3, keeping each old store, with the same
    records and the same projects, fields a publisher supplied included; a settings app id that is not the workers'
    is refused before anything changes."""
    with fresh_stack(base_settings(), batch_size=50) as settings:
        worker = Process(settings, "process", log=tmp_path / "worker.log")
        try:
            pipeline.send(settings, pipeline.outgoing(pipeline.simulated(seed=13, count=200, processes=50)))
            pipeline.wait_caught_up(settings)
            pid, publisher, local = pipeline.query(settings, "SELECT id, publisher, local_id FROM projects LIMIT 1")[0]
            conn = connect(settings)
            try:
                assert projects.supply(conn, pid, publisher, local, {"title": "Título suministrado"}, publisher,
                                       settings, profiles)
            finally:
                conn.close()
            before = pipeline.compiled_releases(settings)
            built = dict(pipeline.query(settings, "SELECT id, data FROM projects"))
            assert orjson.loads(built[pid])["title"] == "Título suministrado"
            other = settings.model_copy(update={"app_id": f"{settings.app_id}-other"})
            refused = cli(other, "replay", "--switch")
            assert refused.returncode != 0 and "no offsets of the consumer group" in refused.stderr, refused
            for generation in (2, 3):
                done = cli(settings, "replay", "--switch", timeout=180)
                assert done.returncode == 0, done.stderr[-3000:]
                assert "switched over (live workers waited" in done.stdout
                assert f"generation {generation}, 200 releases, 50 records" in done.stdout
                assert f"ocds_retired_{generation - 1}" in done.stdout
                row = pipeline.query(settings, "SELECT generation, base FROM store_generation")[0]
                assert row == (generation, (generation - 1) * STRIDE)
            assert pipeline.compiled_releases(settings) == before
            assert pipeline.count(settings, "releases") == 200
            pipeline.wait_caught_up(settings)  # projects marked at the switch are built by the live worker
            assert dict(pipeline.query(settings, "SELECT id, data FROM projects")) == built
        finally:
            worker.stop()
