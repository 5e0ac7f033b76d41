"""Search: Spanish full text without accents, exact filters, facets, seek pages, highlights, 400 on bad input.

The store holds the records merged from the real releases in ../shared/data/real (408 processes, mostly
Mexican, Spanish text), plus a few made here for the odd cases; answers are checked against Python.
"""

from __future__ import annotations

import collections
import re
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import psycopg2
import pytest
from fastapi.testclient import TestClient

from core.merge import RecordMerger
from core.schema import OcdsSchema
from core.settings import Settings
from core.store import search as store
from core.store.writer import allocate, save_record, unaccent
from core.summary import record_columns, summarize
from feed_server import search
from feed_server.app import create_app
from tests.support.stack import base_settings, fresh_stack

pytestmark = pytest.mark.integration

MADE = [  # odd cases: an unreadable date, no amount, an accent as a combining character, a ligature
    {"ocid": "ocds-test-made-1", "id": "1", "date": "2017-02-30T00:00:00Z", "tag": ["tender"],
     "tender": {"id": "t1", "title": "Licitacio\u0301n de limpieza con ﬁnanciamiento", "procurementMethod": "open"}},
    {"ocid": "ocds-test-made-2", "id": "1", "date": "2017-03-01", "tag": ["tender"],
     "tender": {"id": "t2", "title": "Adquisición de papelería", "procurementMethod": "direct",
                "value": {"amount": 1500, "currency": "MXN"}}},
]


@dataclass
class Row:
    ocid: str
    columns: dict[str, Any]
    source: str  # search text as published, lower-cased
    text: str  # search text, unaccented and lower-cased
    date_at: datetime | None

    def year(self) -> int | None:
        return None if self.date_at is None else int(self.columns["date"][:4])


def _instant(value: Any) -> datetime | None:
    try:
        instant = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None
    return instant if instant.tzinfo else instant.replace(tzinfo=UTC)


def _store(cur: Any, ocid: str, record: Any) -> None:
    save_record(cur, ocid, record, allocate(cur, 0, 0, 1).record)


def _save(conn: Any, merger: RecordMerger, releases: list[dict[str, Any]]) -> dict[str, Row]:
    rows = {}
    with conn.cursor() as cur:
        for release in releases:  # one per ocid here
            record = merger.merge([release])
            _store(cur, release["ocid"], record)
            rows[release["ocid"]] = _row(release["ocid"], record.compiled)
    conn.commit()
    return rows


def _row(ocid: str, compiled: dict[str, Any]) -> Row:
    summary = summarize(compiled)
    columns = record_columns(compiled, summary)
    source = summary["search_text"].lower()
    return Row(ocid, columns, source, unaccent(source), _instant(columns["date"]))


@pytest.fixture(scope="module")
def loaded(schema: OcdsSchema, real_data: Path) -> Iterator[tuple[Settings, dict[str, Row], RecordMerger]]:
    by_ocid: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for path in sorted(real_data.glob("*.releases.jsonl")):
        for line in path.read_bytes().splitlines():
            release = orjson.loads(line)
            by_ocid[release["ocid"]].append(release)
    merger = RecordMerger(schema)
    with fresh_stack(base_settings(), read_rate_limit=1e6) as settings:
        conn = psycopg2.connect(settings.database_url)
        rows: dict[str, Row] = {}
        with conn.cursor() as cur, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ocdsmerge warns of duplicate ids in real data
            for ocid, releases in by_ocid.items():
                record = merger.merge(releases)
                _store(cur, ocid, record)
                rows[ocid] = _row(ocid, record.compiled)
        conn.commit()
        rows.update(_save(conn, merger, MADE))
        conn.close()
        yield settings, rows, merger


@pytest.fixture(scope="module")
def rows(loaded: tuple[Settings, dict[str, Row], RecordMerger]) -> dict[str, Row]:
    return loaded[1]


@pytest.fixture(scope="module")
def client(loaded: tuple[Settings, dict[str, Row], RecordMerger]) -> Iterator[TestClient]:
    app = create_app(loaded[0])
    app.include_router(search.router)
    with TestClient(app) as client:
        yield client


