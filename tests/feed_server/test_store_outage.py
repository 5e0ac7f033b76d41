"""``ocds-live serve`` while PostgreSQL is unreachable: it waits to start, answers 503 during an outage, and
comes back by itself (PostgreSQL behind tests/support/netfault.py's proxy, which the test cuts)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from core.settings import Settings
from tests.support.netfault import PgProxy
from tests.support.stack import Process, base_settings, free_port, fresh_stack, wait_http

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def settings() -> Iterator[Settings]:
    with fresh_stack(base_settings()) as settings:
        yield settings


def _get(url: str) -> tuple[int, dict[str, str], dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=15) as response:  # noqa: S310 - a local test server
            return response.status, {k.lower(): v for k, v in response.headers.items()}, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, json.loads(exc.read())


def _subscribe(url: str) -> tuple[dict[str, object], int | None, str | None]:
    """A websocket subscriber's first message and the code and reason the server closed with."""
    with connect(url, open_timeout=15) as ws:
        first = json.loads(ws.recv(timeout=15))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=15)
    received = closed.value.rcvd
    return (first, None, None) if received is None else (first, received.code, received.reason)


def test_serve_waits_for_postgresql_answers_503_while_it_is_away_and_recovers(
        settings: Settings, tmp_path: Path) -> None:
    """Started with PostgreSQL unreachable the server waits (saying so) instead of exiting; once it is
    reachable the API answers; during an outage a read is a 503 with Retry-After naming the store, not a 500,
    and a websocket subscriber is told so and closed with 1013 (try again later), with no traceback in the
    log; after it the same read answers 200 again, without a restart."""
    assert settings.database_url is not None
    proxy = PgProxy(settings.database_url, free_port())
    port = free_port()
    served = settings.model_copy(update={"database_url": proxy.url, "port": port,
                                         "base_url": f"http://127.0.0.1:{port}"})
    server = Process(served, "serve", log=tmp_path / "serve.log")
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while "waiting for PostgreSQL" not in server.output():
            assert server.proc.poll() is None, f"serve exited with PostgreSQL away:\n{server.output()}"
            assert time.monotonic() < deadline, f"serve did not say it waits:\n{server.output()}"
            time.sleep(0.2)
        proxy.open()
        wait_http(f"{base}/healthz", 60)
        status, _, body = _get(f"{base}/api/changes?after=0")
        assert status == 200, body

        proxy.cut()
        status, headers, body = _get(f"{base}/api/changes?after=0")
        assert status == 503, body
        assert headers["retry-after"] == "5"
        assert "store is unavailable" in str(body["error"])
        assert _subscribe(f"ws://127.0.0.1:{port}/ws/changes?after=0") == (
            {"type": "error", "code": "store-unavailable", "cursor": 0,
             "message": "the store is unreachable right now; reconnect in a few seconds with after=0"},
            1013, "store-unavailable")

        proxy.open()
        deadline = time.monotonic() + 30
        while (status := _get(f"{base}/api/changes?after=0")[0]) != 200:
            assert status == 503 and time.monotonic() < deadline, status
            time.sleep(0.5)
        assert server.proc.poll() is None
        assert "Traceback" not in server.output(), server.output()
    finally:
        proxy.cut()
        server.stop()
