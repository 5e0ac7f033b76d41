"""``WS /ws/alerts`` on a real server (the fan-out front of ``ocds-live serve`` and the ASGI route): backfill then
live without a gap or a repeat, resume with ``after=``, filters, and the close codes of docs/websocket.md."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import psycopg2
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from core.redflags import Evidence, Flag
from core.settings import Settings
from core.store import alerts
from tests.support.stack import Process, base_settings, free_port, fresh_stack, wait_http

pytestmark = pytest.mark.integration


def raise_alerts(settings: Settings, numbers: range, rule: str = "R018") -> None:
    """Raise one alert per number (process ``ocds-a-<n>``, buyer by parity) in one transaction, as the watchdog
    does."""
    flags = [Flag(rule, f"ocds-a-{n}", f"ocds-a-{n}", (f"ocds-a-{n}",), (Evidence("/tender/numberOfTenderers", 1),),
                  {}, f"UC-{n % 2}") for n in numbers]
    conn = psycopg2.connect(settings.database_url)
    try:
        with conn.cursor() as cur:
            events = alerts.sync(cur, [rule], [f.scope for f in flags], flags, settings.base_url)
            alerts.append_events(cur, events)
        conn.commit()
    finally:
        conn.close()


@pytest.fixture(scope="module", params=["fanout", "asgi"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    with fresh_stack(base_settings(), port=free_port()) as settings:
        raise_alerts(settings, range(1, 451))  # more than two pages of backfill
        log = tmp_path_factory.mktemp("logs") / "serve.log"
        process = Process(settings, "serve", "--websocket", request.param, log=log)
        try:
            wait_http(f"{settings.base_url}/healthz")
            yield settings
        finally:
            process.stop()


ASYNCAPI = json.loads((Path(__file__).resolve().parents[2] / "docs" / "websocket.asyncapi.json").read_text())
PAYLOADS = {"subscribed": "alertsSubscribed", "alert": "alert", "caught_up": "caught_up", "heartbeat": "heartbeat",
            "error": "error"}


def assert_described(message: dict[str, Any]) -> None:
    """The message matches its payload in the AsyncAPI file's ``/ws/alerts`` channel."""
    name = PAYLOADS[message["type"]]
    assert {"$ref": f"#/components/messages/{name}"} in \
        ASYNCAPI["channels"]["/ws/alerts"]["subscribe"]["message"]["oneOf"]
    schema = {**ASYNCAPI["components"]["messages"][name]["payload"], "components": ASYNCAPI["components"]}
    jsonschema.Draft7Validator(schema).validate(message)


def _url(settings: Settings, query: str) -> str:
    return f"{settings.base_url.replace('http', 'ws', 1)}/ws/alerts{query}"


async def _read_until(ws: Any, done: Any, timeout: float = 20) -> list[dict[str, Any]]:
    """Messages until ``done(message)`` holds (that one included)."""
    out = []
    async with asyncio.timeout(timeout):
        while True:
            message = json.loads(await ws.recv())
            out.append(message)
            if done(message):
                return out


def test_backfill_then_live_then_resume_without_gaps(server: Settings) -> None:
    """From ``start``: 450 alerts in cursor order, ``caught_up`` at 450, then alerts raised meanwhile arrive live;
    reconnecting with the last cursor seen gives exactly the rest."""
    async def run() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        async with websockets.connect(_url(server, "?after=start")) as ws:
            first = await _read_until(ws, lambda m: m["type"] == "caught_up")
            base = first[-1]["cursor"]
            await asyncio.to_thread(raise_alerts, server, range(1000, 1005))
            first += await _read_until(ws, lambda m: m.get("cursor") == base + 5)
        await asyncio.to_thread(raise_alerts, server, range(2000, 2003))
        async with websockets.connect(_url(server, f"?after={base + 2}")) as ws:
            again = await _read_until(ws, lambda m: m["type"] == "caught_up")
        return first, again

    first, again = asyncio.run(run())
    for message in first + again:
        assert_described(message)
    assert first[0] == {"type": "subscribed", "cursor": 0, "filters": {}}
    alerts_seen = [m for m in first if m["type"] == "alert"]
    head = next(m["cursor"] for m in first if m["type"] == "caught_up")
    assert [m["cursor"] for m in alerts_seen] == list(range(1, head + 6))
    assert all(m["alert"]["cursor"] == m["cursor"] and m["alert"]["kind"] == "alert.raised" for m in alerts_seen)
    assert alerts_seen[-1]["alert"]["key"] == "ocds-a-1004"
    assert [m["cursor"] for m in again if m["type"] == "alert"] == [head + 3, head + 4, head + 5, head + 6,
                                                                     head + 7, head + 8]
    assert again[-1] == {"type": "caught_up", "cursor": head + 8}


