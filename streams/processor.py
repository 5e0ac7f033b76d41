"""One micro-batch of ``ocds.releases`` messages → one PostgreSQL transaction.

The thin shell around the pure core: validate (``core.validate``), merge (``core.merge``), detect
changes (``core.changes``), then write releases, records, changes, rejected releases and the consumed
offsets in one transaction. A message whose offset the store has already recorded is skipped, so a
re-delivery (restart, rebalance, producer retry) changes nothing and emits no second change event.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from core.changes import detect
from core.exceptions import Finding, MergeConflictError, Where
from core.kafka import HEADER_EXTENSIONS, HEADER_PUBLISHER, parse_extensions
from core.merge import MergedRecord, RecordMerger, order_key
from core.oc4ids import cached_oc4ids_schema
from core.profiles import Profiles, extension_set
from core.publishers import Publishers
from core.schema import OcdsSchema
from core.settings import Settings
from core.store import projects, writer
from core.store.connection import Connection, translated_errors
from core.types import Release

logger = logging.getLogger("ocds_live.streams")


@dataclass(frozen=True)
class Incoming:
    """One message of the releases topic, as the processor needs it."""

    topic: str
    partition: int
    offset: int
    value: bytes
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def where(self) -> Where:
        return Where(topic=self.topic, partition=self.partition, offset=self.offset)

    @property
    def declared(self) -> tuple[str, ...]:
        """The extensions the release's package declares (its ``extensions`` header)."""
        return parse_extensions(self.headers.get(HEADER_EXTENSIONS))


@dataclass
class BatchResult:
    accepted: int = 0
    rejected: int = 0
    duplicates: int = 0
    skipped: int = 0  # already processed (offset recorded in the store)
    changes: int = 0
    held: int = 0  # at or above the store's replay ceiling: to apply when it rises (a rebuild catching up)


@dataclass(frozen=True)
class _Cached:
    """A record as this worker last stored it: the seq of that write, the record, its search text."""

    seq: int
    record: MergedRecord
    search: str


@dataclass
class _Merged:
    """What merging a batch's new releases gives: the records to save, and how to save them."""

    records: dict[str, MergedRecord] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    summaries: dict[str, dict[str, Any]] = field(default_factory=dict)  # of records whose last release changed
    indexed: dict[str, str] = field(default_factory=dict)  # search text of the stored rows this worker knows
    locked: dict[str, writer.Locked] = field(default_factory=dict)  # the stored rows, locked
    recomputed: set[str] = field(default_factory=set)  # merged again from all their releases


CHECKPOINT_RATIO = 1.0
"""A record's compiled release is written again when the releases stored after its checkpoint reach this
share of its size: the write per release stays about the size of a release (not of the record), and a
reader parses and merges at most that much more than the checkpoint."""


@dataclass
class _Accepted:
    msg: Incoming
    release: Release
    digest: str
    findings: list[Finding]
    publisher: str | None
    extensions: tuple[str, ...] = ()  # the profile it was validated with: its package's and its publisher's


def canonical(release: Release) -> bytes:
    return orjson.dumps(release, option=orjson.OPT_SORT_KEYS)


def digest_of(release: Release) -> str:
    return hashlib.sha256(canonical(release)).hexdigest()


