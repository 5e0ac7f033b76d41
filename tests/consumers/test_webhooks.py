"""consumers.webhooks: a receiver that fails its first deliveries gets each alert exactly once, in order, signed as
the Standard Webhooks specification defines (checked by the `standardwebhooks` package, an independent verifier);
a receiver that never answers is given up after the maximum age, each attempt logged."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg2
import pytest
from standardwebhooks import Webhook

from consumers.watchdog import Engine
from consumers.webhooks import Deliverer, retry_delay, sign
from core.merge import RecordMerger
from core.schema import OcdsSchema
from core.settings import Settings
from core.store import webhooks
from tests.consumers.test_watchdog import bidding, messages, run
from tests.feed_server.test_api import StoreWriter
from tests.support.stack import base_settings, free_port, fresh_stack
from tests.support.watchdog import alert_events, rules_for_tests


class Receiver:
    """An HTTP receiver answering 500 to its first ``fail`` requests, then verifying and accepting the rest."""

    def __init__(self, secret: str, fail: int) -> None:
        self.verifier, self.fail = Webhook(secret), fail
        self.accepted: list[str] = []
        self.requests = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.requests += 1
                if receiver.requests <= receiver.fail:
                    self.send_response(500)
                else:
                    payload = receiver.verifier.verify(body, dict(self.headers.items()))  # raises if forged
                    assert payload["data"]["cursor"] == int(self.headers["webhook-id"].rsplit("-", 1)[1])
                    receiver.accepted.append(self.headers["webhook-id"])
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def alerted(schema: OcdsSchema) -> Iterator[tuple[Settings, list[int]]]:
    """A store with alerts: six single-bid processes evaluated by the watchdog's engine; the cursors of their R018
    events (the others, R024 and R058 on equal ratios, are for webhooks to filter out)."""
    with fresh_stack(base_settings(), webhook_retry_base=0.05, webhook_max_age=60.0) as settings:
        store = StoreWriter(settings, schema, versioned=False)
        releases = []
        for i in range(6):
            release = bidding(f"ocds-test-{i}", "2024-01-01T00:00:00Z", 10, 11)
            release["tender"]["numberOfTenderers"] = 1
            releases.append(release)
        store.write(releases)
        store.close()
        conn = psycopg2.connect(settings.database_url)
        run(Engine(conn, RecordMerger(schema, versioned=False), rules_for_tests(), group="g", topic="t",
                   base_url=settings.base_url), messages(settings))
        conn.close()
        yield settings, [e["cursor"] for e in alert_events(settings) if e["rule"] == "R018"]


def deliver_until(settings: Settings, done: Any, timeout: float = 60.0) -> None:
    stop = threading.Event()
    deliverer = Deliverer(settings, stop, idle=0.02)
    thread = threading.Thread(target=deliverer.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    try:
        while not done():
            assert time.monotonic() < deadline, "deliveries did not finish in time"
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(10)


def log(settings: Settings, webhook_id: int) -> list[dict[str, Any]]:
    conn = psycopg2.connect(settings.database_url)
    try:
        return webhooks.deliveries(conn, webhook_id, 0, 1000)
    finally:
        conn.close()


def test_a_failing_receiver_gets_each_alert_once_in_order_after_retries(alerted: tuple[Settings, list[int]]) -> None:
    """Three 500s first, then every event accepted exactly once, in cursor order, each signature verified."""
    settings, cursors = alerted
    assert len(cursors) == 6
    conn = psycopg2.connect(settings.database_url)
    hook = webhooks.register(conn, "http://127.0.0.1:1/", ["R018"], None, after=0)
    receiver = Receiver(hook["secret"], fail=3)
    with conn.cursor() as cur:
        cur.execute("UPDATE webhooks SET url = %s WHERE id = %s", (f"http://127.0.0.1:{receiver.port}/", hook["id"]))
    conn.commit()
    conn.close()
    try:
        deliver_until(settings, lambda: len(receiver.accepted) >= len(cursors))
        time.sleep(0.3)  # nothing more may come
    finally:
        receiver.close()
    assert receiver.accepted == [f"alert-event-{c}" for c in cursors]
    outcomes = Counter((d["event_cursor"], d["outcome"]) for d in log(settings, hook["id"]))
    assert outcomes[cursors[0], "retry"] == 3 and all(outcomes[c, "delivered"] == 1 for c in cursors)
    assert sum(n for (_, outcome), n in outcomes.items() if outcome == "delivered") == len(cursors)


def test_a_receiver_that_never_answers_is_given_up_after_the_maximum_age(alerted: tuple[Settings, list[int]]) -> None:
    """With a 0.3 s maximum age every event ends ``failed`` after its retries, and the webhook moves on."""
    settings, cursors = alerted
    conn = psycopg2.connect(settings.database_url)
    hook = webhooks.register(conn, f"http://127.0.0.1:{free_port()}/", ["R018"], None, after=0)
    conn.close()
    quick = settings.model_copy(update={"webhook_max_age": 0.3, "webhook_timeout": 1.0})
    deliver_until(quick, lambda: sum(d["outcome"] == "failed" for d in log(settings, hook["id"])) >= len(cursors))
    entries = log(settings, hook["id"])
    assert [d["event_cursor"] for d in entries if d["outcome"] == "failed"] == cursors
    assert all(d["error"] for d in entries) and any(d["outcome"] == "retry" for d in entries)


def test_signature_and_backoff_follow_the_specification() -> None:
    """The signature is what `standardwebhooks` computes; delays double with at most 50% jitter."""
    import random

    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"a":1}'
    expected = Webhook(secret).sign("msg_1", __import__("datetime").datetime.fromtimestamp(1700000000), body.decode())
    assert sign(secret, "msg_1", 1700000000, body) == expected
    rng = random.Random(1)
    delays = [retry_delay(10, n, rng) for n in range(5)]
    assert all(10 * 2**n / 2 <= d <= 10 * 2**n for n, d in enumerate(delays))
