"""``ocds-live watch --service``: the watchdog as a Kafka consumer group on the change topic.

Start several: the group shares the topic's partitions among them, and a rebalance (an instance started, stopped
or killed) moves partitions without losing or repeating an alert. Offsets live in PostgreSQL with the alerts
(``consumers.watchdog.Engine``): on assignment each partition is moved to its stored offset, after a failed batch
back to it; Kafka's own committed offsets are never used.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import orjson

from consumers.watchdog import Engine, Message
from core.exceptions import OcdsLiveError
from core.extensions import ExtensionResolver
from core.profiles import Profiles
from core.redflags.config import load_config
from core.schema import load_schema
from core.settings import Settings
from core.store.connection import connect

logger = logging.getLogger("ocds_live.watchdog")


def _message(record: Any) -> Message:
    """The watchdog's view of a change-log record; one it cannot read has no ocid (logged; only its offset counts)."""
    try:
        event = orjson.loads(record.value)
        ocid = event["ocid"]
        date = event.get("date")
        return Message(record.partition, record.offset, str(ocid), date if isinstance(date, str) else None)
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        logger.warning("skipping unreadable change at %s[%s]@%s: %s", record.topic, record.partition,
                       record.offset, exc)
        return Message(record.partition, record.offset, "", None)


class WatchdogService:
    """One watchdog instance: polls the change topic in its group, evaluates and stores each batch."""

    def __init__(self, settings: Settings, stop: threading.Event | None = None) -> None:
        self.settings = settings
        self.stop = stop or threading.Event()
        schema = load_schema(settings.schema_dir, settings.cache_dir)
        resolver = ExtensionResolver(settings.extensions_dir, settings.cache_dir,
                                     download=settings.extensions_download)
        self.engine = Engine(connect(settings), Profiles(schema, resolver),  # records merged with their profile
                             load_config(settings.redflags_file), group=settings.watchdog_group_id,
                             topic=settings.changes_topic, base_url=settings.base_url)
        self.alerts = 0

    def _consumer(self) -> Any:
        from kafka import ConsumerRebalanceListener, KafkaConsumer

        consumer = KafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap_servers, group_id=self.settings.watchdog_group_id,
            enable_auto_commit=False, auto_offset_reset="earliest", max_poll_records=500,
            session_timeout_ms=6000, heartbeat_interval_ms=1000, client_id="ocds-live-watchdog",
        )
        engine, topic = self.engine, self.settings.changes_topic

        class Seek(ConsumerRebalanceListener):  # type: ignore[misc]
            def on_partitions_revoked(self, revoked: Any) -> None:
                logger.info("partitions revoked: %s", sorted(tp.partition for tp in revoked))

            def on_partitions_assigned(self, assigned: Any) -> None:
                stored = engine.stored_offsets()
                for tp in assigned:
                    consumer.seek(tp, stored.get(tp.partition, 0))
                logger.info("partitions assigned: %s", sorted(tp.partition for tp in assigned))

        consumer.subscribe([topic], listener=Seek())
        return consumer

    def _rewind(self, consumer: Any) -> None:
        """After a failed batch: every assigned partition back to its stored offset, to be read again (with a new
        connection, until the store answers)."""
        while not self.stop.is_set():
            try:
                self.engine.conn.close()
                self.engine.conn = connect(self.settings)
                stored = self.engine.stored_offsets()
            except OcdsLiveError as exc:
                logger.warning("the store is unavailable (%s); retrying in 2s", exc)
                self.stop.wait(2.0)
                continue
            for tp in consumer.assignment():
                consumer.seek(tp, stored.get(tp.partition, 0))
            return

    def run(self) -> None:
        """Consume until ``stop`` is set; a failed batch (store or broker trouble) is retried, never skipped."""
        from kafka.errors import KafkaError

        consumer = self._consumer()
        try:
            while not self.stop.is_set():
                try:
                    polled = consumer.poll(timeout_ms=500)
                except KafkaError as exc:  # the broker went away: the client reconnects on the next poll
                    logger.warning("polling the change topic failed (%s); retrying in 2s", exc)
                    self.stop.wait(2.0)
                    continue
                messages = [_message(r) for records in polled.values() for r in records]
                if not messages:
                    continue
                try:
                    events = self.engine.process_isolating(messages)
                except OcdsLiveError as exc:
                    logger.warning("watchdog batch failed (%s); reading it again in 2s", exc)
                    self.stop.wait(2.0)
                    self._rewind(consumer)
                    continue
                self.alerts += len(events)
                for event in events:
                    logger.info("%s %s %s", event["kind"], event["rule"], event["key"])
        finally:
            consumer.close()
            self.engine.conn.close()


def run_service(settings: Settings) -> None:
    """Run one watchdog instance and a webhook deliverer until interrupted."""
    from consumers.webhooks import Deliverer

    stop = threading.Event()
    deliverer = Deliverer(settings, stop)
    thread = threading.Thread(target=deliverer.run, name="ocds-webhooks", daemon=True)
    thread.start()
    try:
        WatchdogService(settings, stop).run()
    finally:
        stop.set()
        thread.join(timeout=10)
