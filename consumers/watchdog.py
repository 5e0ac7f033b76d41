"""The watchdog's engine: evaluates the red-flag rules on a batch of change-log messages and stores the alerts,
with the batch's consumed offsets, in one PostgreSQL transaction.

At least once, effects once: the offsets of ``(group, topic, partition)`` are stored in ``consumer_offsets`` with
the alerts they caused, and a message below its partition's stored offset (a re-delivery after a crash or a
rebalance) is skipped. Alerts are idempotent besides (``core.store.alerts.sync``): evaluating the same data again
writes nothing, so a replay of the topic delivers nothing new. The rules read each process's *current* compiled
release from the store (a change event names the process; the store has its latest state), and the history the
cross-process rules need is kept in tables (migration 0008), never in memory. One batch at a time across all
instances holds the watchdog lock from its first alert read to its commit; reading and merging the compiled
releases, the expensive part, runs outside it, in parallel.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from core.exceptions import OcdsLiveError
from core.profiles import CompilerSource
from core.redflags import mexico, population
from core.redflags.cardinal import bid_counts, bid_ratio
from core.redflags.config import RulesConfig
from core.redflags.projects import RULE as PROJECT_RULE
from core.redflags.projects import cost_overrun
from core.redflags.rules import PROCESS_RULES, process_flags
from core.redflags.types import Evidence, Flag, buyer_id, when
from core.store import alerts, reader
from core.store.connection import Connection, translated_errors

logger = logging.getLogger("ocds_live.watchdog")
MAX_DATE = datetime.max.replace(tzinfo=UTC)  # an unreadable date is never the earliest


@dataclass(frozen=True)
class Message:
    """What the watchdog needs of one change-log message: where it was read, its process and its release date."""

    partition: int
    offset: int
    ocid: str
    date: str | None = None


class Engine:
    """Evaluates batches for one consumer group on one topic; ``conn`` is the engine's own connection."""

    def __init__(self, conn: Connection, merger: CompilerSource, config: RulesConfig, *, group: str, topic: str,
                 base_url: str) -> None:
        self.conn, self.merger, self.config = conn, merger, config
        self.group, self.topic, self.base_url = group, topic, base_url

    def stored_offsets(self) -> dict[int, int]:
        """The next offset to process per partition, as stored."""
        with translated_errors(), self.conn.cursor() as cur:
            cur.execute("SELECT partition, next_offset FROM consumer_offsets WHERE consumer_group = %s AND topic = %s",
                        (self.group, self.topic))
            rows = dict(cur.fetchall())
        self.conn.commit()
        return rows

    def process(self, messages: Sequence[Message]) -> list[dict[str, Any]]:
        """Evaluate and store one batch; the alert events it wrote (empty for a re-delivered batch)."""
        if not messages:
            return []
        try:
            with translated_errors():
                compiled = reader.compiled_many(self.conn, sorted({m.ocid for m in messages if m.ocid}), self.merger)
                with self.conn.cursor() as cur:
                    cur.execute("SELECT pg_advisory_xact_lock(%s)", (alerts.WATCHDOG_LOCK,))
                    cur.execute("SELECT partition, next_offset FROM consumer_offsets WHERE consumer_group = %s "
                                "AND topic = %s FOR UPDATE", (self.group, self.topic))
                    stored = dict(cur.fetchall())
                    fresh = [m for m in messages if m.offset >= stored.get(m.partition, 0)]
                    events = self._evaluate(cur, fresh, compiled) if fresh else []
                    ends: dict[int, int] = {}
                    for m in fresh:
                        ends[m.partition] = max(ends.get(m.partition, 0), m.offset + 1)
                    for partition, end in ends.items():
                        cur.execute(
                            "INSERT INTO consumer_offsets (consumer_group, topic, partition, next_offset) "
                            "VALUES (%s, %s, %s, %s) ON CONFLICT (consumer_group, topic, partition) DO UPDATE "
                            "SET next_offset = GREATEST(consumer_offsets.next_offset, EXCLUDED.next_offset)",
                            (self.group, self.topic, partition, end))
                self.conn.commit()
        except BaseException:
            self.conn.rollback()
            raise
        return events

    def process_isolating(self, messages: Sequence[Message]) -> list[dict[str, Any]]:
        """:meth:`process`; if a rule fails on some data (a defect, not store trouble), each message alone, and one
        that still fails is logged with where it was read and passed over (its offset stored), losing nothing else."""
        try:
            return self.process(messages)
        except OcdsLiveError:
            raise
        except Exception:  # noqa: BLE001 - isolate the message that breaks a rule
            logger.exception("a watchdog batch failed; evaluating its %d messages one by one", len(messages))
        events = []
        for m in messages:
            try:
                events += self.process([m])
            except OcdsLiveError:
                raise
            except Exception:  # noqa: BLE001
                logger.exception("skipping the change of %s at %s[%s]@%s: a rule failed on it", m.ocid, self.topic,
                                 m.partition, m.offset)
                events += self.process([Message(m.partition, m.offset, "")])
        return events

    def _evaluate(self, cur: Any, messages: Sequence[Message], compiled: dict[str, dict[str, Any]]) -> list[Any]:
        config, base = self.config, self.base_url
        dates: dict[str, str | None] = {}
        for m in (m for m in messages if m.ocid):  # the earliest release date of the batch's changes of a process
            known = dates.get(m.ocid)
            earlier = m.date is not None and (known is None or (when(m.date) or MAX_DATE) < (when(known) or MAX_DATE))
            dates[m.ocid] = m.date if earlier else known
        flags: list[Flag] = []
        present = [o for o in sorted(dates) if o in compiled]
        published = alerts.first_published(cur, {o: ([key for key, _, _ in mexico.dated_items(compiled[o])], dates[o])
                                                 for o in present})
        ratios: dict[str, dict[str, Any] | None] = {}
        for ocid in present:
            release = compiled[ocid]
            flags += process_flags(ocid, release, config, published[ocid])
            ratio = bid_ratio(release, config)
            if ratio is not None:
                ratio["buyer"] = buyer_id(release)
            ratios[ocid] = ratio
        pairs = alerts.replace_direct_awards(cur, {o: mexico.direct_awards(o, compiled[o], config) for o in present})
        currencies = alerts.replace_bid_ratios(cur, ratios)
        counts_changed = alerts.replace_bid_counts(cur, {o: bid_counts(compiled[o]) for o in present})
        events = alerts.sync(cur, PROCESS_RULES, present, flags, base)
        projects = alerts.projects_of(cur, [o for o in sorted(dates) if o not in compiled])  # project.updated events
        events += alerts.sync(cur, [PROJECT_RULE], sorted(projects), [
            f for pid, project in sorted(projects.items()) if (f := cost_overrun(pid, project, config)) is not None],
            base)
        if pairs:
            found = mexico.repeated_direct_awards(alerts.direct_awards_of(cur, pairs), config)
            events += alerts.sync(cur, ["MX-REPEATED-DIRECT"], [f"{b}|{s}" for b, s in sorted(pairs)], found, base)
        for currency in sorted(currencies):
            events += alerts.sync(cur, ["R024", "R058"], [f"R024|{currency}", f"R058|{currency}"],
                                  self._ratio_flags(cur, currency), base)
        if counts_changed:
            scopes = ["R038|buyer", "R038|procuringEntity", "R038|tenderer"]
            found = [self._with_processes(cur, f) for f in population.r038_flags(alerts.bid_count_totals(cur), config)]
            events += alerts.sync(cur, ["R038"], scopes, found, base)
        return alerts.append_events(cur, events)

    @staticmethod
    def _with_processes(cur: Any, flag: Flag) -> Flag:
        """An R038 flag with its evidence: the processes where the party had bids disqualified (at most 50)."""
        rows = alerts.disqualifying_processes(cur, flag.detail["kind"], flag.detail["id"])
        evidence = tuple(Evidence("/bids/details", {"disqualified": d, "submitted": n}, ocid) for ocid, d, n in rows)
        return replace(flag, ocids=tuple(ocid for ocid, _, _ in rows), evidence=evidence)

    def _ratio_flags(self, cur: Any, currency: str) -> list[Flag]:
        n, kth = alerts.ratio_population(cur, currency)
        fences = population.ratio_fences(n, kth, self.config)
        if fences is None:
            return []
        upper = fences["upper_fence"] if fences["upper_fence"] > 0 else None
        flags = []
        for ocid, low, row in alerts.ratios_outside(cur, currency, fences["lower_fence"], upper):
            if low:
                flags.append(population.ratio_flag("R024", ocid, row, fences))
            if upper is not None and row["ratio"] >= upper:
                flags.append(population.ratio_flag("R058", ocid, row, fences))
        return flags