def _pages(client: TestClient, params: dict[str, str], between: Callable[[dict[str, Any]], None] | None = None,
           ) -> list[dict[str, Any]]:
    """Every result, following links.next (calling ``between`` with each page before the next request)."""
    results: list[dict[str, Any]] = []
    response = client.get("/api/search", params=params)
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        results += body["results"]
        if body["links"]["next"] is None:
            return results
        if between is not None:
            between(body)
        url = urlsplit(body["links"]["next"])
        response = client.get(f"{url.path}?{url.query}")


def _ocids(client: TestClient, **params: str) -> set[str]:
    results = _pages(client, {"limit": "100", **params})
    ocids = [r["ocid"] for r in results]
    assert len(ocids) == len(set(ocids))
    return set(ocids)


def _words(*forms: str) -> Callable[[Row], bool]:
    pattern = re.compile(r"\b(" + "|".join(forms) + r")\b")
    return lambda row: pattern.search(row.text) is not None


def test_accents_are_ignored_in_the_query_and_in_the_records(client: TestClient, rows: dict[str, Row]) -> None:
    """q=construccion and q=construcción find the same records, whichever way each record spells it."""
    plain, accented, upper = (_ocids(client, q=q) for q in ("construccion", "construcción", "CONSTRUCCIÓN"))
    assert plain == accented == upper
    assert plain == {o for o, r in rows.items() if _words("construccion", "construcciones")(r)}
    with_accent = {o for o in plain if "construcción" in rows[o].source}
    assert with_accent and plain - with_accent  # both spellings are in the data and found


@pytest.mark.parametrize(
    ("queries", "forms"),
    [
        (("adquisiciones", "adquisición", "Adquisicion"), ("adquisicion", "adquisiciones")),
        (("servicio", "servicios", "SERVICIOS"), ("servicio", "servicios")),
        (("limpieza", "limpiezas"), ("limpiez", "limpieza", "limpiezas")),  # "Limpiez": cut short in the data
    ],
)
def test_spanish_stemming_finds_singular_and_plural(
    client: TestClient, rows: dict[str, Row], queries: tuple[str, ...], forms: tuple[str, ...],
) -> None:
    """Singular and plural queries find the same records: exactly those with either form of the word."""
    found = [_ocids(client, q=q) for q in queries]
    expected = {o for o, r in rows.items() if _words(*forms)(r)}
    assert expected
    assert all(f == expected for f in found)


def test_query_of_stop_words_only_finds_nothing(client: TestClient) -> None:
    """A query of Spanish stop words only ("de la") has no words to find: no results, not an error."""
    response = client.get("/api/search", params={"q": "de la"})
    assert response.status_code == 200
    assert response.json()["results"] == [] and response.json()["total"] == 0


def _top(rows: dict[str, Row], column: str) -> str:
    counts = collections.Counter(r.columns[column] for r in rows.values() if r.columns[column])
    return counts.most_common(1)[0][0]  # type: ignore[no-any-return]


def _filters(rows: dict[str, Row]) -> list[tuple[dict[str, str], Callable[[Row], bool]]]:
    supplier = collections.Counter(s for r in rows.values() for s in r.columns["supplier_ids"]).most_common(1)[0][0]
    buyer, june = _top(rows, "buyer_id"), datetime(2017, 6, 1, tzinfo=UTC)
    return [
        ({"buyer": buyer}, lambda r: r.columns["buyer_id"] == buyer),
        ({"supplier": supplier}, lambda r: supplier in r.columns["supplier_ids"]),
        ({"method": "open"}, lambda r: r.columns["method"] == "open"),
        ({"method": "direct"}, lambda r: r.columns["method"] == "direct"),
        ({"status": "contract.terminated"}, lambda r: r.columns["status"] == "contract.terminated"),
        ({"from": "2017-06-01"}, lambda r: r.date_at is not None and r.date_at >= june),
        ({"to": "2017-05-31"}, lambda r: r.date_at is not None and r.date_at < june),
        ({"from": "2017-09-01T00:00:00-06:00", "to": "2017-09-15T23:59:59Z"},
         lambda r: r.date_at is not None
         and datetime(2017, 9, 1, 6, tzinfo=UTC) <= r.date_at <= datetime(2017, 9, 15, 23, 59, 59, tzinfo=UTC)),
        ({"min_amount": "1000000"}, lambda r: r.columns["amount"] is not None and r.columns["amount"] >= 1e6),
        ({"max_amount": "50000.5"}, lambda r: r.columns["amount"] is not None and r.columns["amount"] <= 50000.5),
        ({"q": "servicio", "method": "limited", "min_amount": "100000"},
         lambda r: _words("servicio", "servicios")(r) and r.columns["method"] == "limited"
         and r.columns["amount"] is not None and r.columns["amount"] >= 1e5),
    ]


