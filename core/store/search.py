"""Search over the ``records`` table: Spanish full text, indexed filters, seek pages, highlights, facets.

The SQL is built by pure functions (:func:`where_clause`, :func:`page_sql`, :func:`facets_sql`) from a
validated :class:`SearchQuery`; values are always parameters, never spliced. :func:`search` runs them in
one read-only REPEATABLE READ transaction, so a page, its highlights and its facets see the same data.

**Accents.** The index holds ``to_tsvector('spanish', unaccent(text))`` with accents stripped in Python
(pgserver has no unaccent extension); a query is unaccented the same way before
``websearch_to_tsquery('spanish', ...)``, so "licitacion" finds "licitación" and the reverse. The Spanish
stemmer alone would not: it stems "licitación" to ``licit`` but "licitacion" to ``licitacion``.

**Order and seek.** Every sort is total: its key, then ``ocid`` in the same direction. Records without
the key (no amount, an unreadable date) come last in both directions. A page asks for the rows after the
last one seen, ``(key, ocid) > (k, o)`` (``<`` descending), one indexed range read per part (keyed rows,
then unkeyed ones): no OFFSET, so a page costs the same however deep it is. A record inserted between two
page requests shows up if it sorts after the last row seen and not otherwise; no record is repeated unless
it was *updated* between requests so that its key moved past the cursor (a new release changes its date
and amount), and such a moved record can also be missed.

**Bounded cost: the window.** Ranking by relevance and counting facets visit every match they are given,
and a common word matches most of the store (``adjudicacion`` matches 87% of the records). So both work on
the *window*: the newest ``window`` matches (:data:`SEARCH_WINDOW`, 10,000 by default; records without a
readable date count as newest), read by walking the date index backwards and stopping there. When the
matches are fewer, the window is all of them and every answer is exact. When there are more, the total
says it is a lower bound (``relation`` ``gte``, as Elasticsearch's ``track_total_hits``), the facets count
the window, and relevance ranks the window: the best matches among the newest ``window``. The date and
amount sorts page through every match whatever its size (their indexes stop after a page).

**Highlights.** For the rows of the page only, the text that was indexed is rebuilt in Python
(:func:`core.summary.search_text` over the stored summary and the compiled release's tender, planning,
awards and contracts), so a match anywhere can be shown. ``ts_headline`` marks the matching words on its
unaccented form, as the index saw it, and the marks are carried back to the same words of the text as
published, so snippets keep their accents. Snippets are HTML-escaped, with ``<mark>`` around matches.
"""

from __future__ import annotations

import bisect
import functools
import html
import itertools
import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

import orjson
import psycopg2.errors

from core.profiles import CompilerSource
from core.store import reader
from core.store.writer import unaccent
from core.summary import search_text

Sort = Literal["relevance", "date", "-date", "amount", "-amount"]
SORTS: tuple[Sort, ...] = ("relevance", "date", "-date", "amount", "-amount")
Key = datetime | Decimal | float | None

TSQUERY = "websearch_to_tsquery('spanish', %(q)s)"
START, STOP = "\ue000", "\ue001"  # private-use characters: never in published text (removed if they are)
_MARKS = re.compile(f"[{START}{STOP}]")
HEADLINE_OPTIONS = f'HighlightAll=true, StartSel="{START}", StopSel="{STOP}"'
SNIPPET_CHARS = 240
FACET_VALUES = 50
TOP_BUYERS = 10
SEARCH_WINDOW = 10_000
"""Matches ranked by relevance and counted in facets and the total, newest first (see the module's doc)."""
Relation = Literal["eq", "gte"]


@dataclass(frozen=True)
class _SortSpec:
    key: str  # SQL expression of the key
    descending: bool
    cast: str  # the type the key is compared as (a cursor's value is cast to it)
    nullable: bool


_SORT_SPECS: dict[Sort, _SortSpec] = {
    "relevance": _SortSpec(f"ts_rank_cd(r.search, {TSQUERY})", True, "real", False),
    "date": _SortSpec("r.date_at", False, "timestamptz", True),
    "-date": _SortSpec("r.date_at", True, "timestamptz", True),
    "amount": _SortSpec("r.amount", False, "numeric", True),
    "-amount": _SortSpec("r.amount", True, "numeric", True),
}


@dataclass(frozen=True)
class Seek:
    """Where the previous page ended: its last row's sort key (None: the unkeyed part) and ocid."""

    key: Key
    ocid: str


