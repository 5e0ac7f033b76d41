"""Atom feeds: valid documents, RFC 5005 archives walked without gap or repeat, stable bytes, 304s."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote, urlsplit
from xml.etree import ElementTree

import feedparser
import orjson
import psycopg2
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from core.changes import KINDS, detect
from core.filters import ChangeFilter
from core.settings import Settings
from core.store import writer
from feed_server import atom
from feed_server.app import create_app
from feed_server.atom_render import entry_title
from tests.support.stack import base_settings, fresh_stack

pytestmark = pytest.mark.integration

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real" / "mx-jalisco.releases.jsonl"
ATOM = "{http://www.w3.org/2005/Atom}"
HUB = "https://websub.example.org/hub"
TOTAL = 1234
PAGE = atom.PAGE_SIZE
BUYERS = [("MX-SHCP-06", "Secretaría de Hacienda y Crédito Público"),
          ("MX-IMSS-50", "Instituto Mexicano del Seguro Social"), ("MX-SEP-11", "Secretaría de Educación Pública"),
          ("MX-CFE-18", "Comisión Federal de Electricidad"), ("MX-SSA-12", "Secretaría de Salud")]
SUPPLIERS = [(f"MX-RFC-{code}", name) for code, name in [
    ("ACM010101AAA", "Abastecedora Comercial de México, S.A. de C.V."), ("LIM990909BB1", "Limpieza Integral del Bajío"),
    ("PAP850505CC2", "Papelería y Oficina Ñandú"), ("MED770707DD3", "Medicamentos del Norte"),
    ("CON660606EE4", "Constructora Jalisciense"), ("TEC880808FF5", "Tecnologías Públicas"),
    ("SER920202GG6", "Servicios Generales Querétaro")]]


def _release(process: int, stage: int) -> dict[str, Any]:
    """The compiled release of synthetic process ``process`` after stage 0 (tender), 1 (award), 2 (contract)."""
    ocid = f"ocds-07smqs-{process:06d}"
    buyer_id, buyer_name = BUYERS[process % len(BUYERS)]
    chosen = [SUPPLIERS[process % len(SUPPLIERS)]] + ([SUPPLIERS[(process + 3) % len(SUPPLIERS)]]
                                                      if process % 4 == 0 else [])
    suppliers = [{"id": sid, "name": name} for sid, name in chosen]
    amount = {"amount": 1000.0 * (process + 1), "currency": "MXN"}
    day = 1 + process % 28
    # every fifth process publishes dates without an offset, as some Mexican systems do
    date = f"2024-{1 + process % 12:02d}-{day:02d}T1{stage}:00:00" + ("" if process % 5 == 0 else "Z")
    release: dict[str, Any] = {
        "ocid": ocid, "id": f"{ocid}-{stage}", "date": date, "tag": [["tender", "award", "contract"][stage]],
        "initiationType": "tender", "buyer": {"id": buyer_id, "name": buyer_name},
        "parties": [{"id": buyer_id, "name": buyer_name, "roles": ["buyer"]}],
        "tender": {"id": f"T-{process}", "title": f"Adquisición de material de oficina, lote {process}",
                   "status": "active" if stage == 0 else "complete", "procurementMethod": "open",
                   "mainProcurementCategory": "goods", "value": amount},
    }
    if stage >= 1:
        release["awards"] = [{"id": f"A-{process}", "status": "active", "value": amount, "suppliers": suppliers}]
        release["parties"] += [{**s, "roles": ["supplier"]} for s in suppliers]
    if stage >= 2:
        release["contracts"] = [{"id": f"C-{process}", "awardID": f"A-{process}", "status": "active",
                                 "dateSigned": date, "value": amount}]
    return release


def _event(before: dict[str, Any] | None, release: dict[str, Any]) -> dict[str, Any] | None:
    change = detect(before, release, release)
    if change is None:
        return None
    return {"id": f"ev-{release['id']}", "ocid": release["ocid"], "release_id": release["id"], "date": release["date"],
            "tags": release.get("tag") or [], "publisher": "testpub", **change.as_dict()}


def _events(count: int, start: int = 0) -> list[dict[str, Any]]:
    """``count`` change events: real Jalisco releases first (when ``start`` is 0), then synthetic processes."""
    events: list[dict[str, Any]] = []
    if start == 0:
        for line in REAL.read_text(encoding="utf-8").splitlines():
            event = _event(None, orjson.loads(line))
            if event is not None:
                events.append(event)
    for step in itertools.count(start):
        if len(events) >= count:
            break
        process, stage = divmod(step, 3)
        event = _event(_release(process, stage - 1) if stage else None, _release(process, stage))
        if event is not None:
            events.append(event)
    return events[:count]


def _append(settings: Settings, events: list[dict[str, Any]]) -> None:
    """Append to the change log the way the processor does: cursors from feed_counter, one transaction."""
    conn = psycopg2.connect(settings.database_url)
    with conn, conn.cursor() as cur:
        cur.execute("UPDATE feed_counter SET last = last + %s WHERE id = 1 RETURNING last", (len(events),))
        row = cur.fetchone()
        assert row is not None
        last = int(row[0])
        writer.append_changes(cur, events, settings.base_url, last - len(events) + 1)
    conn.close()


def _stored(settings: Settings) -> list[dict[str, Any]]:
    conn = psycopg2.connect(settings.database_url)
    with conn, conn.cursor() as cur:
        cur.execute("SELECT event::text FROM changes ORDER BY cursor")
        rows = [orjson.loads(r[0]) for r in cur.fetchall()]
    conn.close()
    return rows


def _app(settings: Settings) -> FastAPI:
    app = create_app(settings)
    if not any(getattr(route, "path", None) == "/feeds/changes.atom" for route in app.routes):
        app.include_router(atom.router)
    return app


@pytest.fixture(scope="module")
def settings() -> Iterator[Settings]:
    with fresh_stack(base_settings(), read_rate_limit=1e6) as settings:
        _append(settings, _events(TOTAL))
        yield settings


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(_app(settings)) as client:
        yield client


def _local(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _get(client: TestClient, url: str) -> tuple[Any, bytes]:
    response = client.get(_local(url))
    assert response.status_code == 200, (url, response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("application/atom+xml")
    parsed = feedparser.parse(response.content)
    assert parsed.bozo == 0, (url, parsed.get("bozo_exception"))
    return parsed, response.content


def _links(parsed: Any, rel: str) -> list[str]:
    return [link["href"] for link in parsed.feed.get("links", []) if link.get("rel") == rel]


def _cursor(entry: Any) -> int:
    return int(entry.id.rsplit(":", 1)[1])


class _Quick:
    """The ids and feed links of an Atom document, read with ElementTree (feedparser takes ~2 ms an entry)."""

    def __init__(self, body: bytes) -> None:
        root = ElementTree.fromstring(body)  # noqa: S314 - our own output
        self.entries = [SimpleNamespace(id=e.findtext(f"{ATOM}id")) for e in root.iter(f"{ATOM}entry")]
        self.feed = {"links": [dict(link.attrib) for link in root.findall(f"{ATOM}link")]}


def _walk(client: TestClient, url: str, quick: bool = False) -> tuple[list[int], list[str]]:
    """Entry cursors from the subscription document back through prev-archive, and the archive URLs."""

    def fetch(url: str) -> tuple[Any, bytes]:
        if not quick:
            return _get(client, url)
        response = client.get(_local(url))
        assert response.status_code == 200, url
        return _Quick(response.content), response.content

    parsed, body = fetch(url)
    assert b"fh:archive" not in body
    current = _links(parsed, "self")
    cursors = [_cursor(e) for e in parsed.entries]
    archives: list[str] = []
    while prev := _links(parsed, "prev-archive"):
        archives.append(prev[0])
        parsed, body = fetch(prev[0])
        assert b"<fh:archive/>" in body
        assert _links(parsed, "current") == current
        cursors += [_cursor(e) for e in parsed.entries]
    return cursors, archives


def test_documents_parse_without_errors(client: TestClient) -> None:
    """Subscription, archive, per-ocid, per-buyer and per-supplier documents all parse with bozo == 0."""
    first, _ = _get(client, "/feeds/changes.atom")
    assert first.version == "atom10"
    _get(client, _links(first, "prev-archive")[0])
    for path in ("/feeds/ocid/ocds-07smqs-000007.atom", f"/feeds/buyer/{BUYERS[1][0]}.atom",
                 f"/feeds/supplier/{quote(SUPPLIERS[2][0])}.atom", "/feeds/changes.atom?kind=contract.&q=oficina"):
        parsed, _ = _get(client, path)
        assert parsed.entries, path


def test_walking_prev_archive_reaches_the_first_change_once(client: TestClient, settings: Settings) -> None:
    """From the subscription document, prev-archive leads through full archives to cursor 1, each change once."""
    head = len(_stored(settings))
    subscription, _ = _get(client, "/feeds/changes.atom")
    assert len(subscription.entries) == head % PAGE
    cursors, archives = _walk(client, "/feeds/changes.atom")
    assert len(cursors) == len(set(cursors))
    assert sorted(cursors) == list(range(1, head + 1))
    assert len(archives) == head // PAGE
    assert archives[-1].endswith("/feeds/changes.atom?after=0")


@pytest.mark.parametrize(("path", "params"), [
    ("/feeds/buyer/{buyer}.atom", {"buyer": "{buyer}"}),
    ("/feeds/supplier/{supplier}.atom", {"supplier": "{supplier}"}),
    ("/feeds/changes.atom?buyer={buyer}", {"buyer": "{buyer}"}),
    ("/feeds/changes.atom?buyer={buyer}&kind=contract.signed", {"buyer": "{buyer}", "kind": "contract.signed"}),
    ("/feeds/changes.atom?q=lote%2011", {"q": "lote 11"}),
    ("/feeds/ocid/ocds-07smqs-000042.atom", {"ocid": "ocds-07smqs-000042"}),
])
def test_filtered_walk_equals_the_filter_over_every_change(
    client: TestClient, settings: Settings, path: str, params: dict[str, str]
) -> None:
    """Walking a filtered feed's archives yields exactly the changes ChangeFilter.matches, each once."""
    ids = {"buyer": BUYERS[2][0], "supplier": SUPPLIERS[4][0]}
    url = path.format(buyer=ids["buyer"], supplier=quote(ids["supplier"]))
    chosen = ChangeFilter.from_mapping({k: v.format(**ids) for k, v in params.items()})
    expected = [e["cursor"] for e in _stored(settings) if chosen.matches(e)]
    cursors, archives = _walk(client, url)
    assert len(cursors) == len(set(cursors))
    assert sorted(cursors) == expected
    assert len(expected) > 0
    if "buyer" in params and "kind" not in params:
        assert len(archives) >= 2  # the chain really pages


