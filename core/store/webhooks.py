"""Webhooks registered by operators: registration, the next due delivery, and the delivery log (migration 0008).

Each webhook walks ``alert_events`` with its own cursor (``delivered_through``), one event at a time and in order:
an event is done when the receiver answered 2xx or when its retries ran out (logged ``failed``). Deliverers claim a
webhook with ``FOR UPDATE SKIP LOCKED`` and hold it for one attempt, so several deliverers never send the same
attempt twice.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from typing import Any

import orjson

Cursor = Any
_MATCH = ("e.cursor > w.delivered_through AND (w.rules IS NULL OR e.rule = ANY(w.rules)) "
          "AND (w.buyer_id IS NULL OR e.buyer_id = w.buyer_id)")


@dataclass(frozen=True)
class Due:
    """A webhook with an event to deliver now."""

    webhook_id: int
    url: str
    secret: str
    attempts: int
    first_attempt_at: Any
    cursor: int
    event: dict[str, Any]


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` and a base64 key of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def register(conn: Any, url: str, rules: list[str] | None, buyer: str | None, after: int | None) -> dict[str, Any]:
    """Register a webhook that receives the alert events after ``after`` (default: the current head)."""
    secret = new_secret()
    with conn.cursor() as cur:
        if after is None:
            cur.execute("SELECT last FROM alert_counter WHERE id = 1")
            after = int(cur.fetchone()[0])
        cur.execute("INSERT INTO webhooks (url, secret, rules, buyer_id, delivered_through) "
                    "VALUES (%s, %s, %s, %s, %s) RETURNING id", (url, secret, rules, buyer, after))
        ident = int(cur.fetchone()[0])
    conn.commit()
    return {"id": ident, "url": url, "secret": secret, "rules": rules, "buyer": buyer, "after": after}


def claim_due(cur: Cursor) -> Due | None:
    """Lock one webhook whose next matching event is due (its retry time has come), with that event."""
    cur.execute(f"SELECT w.id, w.url, w.secret, w.attempts, w.first_attempt_at, e.cursor, e.event FROM webhooks w "  # noqa: S608
                f"JOIN LATERAL (SELECT e.cursor, e.event FROM alert_events e WHERE {_MATCH} ORDER BY e.cursor "
                f"LIMIT 1) e ON true WHERE w.next_attempt_at IS NULL OR w.next_attempt_at <= now() "
                f"ORDER BY w.next_attempt_at NULLS FIRST, w.id LIMIT 1 FOR UPDATE OF w SKIP LOCKED")
    row = cur.fetchone()
    if row is None:
        return None
    return Due(int(row[0]), row[1], row[2], int(row[3]), row[4], int(row[5]), orjson.loads(row[6]))


def log_attempt(cur: Cursor, due: Due, message_id: str, outcome: str, status: int | None, error: str | None,
                retry_in: float | None) -> None:
    """Record one attempt; ``delivered`` and ``failed`` move the webhook past the event, ``retry`` schedules it."""
    cur.execute("INSERT INTO webhook_deliveries (webhook_id, event_cursor, message_id, attempt, outcome, http_status, "
                "error) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (due.webhook_id, due.cursor, message_id, due.attempts + 1, outcome, status, error))
    if outcome == "retry":
        cur.execute("UPDATE webhooks SET attempts = attempts + 1, "
                    "first_attempt_at = coalesce(first_attempt_at, now()), "
                    "next_attempt_at = now() + make_interval(secs => %s) WHERE id = %s", (retry_in, due.webhook_id))
    else:
        cur.execute("UPDATE webhooks SET delivered_through = %s, attempts = 0, first_attempt_at = NULL, "
                    "next_attempt_at = NULL WHERE id = %s", (due.cursor, due.webhook_id))


def deliveries(conn: Any, webhook_id: int, after: int, limit: int) -> list[dict[str, Any]]:
    """The delivery log of one webhook, oldest first, after log id ``after``."""
    with conn.cursor() as cur:
        cur.execute("SELECT id, event_cursor, message_id, attempt, outcome, http_status, error, attempted_at "
                    "FROM webhook_deliveries WHERE webhook_id = %s AND id > %s ORDER BY id LIMIT %s",
                    (webhook_id, after, limit))
        rows = cur.fetchall()
    conn.commit()
    return [{"id": r[0], "event_cursor": r[1], "message_id": r[2], "attempt": r[3], "outcome": r[4],
             "http_status": r[5], "error": r[6], "attempted_at": r[7].isoformat()} for r in rows]


def exists(conn: Any, webhook_id: int) -> bool:
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM webhooks WHERE id = %s", (webhook_id,))
        found = cur.fetchone() is not None
    conn.commit()
    return found