def test_each_filter_returns_exactly_the_matching_records(client: TestClient, rows: dict[str, Row]) -> None:
    """Every filter, alone and combined, returns exactly the records a Python filter over the data keeps."""
    for params, keep in _filters(rows):
        expected = {o for o, r in rows.items() if keep(r)}
        assert expected, params
        assert _ocids(client, **params) == expected, params


def _expected_facets(selected: list[Row]) -> dict[str, Any]:
    def counts(values: list[Any]) -> dict[Any, int]:
        return dict(collections.Counter(values))

    buyers = collections.Counter(r.columns["buyer_id"] for r in selected if r.columns["buyer_id"] is not None)
    names: dict[str, str] = {}
    for r in selected:
        if r.columns["buyer_id"] is not None and r.columns["buyer_name"] is not None:
            names[r.columns["buyer_id"]] = max(names.get(r.columns["buyer_id"], ""), r.columns["buyer_name"])
    top = sorted(buyers.items(), key=lambda item: (-item[1], item[0]))[:10]
    return {
        "method": counts([r.columns["method"] for r in selected]),
        "status": counts([r.columns["status"] for r in selected]),
        "year": counts([r.year() for r in selected]),
        "buyer": [{"id": b, "name": names.get(b), "count": n} for b, n in top],
    }


@pytest.mark.parametrize("which", [0, 2, 5, 10])
def test_facets_and_total_equal_python_counts(client: TestClient, rows: dict[str, Row], which: int) -> None:
    """Counts by method, status, year and the top 10 buyers, and the total, are those of the filtered set."""
    everything: tuple[dict[str, str], Callable[[Row], bool]] = ({}, lambda r: True)
    params, keep = [everything, *_filters(rows)][which]
    selected = [r for r in rows.values() if keep(r)]
    body = client.get("/api/search", params=params).json()
    facets = body["facets"]
    assert body["total"] == len(selected) and body["total_relation"] == "eq"
    expected = _expected_facets(selected)
    for name in ("method", "status", "year"):
        assert {f["value"]: f["count"] for f in facets[name]} == expected[name], name
    for name in ("method", "status"):  # most frequent first; years newest first, unknown last
        assert [f["count"] for f in facets[name]] == sorted((f["count"] for f in facets[name]), reverse=True)
    years = [f["value"] for f in facets["year"]]
    assert years == sorted(years, key=lambda y: -1 if y is None else y, reverse=True)
    assert facets["buyer"] == expected["buyer"]


WINDOW = 25


@pytest.fixture(scope="module")
def windowed(loaded: tuple[Settings, dict[str, Row], RecordMerger]) -> Iterator[TestClient]:
    """A feed server whose search window is 25 matches (10,000 by default)."""
    app = create_app(loaded[0].model_copy(update={"search_window": WINDOW}))
    app.include_router(search.router)
    with TestClient(app) as client:
        yield client


def _newest(selected: list[Row], n: int) -> list[Row]:
    """The newest ``n`` rows: by date descending, undated first, then ocid descending."""
    floor = datetime.min.replace(tzinfo=UTC)
    return sorted(selected, key=lambda r: (r.date_at is None, r.date_at or floor, r.ocid), reverse=True)[:n]