def test_entries_carry_bilingual_titles_record_links_and_the_summary(client: TestClient, settings: Settings) -> None:
    """Entries: 'Spanish / English: title', record link, buyer, suppliers, amount, paths, kinds, RFC 3339 dates."""
    events = {e["cursor"]: e for e in _stored(settings)}
    parsed, body = _get(client, "/feeds/changes.atom?kind=contract.signed&buyer=" + BUYERS[0][0])
    assert parsed.entries
    for entry in parsed.entries:
        event = events[_cursor(entry)]
        assert entry.title == f"Contrato firmado / Contract signed: {event['summary']['title']}"
        assert entry.link == event["record_url"]
        assert BUYERS[0][1] in entry.summary
        assert f"{event['summary']['contract_amount']:,.2f} MXN" in entry.summary
        assert all(s["name"] in entry.summary for s in event["summary"]["suppliers"])
        assert [t["term"] for t in entry.tags] == event["kinds"]
        assert event["changes"][0]["path"] in entry.content[0].value
        assert entry.updated_parsed is not None and entry.published_parsed is not None
    assert b"T12:00:00+00:00</updated>" in body  # this buyer's dates have no offset: read as UTC
    for kind, (spanish, english) in KINDS.items():
        assert f"{spanish} / {english}" in entry_title({"kind": kind, "ocid": "x"})


