"""Delivers alert events to the webhooks operators registered, as the Standard Webhooks specification defines.

Each delivery is a JSON POST ``{"type": "alert.raised" | "alert.withdrawn", "timestamp": ..., "data": <event>}`` with
the headers ``webhook-id`` (``alert-event-<cursor>``: the same on every retry, so a receiver can de-duplicate),
``webhook-timestamp`` (Unix seconds of this attempt) and ``webhook-signature``: ``v1,`` + base64 of
HMAC-SHA256(key, ``<id>.<timestamp>.<body>``), the key being the base64 part of the ``whsec_`` secret.

A receiver answering 2xx has the event; anything else (an error status, a timeout, a refused connection) is
retried after ``webhook_retry_base * 2**n`` seconds with equal jitter (half fixed, half random), for up to
``webhook_max_age`` seconds (24 hours by default) after the first attempt; then the event is logged ``failed`` and
the webhook moves on. Events reach a webhook in order: a retried event holds back the ones after it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import random
import threading
import time
from datetime import UTC, datetime

import httpx
import orjson

from core.settings import Settings
from core.store import webhooks
from core.store.connection import Connection, connect

logger = logging.getLogger("ocds_live.webhooks")


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header's value (Standard Webhooks, v1)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def retry_delay(base: float, attempts: int, rng: random.Random) -> float:
    """Seconds before the next attempt after ``attempts`` failures: exponential, with equal jitter."""
    full = base * 2.0 ** min(attempts, 30)
    return full / 2 + rng.uniform(0, full / 2)


class Deliverer:
    """Delivers due events until ``stop`` is set; run as many as needed (each claims a webhook at a time)."""

    def __init__(self, settings: Settings, stop: threading.Event | None = None, *, idle: float = 0.2) -> None:
        self.settings = settings
        self.stop = stop or threading.Event()
        self.idle = idle
        self.rng = random.Random()  # noqa: S311 - jitter, not secrecy
        self.client = httpx.Client(timeout=settings.webhook_timeout, follow_redirects=False)

    def run(self) -> None:
        conn = None
        while not self.stop.is_set():
            try:
                if conn is None:
                    conn = connect(self.settings)
                if not self.step(conn):
                    self.stop.wait(self.idle)
            except Exception as exc:  # noqa: BLE001 - store trouble: reconnect and go on
                logger.warning("webhook delivery failed (%s); retrying in 2s", exc)
                if conn is not None:
                    conn.close()
                conn = None
                self.stop.wait(2.0)
        if conn is not None:
            conn.close()
        self.client.close()

    def step(self, conn: Connection) -> bool:
        """One attempt of one due delivery; False when nothing is due."""
        with conn.cursor() as cur:
            due = webhooks.claim_due(cur)
            if due is None:
                conn.commit()
                return False
            message_id = f"alert-event-{due.cursor}"
            body = orjson.dumps({"type": due.event.get("kind"), "timestamp": datetime.now(UTC).isoformat(),
                                 "data": due.event})
            stamp = int(time.time())
            headers = {"content-type": "application/json", "webhook-id": message_id,
                       "webhook-timestamp": str(stamp), "webhook-signature": sign(due.secret, message_id, stamp, body)}
            status: int | None = None
            error: str | None = None
            try:
                status = self.client.post(due.url, content=body, headers=headers).status_code
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
            if status is not None and 200 <= status < 300:
                webhooks.log_attempt(cur, due, message_id, "delivered", status, None, None)
            else:
                error = error or f"HTTP {status}"
                delay = retry_delay(self.settings.webhook_retry_base, due.attempts, self.rng)
                started = due.first_attempt_at.timestamp() if due.first_attempt_at is not None else time.time()
                if time.time() + delay - started > self.settings.webhook_max_age:
                    webhooks.log_attempt(cur, due, message_id, "failed", status, error, None)
                    logger.warning("webhook %s: giving up on %s after %s attempts", due.webhook_id, message_id,
                                   due.attempts + 1)
                else:
                    webhooks.log_attempt(cur, due, message_id, "retry", status, error, delay)
        conn.commit()
        return True