@dataclass(frozen=True)
class SearchQuery:
    """A validated search. ``date_to`` is inclusive; ``sort`` is ``relevance`` only with ``q``."""

    q: str | None = None
    buyer: str | None = None
    supplier: str | None = None
    method: str | None = None
    status: str | None = None
    date_from: datetime | None = None
    date_to: datetime | None = None
    min_amount: Decimal | None = None
    max_amount: Decimal | None = None
    sort: Sort = "-date"
    after: Seek | None = None
    limit: int = 20

    def __post_init__(self) -> None:
        if self.sort == "relevance" and self.q is None:
            raise ValueError("sort=relevance needs q")
        if not 1 <= self.limit <= 1000:
            raise ValueError("limit must be between 1 and 1000")


@dataclass
class Hit:
    ocid: str
    title: str | None
    buyer: dict[str, str | None]
    suppliers: list[dict[str, Any]]
    method: str | None
    status: str | None
    amount: Decimal | None
    currency: str | None
    date: str | None
    key: Key
    highlight: str | None = None


@dataclass
class SearchResult:
    hits: list[Hit]
    next: Seek | None
    facets: dict[str, list[dict[str, Any]]] | None
    total: int | None
    relation: Relation | None = None  # "gte": there are more matches than the window, ``total`` is its size


def where_clause(query: SearchQuery) -> tuple[str, dict[str, Any]]:
    """The filters as one SQL condition over ``records r``, with its parameters."""
    conditions: list[str] = []
    params: dict[str, Any] = {}

    def add(condition: str, name: str, value: Any) -> None:
        if value is not None:
            conditions.append(condition)
            params[name] = value

    add(f"r.search @@ {TSQUERY}", "q", None if query.q is None else unaccent(query.q))
    add("r.buyer_id = %(buyer)s", "buyer", query.buyer)
    add("r.supplier_ids @> ARRAY[%(supplier)s]::text[]", "supplier", query.supplier)
    add("r.method = %(method)s", "method", query.method)
    add("r.status = %(status)s", "status", query.status)
    add("r.date_at >= %(date_from)s", "date_from", query.date_from)
    add("r.date_at <= %(date_to)s", "date_to", query.date_to)
    add("r.amount >= %(min_amount)s", "min_amount", query.min_amount)
    add("r.amount <= %(max_amount)s", "max_amount", query.max_amount)
    return " AND ".join(conditions) or "true", params


_COLUMNS = (
    "r.ocid, r.summary ->> 'title', r.buyer_id, r.buyer_name, r.summary -> 'suppliers', r.method, r.status, "
    "r.amount, r.currency, r.date"
)


def window_sql(where: str) -> str:
    """The newest ``%(window)s`` rows of ``records`` matching ``where``, as a table ``r``.

    Newest is ``date_at DESC NULLS FIRST, ocid DESC``: the order of a backward scan of the date index,
    which stops as soon as the window is full.
    """
    return f"({_window_select(where)}) AS r"


_WINDOW_COLUMNS = "r.ocid, r.search, r.method, r.status, r.year, r.buyer_id, r.buyer_name, r.date_at"
"""What ranking and facets read of each row of the window (a page's own columns are read for its rows only)."""


def _window_select(where: str) -> str:
    return (f"SELECT {_WINDOW_COLUMNS} FROM records r WHERE {where} "
            f"ORDER BY r.date_at DESC NULLS FIRST, r.ocid DESC LIMIT %(window)s")


def _keyed_seek(spec: _SortSpec, op: str, after: Seek | None, params: dict[str, Any]) -> str:
    """The condition keeping the keyed rows after ``after``: ``(key, ocid)`` past the cursor's ("" for a first page)."""
    if after is None:
        return ""
    params["key"], params["ocid"] = after.key, after.ocid
    return f" AND ({spec.key}, r.ocid) {op} (%(key)s::{spec.cast}, %(ocid)s)"