def test_conditional_get_answers_304(client: TestClient) -> None:
    """A matching ETag or a Last-Modified date is answered 304, for subscription documents and archives."""
    first = client.get(f"/feeds/buyer/{BUYERS[3][0]}.atom")
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    assert client.get(f"/feeds/buyer/{BUYERS[3][0]}.atom", headers={"If-None-Match": etag}).status_code == 304
    assert client.get(f"/feeds/buyer/{BUYERS[3][0]}.atom", headers={"If-Modified-Since": modified}).status_code == 304
    old = format_datetime(parsedate_to_datetime(modified).replace(year=2001), usegmt=True)
    assert client.get(f"/feeds/buyer/{BUYERS[3][0]}.atom", headers={"If-Modified-Since": old}).status_code == 200
    assert client.get(f"/feeds/buyer/{BUYERS[3][0]}.atom", headers={"If-None-Match": '"other"',
                                                                    "If-Modified-Since": modified}).status_code == 200
    other = client.get(f"/feeds/buyer/{BUYERS[4][0]}.atom")
    assert other.headers["etag"] != etag
    archive = client.get("/feeds/changes.atom?after=100")
    assert archive.status_code == 200
    assert "immutable" in archive.headers["cache-control"]
    again = client.get("/feeds/changes.atom?after=100", headers={"If-None-Match": archive.headers["etag"]})
    assert again.status_code == 304
    assert client.get("/feeds/changes.atom?after=100",
                      headers={"If-Modified-Since": archive.headers["last-modified"]}).status_code == 304


