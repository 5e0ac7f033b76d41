"""``ocds-live replay``: rebuild a store from the releases topic.

The target database is migrated and must hold no records (``force`` overrides). A stream-processing
worker (``ocds-live process``) runs as a child process under a consumer group of its own, from the
earliest offset, until the store has recorded every offset the topic had when the replay started;
then it is stopped and the store counted. Because the processor records consumed offsets in the
same transaction as its writes, "caught up" is read from the store's ``consumer_offsets`` table, not
from Kafka.

The worker runs as ``workers`` processes in that group (default: one per partition of the topic, up to
the machine's cores), as the live stream does: each partition is still read in order by one of them.

A replay does not publish: while it runs it holds the relay's lock in the target database, so the
child's relay never sends the rebuilt change log to the change and rejected topics (subscribers
already received those events), and when the target was empty it marks the rebuilt change log as
published, so a worker later pointed at the rebuilt store does not send the history again either.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

from core.exceptions import OcdsLiveError
from core.settings import Settings
from core.store.connection import Connection, connect
from core.store.locks import RELAY_LOCK
from core.store.migrate import migrate

# the relay's advisory lock (streams/relay.py): whoever holds it in a database is that database's relay
POLL = 0.5  # seconds between looks at the store's progress
STOP_TIMEOUT = 30.0


class ReplayError(OcdsLiveError):
    """A replay could not start or did not finish."""


class TargetNotEmptyError(ReplayError, FileExistsError):
    """The target store already holds records (replay with ``force`` to add to them)."""


@dataclass(frozen=True)
class ReplaySummary:
    """What the rebuilt store holds, and how long the replay took."""

    releases: int
    records: int
    changes: int
    rejected: int
    seconds: float
    group: str
    offsets: int  # messages of the topic replayed
    workers: int = 1

    def report(self) -> str:
        rate = self.offsets / self.seconds if self.seconds else 0.0
        return (f"replayed {self.offsets} messages in {self.seconds:.1f}s ({rate:.0f}/s) as group {self.group}: "
                f"{self.releases} releases, {self.records} records, {self.changes} changes, "
                f"{self.rejected} rejected; {self.workers} worker{'s' if self.workers > 1 else ''}")


def env_for(settings: Settings) -> dict[str, str]:
    """Environment variables that reproduce ``settings`` in a child process (see core.settings)."""
    env = dict(os.environ)
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if name == "database_url":
            env["DATABASE_URL"] = str(value)
        elif name == "kafka_bootstrap_servers":
            env["KAFKA_BOOTSTRAP_SERVERS"] = str(value)
        elif hasattr(value, "get_secret_value"):
            env[f"OCDS_LIVE_{name.upper()}"] = value.get_secret_value()
        else:
            env[f"OCDS_LIVE_{name.upper()}"] = str(value)
    return env


def topic_end_offsets(settings: Settings) -> dict[int, int]:
    """The releases topic's end offset per partition, now; BrokerError when it cannot be read."""
    from core.kafka_state import end_offsets

    topic = settings.releases_topic
    ends = end_offsets(settings, [topic])[topic]
    if not ends:
        raise ReplayError(f"the topic {topic!r} does not exist: there is nothing to replay")
    return ends


def _group_is_new(settings: Settings, group: str) -> bool:
    """Whether Kafka holds no committed offsets for ``group`` (a used group would not start at 0)."""
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers, request_timeout_ms=10_000)
    try:
        committed = admin.list_group_offsets({group: None}).get(group) or {}
        return not any(tp.topic == settings.releases_topic and meta.offset >= 0 for tp, meta in committed.items())
    finally:
        admin.close()


def _scalar(conn: Connection, sql: str, params: tuple[object, ...] = ()) -> Any:
    with conn.cursor() as cur:
        cur.execute(sql, params)
        row = cur.fetchone()
    return row[0] if row else None


def _processed(conn: Connection, group: str, topic: str) -> dict[int, int]:
    with conn.cursor() as cur:
        cur.execute("SELECT partition, next_offset FROM consumer_offsets WHERE consumer_group = %s AND topic = %s",
                    (group, topic))
        return {int(p): int(o) for p, o in cur.fetchall()}


def _count(conn: Connection, table: str) -> int:
    return int(_scalar(conn, f"SELECT count(*) FROM {table}"))  # noqa: S608 - our own table names


