"""The reads behind the Atom feeds: streams of changes in cursor order, cut into stable blocks.

A :class:`Stream` is the part of a feed's filter the database can answer from an index: every change,
the changes of one ocid (``changes_ocid_idx``), or those of one buyer or one supplier (the
``change_keys`` table of migration 0002, filled by the writer since 0004). The stream is cut into blocks
of ``size`` changes counted from its start: block 1 holds its changes of rank 1..size, block 2 the next size, and
so on. A block is named by ``after``, the cursor of the change just before it (0 for the first), and
holds the ``size`` stream changes with cursor > ``after``. Once complete, a block never changes: the
change log is append-only and cursors are committed in order, so nothing can join it later.

For the whole log the cursor is gapless and equals the rank (plus the generation's base, a multiple of
``size``: migration 0010), so the blocks are the fixed windows ``(k*size, (k+1)*size]``; for a keyed
stream the ranks come from counting the index up to the head (an index-only count, O(changes of that
buyer)), paid only when a subscription document is rendered.
Every other read is a range scan of at most ``size + 1`` index entries.

Every function takes an open connection and commits (ends its snapshot) before returning.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, NamedTuple

import orjson

Field = Literal["all", "ocid", "buyer", "supplier", "project"]


@dataclass(frozen=True)
class Stream:
    """Which changes a feed pages through: all of them, or those of one ocid, buyer or supplier."""

    field: Field = "all"
    value: str = ""

    def _keys(self) -> tuple[str, str, tuple[str, ...]]:
        """(FROM-and-WHERE with cursors only, the cursor column, parameters)."""
        if self.field == "all":
            return "changes c WHERE TRUE", "c.cursor", ()
        if self.field == "ocid":
            return "changes c WHERE c.ocid = %s", "c.cursor", (self.value,)
        return "change_keys k WHERE k.field = %s AND k.value = %s", "k.cursor", (self.field, self.value)

    def _events(self) -> tuple[str, str, tuple[str, ...]]:
        """(FROM-and-WHERE reaching the events, the cursor column, parameters)."""
        if self.field in ("buyer", "supplier", "project"):
            return ("change_keys k JOIN changes c ON c.cursor = k.cursor WHERE k.field = %s AND k.value = %s",
                    "k.cursor", (self.field, self.value))
        return self._keys()


class Row(NamedTuple):
    """One change of the log: its cursor, when it was committed, and the change event."""

    cursor: int
    created_at: datetime
    event: dict[str, Any]


class Tip(NamedTuple):
    """The log's head and the stream's newest change at or below it (None when the stream is empty)."""

    head: int
    newest: int | None
    newest_at: datetime | None


class Page(NamedTuple):
    """Changes of one document, newest first, and the ``after`` of the block before (None: no block)."""

    rows: list[Row]
    prev_after: int | None


def _rows(cur: Any) -> list[Row]:
    return [Row(int(r[0]), r[1], orjson.loads(r[2])) for r in cur.fetchall()]


def tip(conn: Any, stream: Stream) -> Tip:
    """The head, and the newest change of ``stream`` at or below it, with its commit time."""
    source, col, params = stream._keys()
    with conn.cursor() as cur:
        cur.execute("SELECT last FROM feed_counter WHERE id = 1")
        row = cur.fetchone()
        head = int(row[0]) if row else 0
        cur.execute(f"SELECT c2.cursor, c2.created_at FROM changes c2 WHERE c2.cursor = "  # noqa: S608
                    f"(SELECT max({col}) FROM {source} AND {col} <= %s)", (*params, head))
        newest = cur.fetchone()
    conn.commit()
    if newest is None:
        return Tip(head, None, None)
    return Tip(head, int(newest[0]), newest[1])


def _base(cur: Any) -> int:
    """The cursor this generation's log starts after (0, or above when the store was rebuilt: migration 0010)."""
    cur.execute("SELECT base FROM store_generation WHERE id = 1")
    return int(cur.fetchone()[0])


def _count(cur: Any, stream: Stream, upto: int, base: int) -> int:
    if stream.field == "all":
        return upto - base  # gapless from base + 1
    source, col, params = stream._keys()
    cur.execute(f"SELECT count(*) FROM {source} AND {col} <= %s", (*params, upto))  # noqa: S608
    return int(cur.fetchone()[0])


def _cursor_back(cur: Any, stream: Stream, upto: int, offset: int, base: int) -> int | None:
    """The cursor ``offset`` stream changes before the newest at or below ``upto`` (0: that one)."""
    if stream.field == "all":
        return upto - offset if upto - offset > base else None
    source, col, params = stream._keys()
    cur.execute(f"SELECT {col} FROM {source} AND {col} <= %s ORDER BY {col} DESC OFFSET %s LIMIT 1",  # noqa: S608
                (*params, upto, offset))
    row = cur.fetchone()
    return int(row[0]) if row else None


def _prev_after(cur: Any, stream: Stream, after: int, size: int, base: int) -> int | None:
    """The ``after`` of the block before the one that starts after ``after`` (None for the first)."""
    if after <= base:
        return None
    found = _cursor_back(cur, stream, after, size, base)
    return base if found is None else found


def subscription(conn: Any, stream: Stream, head: int, size: int) -> Page:
    """The stream's changes after its newest complete block (fewer than ``size``), up to ``head``."""
    source, col, params = stream._events()
    with conn.cursor() as cur:
        base = _base(cur)
        total = _count(cur, stream, head, base)
        closed = total // size * size
        rows: list[Row] = []
        if total > closed:
            cur.execute(f"SELECT c.cursor, c.created_at, c.event::text FROM {source} AND {col} <= %s "  # noqa: S608
                        f"ORDER BY {col} DESC LIMIT %s", (*params, head, total - closed))
            rows = _rows(cur)
        prev: int | None = None
        if closed >= size:
            prev = base if closed == size else _cursor_back(cur, stream, head, total - closed + size, base)
    conn.commit()
    return Page(rows, prev)


def archive(conn: Any, stream: Stream, after: int, size: int) -> Page | None:
    """The block of ``size`` stream changes with cursor > ``after``, newest first; None if not complete."""
    source, col, params = stream._events()
    with conn.cursor() as cur:
        cur.execute(f"SELECT c.cursor, c.created_at, c.event::text FROM {source} AND {col} > %s "  # noqa: S608
                    f"ORDER BY {col} LIMIT %s", (*params, after, size))
        rows = _rows(cur)
        if len(rows) < size:
            conn.commit()
            return None
        prev = _prev_after(cur, stream, after, size, _base(cur))
    conn.commit()
    rows.reverse()
    return Page(rows, prev)