def page_sql(query: SearchQuery, window: int = SEARCH_WINDOW, source: str | None = None) -> tuple[str, dict[str, Any]]:
    """One page (``limit + 1`` rows, to know whether another follows) after ``query.after``, in order.

    Relevance ranks the window's rows; the other sorts read every match through their index. ``source``:
    a table ``r`` already holding the window (for relevance only; see :func:`page_and_facets_sql`).
    """
    spec = _SORT_SPECS[query.sort]
    where, params = where_clause(query)
    if query.sort == "relevance":
        source, where = source or window_sql(where), "true"
        params["window"] = window
    else:
        source = "records r"
    params["n"] = query.limit + 1
    direction, op = ("DESC", "<") if spec.descending else ("ASC", ">")
    after = query.after
    parts: list[str] = []
    if query.sort == "relevance":  # rank the window, then read the page's rows
        seek = _keyed_seek(spec, op, after, params)
        parts.append(
            f"SELECT {_COLUMNS}, top.sort_key, 0 AS part FROM (SELECT r.ocid, {spec.key} AS sort_key FROM {source} "
            f"WHERE {spec.key} IS NOT NULL{seek} ORDER BY sort_key DESC, r.ocid DESC LIMIT %(n)s) AS top "
            f"JOIN records r ON r.ocid = top.ocid"
        )
    elif after is None or after.key is not None:
        seek = _keyed_seek(spec, op, after, params)
        parts.append(
            f"SELECT {_COLUMNS}, {spec.key} AS sort_key, 0 AS part FROM {source} "
            f"WHERE {where} AND {spec.key} IS NOT NULL{seek} "
            f"ORDER BY {spec.key} {direction}, r.ocid {direction} LIMIT %(n)s"
        )
    if spec.nullable:
        seek = ""
        if after is not None and after.key is None:
            seek = f" AND r.ocid {op} %(ocid)s"
            params["ocid"] = after.ocid
        parts.append(
            f"SELECT {_COLUMNS}, NULL::{spec.cast} AS sort_key, 1 AS part FROM {source} "
            f"WHERE {where} AND {spec.key} IS NULL{seek} ORDER BY r.ocid {direction} LIMIT %(n)s"
        )
    union = " UNION ALL ".join(f"({part})" for part in parts)
    sql = (f"SELECT * FROM ({union}) AS page "
           f"ORDER BY page.part, page.sort_key {direction}, page.ocid {direction} LIMIT %(n)s")
    return sql, params


# GROUPING(method, status, year, buyer_id) of each grouping set: a bit is set for each column not grouped.
FACET_SETS = {7: "method", 11: "status", 13: "year", 14: "buyer", 15: "total"}


def _ranked_facets_sql(source: str) -> str:
    """The facets of the rows of ``source`` (a table ``r``) as ``ranked``: counts per grouping set, ranked."""
    return f"""
        grouped AS (
            SELECT GROUPING(r.method, r.status, r.year, r.buyer_id) AS g, r.method, r.status, r.year,
                   r.buyer_id, max(r.buyer_name) AS buyer_name, count(*) AS n
            FROM {source}
            GROUP BY GROUPING SETS ((r.method), (r.status), (r.year), (r.buyer_id), ())
        ), ranked AS (
            SELECT grouped.*, row_number() OVER (
                PARTITION BY g ORDER BY n DESC, method, status, year, buyer_id) AS rn
            FROM grouped WHERE NOT (g = 14 AND buyer_id IS NULL)
        )"""


_KEPT_FACETS = "rn <= CASE g WHEN 14 THEN %(buyers)s ELSE %(values)s END"


def facets_sql(query: SearchQuery, window: int = SEARCH_WINDOW) -> tuple[str, dict[str, Any]]:
    """Counts by method, status, year and buyer (top ones) and the total, in one scan of the window."""
    where, params = where_clause(query)
    params["values"], params["buyers"], params["window"] = FACET_VALUES, TOP_BUYERS, window
    sql = f"""
        WITH {_ranked_facets_sql(window_sql(where))}
        SELECT g, method, status, year, buyer_id, buyer_name, n FROM ranked WHERE {_KEPT_FACETS}
        ORDER BY g, rn
    """
    return sql, params


def page_and_facets_sql(query: SearchQuery, window: int = SEARCH_WINDOW) -> tuple[str, dict[str, Any]]:
    """For ``sort=relevance``: the page and the facets from one read of the window (it is most of the cost).

    Rows: the page's (as :func:`page_sql`), each with the facets as a JSON array of
    ``[g, method, status, year, buyer_id, buyer_name, n]`` in its last column; one row of NULLs and the
    facets when the page is empty.
    """
    if query.sort != "relevance":
        raise ValueError("page_and_facets_sql is for sort=relevance")
    where, params = where_clause(query)
    page, page_params = page_sql(query, window, source="w AS r")
    params.update(page_params)
    params["values"], params["buyers"] = FACET_VALUES, TOP_BUYERS
    direction = "DESC"  # relevance: best first
    sql = f"""
        WITH w AS MATERIALIZED ({_window_select(where)}), {_ranked_facets_sql("w AS r")}, facets AS (
            SELECT coalesce(json_agg(json_build_array(g, method, status, year, buyer_id, buyer_name, n)
                                     ORDER BY g, rn), '[]') AS facets
            FROM ranked WHERE {_KEPT_FACETS}
        )
        SELECT page.*, facets.facets FROM facets LEFT JOIN LATERAL ({page}) AS page ON true
        ORDER BY page.part, page.sort_key {direction}, page.ocid {direction}
    """
    return sql, params


