"""The project pages in a real Chromium against ``ocds-live serve``: the list with search, and a project with
budget against contracted and paid, its processes linking to their pages, which link back to the project;
and the websocket's project= filter on the same server.

Screenshots of both pages are written to ``OCDS_LIVE_SCREENSHOTS`` (a folder) when it is set.
"""

from __future__ import annotations

import base64
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import orjson
import pytest
from websockets.sync.client import connect

from core.settings import Settings
from tests.feed_server.test_pages import Browser, Server
from tests.support import pipeline
from tests.support import projects as support
from tests.support.stack import base_settings, free_port, fresh_stack

pytestmark = pytest.mark.integration

NAICM = "oc4ids-test01-46101"


@pytest.fixture(scope="module")
def live(real_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, Browser]]:
    logs = tmp_path_factory.mktemp("project-pages")
    with fresh_stack(base_settings(), port=free_port(), read_rate_limit=1e6,
                     publishers_file=support.publishers_file(logs)) as settings:
        feeder = support.Feeder(settings)
        try:
            feeder.send(support.read_jsonl(real_data / "mx-gacm-naicm.releases.jsonl"), batch=400)
            feeder.send(support.read_jsonl(real_data / "mx-nuevoleon.releases.jsonl"))
        finally:
            feeder.close()
        server = Server(settings, logs)
        browser: Browser | None = None
        try:
            browser = Browser(logs / "profile", logs / "chromium.log")
            yield settings, browser
        finally:
            if browser is not None:
                browser.close()
            server.process.stop()
            shutil.rmtree(logs / "profile", ignore_errors=True)


def _screenshot(browser: Browser, name: str, at: str | None = None) -> None:
    """The viewport (scrolled to the element ``at``), as a PNG in OCDS_LIVE_SCREENSHOTS."""
    folder = os.environ.get("OCDS_LIVE_SCREENSHOTS")
    if folder:
        browser.js(f"document.querySelector({at!r}).scrollIntoView(); true" if at else "window.scrollTo(0, 0); true")
        shot = browser.call("Page.captureScreenshot", session=True, format="png")
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / name).write_bytes(base64.b64decode(shot["data"]))


def test_projects_page_lists_and_searches(live: tuple[Settings, Browser]) -> None:
    """/projects lists every project with its figures; searching by name or buyer narrows the list."""
    settings, browser = live
    browser.go(f"{settings.base_url}/projects")
    browser.wait("document.querySelectorAll('#results article').length === 4")
    _screenshot(browser, "projects.png")
    browser.go(f"{settings.base_url}/projects?q=grupo+aeroportuario")
    browser.wait("document.querySelector('#results').getAttribute('aria-busy') === 'false'")
    assert browser.js("[...document.querySelectorAll('#results h3 a')].map(a => a.getAttribute('href'))") == [
        f"/projects/{quote(NAICM, safe='')}"]
    text = browser.js("document.querySelector('#results').innerText")
    assert "292" in text and "Nuevo Aeropuerto Internacional de la Ciudad de Mexico" in text
    assert browser.errors == []


def test_project_page_shows_money_processes_and_links(live: tuple[Settings, Browser]) -> None:
    """A project page shows budget vs contracted vs paid, its 292 processes linking to their pages, its
    suppliers and data links; a process page links back to its project."""
    settings, browser = live
    browser.go(f"{settings.base_url}/projects/{quote(NAICM, safe='')}")
    browser.wait("document.querySelector('#project').getAttribute('aria-busy') === 'false'")
    assert browser.js("document.querySelector('#title').textContent") == \
        "Nuevo Aeropuerto Internacional de la Ciudad de Mexico"
    assert browser.js("document.querySelectorAll('#money tr').length") == 3
    assert "Contratado" in browser.js("document.querySelector('#money').innerText")
    assert browser.js("document.querySelectorAll('#processes tbody tr').length") == 292
    hrefs = browser.js("[...document.querySelectorAll('#processes tbody a')].map(a => a.getAttribute('href'))")
    assert len(hrefs) == 292 and all(h.startswith("/records/") for h in hrefs)
    assert browser.js("document.querySelectorAll('#suppliers tbody tr').length") > 10
    links = browser.js("[...document.querySelectorAll('#data a')].map(a => a.getAttribute('href'))")
    assert f"/feeds/project/{quote(NAICM, safe='')}.atom" in links
    browser.wait("document.querySelector('#connection').dataset.state === 'live'")
    _screenshot(browser, "project.png")
    _screenshot(browser, "project-suppliers.png", "#suppliers")
    browser.go(f"{settings.base_url}{hrefs[0]}")
    browser.wait("document.querySelector('#project-link') !== null")
    assert browser.js("document.querySelector('#project-link').getAttribute('href')") == \
        f"/projects/{quote(NAICM, safe='')}"
    browser.go(f"{settings.base_url}/projects/oc4ids-test01-nope")
    browser.wait("!document.querySelector('#problem').hidden")
    assert "no encontrado" in browser.js("document.querySelector('#title').textContent").lower()
    assert browser.errors == []


def test_websocket_project_filter(live: tuple[Settings, Browser]) -> None:
    """WS /ws/changes?project= backfills exactly the project's own changes and its processes', in order."""
    settings, _ = live
    want = [c for (c,) in pipeline.query(settings, "SELECT cursor FROM changes WHERE event::jsonb #>> "
                                                   "'{summary,project}' = %s ORDER BY cursor", (NAICM,))]
    got = []
    url = settings.base_url.replace("http", "ws", 1) + f"/ws/changes?after=0&project={quote(NAICM, safe='')}"
    with connect(url, max_size=None) as ws:
        while (message := orjson.loads(ws.recv(timeout=30)))["type"] != "caught_up":
            if message["type"] == "change":
                assert message["change"]["summary"]["project"] == NAICM
                got.append(message["cursor"])
    assert got == want and len(got) > 292
