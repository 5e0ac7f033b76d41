"""The stream processor's writes: idempotent, batched, all inside the caller's transaction."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from psycopg2.extras import execute_values

from core.exceptions import Finding
from core.merge import MergedRecord
from core.profiles import CompilerSource, compiler_for
from core.store import reader
from core.summary import record_columns, search_text, summarize
from core.types import Release

Cursor = Any  # psycopg2 cursor


def json_text(value: Any) -> str:
    """Compact JSON, for the ``text`` columns that hold JSON and the parameters cast to ``jsonb``."""
    return orjson.dumps(value).decode()


class _Unaccented(dict[int, str]):
    """``str.translate`` table: each character without its accents, worked out once per character seen."""

    def __missing__(self, code: int) -> str:
        decomposed = unicodedata.normalize("NFKD", chr(code))
        self[code] = plain = "".join(c for c in decomposed if not unicodedata.combining(c))
        return plain


_UNACCENTED = _Unaccented()


def unaccent(text: str) -> str:
    """Strip accents so that Spanish search is accent-insensitive ("licitación" finds "licitacion")."""
    return text if text.isascii() else text.translate(_UNACCENTED)


def instant(value: Any) -> datetime | None:
    """An OCDS date as an aware datetime: None when unreadable; without an offset it counts as UTC."""
    if not isinstance(value, str) or len(value) < 10 or not value[:4].isdigit():
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def lock_offsets(cur: Cursor, group: str, partitions: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int]:
    """Lock and read the next offset to process for each partition (serialises rebalance overlaps)."""
    keys = sorted(set(partitions))
    execute_values(
        cur,
        "INSERT INTO consumer_offsets (consumer_group, topic, partition, next_offset) VALUES %s "
        "ON CONFLICT DO NOTHING",
        [(group, t, p, 0) for t, p in keys],
    )
    out: dict[tuple[str, int], int] = {}
    for topic, partition in keys:
        cur.execute(
            "SELECT next_offset FROM consumer_offsets WHERE consumer_group=%s AND topic=%s AND partition=%s "
            "FOR UPDATE",
            (group, topic, partition),
        )
        out[(topic, partition)] = cur.fetchone()[0]
    return out


def ceilings(cur: Cursor) -> tuple[dict[tuple[str, int], int], bool]:
    """The offsets a rebuilding worker must not reach, per partition, and whether they are final (migration
    0010; none in a live store)."""
    cur.execute("SELECT topic, partition, next_offset, final FROM replay_ceiling")
    rows = cur.fetchall()
    return {(t, int(p)): int(o) for t, p, o, _ in rows}, bool(rows) and all(f for *_, f in rows)


def save_offsets(cur: Cursor, group: str, next_offsets: dict[tuple[str, int], int]) -> None:
    for (topic, partition), offset in sorted(next_offsets.items()):
        cur.execute(
            "UPDATE consumer_offsets SET next_offset = GREATEST(next_offset, %s) "
            "WHERE consumer_group=%s AND topic=%s AND partition=%s",
            (offset, group, topic, partition),
        )


def existing_digests(cur: Cursor, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], str]:
    if not keys:
        return {}
    cur.execute(
        "SELECT ocid, release_id, digest FROM releases r "
        "JOIN unnest(%s::text[], %s::text[]) AS k(o, i) ON r.ocid = k.o AND r.release_id = k.i",
        ([k[0] for k in keys], [k[1] for k in keys]),
    )
    return {(o, i): d for o, i, d in cur.fetchall()}


@dataclass(frozen=True)
class Numbers:
    """The first of the numbers one transaction took from feed_counter."""

    change: int
    release: int
    record: int


def allocate(cur: Cursor, changes: int, releases: int, records: int) -> Numbers:
    """Take gapless numbers for this transaction's changes, releases and records, in commit order.

    The UPDATE takes feed_counter's row lock and holds it until commit, so a transaction that got
    lower numbers always commits before one that got higher ones: readers paging by them never skip
    a row. Call it last in the transaction, to hold the lock briefly.
    """
    cur.execute(
        "UPDATE feed_counter SET last = last + %s, last_release = last_release + %s, "
        "last_record = last_record + %s WHERE id = 1 RETURNING last, last_release, last_record",
        (changes, releases, records),
    )
    last, last_release, last_record = cur.fetchone()
    return Numbers(last - changes + 1, last_release - releases + 1, last_record - records + 1)


@dataclass(frozen=True)
class ReleaseRow:
    release: Release
    digest: str
    publisher: str | None
    findings: list[Finding]
    topic: str
    partition: int
    offset: int
    raw: bytes | None = None  # the JSON bytes as received; default: the release serialised again
    extensions: tuple[str, ...] = ()  # the profile it was validated with

    @property
    def data(self) -> str:
        return (self.raw if self.raw is not None else orjson.dumps(self.release)).decode()


def insert_releases(cur: Cursor, rows: Sequence[ReleaseRow], first_seq: int) -> None:
    if not rows:
        return
    execute_values(
        cur,
        "INSERT INTO releases (ocid, release_id, date, tags, publisher, digest, data, findings, "
        "source_topic, source_partition, source_offset, seq, extensions) VALUES %s",
        [
            (
                r.release["ocid"], r.release["id"], r.release["date"], list(r.release.get("tag") or []),
                r.publisher, r.digest, r.data, json_text([f.as_dict() for f in r.findings]),
                r.topic, r.partition, r.offset, seq, list(r.extensions),
            )
            for seq, r in enumerate(rows, start=first_seq)
        ],
        template="(%s, %s, %s, %s::text[], %s, %s, %s, %s::jsonb, %s, %s, %s, %s, %s::text[])",
        page_size=len(rows),
    )


def load_releases(cur: Cursor, ocid: str) -> list[Release]:
    """Every stored release of ``ocid`` (in no particular order)."""
    cur.execute("SELECT data FROM releases WHERE ocid=%s", (ocid,))
    return [orjson.loads(row[0]) for row in cur.fetchall()]


@dataclass(frozen=True)
class Locked:
    """A stored record's row as the writer needs it: the seq of its last write, and its checkpoint.

    ``compiled`` holds the compiled release as of the release with seq ``through`` (None: as of the last
    write); the releases after it, ``tail_bytes`` of JSON, bring it up to date. ``checkpoint_bytes`` is the
    size of the stored compiled release.
    """

    seq: int
    through: int | None
    tail_bytes: int
    checkpoint_bytes: int


def lock_records(cur: Cursor, ocids: Sequence[str]) -> dict[str, Locked]:
    """Lock the records of ``ocids`` that exist, and return what the writer needs of each row."""
    if not ocids:
        return {}
    cur.execute(
        "SELECT ocid, seq, compiled_through, tail_bytes, octet_length(compiled) FROM records "
        "WHERE ocid = ANY(%s) ORDER BY ocid FOR UPDATE",
        (list(ocids),),
    )
    return {ocid: Locked(int(seq), through, tail, size) for ocid, seq, through, tail, size in cur.fetchall()}


def load_records(cur: Cursor, ocids: Sequence[str], merger: CompilerSource) -> dict[str, MergedRecord]:
    """The stored records of ``ocids``, brought up to date from their checkpoints, ready to extend
    (compiled releases only), each with its extensions. Call it with the records locked (:func:`lock_records`)."""
    if not ocids:
        return {}
    cur.execute(
        "SELECT ocid, compiled::text, tail_bytes, extensions, latest_date, latest_id, release_count FROM records "
        "WHERE ocid = ANY(%s)",
        (list(ocids),),
    )
    rows = cur.fetchall()
    current = reader.up_to_date(cur, merger, [(ocid, compiled, tail, ext) for ocid, compiled, tail, ext, *_ in rows])
    records = {}
    for ocid, _, _, extensions, date, rid, count in rows:
        record = compiler_for(merger, extensions).resume(current[ocid], None, (date, rid), count)
        record.extensions = tuple(extensions)
        records[ocid] = record
    return records


@dataclass(frozen=True)
class Checkpoint:
    """How a record's row stores its compiled release.

    With ``write``, the compiled release is stored as of the release with seq ``through`` (None: as of the
    newest, for rows written outside the stream processor). Without, the stored checkpoint stays and
    ``tail_bytes`` of releases follow it.
    """

    write: bool = True
    through: int | None = None
    tail_bytes: int = 0


CURRENT = Checkpoint()


RECORD_COLUMNS = (
    "ocid", "compiled", "compiled_through", "tail_bytes", "versioned", "latest_date", "latest_id", "release_count",
    "summary", "extensions", "buyer_id",
    "buyer_name", "supplier_ids", "method", "category", "status", "amount", "currency", "date", "date_at", "year",
    "search", "seq", "updated_at",
)
_RECORD_TEMPLATE = (
    "(%s, %s, %s::bigint, %s, %s::jsonb, %s, %s, %s, %s::jsonb, %s::text[], %s, %s, %s::text[], %s, %s, %s, %s, %s, "
    "%s, %s, %s, "
    "to_tsvector('spanish', %s), %s, now())"
)
_KEPT = {
    # a NULL compiled release keeps the stored checkpoint and the seq it was made at
    "compiled": "COALESCE(EXCLUDED.compiled, records.compiled)",
    "compiled_through": "CASE WHEN EXCLUDED.compiled IS NULL THEN records.compiled_through "
                        "ELSE EXCLUDED.compiled_through END",
    # a NULL search vector keeps the stored one (its text did not change)
    "search": "COALESCE(EXCLUDED.search, records.search)",
}
_UPSERT_RECORDS = (
    f"INSERT INTO records ({', '.join(RECORD_COLUMNS)}) VALUES %s ON CONFLICT (ocid) DO UPDATE SET "
    + ", ".join(f"{c} = {_KEPT.get(c, f'EXCLUDED.{c}')}" for c in RECORD_COLUMNS if c != "ocid")
)


def _record_row(ocid: str, record: MergedRecord, seq: int, checkpoint: Checkpoint,
                known: dict[str, Any] | None = None, indexed: str | None = None) -> tuple[tuple[Any, ...], str]:
    """The record's row, and the text its search vector is made from (NULL in the row when it is ``indexed``,
    the text the stored vector was made from: the upsert keeps that vector)."""
    if known is None:
        summary = summarize(record.compiled)
    else:
        summary = {**known, "search_text": search_text(record.compiled, known)}
    columns = record_columns(record.compiled, summary)
    when = instant(columns.get("date"))
    text = unaccent(str(summary.get("search_text") or ""))
    return (
        ocid, json_text(record.compiled) if checkpoint.write else None, checkpoint.through,
        0 if checkpoint.write else checkpoint.tail_bytes,
        None if record.versioned is None else json_text(record.versioned),
        record.latest[0], record.latest[1], record.count,
        json_text({k: v for k, v in summary.items() if k != "search_text"}), list(record.extensions),
        columns.get("buyer_id"), columns.get("buyer_name"), list(columns.get("supplier_ids") or []),
        columns.get("method"), columns.get("category"), columns.get("status"), columns.get("amount"),
        columns.get("currency"), columns.get("date"), when, int(columns["date"][:4]) if when else None,
        None if text == indexed else text, seq,
    ), text


def save_records(cur: Cursor, records: Sequence[tuple[str, MergedRecord]], first_seq: int,
                 summaries: Mapping[str, dict[str, Any]] | None = None,
                 indexed: Mapping[str, str] | None = None,
                 checkpoints: Mapping[str, Checkpoint] | None = None) -> dict[str, str]:
    """Upsert records in one statement, with the seqs ``first_seq``, ``first_seq + 1``, ... (in this order).

    ``checkpoints`` says how each record stores its compiled release (default: written, as current).
    ``summaries`` may hold ``summarize(compiled, with_search_text=False)`` of some of them, already known.
    ``indexed`` may hold, for records whose stored row the caller knows, the search text that row's vector
    was made from: when the text is the same, the row keeps its vector (PostgreSQL's Spanish ``to_tsvector``
    costs about 85 µs for a typical record, and most releases change no text). Returns the search text of
    each record written.
    """
    known, texts, plans = summaries or {}, indexed or {}, checkpoints or {}
    written: dict[str, str] = {}
    if records:
        rows = []
        for seq, (ocid, record) in enumerate(records, start=first_seq):
            row, written[ocid] = _record_row(ocid, record, seq, plans.get(ocid, CURRENT), known.get(ocid),
                                             texts.get(ocid))
            rows.append(row)
        execute_values(cur, _UPSERT_RECORDS, rows, template=_RECORD_TEMPLATE, page_size=len(rows))
    return written


def save_record(cur: Cursor, ocid: str, record: MergedRecord, seq: int) -> None:
    """Upsert one record with ``seq``."""
    save_records(cur, [(ocid, record)], seq)


MAX_KEY = 200
"""Longer organization ids are not indexed for the per-buyer and per-supplier feeds (filters refuse them)."""


def change_keys(summary: Any) -> set[tuple[str, str]]:
    """The (field, value) rows of ``change_keys`` for a change with this summary: its buyer and suppliers."""
    found: set[tuple[str, str]] = set()
    if not isinstance(summary, dict):
        return found
    buyer = summary.get("buyer")
    if isinstance(buyer, dict) and isinstance(buyer.get("id"), str) and len(buyer["id"]) <= MAX_KEY:
        found.add(("buyer", buyer["id"]))
    suppliers = summary.get("suppliers")
    for supplier in suppliers if isinstance(suppliers, list) else ():
        if isinstance(supplier, dict) and isinstance(supplier.get("id"), str) and len(supplier["id"]) <= MAX_KEY:
            found.add(("supplier", supplier["id"]))
    project = summary.get("project")  # the process's infrastructure project (core.store.projects)
    if isinstance(project, str) and len(project) <= MAX_KEY:
        found.add(("project", project))
    return found


def append_changes(cur: Cursor, events: list[dict[str, Any]], base_url: str, first: int) -> int:
    """Append the events to the change log with the cursors ``first``, ``first + 1``, ..."""
    if not events:
        return 0
    rows, keys = [], []
    for cursor, event in enumerate(events, start=first):
        event["cursor"] = cursor
        event["record_url"] = f"{base_url}/api/records/{event['ocid']}"
        rows.append((cursor, event["ocid"], event["release_id"], event["kind"], json_text(event)))
        keys += [(field, value, cursor) for field, value in change_keys(event.get("summary"))]
    execute_values(
        cur, "INSERT INTO changes (cursor, ocid, release_id, kind, event) VALUES %s", rows, page_size=len(rows),
    )
    if keys:
        execute_values(cur, "INSERT INTO change_keys (field, value, cursor) VALUES %s ON CONFLICT DO NOTHING", keys,
                       page_size=len(keys))
    cur.execute("NOTIFY ocds_changes")  # delivered at commit: feed servers wake without polling
    return len(events)


def insert_rejected(
    cur: Cursor, raw: bytes, findings: list[Finding], publisher: str | None, release: Release | None,
    topic: str, partition: int, offset: int, extensions: Sequence[str] = (),
) -> None:
    """Keep a rejected release with its findings, where it was read and the extensions its package declared."""
    ocid = release.get("ocid") if isinstance(release, dict) else None
    release_id = release.get("id") if isinstance(release, dict) else None
    cur.execute(
        "INSERT INTO rejected (publisher, ocid, release_id, findings, raw, source_topic, source_partition, "
        "source_offset, extensions) VALUES (%s, %s, %s, %s::jsonb, %s, %s, %s, %s, %s::text[]) ON CONFLICT DO NOTHING",
        (publisher, ocid if isinstance(ocid, str) else None, release_id if isinstance(release_id, str) else None,
         json_text([f.as_dict() for f in findings]), raw, topic, partition, offset, list(extensions)),
    )


def store_versioned(cur: Cursor, ocid: str, versioned: Release, seq: int) -> None:
    """Keep a versioned release derived on demand, unless the record changed since ``seq`` was read."""
    cur.execute("UPDATE records SET versioned = %s::jsonb WHERE ocid = %s AND seq = %s",
                (json_text(versioned), ocid, seq))