def test_a_search_matching_more_than_the_window_counts_its_newest_matches(
    windowed: TestClient, rows: dict[str, Row],
) -> None:
    """Beyond the window, the total is a lower bound ("gte") and the facets count the newest matches only."""
    matches = [r for r in rows.values() if _words("servicio", "servicios")(r)]
    assert len(matches) > 2 * WINDOW
    body = windowed.get("/api/search", params={"q": "servicios"}).json()
    assert body["total"] == WINDOW and body["total_relation"] == "gte"
    expected = _expected_facets(_newest(matches, WINDOW))
    for name in ("method", "status", "year"):
        assert {f["value"]: f["count"] for f in body["facets"][name]} == expected[name], name
    assert body["facets"]["buyer"] == expected["buyer"]
    pairs = collections.Counter((r.columns["method"], r.columns["status"]) for r in matches
                                if r.columns["method"] and r.columns["status"])
    (method, status), count = max((item for item in pairs.items() if item[1] < WINDOW), key=lambda item: item[1])
    assert count > 1  # fewer matches than the window: exact again
    narrow = windowed.get("/api/search", params={"q": "servicios", "method": method, "status": status}).json()
    assert narrow["total"] == count and narrow["total_relation"] == "eq"


def test_relevance_ranks_the_newest_matches_of_the_window(
    windowed: TestClient, loaded: tuple[Settings, dict[str, Row], RecordMerger],
) -> None:
    """sort=relevance pages through the window's matches only, best first, in the order of all matches."""
    settings, rows, _ = loaded
    newest = {r.ocid for r in _newest([r for r in rows.values() if _words("servicio", "servicios")(r)], WINDOW)}
    results = _pages(windowed, {"q": "servicio", "sort": "relevance", "limit": "7"})
    assert [r["ocid"] for r in results] == [o for o in _db_order(settings, "relevance", "servicio") if o in newest]


def test_date_and_amount_sorts_page_through_every_match_beyond_the_window(
    windowed: TestClient, rows: dict[str, Row],
) -> None:
    """The window bounds ranking and counting, not what the other sorts can reach: every match is a page away."""
    expected = {o for o, r in rows.items() if _words("servicio", "servicios")(r)}
    for sort in ("-date", "amount"):
        assert _ocids(windowed, q="servicio", sort=sort) == expected, sort


def _db_order(settings: Settings, sort: str, q: str | None = None) -> list[str]:
    """All matching ocids in the sort order, straight from one SQL query (no paging)."""
    key, descending = {"date": ("date_at", False), "-date": ("date_at", True), "amount": ("amount", False),
                       "-amount": ("amount", True)}.get(sort, ("rank", True))
    direction = "DESC" if descending else "ASC"
    conn = psycopg2.connect(settings.database_url)
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT ocid FROM (SELECT ocid, date_at, amount, ts_rank_cd(search, websearch_to_tsquery('spanish', %s)) "
            f"AS rank FROM records WHERE %s IS NULL OR search @@ websearch_to_tsquery('spanish', %s)) AS t "
            f"ORDER BY {key} IS NULL, {key} {direction}, ocid {direction}",
            (q, q, q),
        )
        order = [row[0] for row in cur.fetchall()]
    conn.close()
    return order


@pytest.mark.parametrize(("sort", "q"), [("date", None), ("-date", None), ("amount", None), ("-amount", None),
                                         ("relevance", "servicio"), ("-date", "construccion")])
def test_seek_paging_returns_every_record_once_in_sort_order(
    client: TestClient, loaded: tuple[Settings, dict[str, Row], RecordMerger], sort: str, q: str | None,
) -> None:
    """Following links.next with small pages gives each match once, in the sort's order, unkeyed rows last."""
    params = {"sort": sort, "limit": "7", **({"q": q} if q else {})}
    results = _pages(client, params)
    assert [r["ocid"] for r in results] == _db_order(loaded[0], sort, q)
    if sort.endswith("amount"):
        amounts = [r["amount"] for r in results if r["amount"] is not None]
        assert amounts == sorted(amounts, reverse=sort.startswith("-"))
        assert all(r["amount"] is None for r in results[len(amounts):])
    if q is None:
        assert len(results) == len(loaded[1])


