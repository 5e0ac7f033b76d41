"""A limit on the HTTP connections one client address holds open at once, where connections are: uvicorn's protocol.

Each server process counts, per client address, its open HTTP connections that have sent a request
(one that has not sent anything yet is closed by uvicorn's keep-alive timeout). When an address already
holds ``limit`` of them, a new connection's first request is answered ``429 Too Many Requests`` with the
message below and ``Connection: close``; the address's other connections, and every other address, go on
as before. A websocket handshake is not counted: websockets have their own limit per address
(``OCDS_LIVE_WS_MAX_PER_CLIENT``), and a connection that upgrades stops counting here.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from uvicorn.protocols.http.auto import AutoHTTPProtocol

from feed_server.metrics import METRICS


def refusal(limit: int) -> bytes:
    """The whole HTTP response that refuses a connection over the limit."""
    body = orjson.dumps({"error": f"at most {limit} concurrent connections per client address: reuse a connection "
                                  "(keep-alive) or close idle ones, then retry", "status": 429})
    head = ("HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\nretry-after: 1\r\n"
            f"connection: close\r\ncontent-length: {len(body)}\r\n\r\n")
    return head.encode() + body


class ConnectionLimit:
    """Open HTTP connections per client address, for one server process; :meth:`protocol` enforces ``limit``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open: dict[str, int] = {}
        self._refusal = refusal(limit)

    def admit(self, host: str) -> bool:
        count = self.open.get(host, 0)
        if count >= self.limit:
            METRICS.connections_refused.inc()
            return False
        self.open[host] = count + 1
        return True

    def release(self, host: str) -> None:
        count = self.open.get(host, 0) - 1
        if count > 0:
            self.open[host] = count
        else:
            self.open.pop(host, None)

    def protocol(self) -> type[asyncio.Protocol]:
        """uvicorn's HTTP protocol class, counting this limit's connections (``uvicorn.Config(http=...)``)."""
        limit = self

        class Limited(AutoHTTPProtocol):  # type: ignore[valid-type,misc]
            _host: str | None = None  # the address this connection is counted for
            _seen = False  # whether its first bytes arrived
            _refused = False

            def data_received(self, data: bytes) -> None:
                if not self._seen:
                    self._seen = True
                    if b"\r\nupgrade: websocket" not in data[:8192].lower():
                        peer = self.transport.get_extra_info("peername")
                        host = str(peer[0]) if peer else "?"
                        if not limit.admit(host):
                            self._refused = True
                            self.transport.write(limit._refusal)
                            self.transport.close()
                            return
                        self._host = host
                if self._refused:
                    return
                super().data_received(data)

            def _release(self) -> None:
                if self._host is not None:
                    limit.release(self._host)
                    self._host = None

            def handle_websocket_upgrade(self, *args: Any) -> None:
                self._release()  # from here on the connection is a websocket's
                super().handle_websocket_upgrade(*args)

            def connection_lost(self, exc: Exception | None) -> None:
                self._release()
                super().connection_lost(exc)

        return Limited
