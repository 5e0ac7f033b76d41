"""The stream processor's writes: idempotent, batched, all inside the caller's transaction."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from psycopg2.extras import execute_values

from core.exceptions import Finding
from core.merge import MergedRecord, RecordMerger
from core.summary import record_columns, summarize
from core.types import Release

Cursor = Any  # psycopg2 cursor


def jsonb(value: Any) -> str:
    return orjson.dumps(value).decode()


def unaccent(text: str) -> str:
    """Strip accents so that Spanish search is accent-insensitive ("licitación" finds "licitacion")."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


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


def insert_releases(cur: Cursor, rows: Sequence[ReleaseRow], first_seq: int) -> None:
    if not rows:
        return
    execute_values(
        cur,
        "INSERT INTO releases (ocid, release_id, date, tags, publisher, digest, data, findings, "
        "source_topic, source_partition, source_offset, seq) VALUES %s",
        [
            (
                r.release["ocid"], r.release["id"], r.release["date"], list(r.release.get("tag") or []),
                r.publisher, r.digest, jsonb(r.release), jsonb([f.as_dict() for f in r.findings]),
                r.topic, r.partition, r.offset, seq,
            )
            for seq, r in enumerate(rows, start=first_seq)
        ],
        template="(%s, %s, %s, %s::text[], %s, %s, %s::jsonb, %s::jsonb, %s, %s, %s, %s)",
        page_size=len(rows),
    )


def load_releases(cur: Cursor, ocid: str) -> list[Release]:
    cur.execute("SELECT data::text FROM releases WHERE ocid=%s", (ocid,))
    return [orjson.loads(row[0]) for row in cur.fetchall()]


def load_records(cur: Cursor, ocids: Sequence[str], merger: RecordMerger) -> dict[str, MergedRecord]:
    if not ocids:
        return {}
    cur.execute(
        "SELECT ocid, compiled::text, versioned::text, latest_date, latest_id, release_count FROM records "
        "WHERE ocid = ANY(%s) ORDER BY ocid FOR UPDATE",
        (list(ocids),),
    )
    return {
        ocid: merger.resume(orjson.loads(compiled), orjson.loads(versioned), (date, rid), count)
        for ocid, compiled, versioned, date, rid, count in cur.fetchall()
    }


def save_record(cur: Cursor, ocid: str, record: MergedRecord, seq: int) -> None:
    summary = summarize(record.compiled)
    columns = record_columns(record.compiled, summary)
    search_text = unaccent(str(summary.get("search_text") or ""))
    cur.execute(
        """
        INSERT INTO records (ocid, compiled, versioned, latest_date, latest_id, release_count, summary,
            buyer_id, buyer_name, supplier_ids, method, category, status, amount, currency, date, search,
            seq, updated_at)
        VALUES (%(ocid)s, %(compiled)s::jsonb, %(versioned)s::jsonb, %(latest_date)s, %(latest_id)s,
            %(count)s, %(summary)s::jsonb, %(buyer_id)s, %(buyer_name)s, %(supplier_ids)s::text[], %(method)s,
            %(category)s, %(status)s, %(amount)s, %(currency)s, %(date)s,
            to_tsvector('spanish', %(search)s), %(seq)s, now())
        ON CONFLICT (ocid) DO UPDATE SET compiled=EXCLUDED.compiled, versioned=EXCLUDED.versioned,
            latest_date=EXCLUDED.latest_date, latest_id=EXCLUDED.latest_id,
            release_count=EXCLUDED.release_count, summary=EXCLUDED.summary, buyer_id=EXCLUDED.buyer_id,
            buyer_name=EXCLUDED.buyer_name, supplier_ids=EXCLUDED.supplier_ids, method=EXCLUDED.method,
            category=EXCLUDED.category, status=EXCLUDED.status, amount=EXCLUDED.amount,
            currency=EXCLUDED.currency, date=EXCLUDED.date, search=EXCLUDED.search, seq=EXCLUDED.seq,
            updated_at=EXCLUDED.updated_at
        """,
        {
            "ocid": ocid,
            "compiled": jsonb(record.compiled),
            "versioned": jsonb(record.versioned),
            "latest_date": record.latest[0],
            "latest_id": record.latest[1],
            "count": record.count,
            "summary": jsonb({k: v for k, v in summary.items() if k != "search_text"}),
            "buyer_id": columns.get("buyer_id"),
            "buyer_name": columns.get("buyer_name"),
            "supplier_ids": list(columns.get("supplier_ids") or []),
            "method": columns.get("method"),
            "category": columns.get("category"),
            "status": columns.get("status"),
            "amount": columns.get("amount"),
            "currency": columns.get("currency"),
            "date": columns.get("date"),
            "search": search_text,
            "seq": seq,
        },
    )


def append_changes(cur: Cursor, events: list[dict[str, Any]], base_url: str, first: int) -> int:
    """Append the events to the change log with the cursors ``first``, ``first + 1``, ..."""
    if not events:
        return 0
    rows = []
    for cursor, event in enumerate(events, start=first):
        event["cursor"] = cursor
        event["record_url"] = f"{base_url}/api/records/{event['ocid']}"
        rows.append((cursor, event["ocid"], event["release_id"], event["kind"], jsonb(event)))
    execute_values(
        cur, "INSERT INTO changes (cursor, ocid, release_id, kind, event) VALUES %s", rows,
        template="(%s, %s, %s, %s, %s::jsonb)", page_size=len(rows),
    )
    return len(events)


def insert_rejected(
    cur: Cursor, raw: bytes, findings: list[Finding], publisher: str | None, release: Release | None,
    topic: str, partition: int, offset: int,
) -> None:
    ocid = release.get("ocid") if isinstance(release, dict) else None
    release_id = release.get("id") if isinstance(release, dict) else None
    cur.execute(
        "INSERT INTO rejected (publisher, ocid, release_id, findings, raw, source_topic, source_partition, "
        "source_offset) VALUES (%s, %s, %s, %s::jsonb, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
        (publisher, ocid if isinstance(ocid, str) else None, release_id if isinstance(release_id, str) else None,
         jsonb([f.as_dict() for f in findings]), raw, topic, partition, offset),
    )