def test_paging_while_records_are_inserted_repeats_none(
    client: TestClient, loaded: tuple[Settings, dict[str, Row], RecordMerger],
) -> None:
    """Records inserted between pages never cause repeats; one shows up iff it sorts after the cursor."""
    settings, rows, merger = loaded
    conn = psycopg2.connect(settings.database_url)
    inserted: dict[str, bool] = {}  # ocid: sorts after the last row seen when it was inserted
    dates = ["2030-01-01T00:00:00Z", "2017-06-15T12:00:00-06:00", "2000-01-01T00:00:00Z"]

    def insert(body: dict[str, Any]) -> None:
        last = _instant(body["results"][-1]["date"])
        assert last is not None
        for date in dates:
            ocid = f"ocds-test-insert-{len(inserted)}"
            _save(conn, merger, [{"ocid": ocid, "id": "1", "date": date, "tag": ["tender"],
                                  "tender": {"id": "x", "title": "Servicio de prueba"}}])
            instant = _instant(date)
            assert instant is not None
            inserted[ocid] = instant < last  # the sort is -date: after the cursor means older

    try:
        results = _pages(client, {"sort": "-date", "limit": "25"}, between=insert)
    finally:
        with conn.cursor() as cur:
            cur.execute("DELETE FROM records WHERE ocid LIKE 'ocds-test-insert-%'")
        conn.commit()
        conn.close()
    seen = [r["ocid"] for r in results]
    assert len(seen) == len(set(seen))
    assert set(rows) <= set(seen)
    assert {o for o in seen if o in inserted} == {o for o, after in inserted.items() if after}
    assert any(inserted.values()) and not all(inserted.values())


def test_highlights_mark_the_matching_words_with_accents_kept(client: TestClient) -> None:
    """Each highlight marks the query's word as published (accents and case kept) and is HTML-escaped."""
    body = client.get("/api/search", params={"q": "licitación", "limit": "100"}).json()
    assert body["results"]
    marked = []
    for result in body["results"]:
        words = re.findall(r"<mark>(.*?)</mark>", result["highlight"])
        assert words, result
        assert all(unaccent(w).lower().startswith("licit") for w in words)
        marked += words
    assert "Licitacio\u0301n" in marked  # the made record: a combining accent stays inside the mark
    assert any("ó" in w.lower() for w in marked)  # published accents are kept in the snippet


def test_results_carry_the_summary_and_a_record_url(client: TestClient, rows: dict[str, Row]) -> None:
    """A result has ocid, title, buyer, suppliers, method, status, amount, currency, date and record_url."""
    result = client.get("/api/search", params={"q": "papelería"}).json()["results"][0]
    assert result["ocid"] == "ocds-test-made-2"
    assert result["title"] == "Adquisición de papelería"
    assert result["method"] == "direct" and result["status"] == "tender.unknown"
    assert result["amount"] == 1500 and result["currency"] == "MXN" and result["date"] == "2017-03-01"
    assert result["record_url"].endswith("/api/records/ocds-test-made-2")
    assert result["highlight"] == "Adquisición de <mark>papelería</mark>"


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"limit": "0"}, "limit"), ({"limit": "101"}, "limit"), ({"limit": "ten"}, "limit"),
        ({"limit": "-5"}, "limit"), ({"sort": "price"}, "sort"), ({"sort": "relevance"}, "sort"),
        ({"from": "yesterday"}, "from"), ({"to": "2017-13-01"}, "to"),
        ({"from": "2018-01-01", "to": "2017-01-01"}, "from"), ({"min_amount": "lots"}, "min_amount"),
        ({"max_amount": "1e999999"}, "max_amount"), ({"max_amount": "NaN"}, "max_amount"),
        ({"min_amount": "10", "max_amount": "5"}, "min_amount"), ({"cursor": "!!!"}, "cursor"),
        ({"cursor": "eyJ4IjoxfQ"}, "cursor"), ({"q": "x" * 501}, "q"), ({"buyer": "a\x00b"}, "buyer"),
        ({"supplier": "s" * 201}, "supplier"), ({"method": "open\x01"}, "method"),
    ],
)
def test_bad_parameters_are_400_naming_the_parameter(client: TestClient, params: dict[str, str], name: str) -> None:
    """A value that cannot be used is refused with 400 and a message that names the parameter."""
    response = client.get("/api/search", params=params)
    assert response.status_code == 400, response.text
    assert name in response.json()["error"]


