"""The Faust app: one agent reads ``ocds.releases`` in micro-batches and hands them to the processor.

Faust is treated as at-least-once: the processor records consumed offsets in PostgreSQL in the same
transaction as the writes, so Faust's own commits only decide where re-reading starts. No exception
escapes the agent: a failing database is retried with backoff (the partition waits, its offset is never
skipped); a message that makes processing fail unexpectedly is dead-lettered on its own.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Sequence
from typing import Any, cast

import faust

from core.exceptions import StoreUnavailableError
from core.kafka import headers_dict
from core.pauses import PlannedCollections
from core.publishers import load_publishers
from core.schema import load_schema
from core.settings import Settings
from core.store.connection import connect
from streams.processor import BatchProcessor, Incoming
from streams.project_builder import BuilderProcess
from streams.relay import Relay

logger = logging.getLogger("ocds_live.streams")
HOLD_POLL = 0.1  # seconds between looks at a rebuild's replay ceiling


def _incoming(event: Any) -> Incoming:
    message = event.message
    return Incoming(message.topic, message.partition, message.offset, message.value or b"",
                    headers_dict(message.headers))


def _span(batch: Sequence[Incoming]) -> str:
    parts = sorted({(m.topic, m.partition) for m in batch})
    return ", ".join(
        f"{t}[{p}]@{min(m.offset for m in batch if m.partition == p)}-"
        f"{max(m.offset for m in batch if m.partition == p)}" for t, p in parts
    )


async def handle_batch(processor: BatchProcessor, batch: Sequence[Incoming], stopping: threading.Event) -> None:
    """Process one batch; never raises (except cancellation)."""
    loop = asyncio.get_running_loop()
    delay = 0.5
    while True:
        try:
            result = await loop.run_in_executor(None, processor.process, batch)
            logger.debug("batch %s: %s", _span(batch), result)
            if not result.held:
                return
            # a rebuild's worker at its replay ceiling (consumers/switchover.py): the rest waits for it to rise
            if stopping.is_set():
                raise asyncio.CancelledError
            await asyncio.sleep(HOLD_POLL)
            continue
        except StoreUnavailableError as exc:
            logger.warning("store failed for %s: %s; retrying in %.1fs (the partition waits; nothing is "
                           "skipped)", _span(batch), exc, delay)
        except Exception as exc:  # noqa: BLE001 - isolate the message that breaks processing
            logger.exception("processing %s failed unexpectedly (%s); retrying one message at a time",
                             _span(batch), exc)
            if len(batch) > 1:
                for message in batch:
                    await handle_batch(processor, [message], stopping)
                return
            try:
                await loop.run_in_executor(None, processor.reject_poison, batch[0], exc)
                return
            except Exception as inner:  # noqa: BLE001 - store trouble: retry below
                logger.warning("could not dead-letter %s: %s", _span(batch), inner)
        if stopping.is_set():
            raise asyncio.CancelledError
        await asyncio.sleep(delay)
        delay = min(delay * 2, 30.0)


def create_app(settings: Settings) -> faust.App:
    """The stream processor's Faust app, wired to the store, the relay and the project builder."""
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{settings.kafka_bootstrap_servers}",
        store="memory://",
        web_enabled=False,
        topic_partitions=settings.partitions,
        topic_replication_factor=1,
        consumer_auto_offset_reset="earliest",
        broker_commit_every=100,
        broker_commit_interval=1.0,
        consumer_max_fetch_size=8 * 1024 * 1024,
        stream_buffer_maxsize=4 * settings.batch_size,
    )
    topic = app.topic(settings.releases_topic, key_type=bytes, value_type=bytes,
                      key_serializer="raw", value_serializer="raw", partitions=settings.partitions)
    schema = load_schema(settings.schema_dir, settings.cache_dir)
    processor = BatchProcessor(settings, schema, load_publishers(settings.publishers_file),
                               lambda: connect(settings))
    stopping = threading.Event()
    relay = Relay(settings, lambda: connect(settings))
    builder = BuilderProcess(settings)  # rebuilds projects in a process of its own (streams/project_builder.py)

    @app.agent(topic, concurrency=1)
    async def process(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        relay.start()
        builder.start()
        collections = PlannedCollections(settings.full_gc_interval).start()
        try:
            batches = cast(faust.Stream[bytes], stream).take_events(settings.batch_size, within=settings.batch_within)
            async for events in batches:
                await handle_batch(processor, [_incoming(e) for e in events], stopping)
                yield None
        finally:
            stopping.set()
            await asyncio.to_thread(relay.stop)
            await asyncio.to_thread(builder.stop)
            await asyncio.to_thread(collections.stop)
            processor.close()

    return app


class Worker(faust.Worker):
    """A Faust worker without the terminal spinner.

    To spin at every log record, Faust's spinner sets the root logger to DEBUG, so every debug call of
    kafka-python, aiokafka and Faust builds a record that no handler prints (about 5% of a busy worker's
    CPU in a py-spy profile). Without it the root logger keeps the level asked for.
    """

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        self.spinner = None


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    """Run one stream-processing worker until interrupted (start several for more throughput)."""
    app = create_app(settings)
    worker = Worker(app, loglevel=loglevel)
    worker.execute_from_commandline()