def _facets(rows: list[tuple[Any, ...]]) -> tuple[dict[str, list[dict[str, Any]]], int]:
    facets: dict[str, list[dict[str, Any]]] = {"method": [], "status": [], "year": [], "buyer": []}
    total = 0
    for g, method, status, year, buyer_id, buyer_name, n in rows:
        name = FACET_SETS.get(g)
        if name == "total":
            total = int(n)
        elif name == "buyer":
            facets["buyer"].append({"id": buyer_id, "name": buyer_name, "count": int(n)})
        elif name is not None:
            facets[name].append({"value": {"method": method, "status": status, "year": year}[name],
                                 "count": int(n)})
    facets["year"].sort(key=lambda item: -1 if item["value"] is None else item["value"], reverse=True)
    return facets, total


def _hit(row: tuple[Any, ...]) -> Hit:
    ocid, title, buyer_id, buyer_name, suppliers, method, status, amount, currency, date, key, _ = row
    suppliers = [s for s in suppliers if isinstance(s, dict)] if isinstance(suppliers, list) else []
    return Hit(ocid=ocid, title=title, buyer={"id": buyer_id, "name": buyer_name}, suppliers=suppliers,
               method=method, status=status, amount=amount, currency=currency, date=date, key=key)


def search(
    conn: Any, query: SearchQuery, merger: CompilerSource, *, timeout_ms: int = 10_000, facets_timeout_ms: int = 3_000,
    with_facets: bool = True, window: int = SEARCH_WINDOW,
) -> SearchResult:
    """Run ``query``: one page of hits (highlighted when there is ``q``) and the facets of the window.

    Facets and the total are ``None`` when counting them takes longer than ``facets_timeout_ms``.
    """
    conn.rollback()
    try:
        with conn.cursor() as cur:
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            cur.execute("SET LOCAL statement_timeout = %s", (timeout_ms,))
            facet_rows: list[tuple[Any, ...]] | None = None
            if with_facets and query.sort == "relevance":  # one read of the window for both
                cur.execute(*page_and_facets_sql(query, window))
                rows = cur.fetchall()
                facet_rows = [tuple(item) for item in rows[0][-1]] if rows else []
                hits = [_hit(row[:-1]) for row in rows if row[0] is not None]
            else:
                cur.execute(*page_sql(query, window))
                hits = [_hit(row) for row in cur.fetchall()]
            following = None
            if len(hits) > query.limit:
                hits = hits[: query.limit]
                following = Seek(hits[-1].key, hits[-1].ocid)
            if query.q is not None and hits:
                _highlight(cur, query.q, hits, merger)
            facets: dict[str, list[dict[str, Any]]] | None = None
            total: int | None = None
            relation: Relation | None = None
            if facet_rows is not None:
                facets, total = _facets(facet_rows)
            elif with_facets:
                facets, total = _count(cur, query, facets_timeout_ms, window)
            if total is not None:
                relation = "gte" if total >= window else "eq"
        return SearchResult(hits=hits, next=following, facets=facets, total=total, relation=relation)
    finally:
        conn.rollback()


def _count(
    cur: Any, query: SearchQuery, timeout_ms: int, window: int
) -> tuple[dict[str, list[dict[str, Any]]] | None, int | None]:
    cur.execute("SAVEPOINT facets")
    cur.execute("SET LOCAL statement_timeout = %s", (timeout_ms,))
    try:
        cur.execute(*facets_sql(query, window))
    except psycopg2.errors.QueryCanceled:
        cur.execute("ROLLBACK TO SAVEPOINT facets")
        return None, None
    return _facets(cur.fetchall())


# ---- highlights -------------------------------------------------------------------------------------------

_STAGES = ("tender", "planning", "awards", "contracts")
"""The parts of a compiled release that search_text reads besides the summary (not parties, not documents)."""


@functools.lru_cache(maxsize=4096)
def _unaccent_char(char: str) -> str:
    return unaccent(char).replace(START, "\ufffd").replace(STOP, "\ufffd")


