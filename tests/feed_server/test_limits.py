"""Limits, on by default, each refused with its documented status and message while other clients go on.

A real feed server (``ocds-live serve``) on the real stack; clients come from two loopback addresses
(127.0.0.1 and 127.0.0.2), so per-address limits are what a second machine would see.
"""

from __future__ import annotations

import hashlib
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from core.kafka import ensure_topics
from core.publishers_file import rotate_token
from core.settings import Settings
from tests.support.stack import Process, base_settings, free_port, fresh_stack, wait_http

pytestmark = pytest.mark.integration

HTTP_MAX = 4
TOKENS = {"limited": "token-of-limited-9f8e7d", "defaulted": "token-of-defaulted-6c5b4a",
          "rotated": "token-of-rotated-3e2d1c", "rotated-new": "token-of-rotated-new-0b9a8f"}
PUBLISHERS = """
[[publisher]]
name = "limited"
prefixes = ["ocds-07smqs"]
rate_limit = 3
token_sha256 = "{limited}"

[[publisher]]
name = "defaulted"
prefixes = ["ocds-07smqs"]
token_sha256 = "{defaulted}"

[[publisher]]
name = "rotated"
prefixes = ["ocds-07smqs"]
token_sha256 = "{rotated}"
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, Process]]:
    folder = tmp_path_factory.mktemp("limits")
    path = folder / "publishers.toml"
    path.write_text(PUBLISHERS.format(**{k.replace("-", "_"): hashlib.sha256(v.encode()).hexdigest()
                                         for k, v in TOKENS.items()}))
    with fresh_stack(base_settings(), publishers_file=path, port=free_port(), max_release_bytes=64 * 1024,
                     read_rate_limit=5, ws_max_per_client=2, publisher_rate_limit=5,
                     http_max_per_client=HTTP_MAX) as settings:
        ensure_topics(settings)
        process = Process(settings, "-v", "serve", log=folder / "serve.log")
        try:
            wait_http(f"{settings.base_url}/healthz", 60)
            yield settings, process
        finally:
            process.stop()


def _client(address: str) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=20)


def _release(n: int, **extra: object) -> dict[str, object]:
    return {"ocid": f"ocds-07smqs-limit-{n}", "id": f"r{n}", "date": "2024-01-01T00:00:00Z", **extra}


def _post(client: httpx.Client, settings: Settings, publisher: str, body: object) -> httpx.Response:
    return client.post(f"{settings.base_url}/api/releases", content=json.dumps(body),
                       headers={"Authorization": f"Bearer {TOKENS[publisher]}"})


def test_a_rotated_token_applies_without_a_restart(server: tuple[Settings, Process]) -> None:
    """After `publishers rotate-token`, the running server refuses the old token and takes the new one."""
    settings, _ = server
    with _client("127.0.0.1") as client:
        assert _post(client, settings, "rotated", _release(40)).status_code == 202
        rotate_token(settings.publishers_file, "rotated", TOKENS["rotated-new"])
        deadline = time.monotonic() + 10
        while _post(client, settings, "rotated", _release(41)).status_code != 401:
            assert time.monotonic() < deadline, "the old token still works"
            time.sleep(0.2)
        assert _post(client, settings, "rotated-new", _release(42)).status_code == 202


def test_request_body_size(server: tuple[Settings, Process]) -> None:
    """A body over OCDS_LIVE_MAX_RELEASE_BYTES is 413 with the limit named; a small one right after is 202."""
    settings, _ = server
    with _client("127.0.0.1") as client:
        big = _post(client, settings, "defaulted", _release(1, padding="x" * 70_000))
        assert big.status_code == 413
        assert big.json() == {"error": f"the body is {len(big.request.content)} bytes; the limit is 65536",
                              "status": 413}
        assert _post(client, settings, "defaulted", _release(2)).status_code == 202


def test_json_depth(server: tuple[Settings, Process]) -> None:
    """A release nested deeper than OCDS_LIVE_MAX_DEPTH is 400 with where; nothing of the request is sent."""
    settings, _ = server
    deep: dict[str, object] = {}
    node = deep
    for _ in range(70):
        node["a"] = {}
        node = node["a"]  # type: ignore[assignment]
    with _client("127.0.0.1") as client:
        answer = _post(client, settings, "defaulted", [_release(3), _release(4, deep=deep)])
        assert answer.status_code == 400
        assert answer.json()["error"].startswith("/1: /deep/a/a")
        assert "nested deeper than the limit of 64 levels" in answer.json()["error"]


def test_requests_per_second_per_client(server: tuple[Settings, Process]) -> None:
    """Past OCDS_LIVE_READ_RATE_LIMIT reads/s one address gets 429 with Retry-After; another address does not."""
    settings, _ = server
    url = f"{settings.base_url}/api/changes?after=0"
    with _client("127.0.0.1") as first, _client("127.0.0.2") as second:
        statuses = [first.get(url).status_code for _ in range(12)]
        assert statuses[:5] == [200] * 5 and 429 in statuses
        refused = first.get(url)
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
        assert refused.json()["error"].startswith("over 5 requests/s; retry after")
        assert second.get(url).status_code == 200


def test_releases_per_second_per_publisher(server: tuple[Settings, Process]) -> None:
    """A publisher over its rate_limit (or, without one, OCDS_LIVE_PUBLISHER_RATE_LIMIT) gets 429; another
    publisher goes on."""
    settings, _ = server
    with _client("127.0.0.1") as client:
        assert _post(client, settings, "limited", [_release(10), _release(11), _release(12)]).status_code == 202
        over = _post(client, settings, "limited", _release(13))
        assert over.status_code == 429 and over.headers["Retry-After"] == "1"
        assert over.json()["error"] == "publisher 'limited' is over its rate of 3 releases/s; retry after 1s"
        fine = _post(client, settings, "defaulted", [_release(20 + i) for i in range(4)])
        assert fine.status_code == 202, fine.text
        defaulted = _post(client, settings, "defaulted", [_release(30), _release(31)])
        assert defaulted.status_code == 429
        assert "over its rate of 5 releases/s" in defaulted.json()["error"]


def test_connections_and_subscriptions_per_address(server: tuple[Settings, Process]) -> None:
    """One subscription per connection; past OCDS_LIVE_WS_MAX_PER_CLIENT connections an address is refused
    (error 'too-many-connections', close 4429) while another address subscribes."""
    settings, _ = server
    url = f"{settings.base_url.replace('http', 'ws', 1)}/ws/changes?after=now"
    with (connect(url, source_address=("127.0.0.1", 0)) as one, connect(url, source_address=("127.0.0.1", 0)) as two):
        for ws in (one, two):
            assert orjson.loads(ws.recv(timeout=10))["type"] == "subscribed"
        with connect(url, source_address=("127.0.0.1", 0)) as third:
            refused = orjson.loads(third.recv(timeout=10))
            assert refused["code"] == "too-many-connections"
            assert refused["message"] == "at most 2 connections per client address"
            with pytest.raises(ConnectionClosed) as closed:
                third.recv(timeout=10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4429
        with connect(url, source_address=("127.0.0.2", 0)) as other:
            assert orjson.loads(other.recv(timeout=10))["type"] == "subscribed"


def _held(address: str, port: int) -> socket.socket:
    """A connection from ``address`` that has been answered once and stays open (keep-alive)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(address, 0))
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
    answer = b""
    while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
        answer += sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 200"), answer
    return sock