def test_filters_select_the_matching_alerts_and_now_starts_at_the_head(server: Settings) -> None:
    """``buyer=UC-0`` backfills only that buyer's alerts; ``after=now`` (the default) sends only new ones."""

    async def run() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        async with websockets.connect(_url(server, "?after=0&buyer=UC-0&rule=R018")) as ws:
            filtered = await _read_until(ws, lambda m: m["type"] == "caught_up")
        async with websockets.connect(_url(server, "")) as ws:
            live = await _read_until(ws, lambda m: m["type"] == "caught_up")
            await asyncio.to_thread(raise_alerts, server, range(3000, 3001), "R003")
            live += await _read_until(ws, lambda m: m["type"] == "alert")
        return filtered, live

    filtered, live = asyncio.run(run())
    assert filtered[0]["filters"] == {"rule": "R018", "buyer": "UC-0"}
    got = [m["alert"] for m in filtered if m["type"] == "alert"]
    assert len(got) >= 225 and all(a["buyer"] == "UC-0" and a["rule"] == "R018" for a in got)
    assert [m["type"] for m in live] == ["subscribed", "caught_up", "alert"]
    assert live[0]["cursor"] == live[1]["cursor"] and live[2]["alert"]["rule"] == "R003"


@pytest.mark.parametrize(("query", "code", "close"), [
    ("?after=99999999", "unknown-cursor", 4004), ("?after=x", "bad-request", 4400),
    ("?rule=NOPE", "bad-request", 4400), ("?colour=red", "bad-request", 4400)])
def test_bad_cursors_and_parameters_are_explicit_errors(server: Settings, query: str, code: str, close: int) -> None:
    """An unknown cursor closes with 4004, a bad parameter with 4400, each after an ``error`` naming it."""

    async def run() -> tuple[dict[str, Any], int | None]:
        async with websockets.connect(_url(server, query)) as ws:
            message = json.loads(await ws.recv())
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            return message, ws.close_code

    message, closed = asyncio.run(run())
    assert_described(message)
    assert message["type"] == "error" and message["code"] == code and closed == close


def test_project_filter_selects_the_projects_alerts_and_its_processes(server: Settings) -> None:
    """``project=`` on the API and the websocket: the alerts of the processes that belong to the project and the
    project's own alert, nothing else."""
    pid = "oc4ids-test01-P1"
    conn = psycopg2.connect(server.database_url)
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO project_members (ocid, project_id, publisher) VALUES (%s, %s, 'bulk')",
                        [("ocds-a-7", pid), ("ocds-a-8", pid)])
        flag = Flag("PROJECT-COST-OVERRUN", pid, pid, (pid,), (Evidence("/budget/amount/amount", 1),), {"project": pid})
        alerts.append_events(cur, alerts.sync(cur, ["PROJECT-COST-OVERRUN"], [pid], [flag], server.base_url))
    conn.commit()
    conn.close()
    with urllib.request.urlopen(f"{server.base_url}/api/alerts?project={pid}") as answer:  # noqa: S310
        api = [(a["key"], a["record_url"]) for a in json.loads(answer.read())["alerts"]]
    base = server.base_url
    assert api == [("ocds-a-7", f"{base}/records/ocds-a-7"), ("ocds-a-8", f"{base}/records/ocds-a-8"),
                   (pid, f"{base}/projects/{pid}")]

    async def run() -> list[dict[str, Any]]:
        async with websockets.connect(_url(server, f"?after=start&project={pid}")) as ws:
            return await _read_until(ws, lambda m: m["type"] == "caught_up")

    assert [m["alert"]["key"] for m in asyncio.run(run()) if m["type"] == "alert"] == [k for k, _ in api]