def unaccented_pieces(text: str) -> tuple[str, list[str] | None]:
    """``text`` unaccented (and without mark characters), and each character's piece when lengths differ.

    The pieces are None when every character stays one character (almost always): offsets then agree.
    """
    table = {ord(c): _unaccent_char(c) for c in set(text) if not c.isascii() or c in (START, STOP)}
    if all(len(piece) == 1 for piece in table.values()):
        return text.translate(table), None
    pieces = [table.get(ord(c), c) for c in text]
    return "".join(pieces), pieces


def document(summary: dict[str, Any], stages: dict[str, Any]) -> str:
    """The text the index holds for a record (before unaccenting), rebuilt from its summary and stages."""
    return search_text({k: v for k, v in stages.items() if v is not None}, {
        "title": summary.get("title"), "buyer": summary.get("buyer") or {"name": None},
        "procuring_entity": summary.get("procuring_entity") or {"name": None},
        "suppliers": [s for s in summary.get("suppliers") or () if isinstance(s, dict)],
    })


def _highlight(cur: Any, q: str, hits: list[Hit], merger: CompilerSource) -> None:
    cur.execute("SELECT ocid, summary::text, compiled::text, tail_bytes, extensions FROM records "
                "WHERE ocid = ANY(%s)", ([hit.ocid for hit in hits],))
    rows = cur.fetchall()
    compiled = reader.up_to_date(cur, merger, [(ocid, text, tail, ext) for ocid, _, text, tail, ext in rows])
    texts = {ocid: document(orjson.loads(summary), {k: compiled[ocid].get(k) for k in _STAGES})
             for ocid, summary, _, _, _ in rows}
    docs = [texts.get(hit.ocid, "") for hit in hits]
    unaccented = [unaccented_pieces(doc) for doc in docs]
    cur.execute(
        "SELECT ts_headline('spanish', d, websearch_to_tsquery('spanish', %s), %s) "
        "FROM unnest(%s::text[]) WITH ORDINALITY AS t(d, i) ORDER BY i",
        (unaccent(q), HEADLINE_OPTIONS, [text for text, _ in unaccented]),
    )
    for hit, doc, (_, pieces), (marked,) in zip(hits, docs, unaccented, cur.fetchall(), strict=True):
        spans = marked_spans(marked)
        hit.highlight = snippet(doc, spans if pieces is None else to_original(pieces, spans))


def marked_spans(marked: str) -> list[tuple[int, int]]:
    """The ``(start, end)`` offsets, in the text without marks, of the ranges ``ts_headline`` marked."""
    spans: list[tuple[int, int]] = []
    start = 0
    for removed, match in enumerate(_MARKS.finditer(marked)):
        position = match.start() - removed
        if match.group() == START:
            start = position
        else:
            spans.append((start, position))
    return spans


def to_original(pieces: list[str], spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Carry spans over the unaccented text (``pieces[i]`` is character i unaccented) back to the original.

    A character may unaccent to none (a combining accent) or several (a ligature): offsets are mapped
    through the running lengths, and a span's end takes in the accents that follow its last letter.
    """
    offsets = list(itertools.accumulate((len(p) for p in pieces), initial=0))
    if offsets[-1] == len(pieces) and all(len(p) == 1 for p in pieces):
        return spans
    out = []
    for start, end in spans:
        first = bisect.bisect_right(offsets, start) - 1
        last = bisect.bisect_left(offsets, end)
        while last < len(pieces) and pieces[last] == "":
            last += 1
        out.append((max(first, 0), min(last, len(pieces))))
    return out


def snippet(text: str, spans: list[tuple[int, int]], width: int = SNIPPET_CHARS) -> str:
    """About ``width`` characters of ``text`` around its first span, HTML-escaped, spans in ``<mark>``."""
    start = 0
    if spans and spans[0][0] > width // 4:
        start = spans[0][0] - width // 4
        space = text.find(" ", start, spans[0][0])
        start = space + 1 if space >= 0 else start
    end = min(len(text), start + width)
    for span_start, span_end in spans:  # never cut a mark in two
        if span_start < end < span_end:
            end = span_end
    if end < len(text):
        space = text.rfind(" ", max(start, spans[0][1] if spans else start), end)
        end = space if space > start else end
    out = ["…" if start > 0 else ""]
    position = start
    for span_start, span_end in spans:
        if span_start < start or span_end > end:
            continue
        out += [html.escape(text[position:span_start]), "<mark>", html.escape(text[span_start:span_end]), "</mark>"]
        position = span_end
    out += [html.escape(text[position:end]), "…" if end < len(text) else ""]
    return "".join(out)
