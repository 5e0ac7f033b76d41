"""``WS /ws/changes`` on the ``websockets`` library's asyncio connection, behind uvicorn on the same port.

uvicorn parses every request on the port. A websocket upgrade is handed, socket and all, to a
:class:`websockets.asyncio.server.ServerConnection` (uvicorn's ``ws`` setting takes any asyncio protocol
class: :meth:`WebsocketFront.protocol` makes one); from then on the connection is ``websockets``' alone,
with nothing of ASGI or Starlette on its path. Every other request goes to the ASGI app as before. Why
this front, and not ``websockets`` serving HTTP too: see docs/websocket.md.

Once a subscriber has caught up it belongs to the fan-out (feed_server.fanout), which writes each
group's frames once to all of its members at each step of the change hub.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from websockets.asyncio.server import Server, ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.server import ServerProtocol

from feed_server import ws_alerts
from feed_server.fanout import FanOut, text_frame
from feed_server.ws import Gone, Subscriber, Subscription

if TYPE_CHECKING:
    from fastapi import FastAPI

    from feed_server.fanout import Group

logger = logging.getLogger("ocds_live.feed")

PATH = "/ws/changes"
PING_INTERVAL = 20.0  # seconds between pings; a connection that does not answer within PING_TIMEOUT is closed
PING_TIMEOUT = 20.0
OPEN_TIMEOUT = 10.0  # seconds for the opening handshake
CLOSE_TIMEOUT = 5.0  # seconds to wait for the client's close frame
WRITE_LIMIT = 2**16  # bytes a transport may buffer before its subscriber counts as not keeping up
MAX_SIZE = 2**20  # largest client message (subscribe messages are small)


class WebsocketSubscriber(Subscriber):
    """A subscriber on a ``websockets`` connection: streams in a task until caught up, then lives in the fan-out."""

    def __init__(self, state: Any, conn: ServerConnection) -> None:
        super().__init__(state, conn.remote_address[0] if conn.remote_address else "?")
        self.conn = conn
        self.fanout: FanOut = state.fanout
        self.group: Group | None = None

    async def write(self, text: str) -> None:
        conn = self.conn
        # wait until the transport is below its low-water mark *before* writing: cancelling the wait (the
        # send timeout) then leaves nothing half-sent, and the close reason is the last cursor really sent
        await conn.drain()
        if conn.protocol.state is not State.OPEN:
            raise Gone
        conn.transport.write(text_frame(text))

    async def read(self) -> str:
        try:
            message = await self.conn.recv()
        except ConnectionClosed as exc:
            raise Gone from exc
        return message if isinstance(message, str) else message.decode(errors="replace")

    async def _close(self, code: int, reason: str) -> None:
        await self.conn.close(code, reason)

    def go_live(self, sub: Subscription) -> bool:
        if sub is not self.sub or sub.detail == "full" or sub.position != self.hub.head:
            return False
        if self.conn.protocol.state is not State.OPEN:
            return False
        self.fanout.join(self)
        return True

    def leave(self) -> None:
        self.fanout.leave(self)

    @property
    def position(self) -> int:
        return self.group.position if self.group is not None else self.sub.position


class _HandedOver(Server):
    """A ``websockets`` server that listens on no socket of its own: uvicorn hands it upgraded connections."""

    serving = True

    def is_serving(self) -> bool:
        return self.serving


class WebsocketFront:
    """Makes the asyncio protocol that uvicorn hands a websocket upgrade to, and serves ``/ws/changes`` on it."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self._server: _HandedOver | None = None

    def protocol(self, **_uvicorn: Any) -> ServerConnection:
        """A ``websockets`` server connection for one upgraded socket (called by uvicorn, with its state)."""
        if self._server is None:
            self._server = _HandedOver(self._unused, self._handle, logger)
        protocol = ServerProtocol(extensions=None, max_size=MAX_SIZE)  # no extension: no compression
        return ServerConnection(protocol, self._server, ping_interval=PING_INTERVAL, ping_timeout=PING_TIMEOUT,
                                close_timeout=CLOSE_TIMEOUT, write_limit=WRITE_LIMIT)

    async def _unused(self) -> asyncio.Server:
        raise RuntimeError("the websocket front does not listen: uvicorn does, and hands it upgraded sockets")

    def _route(self, conn: ServerConnection, request: Request) -> Response | None:
        if urlsplit(request.path).path not in (PATH, ws_alerts.PATH):
            return conn.respond(404, f"no websocket here; the change feed is {PATH}\n")
        return None

    async def _handle(self, conn: ServerConnection) -> None:
        """One connection's life, as ``websockets.asyncio.server.serve`` runs it: handshake, keepalive, handler."""
        server = conn.server
        try:
            async with asyncio.timeout(OPEN_TIMEOUT):
                await conn.handshake(self._route)
            if conn.protocol.state is not State.OPEN:
                conn.transport.abort()
                return
            server.all_connections.add(conn)
            conn.start_keepalive()
            try:
                async with conn:
                    query = dict(parse_qsl(urlsplit(conn.request.path).query if conn.request else "",
                                           keep_blank_values=True))
                    if urlsplit(conn.request.path if conn.request else "").path == ws_alerts.PATH:
                        await ws_alerts.serve_connection(self.app.state, conn, query)  # the alerts feed
                    else:
                        await WebsocketSubscriber(self.app.state, conn).run(query)
            except Exception:
                logger.exception("websocket handler failed")
            finally:
                server.all_connections.discard(conn)
        except Exception:  # noqa: BLE001 - a failed handshake: drop the socket, as websockets does
            conn.transport.abort()
        finally:
            task = asyncio.current_task()
            if task is not None:
                server.handler_tasks.discard(task)

    async def close(self) -> None:
        """Close every websocket connection (1001, going away), for a clean shutdown."""
        if self._server is None:
            return
        self._server.serving = False  # handshakes from now on are refused with 503
        closing = [asyncio.ensure_future(conn.close(1001, "server shutting down"))
                   for conn in self._server.all_connections]
        if closing:
            await asyncio.wait(closing, timeout=CLOSE_TIMEOUT)
        tasks = list(self._server.handler_tasks)
        if tasks:
            await asyncio.wait(tasks, timeout=CLOSE_TIMEOUT)
