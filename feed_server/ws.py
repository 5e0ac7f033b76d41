"""``WS /ws/changes``: a subscriber resumes from a cursor, gets the backfill, then live changes."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from core.store import reader

router = APIRouter()
logger = logging.getLogger("ocds_live.feed")

HEARTBEAT = 15.0
CLOSE_TOO_SLOW = 4008
CLOSE_BAD_CURSOR = 4004


async def _send(ws: WebSocket, message: dict[str, Any]) -> None:
    await ws.send_text(orjson.dumps(message).decode())


@router.websocket("/ws/changes")
async def changes(ws: WebSocket) -> None:
    """Stream change events after ``?after=<cursor>`` (default: from now on)."""
    await ws.accept()
    hub = ws.app.state.hub
    settings = ws.app.state.settings
    raw_after = ws.query_params.get("after")
    try:
        position = int(raw_after) if raw_after is not None else hub.head
    except ValueError:
        await _send(ws, {"type": "error", "code": "bad-cursor", "message": f"cursor {raw_after!r} is not a number"})
        await ws.close(CLOSE_BAD_CURSOR)
        return
    first = await ws.app.state.db.run(reader.first_cursor)
    if position > hub.head or position < 0 or (first is not None and position < first - 1):
        await _send(ws, {"type": "error", "code": "unknown-cursor",
                         "message": f"cursor {position} is not in the change log ({(first or 1) - 1}..{hub.head})"})
        await ws.close(CLOSE_BAD_CURSOR)
        return
    caught_up = False
    try:
        while True:
            events = await hub.read(position, 500)
            if not events:
                if not caught_up:
                    await _send(ws, {"type": "caught_up", "cursor": position})
                    caught_up = True
                before = hub.head
                await hub.wait(position, HEARTBEAT)
                if hub.head == before:
                    await _send(ws, {"type": "heartbeat", "cursor": position})
                continue
            if hub.head - position > settings.ws_queue_size and caught_up:
                await _send(ws, {"type": "error", "code": "too-slow", "cursor": position,
                                 "message": "you fell too far behind; reconnect with ?after=<cursor>"})
                await ws.close(CLOSE_TOO_SLOW, reason=str(position))
                return
            for event in events:
                await _send(ws, {"type": "change", "cursor": event["cursor"], "change": event})
                position = event["cursor"]
    except (WebSocketDisconnect, asyncio.CancelledError, RuntimeError):
        return
