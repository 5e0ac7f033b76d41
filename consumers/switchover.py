"""``ocds-live replay --switch``: rebuild the store beside the live one, then switch over in one transaction.

The platform keeps serving from the live store (its schema, usually ``public``) while a worker of a consumer
group of its own rebuilds the store from ``ocds.releases`` in a schema of its own (``ocds_rebuild_<g>``).
That worker never gets ahead of the live store: it applies only messages below the live workers' stored
offsets (the ``replay_ceiling`` rows, raised as the live store advances), so when it has caught up the
two stores hold exactly the same messages.

The switch is one PostgreSQL transaction. It takes an EXCLUSIVE lock on the live ``consumer_offsets``
(live workers wait at the start of their next batch; readers go on), lets the rebuild catch up with the
offsets it now sees, copies the state that does not come from the release topic (consumer offsets,
webhooks, the watchdog's alerts and red-flag tables), records where the old log ended, and renames the
schemas: the live one to ``ocds_retired_<g-1>``, the rebuilt one to the live name. Every connection's next
statement reads the rebuilt store (names resolve through ``search_path`` at each statement); a live
worker that was waiting for the lock finds the rebuilt ``consumer_offsets`` and goes on from the same
offsets. Why a schema rename and not a pointer row: see docs/operating.md.

The rebuilt change log is a new sequence: its cursors start above ``(g - 1) * 10^12`` (migration 0010),
so a subscriber presenting a cursor of the old log is recognised and told what happened.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from psycopg2 import sql

from consumers.replay import ReplayError, _count, _group_is_new, _processed, _scalar, _tail, start_worker, stop_worker
from core.settings import Settings
from core.store import reader
from core.store.connection import Connection, connect, database_url, translated_errors
from core.store.migrate import migrate

STRIDE = 10**12  # cursors of generation g are above (g - 1) * STRIDE
POLL = 0.2  # seconds between looks at the rebuild's progress
SILENT = 2**62  # the relay progress of a store being rebuilt: above any cursor or id, so nothing is published
NEAR = 100  # messages behind the live store at which the switch starts
STALL = 2.0  # seconds without progress of either store, the rebuild held at a ceiling, before switching anyway
# state that does not come from the release topic, carried from the live store to the rebuilt one at the switch
CARRIED = ("webhooks", "webhook_deliveries", "alerts", "alert_events", "alert_counter", "redflag_first_published",
           "redflag_direct_awards", "redflag_bid_ratios", "redflag_bid_counts")
SERIAL = ("webhooks", "webhook_deliveries", "alerts")  # carried tables with a bigserial id


@dataclass(frozen=True)
class SwitchSummary:
    """What the switch did: the new generation, where the old store is kept, and where its log maps to."""

    generation: int
    retired: str  # the schema that keeps the replaced store
    previous_head: int  # the old log's last cursor
    resume_after: int  # the rebuilt log's cursor at the switch (it holds what the old log held up to previous_head)
    releases: int
    records: int
    changes: int
    messages: int  # messages of the release topic the rebuild applied
    seconds: float
    frozen: float  # seconds the live workers waited at the switch

    def report(self) -> str:
        return (f"rebuilt {self.messages} messages in {self.seconds:.1f}s and switched over (live workers waited "
                f"{self.frozen:.2f}s): generation {self.generation}, {self.releases} releases, {self.records} records, "
                f"{self.changes} changes; the old log ended at cursor {self.previous_head}, which is "
                f"{self.resume_after} in the new one; the old store is kept in schema {self.retired} "
                f"(drop it with: DROP SCHEMA {self.retired} CASCADE)")


def with_search_path(url: str, schema: str) -> str:
    """``url`` whose connections use ``schema`` only (libpq's ``options``)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "options"]
    query.append(("options", f"-c search_path={schema}"))
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


def _exists(conn: Connection, schema: str) -> bool:
    return bool(_scalar(conn, "SELECT count(*) FROM pg_namespace WHERE nspname = %s", (schema,)))


def _offsets(conn: Connection, schema: str, group: str, topic: str) -> dict[int, int]:
    with conn.cursor() as cur:
        cur.execute(sql.SQL("SELECT partition, next_offset FROM {}.consumer_offsets WHERE consumer_group = %s "
                            "AND topic = %s").format(sql.Identifier(schema)), (group, topic))
        return {int(p): int(o) for p, o in cur.fetchall()}


def _set_ceiling(conn: Connection, topic: str, ceiling: dict[int, int], *, final: bool = False) -> None:
    with conn.cursor() as cur:
        for partition, offset in sorted(ceiling.items()):
            cur.execute("INSERT INTO replay_ceiling VALUES (%s, %s, %s, %s) ON CONFLICT (topic, partition) "
                        "DO UPDATE SET next_offset = EXCLUDED.next_offset, final = EXCLUDED.final",
                        (topic, partition, offset, final))


def _behind(done: dict[int, int], ceiling: dict[int, int]) -> int:
    return sum(max(0, o - done.get(p, 0)) for p, o in ceiling.items())


def rebuild_and_switch(
    settings: Settings, *, group: str | None = None, timeout: float | None = None, freeze_timeout: float = 30.0,
    log: IO[bytes] | None = None, progress: Callable[[int, int], None] | None = None,
) -> SwitchSummary:
    """Rebuild the configured store from the releases topic beside it, then switch over atomically.

    ``progress(done, total)`` is called as messages are applied (``total`` grows with the live store).
    Raises ReplayError; before the switch commits, the live store is untouched (the rebuild's schema stays,
    named in the error).
    """
    from consumers.replay import topic_end_offsets

    group = group or f"{settings.app_id}-rebuild-{uuid.uuid4().hex[:8]}"
    topic = settings.releases_topic
    url = database_url(settings)
    live = connect(settings, autocommit=True)
    try:
        migrate(live)
        live.autocommit = True
        live_schema = str(_scalar(live, "SELECT current_schema()"))
        current = reader.generation(live)
        new = current.generation + 1
        base = (new - 1) * STRIDE
        if reader.head(live) >= base:
            raise ReplayError(f"the live change log has reached cursor {base}, where generation {new} starts: "
                              "this store cannot be rebuilt with a switch-over")
        schema, retired = f"ocds_rebuild_{new}", f"ocds_retired_{current.generation}"
        for name in (schema, retired):
            if _exists(live, name):
                raise ReplayError(f"the schema {name!r} exists already (an unfinished rebuild, or a kept old "
                                  f"store): drop it with `DROP SCHEMA {name} CASCADE`, then run again")
        if _count(live, "releases") and not _offsets(live, live_schema, settings.app_id, topic):
            raise ReplayError(f"the live store holds releases but no offsets of the consumer group "
                              f"{settings.app_id!r}: run with the OCDS_LIVE_APP_ID of its workers")
        target = settings.model_copy(update={"database_url": with_search_path(url, schema), "app_id": group})
        if not _group_is_new(target, group):
            raise ReplayError(f"the consumer group {group!r} already has committed offsets on {topic!r}: "
                              "pick a new --group")
        partitions = topic_end_offsets(target)
        with live.cursor() as cur:
            cur.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        rebuilt = connect(target)
        try:
            migrate(rebuilt)
            rebuilt.autocommit = True
            with rebuilt.cursor() as cur:
                cur.execute("UPDATE feed_counter SET last = %s, last_release = %s, last_record = %s",
                            (base, base, base))
                cur.execute("UPDATE store_generation SET generation = %s, base = %s", (new, base))
                # a relay started with the rebuild's worker finds nothing to publish: subscribers had the history
                # (the switch sets the real progress)
                cur.execute("UPDATE relay_progress SET last = %s", (SILENT,))
                # the project fields operators and publishers supplied: the rebuild builds its projects with them
                cur.execute(sql.SQL("INSERT INTO project_fields SELECT * FROM {}.project_fields").format(
                    sql.Identifier(live_schema)))
                _mark_supplied(cur, sql.Identifier(schema))
            rebuild = _Rebuild(settings, target, live, rebuilt, live_schema, schema, retired, list(partitions))
            if log is not None:
                return rebuild.run(log, timeout, freeze_timeout, progress, quote=False)
            with tempfile.TemporaryFile() as out:
                return rebuild.run(out, timeout, freeze_timeout, progress, quote=True)
        finally:
            rebuilt.close()
    finally:
        live.close()


@dataclass
class _Rebuild:
    """A rebuild under way: the live store, the rebuilt one beside it, and their schemas."""

    settings: Settings
    target: Settings  # the rebuild's worker: the rebuilt schema, its own consumer group
    live: Connection
    rebuilt: Connection
    live_schema: str
    schema: str
    retired: str
    partitions: list[int]

    def ceiling(self) -> dict[int, int]:
        """The live store's next offset per partition of the releases topic (what the rebuild may apply)."""
        found = _offsets(self.live, self.live_schema, self.settings.app_id, self.settings.releases_topic)
        return {p: found.get(p, 0) for p in self.partitions}

    def run(self, out: IO[bytes], timeout: float | None, freeze_timeout: float,
            progress: Callable[[int, int], None] | None, *, quote: bool) -> SwitchSummary:
        started = time.monotonic()
        _set_ceiling(self.rebuilt, self.settings.releases_topic, self.ceiling())
        worker = start_worker(self.target, out)
        deadline = None if timeout is None else started + timeout

        def follow(until: float | None, near: int, fixed: dict[int, int] | None = None) -> None:
            """Raise the ceiling with the live store (or hold it at ``fixed``) until the rebuild is at most ``near``
            messages below it; without ``fixed``, also return when neither store has moved for STALL seconds."""
            seen: tuple[dict[int, int], dict[int, int]] | None = None
            still = time.monotonic()
            while True:
                limit = fixed if fixed is not None else self.ceiling()
                if fixed is None:
                    _set_ceiling(self.rebuilt, self.settings.releases_topic, limit)
                done = _processed(self.rebuilt, self.target.app_id, self.settings.releases_topic)
                if progress is not None:
                    progress(sum(min(done.get(p, 0), o) for p, o in limit.items()), sum(limit.values()))
                behind = _behind(done, limit)
                if behind <= near:
                    return
                now = time.monotonic()
                held = any(o and done.get(p, 0) >= o for p, o in limit.items())  # at its ceiling somewhere
                if seen != (limit, done):
                    seen, still = (limit, done), now
                elif fixed is None and held and now - still > STALL:
                    # held at the ceiling of a partition the live workers are not advancing, while its messages
                    # of other partitions wait behind: the freeze makes the ceiling final, which settles it
                    return
                if worker.poll() is not None:
                    quoted = _tail(out) if quote else ""
                    raise ReplayError(f"the rebuild's worker exited with status {worker.returncode}; the live "
                                      f"store is untouched, the rebuild is in schema {self.schema!r}{quoted}")
                if until is not None and now > until:
                    raise ReplayError(f"the rebuild was {behind} messages behind when its time ran out; the live "
                                      f"store is untouched, the rebuild is in schema {self.schema!r}")
                time.sleep(POLL)

        try:
            follow(deadline, NEAR)
            frozen, previous_head, resume_after = self.switch(follow, freeze_timeout)
            worker.kill()  # its schema is gone: it can write nothing more, and has nothing to finish
            worker.wait(10)
        finally:
            stop_worker(worker)
        live = self.live
        return SwitchSummary(
            generation=reader.generation(live).generation, retired=self.retired, previous_head=previous_head,
            resume_after=resume_after, releases=_count(live, "releases"), records=_count(live, "records"),
            changes=_count(live, "changes"), messages=sum(self.ceiling().values()),
            seconds=time.monotonic() - started, frozen=frozen,
        )

    def switch(self, follow: Callable[[float | None, int, dict[int, int]], None],
               freeze_timeout: float) -> tuple[float, int, int]:
        """The switch transaction; returns (seconds the live writers waited, the old head, the new cursor for it)."""
        live = self.live
        old, new = sql.Identifier(self.live_schema), sql.Identifier(self.schema)
        live.autocommit = False
        with translated_errors(), live.cursor() as cur:
            cur.execute("SET LOCAL lock_timeout = %s", (f"{int(freeze_timeout * 1000)}ms",))
            cur.execute(sql.SQL("LOCK TABLE {}.consumer_offsets IN EXCLUSIVE MODE").format(old))
            frozen_at = time.monotonic()
            try:
                final = self.ceiling()
                _set_ceiling(self.rebuilt, self.settings.releases_topic, final, final=True)
                follow(frozen_at + freeze_timeout, 0, final)
                _wait_relay(cur, old, frozen_at + min(5.0, freeze_timeout))
                # the rebuild's worker stops here, and finds its schema gone when it goes on
                cur.execute(sql.SQL("LOCK TABLE {}.consumer_offsets IN EXCLUSIVE MODE").format(new))
                previous_head = _one(cur, sql.SQL("SELECT last FROM {}.feed_counter").format(old))
                resume_after = _one(cur, sql.SQL("SELECT last FROM {}.feed_counter").format(new))
                unpublished = previous_head - _one(cur, sql.SQL(
                    "SELECT last FROM {}.relay_progress WHERE name = 'changes'").format(old))
                self._carry(cur, old, new)
                cur.execute(sql.SQL("UPDATE {}.relay_progress SET last = %s WHERE name = 'changes'").format(new),
                            (resume_after - unpublished,))
                cur.execute(sql.SQL("UPDATE {0}.relay_progress SET last = (SELECT coalesce(max(id), 0) FROM "
                                    "{0}.rejected) WHERE name = 'rejected'").format(new))
                cur.execute(sql.SQL("DELETE FROM {}.replay_ceiling").format(new))
                cur.execute(sql.SQL("UPDATE {}.store_generation SET previous_schema = %s, previous_head = %s, "
                                    "resume_after = %s, switched_at = now()").format(new),
                            (self.retired, previous_head, resume_after))
                cur.execute(sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(old, sql.Identifier(self.retired)))
                cur.execute(sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(new, old))
                cur.execute("NOTIFY ocds_changes")  # feed servers look at the store now, not at their next poll
                live.commit()
            except BaseException:
                live.rollback()
                raise
            finally:
                live.autocommit = True
        return time.monotonic() - frozen_at, previous_head, resume_after

    def _carry(self, cur: Any, old: sql.Identifier, new: sql.Identifier) -> None:
        """Copy what does not come from the release topic: every consumer group's offsets, webhooks, alerts, the
        supplied project fields (projects built without the latest are marked for the builder)."""
        cur.execute(sql.SQL("DELETE FROM {}.project_fields").format(new))
        cur.execute(sql.SQL("INSERT INTO {}.project_fields SELECT * FROM {}.project_fields").format(new, old))
        _mark_supplied(cur, new)
        cur.execute(sql.SQL("DELETE FROM {}.consumer_offsets").format(new))
        cur.execute(sql.SQL("INSERT INTO {}.consumer_offsets SELECT * FROM {}.consumer_offsets").format(new, old))
        for table in CARRIED:
            name = sql.Identifier(table)
            cur.execute(sql.SQL("DELETE FROM {}.{}").format(new, name))
            cur.execute(sql.SQL("INSERT INTO {}.{} SELECT * FROM {}.{}").format(new, name, old, name))
            if table in SERIAL:
                cur.execute(sql.SQL("SELECT setval(pg_get_serial_sequence(%s, 'id'), coalesce(max(id), 0) + 1, "
                                    "false) FROM {}.{}").format(new, name), (f"{self.schema}.{table}",))


def _mark_supplied(cur: Any, schema: sql.Identifier) -> None:
    """Mark for the project builder every project whose supplied fields are not the ones it was built with."""
    cur.execute(sql.SQL(
        "INSERT INTO {0}.project_dirty (project_id, version, owner, local_id) "
        "SELECT f.id, (SELECT last_record FROM {0}.feed_counter), f.publisher, f.local_id FROM {0}.project_fields f "
        "LEFT JOIN {0}.projects p ON p.id = f.id WHERE p.supplied IS DISTINCT FROM f.fields "
        "ON CONFLICT (project_id) DO UPDATE SET version = EXCLUDED.version").format(schema))


def _one(cur: Any, query: sql.Composable) -> int:
    cur.execute(query)
    return int(cur.fetchone()[0])


def _wait_relay(cur: Any, old: sql.Identifier, until: float) -> None:
    """Give the live relay a moment to publish the old log's last changes (it is not blocked by the switch);
    what it has not published by then is left for it to publish from the rebuilt store."""
    query = sql.SQL("SELECT (SELECT last FROM {0}.feed_counter) - (SELECT last FROM {0}.relay_progress "
                    "WHERE name = 'changes')").format(old)
    while _one(cur, query) > 0 and time.monotonic() < until:
        time.sleep(POLL)