def replay(
    settings: Settings,
    *,
    database_url: str | None = None,
    group: str | None = None,
    force: bool = False,
    timeout: float | None = None,
    log: IO[bytes] | None = None,
    progress: Callable[[int, int], None] | None = None,
    workers: int | None = None,
) -> ReplaySummary:
    """Rebuild the store at ``database_url`` (default: the configured one) from the releases topic.

    ``group`` names the consumer group (default: a new ``<app_id>-replay-<random>``); it must be new.
    ``workers``: worker processes in the group (default: one per partition, at most the machine's cores).
    The workers' output goes to ``log`` (default: a temporary file, quoted if a worker fails).
    ``progress(done, total)`` is called as offsets are processed. Raises ReplayError.
    """
    group = group or f"{settings.app_id}-replay-{uuid.uuid4().hex[:8]}"
    target = settings.model_copy(update={"database_url": database_url or settings.database_url, "app_id": group})
    if target.database_url is None:  # the embedded pgserver: pass its URL on to the child explicitly
        from core.store.connection import database_url as resolve

        target = target.model_copy(update={"database_url": resolve(target)})
    started = time.monotonic()
    conn = connect(target)
    try:
        migrate(conn)
        conn.autocommit = True
        records = _count(conn, "records")
        if records and not force:
            raise TargetNotEmptyError(
                f"the target store already holds {records} records: replay into an empty database "
                "(create one and pass --database-url), or pass --force to add to this one")
        if _processed(conn, group, target.releases_topic):
            raise ReplayError(f"the target store has already recorded offsets for group {group!r}: "
                              "pick a new --group")
        if not _group_is_new(target, group):
            raise ReplayError(f"the consumer group {group!r} already has committed offsets on "
                              f"{target.releases_topic!r}: pick a new --group")
        partitions = topic_end_offsets(target)
        ends = {p: o for p, o in partitions.items() if o > 0}
        if workers is None:
            workers = max(1, min(len(partitions), os.cpu_count() or 1))
        elif workers < 1:
            raise ReplayError(f"a replay needs at least one worker, not {workers}")
        silenced = bool(_scalar(conn, "SELECT pg_try_advisory_lock(%s)", (RELAY_LOCK,)))
        _run_workers(conn, target, ends, workers, timeout=timeout, log=log, progress=progress)
        if silenced and not records:
            # the rebuilt history was published once already, by the store it rebuilds
            with conn.cursor() as cur:
                cur.execute("UPDATE relay_progress SET last = (SELECT last FROM feed_counter WHERE id = 1) "
                            "WHERE name = 'changes'")
                cur.execute("UPDATE relay_progress SET last = (SELECT coalesce(max(id), 0) FROM rejected) "
                            "WHERE name = 'rejected'")
        return ReplaySummary(
            releases=_count(conn, "releases"), records=_count(conn, "records"), changes=_count(conn, "changes"),
            rejected=_count(conn, "rejected"), seconds=time.monotonic() - started, group=group,
            offsets=sum(ends.values()), workers=workers,
        )
    finally:
        conn.close()  # also releases the relay's lock


def _run_workers(
    conn: Connection, target: Settings, ends: dict[int, int], workers: int, *, timeout: float | None,
    log: IO[bytes] | None, progress: Callable[[int, int], None] | None,
) -> None:
    """Run ``workers`` ``ocds-live process`` for ``target`` until the store has processed ``ends``; then stop them."""
    if not sum(ends.values()):
        return
    if log is not None:
        _watch(conn, target, ends, workers, timeout, log, progress, quote=False)
    else:
        with tempfile.TemporaryFile() as out:
            _watch(conn, target, ends, workers, timeout, out, progress, quote=True)


def _watch(
    conn: Connection, target: Settings, ends: dict[int, int], workers: int, timeout: float | None, out: IO[bytes],
    progress: Callable[[int, int], None] | None, *, quote: bool,
) -> None:
    total = sum(ends.values())
    procs: list[subprocess.Popen[bytes]] = []
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        procs += [start_worker(target, out) for _ in range(workers)]
        while True:
            done = _processed(conn, target.app_id, target.releases_topic)
            behind = {p: o - done.get(p, 0) for p, o in ends.items() if done.get(p, 0) < o}
            if progress is not None:
                progress(total - sum(behind.values()), total)
            if not behind and not _count(conn, "project_dirty"):
                return  # every release processed, and every project it touched rebuilt
            for proc in procs:
                if proc.poll() is not None:
                    raise ReplayError(f"a worker exited with status {proc.returncode} before the replay "
                                      f"finished (messages behind, per partition: {behind})"
                                      f"{_tail(out) if quote else ''}")
            if deadline is not None and time.monotonic() > deadline:
                raise ReplayError(f"the replay did not finish within {timeout:.0f}s "
                                  f"(messages behind, per partition: {behind})")
            time.sleep(POLL)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()  # all at once: each then leaves the group while the others stop too
        for proc in procs:
            stop_worker(proc)


def start_worker(target: Settings, out: IO[bytes]) -> subprocess.Popen[bytes]:
    """``ocds-live process`` for ``target`` in a child process (its own session), its output to ``out``."""
    return subprocess.Popen([sys.executable, "-m", "ocds_live.cli", "process"], env=env_for(target),
                            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop_worker(proc: subprocess.Popen[bytes]) -> None:
    """Stop a worker started by :func:`start_worker` (SIGTERM, then SIGKILL after STOP_TIMEOUT)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _tail(out: IO[bytes], size: int = 4000) -> str:
    out.seek(0)
    text = out.read().decode("utf-8", "replace")[-size:]
    return f"; its last output:\n{text}"