def test_http_connections_per_address(server: tuple[Settings, Process]) -> None:
    """Past OCDS_LIVE_HTTP_MAX_PER_CLIENT open connections, an address's next one is 429 with the limit named, while
    its open ones and another address are served; closing one lets the address connect again."""
    settings, _ = server
    held = [_held("127.0.0.1", settings.port) for _ in range(HTTP_MAX)]
    try:
        with _client("127.0.0.1") as extra:
            refused = extra.get(f"{settings.base_url}/healthz")
        assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"
        assert refused.json() == {"error": f"at most {HTTP_MAX} concurrent connections per client address: reuse a "
                                  "connection (keep-alive) or close idle ones, then retry", "status": 429}
        with _client("127.0.0.2") as other:
            assert other.get(f"{settings.base_url}/healthz").status_code == 200
        held[0].sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")  # the open ones go on
        assert held[0].recv(4096).startswith(b"HTTP/1.1 200")
        held.pop().close()
        deadline = time.monotonic() + 10
        while True:
            with _client("127.0.0.1") as again:
                if again.get(f"{settings.base_url}/healthz").status_code == 200:
                    break
            assert time.monotonic() < deadline, "a closed connection was never released"
            time.sleep(0.1)
    finally:
        for sock in held:
            sock.close()


def test_no_token_is_logged(server: tuple[Settings, Process], tmp_path: Path) -> None:
    """After accepted, refused and wrong-token requests, the server's log (at -v) holds no token."""
    settings, process = server
    with _client("127.0.0.1") as client:
        client.post(f"{settings.base_url}/api/releases", content=b"{",
                    headers={"Authorization": f"Bearer {TOKENS['limited']}x"})
        _post(client, settings, "defaulted", b"not json".decode())
    log = process.output()
    assert log.strip(), "the server logged nothing at all: the scan would prove nothing"
    for token in TOKENS.values():
        assert token not in log
