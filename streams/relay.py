"""Publishes the store's change log and rejected releases to Kafka, in order, at least once.

Writing the store first and publishing from it means a crash between the two loses nothing: the relay
resumes after the last cursor it recorded. One relay runs at a time (a PostgreSQL advisory lock);
subscribers of ``ocds.changes`` de-duplicate by ``cursor``.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg2.extensions

from core.kafka import KeyHashCache, force_close
from core.store.locks import RELAY_LOCK
from streams.background import StoreThread

logger = logging.getLogger("ocds_live.relay")

BATCH = 1000


class Relay(StoreThread):
    name = "ocds-relay"
    what = "relay"
    logger = logger

    def work(self) -> None:
        from kafka import KafkaProducer

        producer = KafkaProducer(
            bootstrap_servers=self.settings.kafka_bootstrap_servers, acks="all", enable_idempotence=True,
            compression_type="zstd", partitioner=KeyHashCache(), linger_ms=5,
            max_request_size=4 * self.settings.max_release_bytes,
        )
        conn = self._connect()
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                # text columns as the bytes PostgreSQL sent: the events go on to Kafka as they are stored,
                # without decoding them to str and encoding them again
                psycopg2.extensions.register_type(psycopg2.extensions.BYTES, cur)
                while not self._stop.is_set():
                    cur.execute("SELECT pg_try_advisory_lock(%s)", (RELAY_LOCK,))
                    if _one(cur):
                        break
                    self._stop.wait(5.0)  # another worker relays
                while not self._stop.is_set():
                    moved = self._changes(cur, producer) + self._rejected(cur, producer)
                    if not moved:
                        self._stop.wait(0.1)
        finally:
            # not producer.close(), which raises when it cannot flush and leaves its sender thread running (after
            # a broker crash it never sends again); what it drops was not marked relayed, and is sent again
            force_close(producer, timeout=5)
            conn.close()

    def _changes(self, cur: Any, producer: Any) -> int:
        cur.execute("SELECT last FROM relay_progress WHERE name = 'changes'")
        last = _one(cur)
        cur.execute("SELECT cursor, ocid, event::text FROM changes WHERE cursor > %s ORDER BY cursor LIMIT %s",
                    (last, BATCH))
        rows = cur.fetchall()
        for cursor, ocid, event in rows:
            producer.send(self.settings.changes_topic, key=ocid, value=event,
                          headers=[("cursor", str(cursor).encode())])
        if rows:
            producer.flush(timeout=30)
            cur.execute("UPDATE relay_progress SET last = %s WHERE name = 'changes'", (rows[-1][0],))
        return len(rows)

    def _rejected(self, cur: Any, producer: Any) -> int:
        cur.execute("SELECT last FROM relay_progress WHERE name = 'rejected'")
        last = _one(cur)
        cur.execute(
            "SELECT id, ocid, publisher, findings::text, raw, source_topic, source_partition, source_offset "
            "FROM rejected WHERE id > %s ORDER BY id LIMIT %s", (last, BATCH))
        rows = cur.fetchall()
        for _rid, ocid, publisher, findings, raw, topic, partition, offset in rows:
            headers = [
                ("findings", findings),
                ("source-topic", topic),
                ("source-partition", str(partition).encode()),
                ("source-offset", str(offset).encode()),
                ("publisher", publisher or b""),
            ]
            producer.send(self.settings.rejected_topic, key=ocid or None, value=bytes(raw), headers=headers)
        if rows:
            producer.flush(timeout=30)
            cur.execute("UPDATE relay_progress SET last = %s WHERE name = 'rejected'", (rows[-1][0],))
        return len(rows)


def _one(cur: Any) -> Any:
    row = cur.fetchone()
    return row[0] if row else None