class BatchProcessor:
    """Validates, merges and stores micro-batches. Synchronous: run it in an executor thread."""

    def __init__(
        self,
        settings: Settings,
        schema: OcdsSchema,
        publishers: Publishers,
        connect: Callable[[], Connection],
    ) -> None:
        self.settings = settings
        self.group = settings.app_id
        self.publishers = publishers
        self.profiles = Profiles.from_settings(settings, schema)
        # read at start-up: a worker that cannot have the OC4IDS schema fails now, with what to do, rather
        # than dead-lettering every batch that touches a project
        cached_oc4ids_schema(settings.oc4ids_dir, settings.cache_dir)
        self._connect = connect
        self._conn: Connection | None = None
        # Records this worker merged lately, with the seq of the write that stored them and the text
        # their search vector was made from. A cached record is used only while the store still holds
        # that seq (checked under the row lock), so a rebalance or another worker can never make it
        # stale; it only saves parsing, re-indexing and rebuilding an unchanged search vector.
        self._cache: OrderedDict[str, _Cached] = OrderedDict()
        self._cache_size = settings.record_cache_size

    # -- pure part ------------------------------------------------------------------------------

    def _validate(self, msg: Incoming) -> tuple[_Accepted | None, list[Finding]]:
        name = msg.headers.get(HEADER_PUBLISHER)
        publisher = self.publishers.get(name)
        if publisher is None:
            finding = Finding("", "publisher", f"unknown publisher {name!r}: register it in the publishers file")
            return None, [finding]
        extensions = extension_set(msg.declared, publisher.extensions)
        profile = self.profiles.profile(extensions)
        verdict = self.profiles.validator(extensions).check(
            msg.value, policy=publisher.policy, prefixes=publisher.checked_prefixes, rules=publisher.rules,
            rules_severity=publisher.rules_severity, notes=profile.findings())
        if not verdict.accepted or verdict.release is None:
            return None, verdict.findings
        release = verdict.release
        return _Accepted(msg, release, digest_of(release), verdict.findings, publisher.name, extensions), []

    # -- the transaction ------------------------------------------------------------------------

    def _connection(self) -> Connection:
        if self._conn is None or self._conn.closed:
            self._conn = self._connect()
        return self._conn

    def close(self) -> None:
        if self._conn is not None and not self._conn.closed:
            self._conn.close()

    def process(self, batch: Sequence[Incoming]) -> BatchResult:
        """Apply one batch in one transaction. Raises StoreError/StoreUnavailableError (retry the batch)."""
        conn = self._connection()
        try:
            with translated_errors():
                result, saved = self._process(conn, batch)
                conn.commit()
            for ocid, entry in saved.items():
                self._cache[ocid] = entry
                self._cache.move_to_end(ocid)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
            return result
        except BaseException:
            self._cache.clear()  # records were extended in place by a transaction that did not commit
            if not conn.closed:
                try:
                    conn.rollback()
                except Exception:  # noqa: BLE001 - the connection is broken; drop it
                    conn.close()
            raise

    def _process(
        self, conn: Connection, batch: Sequence[Incoming]
    ) -> tuple[BatchResult, dict[str, _Cached]]:
        result = BatchResult()
        saved: dict[str, _Cached] = {}
        with conn.cursor() as cur:
            next_offsets = writer.lock_offsets(cur, self.group, {(m.topic, m.partition) for m in batch})
            fresh = [m for m in batch if m.offset >= next_offsets.get((m.topic, m.partition), 0)]
            result.skipped = len(batch) - len(fresh)
            ceilings, final = writer.ceilings(cur)
            if ceilings:  # a rebuild (consumers/switchover.py) applies exactly what the live store has
                below = [m for m in fresh if m.offset < ceilings.get((m.topic, m.partition), 0)]
                # above a final ceiling: the live workers' part, after the switch; else wait for it to rise
                result.held, fresh = 0 if final else len(fresh) - len(below), below
            if not fresh:
                return result, saved

            accepted: list[_Accepted] = []
            rejected: list[tuple[Incoming, list[Finding], Release | None]] = []
            for msg in fresh:
                ok, findings = self._validate(msg)
                if ok is None:
                    rejected.append((msg, findings, None))
                else:
                    accepted.append(ok)

            # same (ocid, id) twice: identical content is a duplicate; other content is refused,
            # because accepting it would make the record depend on the order of arrival
            existing = writer.existing_digests(cur, [(a.release["ocid"], a.release["id"]) for a in accepted])
            new: list[_Accepted] = []
            for item in accepted:
                key = (item.release["ocid"], item.release["id"])
                known = existing.get(key)
                if known is None:
                    existing[key] = item.digest
                    new.append(item)
                elif known == item.digest:
                    result.duplicates += 1
                else:
                    finding = Finding(
                        "/id", "release-id-reused",
                        f"release id {key[1]!r} was already published for {key[0]} with other content; "
                        "releases are immutable: publish the change under a new release id",
                    )
                    rejected.append((item.msg, [finding], item.release))

            merged = self._merge_and_detect(cur, new, rejected)
            conflicted = {id(r[0]) for r in rejected}
            # each process's releases in merge order: the seq order a reader applies after a checkpoint
            stored = sorted((a for a in new if id(a.msg) not in conflicted),
                            key=lambda a: (a.release["ocid"], order_key(a.release)))
            events = merged.events
            numbers = writer.allocate(cur, len(events), len(stored), len(merged.records))
            writer.insert_releases(cur, [
                writer.ReleaseRow(a.release, a.digest, a.publisher, a.findings, a.msg.topic, a.msg.partition,
                                  a.msg.offset, a.msg.value, a.extensions)
                for a in stored
            ], numbers.release)
            ordered = sorted(merged.records.items())
            texts = writer.save_records(cur, ordered, numbers.record, merged.summaries, merged.indexed,
                                        self._checkpoints(merged, stored, numbers.release))
            saved = {ocid: _Cached(seq, record, texts[ocid])
                     for seq, (ocid, record) in enumerate(ordered, start=numbers.record)}
            result.changes = projects.follow(cur, self.settings, merged.records, stored, events)
            result.changes += writer.append_changes(cur, events, self.settings.base_url, numbers.change)
            result.accepted = len(stored)
            for msg, findings, release in rejected:
                writer.insert_rejected(cur, msg.value, findings, msg.headers.get(HEADER_PUBLISHER), release,
                                       msg.topic, msg.partition, msg.offset, msg.declared)
            result.rejected = len(rejected)
            writer.save_offsets(cur, self.group, {
                (m.topic, m.partition): m.offset + 1 for m in sorted(fresh, key=lambda m: m.offset)
            })
        return result, saved

    def _merge_and_detect(
        self, cur: Any, new: list[_Accepted], rejected: list[tuple[Incoming, list[Finding], Release | None]],
    ) -> _Merged:
        """Merge each ocid's new releases into its record: the records to save, the change events, and what
        saving them needs. Releases whose merge fails go to ``rejected``."""
        by_ocid: dict[str, list[_Accepted]] = defaultdict(list)
        for item in new:
            by_ocid[item.release["ocid"]].append(item)
        out = _Merged()
        records = self._records(cur, sorted(by_ocid), out)
        for ocid in sorted(by_ocid):
            items = sorted(by_ocid[ocid], key=lambda a: order_key(a.release))
            record = records.get(ocid)
            # a record is merged with the union of its releases' extensions: when a release brings new ones,
            # the merge rules may change, so the record is merged again from all its releases
            stored = record.extensions if record is not None else ()
            union = extension_set(stored, *(a.extensions for a in items))
            merger = self.profiles.compiler(union)
            try:
                if (record is None or union == stored) and merger.can_extend(record, items[0].release):
                    record, step_events = self._extend(merger, record, items)
                else:
                    record, step_events = self._recompute(cur, merger, ocid, record, items)
                    out.recomputed.add(ocid)
                record.extensions = union
            except MergeConflictError as exc:
                # the ocid's new releases cannot be merged: reject them, keep the record as it was
                self._cache.pop(ocid, None)  # earlier releases of this batch may have extended it
                for a in items:
                    rejected.append((a.msg, [Finding("", "merge-conflict", exc.detail)], a.release))
                continue
            out.records[ocid] = record
            out.events += step_events
            if step_events and step_events[-1]["release_id"] == items[-1].release["id"]:
                out.summaries[ocid] = step_events[-1]["summary"]
        return out

    def _records(self, cur: Any, ocids: list[str], out: _Merged) -> dict[str, MergedRecord]:
        """Lock the existing records of ``ocids`` (into ``out.locked``); take them from the cache when still
        current (and the text of their search vector into ``out.indexed``)."""
        out.locked = writer.lock_records(cur, ocids)
        records: dict[str, MergedRecord] = {}
        missing = []
        for ocid, locked in out.locked.items():
            cached = self._cache.get(ocid)
            if cached is not None and cached.seq == locked.seq:
                records[ocid] = cached.record
                out.indexed[ocid] = cached.search
            else:
                missing.append(ocid)
        records.update(writer.load_records(cur, missing, self.profiles))
        return records

    @staticmethod
    def _checkpoints(merged: _Merged, stored: list[_Accepted], first_seq: int) -> dict[str, writer.Checkpoint]:
        """Whether each record's compiled release is written again (see ``CHECKPOINT_RATIO``): always for a new
        record, one merged again out of date order, or a row without a checkpoint seq."""
        through: dict[str, int] = {}
        added: dict[str, int] = defaultdict(int)
        for seq, a in enumerate(stored, start=first_seq):
            through[a.release["ocid"]] = seq
            added[a.release["ocid"]] += len(a.msg.value)
        plans = {}
        for ocid in merged.records:
            locked = merged.locked.get(ocid)
            tail = added[ocid] + (locked.tail_bytes if locked else 0)
            if (locked is None or locked.through is None or ocid in merged.recomputed
                    or tail >= CHECKPOINT_RATIO * locked.checkpoint_bytes):
                plans[ocid] = writer.Checkpoint(through=through[ocid])
            else:
                plans[ocid] = writer.Checkpoint(write=False, tail_bytes=tail)
        return plans

    def _extend(
        self, merger: RecordMerger, record: MergedRecord | None, items: list[_Accepted]
    ) -> tuple[MergedRecord, list[dict[str, Any]]]:
        events = []
        for a in items:
            step = merger.step(record, a.release)
            record = step.record
            change = detect(step.before, record.compiled, a.release, step.changes)
            if change is not None:
                events.append(self._event(a, change.as_dict()))
        if record is None:  # pragma: no cover - items is never empty
            raise ValueError("no releases to extend with")
        return record, events

    def _recompute(
        self, cur: Any, merger: RecordMerger, ocid: str, record: MergedRecord | None, items: list[_Accepted]
    ) -> tuple[MergedRecord, list[dict[str, Any]]]:
        """A release arrived out of date order, or brought extensions the record had not: merge from the stored
        releases, step by step."""
        base = writer.load_releases(cur, ocid)  # this batch's releases are not stored yet
        before = record.compiled if record is not None else None
        events = []
        merged = record
        for a in items:
            base.append(a.release)
            merged = merger.merge(base)
            change = detect(before, merged.compiled, a.release)
            if change is not None:
                events.append(self._event(a, change.as_dict()))
            before = merged.compiled
        if merged is None:  # pragma: no cover - items is never empty
            raise ValueError("no releases to merge")
        return merged, events

    @staticmethod
    def _event(item: _Accepted, change: dict[str, Any]) -> dict[str, Any]:
        """The change event. Its changed values are serialised now, since the record's dicts they point into
        may still change (the next release of the same process in this batch extends them in place); the
        summary is built fresh for each change."""
        release = item.release
        event = {
            "id": item.msg.headers.get("event-id") or item.digest[:32],
            "ocid": release["ocid"],
            "release_id": release["id"],
            "date": release["date"],
            "tags": release.get("tag") or [],
            "publisher": item.publisher,
            "kind": change["kind"],
            "kinds": change["kinds"],
            "summary": change["summary"],
            "changes": orjson.Fragment(orjson.dumps(change["changes"])),
        }
        if item.extensions:  # the release's profile: what its record package declares
            event["extensions"] = list(item.extensions)
        return event

    def reject_poison(self, msg: Incoming, exc: BaseException) -> None:
        """Dead-letter one message that made processing fail unexpectedly, and move past it."""
        conn = self._connection()
        finding = Finding("", "internal-error", f"processing failed: {type(exc).__name__}: {exc}; "
                          "this is a bug in ocds-live: report it with this message's offset")
        try:
            with translated_errors(), conn.cursor() as cur:
                writer.lock_offsets(cur, self.group, [(msg.topic, msg.partition)])
                writer.insert_rejected(cur, msg.value, [finding], msg.headers.get(HEADER_PUBLISHER), None,
                                       msg.topic, msg.partition, msg.offset, msg.declared)
                writer.save_offsets(cur, self.group, {(msg.topic, msg.partition): msg.offset + 1})
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