def test_cursor_of_another_search_is_400(client: TestClient) -> None:
    """A cursor is only valid with the q, filters and sort it was made for."""
    body = client.get("/api/search", params={"q": "servicio", "limit": "2"}).json()
    cursor = dict(pair.split("=", 1) for pair in urlsplit(body["links"]["next"]).query.split("&"))["cursor"]
    for params in ({"q": "obra"}, {"q": "servicio", "sort": "-date"}, {"q": "servicio", "method": "open"}):
        response = client.get("/api/search", params={**params, "cursor": cursor})
        assert response.status_code == 400
        assert "cursor" in response.json()["error"]


@pytest.mark.parametrize("value", ["'", "\"", "&|!():*", "a & (b | !c)", "-", "\"\"", "ñ" * 200, "\u0301",
                                   "😀", "%", "\\", "1e308", "-0", "9" * 20, "2017-02-29", "0001-01-01",
                                   "9999-12-31T23:59:59+14:00", "<script>", "NULL", " "])
def test_odd_values_in_any_parameter_never_cause_a_500(client: TestClient, value: str) -> None:
    """Odd but printable values get 200 or 400 in every parameter (what a fuzzer will try)."""
    for name in ("q", "buyer", "supplier", "method", "status", "from", "to", "min_amount", "max_amount", "sort",
                 "limit", "cursor"):
        response = client.get("/api/search", params={name: value})
        assert response.status_code in (200, 400), (name, value, response.text)


def test_odd_cursors_never_cause_a_500(client: TestClient) -> None:
    """Well-formed cursors with hostile contents are 400, never 500."""
    import base64

    def make(data: object) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(data)).decode().rstrip("=")

    filters = search.fingerprint({})
    hostile: list[Any] = [
        {"s": "-date", "k": "2017-01-01T00:00:00", "o": "x", "f": filters},  # no offset
        {"s": "-date", "k": 5, "o": "x", "f": filters},
        {"s": "-amount", "k": "1" * 40, "o": "x", "f": filters},
        {"s": "relevance", "k": 1e300, "o": "x", "f": search.fingerprint({"q": "obra"})},
        {"s": "-date", "k": None, "o": "a\x00b", "f": filters},
        [], "x", None,
    ]
    for data in hostile:
        params = {"sort": data["s"], "q": "obra"} if isinstance(data, dict) and data["s"] == "relevance" else {
            "sort": data["s"] if isinstance(data, dict) else "-date"}
        response = client.get("/api/search", params={**params, "cursor": make(data)})
        assert response.status_code == 400, (data, response.text)


def test_highlight_marks_carry_over_combining_accents_and_ligatures() -> None:
    """Marks found on the unaccented text land on the same words of the text as published."""
    text = "Licitacio\u0301n ﬁnal de e\u0301xito"
    pieces = [unaccent(c) for c in text]
    unaccented = "".join(pieces)
    assert unaccented == "Licitacion final de exito"
    spans = [(m.start(), m.end()) for m in re.finditer(r"Licitacion|final|exito", unaccented)]
    marked = [text[a:b] for a, b in store.to_original(pieces, spans)]
    assert marked == ["Licitacio\u0301n", "ﬁnal", "e\u0301xito"]


def test_snippet_centres_on_the_first_match_and_escapes_html() -> None:
    """A long text is cut around its first mark, with ellipses, and its HTML is escaped."""
    text = "<b>" + "palabra " * 100 + "licitación & obra " + "fin " * 100
    start = text.index("licitación")
    out = store.snippet(text, [(start, start + len("licitación"))])
    assert out.startswith("…") and out.endswith("…")
    assert "<mark>licitación</mark> &amp; obra" in out
    assert "<b>" not in out
    assert len(out) < store.SNIPPET_CHARS + 40


def test_sql_carries_values_only_as_parameters() -> None:
    """Hostile values never reach the SQL text: they travel as parameters."""
    hostile = "'); DROP TABLE records; --"
    query = store.SearchQuery(q=hostile, buyer=hostile, supplier=hostile, method=hostile, status=hostile,
                              min_amount=Decimal(1), sort="relevance", after=store.Seek(0.5, hostile))
    for sql, params in (store.page_sql(query), store.facets_sql(query), store.page_and_facets_sql(query)):
        assert "DROP" not in sql
        assert hostile in params.values()