def test_hub_link_only_when_a_hub_is_configured(client: TestClient, settings: Settings) -> None:
    """With a WebSub hub configured the subscription document links rel=hub (feed and Link header); else not."""
    plain, _ = _get(client, "/feeds/changes.atom")
    assert _links(plain, "hub") == []
    with TestClient(_app(settings.model_copy(update={"websub_hub": HUB}))) as hubbed:
        response = hubbed.get("/feeds/changes.atom")
        parsed = feedparser.parse(response.content)
        assert _links(parsed, "hub") == [HUB]
        assert _links(parsed, "self") == [f"{settings.base_url}/feeds/changes.atom"]
        assert f'<{HUB}>; rel="hub"' in response.headers["link"]
        assert response.headers["etag"] != client.get("/feeds/changes.atom").headers["etag"]


def test_unfinished_and_malformed_archive_requests(client: TestClient, settings: Settings) -> None:
    """An archive not complete yet redirects to the subscription document; bad cursors and filters are refused."""
    head = len(_stored(settings))
    unfinished = client.get(f"/feeds/changes.atom?after={head // PAGE * PAGE}", follow_redirects=False)
    assert unfinished.status_code == 307
    assert unfinished.headers["location"] == f"{settings.base_url}/feeds/changes.atom"
    assert client.get("/feeds/changes.atom?after=5").status_code == 404
    assert client.get("/feeds/changes.atom?after=x").status_code == 400
    assert client.get("/feeds/changes.atom?after=-100").status_code == 400
    assert client.get("/feeds/changes.atom?min_amount=lots").status_code == 400


def test_archives_are_byte_identical_after_more_changes(client: TestClient, settings: Settings) -> None:
    """Archives fetched before and after 150 more changes are the same bytes, and the walk still has no gap."""
    feeds = ["/feeds/changes.atom", f"/feeds/buyer/{BUYERS[0][0]}.atom",
             f"/feeds/supplier/{quote(SUPPLIERS[1][0])}.atom"]
    before = {}
    for url in feeds:
        _, archives = _walk(client, url, quick=True)
        before.update({archive: client.get(_local(archive)).content for archive in archives})
    newest = _Quick(before[f"{settings.base_url}/feeds/changes.atom?after=1100"])
    _append(settings, _events(150, start=TOTAL * 2))
    for archive, body in before.items():
        assert client.get(_local(archive)).content == body, archive
    _get(client, _links(newest, "next-archive")[0])  # the block after the newest archive is now complete
    stored = _stored(settings)
    for url in feeds:
        cursors, _ = _walk(client, url, quick=True)
        assert len(cursors) == len(set(cursors))
        assert sorted(cursors) == [e["cursor"] for e in stored if _matches(url, e)]


def _matches(url: str, event: dict[str, Any]) -> bool:
    if "/buyer/" in url:
        return ChangeFilter(buyer=BUYERS[0][0]).matches(event)
    if "/supplier/" in url:
        return ChangeFilter(supplier=SUPPLIERS[1][0]).matches(event)
    return True
