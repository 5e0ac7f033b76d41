"""The pages: served with the right types and headers, and, in a real Chromium, live and correct.

The browser tests drive Debian's Chromium (``apt-get install -y chromium``) over the DevTools protocol
against a real ``ocds-live serve``; without Chromium they fail, they never skip.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import random
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import psycopg2
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from websockets.sync.client import ClientConnection, connect

from core.changes import KINDS
from core.merge import RecordMerger
from core.schema import OcdsSchema
from core.settings import Settings
from core.store.writer import ReleaseRow, allocate, insert_releases, save_record
from feed_server import pages
from feed_server.app import create_app
from tests.support.changes import append_events, synthetic_event
from tests.support.stack import Process, base_settings, free_port, fresh_stack, wait_http

pytestmark = pytest.mark.integration

CHROMIUM = os.environ.get("OCDS_LIVE_CHROMIUM", "/usr/bin/chromium")
SOURCES = ("mx-jalisco.releases.jsonl", "mx-cdmx.releases.jsonl")
RICH = "ocds-xs1qbl-SFIN-03-0007-00-2017"  # five releases, planning to implementation
TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}


def _store_real_records(settings: Settings, schema: OcdsSchema, real_data: Path) -> None:
    """Merge and store the processes of a few real Mexican files, with their releases."""
    by_ocid: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for name in SOURCES:
        for line in (real_data / name).read_text().splitlines():
            release = orjson.loads(line)
            by_ocid[release["ocid"]].append(release)
    merger = RecordMerger(schema)
    conn = psycopg2.connect(settings.database_url)
    try:
        with conn.cursor() as cur:
            for ocid, releases in by_ocid.items():
                record = merger.merge(releases)
                rows = [ReleaseRow(r, f"digest-{i}", "test", [], "test", 0, i) for i, r in enumerate(releases)]
                numbers = allocate(cur, 0, len(rows), 1)
                insert_releases(cur, rows, numbers.release)
                save_record(cur, ocid, record, numbers.record)
                conn.commit()
    finally:
        conn.close()


def _with_pages(app: FastAPI) -> FastAPI:
    if not any(getattr(route, "endpoint", None) is pages.dashboard for route in app.routes):
        app.include_router(pages.router)
    return app


@pytest.fixture(scope="module")
def client(schema: OcdsSchema, real_data: Path) -> Iterator[TestClient]:
    with fresh_stack(base_settings(), read_rate_limit=1e6) as settings:
        _store_real_records(settings, schema, real_data)
        with TestClient(_with_pages(create_app(settings))) as test_client:
            yield test_client


@pytest.mark.parametrize(
    "path",
    ["/", "/search", "/search?q=obra", f"/records/{RICH}", "/records/ocds-nope-1", "/records/ocds-nope/with/slashes"],
)
def test_pages_are_html_with_a_strict_policy(client: TestClient, path: str) -> None:
    """Each page (a record page even for an unknown ocid) is HTML that allows only this origin."""
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert "default-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert re.search(r'<script type="module" src="/static/\w+\.js">', response.text)


def test_static_files_have_their_types(client: TestClient) -> None:
    """Every file of feed_server/static is served with its content type, revalidated on each use."""
    files = sorted(p for p in pages.STATIC.iterdir() if p.is_file())
    assert {p.suffix for p in files} == set(TYPES)
    for path in files:
        response = client.get(f"/static/{path.name}")
        assert response.status_code == 200, path.name
        assert response.headers["content-type"].startswith(TYPES[path.suffix]), path.name
        assert response.headers["cache-control"] == "no-cache"
        assert response.content == path.read_bytes()
        again = client.get(f"/static/{path.name}", headers={"If-None-Match": response.headers["etag"]})
        assert again.status_code == 304


def test_kinds_module_is_the_core_table(client: TestClient) -> None:
    """/static/kinds.js names the kinds exactly as core.changes.KINDS does, in the same order."""
    response = client.get("/static/kinds.js")
    assert response.headers["content-type"].startswith("text/javascript")
    found = re.search(r"Object\.freeze\((.*)\);", response.text)
    assert found is not None
    table = json.loads(found.group(1))
    assert list(table) == list(KINDS)
    assert {code: tuple(titles) for code, titles in table.items()} == KINDS


def test_pages_use_only_files_served_here(client: TestClient) -> None:
    """Every script, style and module import resolves here; nothing points at another host (no CDN)."""
    referenced: set[str] = set()
    for page in ("/", "/search", f"/records/{RICH}"):
        referenced.update(re.findall(r'(?:src|href)="(/static/[^"]+)"', client.get(page).text))
    for path in pages.STATIC.glob("*.js"):
        referenced.update(f"/static/{name}" for name in re.findall(r'from "\./([\w-]+\.js)"', path.read_text()))
    assert {"/static/app.css", "/static/dashboard.js", "/static/kinds.js", "/static/live.js"} <= referenced
    for url in referenced:
        assert client.get(url).status_code == 200, url
    for path in pages.STATIC.iterdir():
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", path.read_text()), path.name


def test_static_serves_nothing_else(client: TestClient) -> None:
    """Unknown files are 404, and no path escapes the static folder."""
    assert client.get("/static/nope.js").status_code == 404
    assert client.get("/static/%2e%2e/pages.py").status_code == 404
    assert client.get("/static/..%2fpages.py").status_code == 404


def test_pages_are_not_in_the_api_description(client: TestClient) -> None:
    """The pages are for people: /openapi.json lists the API only."""
    paths = client.get("/openapi.json").json()["paths"]
    assert "/api/search" in paths
    assert not {"/", "/search", "/records/{ocid}", "/static/kinds.js"} & set(paths)


# ---- a real browser --------------------------------------------------------------------------------------


class Browser:
    """Headless Chromium driven over the DevTools protocol: one page, its errors collected."""

    FLAGS = (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--remote-debugging-port=0",
        "--window-size=1280,900",
    )

    def __init__(self, profile: Path, log: Path) -> None:
        if not os.access(CHROMIUM, os.X_OK):
            pytest.fail(
                f"{CHROMIUM} is missing: `apt-get install -y chromium` (or set OCDS_LIVE_CHROMIUM)", pytrace=False
            )
        self._log = log.open("wb")
        self._exit = contextlib.ExitStack()
        self.proc = subprocess.Popen(
            [CHROMIUM, *self.FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            port_file = profile / "DevToolsActivePort"
            deadline = time.monotonic() + 30
            while not (port_file.exists() and len(port_file.read_text().split()) == 2):
                assert time.monotonic() < deadline and self.proc.poll() is None, log.read_text(errors="replace")
                time.sleep(0.05)
            port, path = port_file.read_text().split()
            self.ws: ClientConnection = self._exit.enter_context(connect(f"ws://127.0.0.1:{port}{path}", max_size=None))
            self.ids = 0
            self.errors: list[str] = []
            target = self.call("Target.createTarget", url="about:blank")["targetId"]
            self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
            for domain in ("Page", "Runtime", "Log"):
                self.call(f"{domain}.enable", session=True)
        except BaseException:
            self.close()
            raise

    def call(self, method: str, *, session: bool = False, **params: Any) -> dict[str, Any]:
        self.ids += 1
        message: dict[str, Any] = {"id": self.ids, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        self.ws.send(json.dumps(message))
        while True:
            answer = json.loads(self.ws.recv(timeout=30))
            if answer.get("id") == self.ids:
                assert "error" not in answer, answer
                result: dict[str, Any] = answer["result"]
                return result
            self._event(answer)

    def _event(self, event: dict[str, Any]) -> None:
        params = event.get("params", {})
        if event.get("method") == "Runtime.exceptionThrown":
            self.errors.append(str(params["exceptionDetails"]))
        elif (
            event.get("method") == "Log.entryAdded"
            and params["entry"]["level"] == "error"
            and params["entry"]["source"] != "network"
        ):  # a 404 the page expects is a network entry
            self.errors.append(params["entry"]["text"])

    def go(self, url: str) -> None:
        """Open ``url`` and wait for its load event (module scripts have run by then)."""
        self.call("Page.navigate", session=True, url=url)
        while True:
            event = json.loads(self.ws.recv(timeout=30))
            self._event(event)
            if event.get("method") == "Page.loadEventFired":
                return

    def js(self, expression: str) -> Any:
        result = self.call(
            "Runtime.evaluate", session=True, expression=expression, returnByValue=True, awaitPromise=True
        )
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    def wait(self, expression: str, timeout: float = 15) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = self.js(expression)
            if value:
                return value
            assert time.monotonic() < deadline, f"still false after {timeout}s: {expression}"
            time.sleep(0.1)

    def close(self) -> None:
        self._exit.close()
        self._stop()

    def _stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self._log.close()


class Server:
    """``ocds-live serve`` on its own port and database; restartable."""

    def __init__(self, settings: Settings, logs: Path) -> None:
        self.settings, self.logs, self.starts = settings, logs, 0
        self.process = self.start()

    def start(self) -> Process:
        self.starts += 1
        process = Process(self.settings, "serve", log=self.logs / f"serve-{self.starts}.log")
        wait_http(f"{self.settings.base_url}/healthz")
        return process


@pytest.fixture(scope="module")
def live(
    schema: OcdsSchema,
    real_data: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Server, Browser]]:
    logs = tmp_path_factory.mktemp("pages")
    with fresh_stack(base_settings(), port=free_port(), read_rate_limit=1e6) as settings:
        _store_real_records(settings, schema, real_data)
        rng = random.Random(11)
        append_events(settings, [synthetic_event(rng, n) for n in range(1, 61)])
        server = Server(settings, logs)
        browser: Browser | None = None
        try:
            try:
                urllib.request.urlopen(f"{settings.base_url}/", timeout=5).close()  # noqa: S310
            except urllib.error.HTTPError as exc:
                pytest.fail(f"`ocds-live serve` does not serve the pages ({exc}): create_app must include pages.router")
            browser = Browser(logs / "profile", logs / "chromium.log")
            yield server, browser
        finally:
            if browser is not None:
                browser.close()
            server.process.stop()
            shutil.rmtree(logs / "profile", ignore_errors=True)


def _event(n: int, kind: str, title: str, amount: float | None) -> dict[str, Any]:
    event = synthetic_event(random.Random(n), n)
    event.update(kind=kind, kinds=[kind], ocid=f"ocds-07smqs-live-{n}")
    event["summary"].update(title=title, contract_amount=amount, currency="MXN", method="open")
    return event


ROWS = "[...document.querySelectorAll('#changes > li')]"


def test_dashboard_shows_changes_as_they_happen(live: tuple[Server, Browser]) -> None:
    """The dashboard backfills the last 50 changes, then shows a new one, as text, with its counters."""
    server, browser = live
    browser.go(f"{server.settings.base_url}/")
    browser.wait("document.querySelector('#connection').dataset.state === 'live'")
    assert browser.js(f"{ROWS}.length") == 50
    assert browser.js(f"{ROWS}[0].dataset.cursor") == "60"
    title = "Vacunas <script>alert(1)</script> & más"
    append_events(server.settings, [_event(1000, "contract.signed", title, 1234567.5)])
    browser.wait(f"{ROWS}[0].dataset.cursor === '61'")
    first = browser.js(f"{ROWS}[0].innerText")
    assert "Contrato firmado" in first and "Contract signed" in first
    assert "1,234,567.50" in first and "MXN" in first
    assert browser.js(f"{ROWS}[0].querySelector('.change-title').textContent") == title
    assert browser.js("document.querySelectorAll('#changes script').length") == 0
    assert (
        browser.js(f"{ROWS}[0].querySelector('.change-title').getAttribute('href')") == "/records/ocds-07smqs-live-1000"
    )
    assert browser.js("document.querySelector('#total-changes').textContent") == "51"
    assert "Contrato firmado" in browser.js("document.querySelector('#by-kind').innerText")
    assert browser.wait("document.querySelector('#freshness').dataset.seconds !== undefined")
    assert browser.wait("localStorage.getItem('ocds-live:dashboard:cursor') === '61'", timeout=5)
    assert browser.errors == []


def test_dashboard_filters_resubscribe(live: tuple[Server, Browser]) -> None:
    """Choosing a kind sends a subscribe message: only matching changes show, old and new."""
    server, browser = live
    browser.go(f"{server.settings.base_url}/")
    browser.wait("document.querySelector('#connection').dataset.state === 'live'")
    browser.js(
        "document.querySelector('[name=kind]').value = 'payment.'; "
        "document.querySelector('#filters').requestSubmit(); true"
    )
    browser.wait(f"location.search === '?kind=payment.' && {ROWS}.length > 0")
    head = browser.js(f"{ROWS}.length")
    append_events(
        server.settings,
        [
            _event(1001, "contract.signed", "No se muestra", 10.0),
            _event(1002, "payment.recorded", "Pago de prueba", 20.0),
        ],
    )
    browser.wait(f"{ROWS}.length === {head + 1}")
    kinds = browser.js(f"{ROWS}.map(li => li.querySelector('.kind').textContent)")
    assert kinds and all(kind.startswith("Pago registrado") for kind in kinds)
    assert browser.js(f"{ROWS}[0].querySelector('.change-title').textContent") == "Pago de prueba"
    assert browser.errors == []


def test_dashboard_resumes_after_the_server_restarts(live: tuple[Server, Browser]) -> None:
    """A change made while the server is down shows once it is back, exactly once."""
    server, browser = live
    browser.go(f"{server.settings.base_url}/")
    browser.wait("document.querySelector('#connection').dataset.state === 'live'")
    server.process.stop()
    browser.wait("document.querySelector('#connection').dataset.state === 'waiting'")
    append_events(server.settings, [_event(1003, "award.made", "Adjudicación durante el corte", 30.0)])
    server.process = server.start()
    browser.wait(
        f"{ROWS}[0].querySelector('.change-title').textContent === 'Adjudicación durante el corte'", timeout=40
    )
    cursors = browser.js(f"{ROWS}.map(li => li.dataset.cursor)")
    assert len(cursors) == len(set(cursors))
    assert browser.errors == []


def test_record_page_shows_the_process_and_its_history(live: tuple[Server, Browser]) -> None:
    """The record page shows the title, amounts, every release and the versions of key fields."""
    server, browser = live
    browser.go(f"{server.settings.base_url}/records/{quote(RICH, safe='')}")
    browser.wait("document.querySelector('#record').getAttribute('aria-busy') === 'false'")
    assert browser.js("document.querySelector('#title').textContent") == "PAQUETES Y PROGRAMAS(SOFTWARE)"
    text = browser.js("document.querySelector('#record').innerText")
    assert "Historial de campos" in text and "Estado de la licitación" in text
    assert browser.js("document.querySelectorAll('#releases tbody tr').length") == 5
    hrefs = browser.js("[...document.querySelectorAll('#record a')].map(a => a.getAttribute('href'))")
    assert f"/feeds/ocid/{RICH}.atom" in hrefs and f"/api/records/{RICH}" in hrefs
    releases = browser.js("[...document.querySelectorAll('#releases tbody a')].map(a => a.textContent)")
    assert all(href.startswith(f"/api/releases/{RICH}/") for href in hrefs if "/api/releases/" in href)
    assert all(release.startswith(RICH) for release in releases) and len(releases) == 5
    browser.wait("document.querySelector('#connection').dataset.state === 'live'")
    assert browser.errors == []


def test_record_page_says_not_found(live: tuple[Server, Browser]) -> None:
    """An unknown ocid gives a page that says so (the API answers 404)."""
    server, browser = live
    browser.go(f"{server.settings.base_url}/records/ocds-nope-1")
    browser.wait("!document.querySelector('#problem').hidden")
    assert "no encontrado" in browser.js("document.querySelector('#title').textContent").lower()
    assert browser.errors == []


def test_search_page_highlights_and_pages(live: tuple[Server, Browser]) -> None:
    """Search shows highlighted snippets and facets, and follows links.next to the next page."""
    server, browser = live
    browser.go(f"{server.settings.base_url}/search?q=servicio&limit=1")
    browser.wait("document.querySelectorAll('#results article').length === 1")
    assert browser.js("document.querySelector('#results mark') !== null")
    assert browser.js("document.querySelector('#facet-groups button') !== null")
    first = browser.js("document.querySelector('#results h3 a').getAttribute('href')")
    assert first.startswith("/records/")
    browser.js("document.querySelector('#next').click(); true")
    browser.wait("location.search.includes('cursor=')")
    browser.wait(f"document.querySelector('#results h3 a').getAttribute('href') !== {json.dumps(first)}")
    assert not browser.js("document.querySelector('#first').hidden")
    assert browser.errors == []
