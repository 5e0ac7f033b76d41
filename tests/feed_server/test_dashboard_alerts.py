"""The dashboard's latest alerts, in a real Chromium against a real ``ocds-live serve``: the newest alerts on
arrival, then a new one live, as text, linking to its process (or project) page."""

from __future__ import annotations

import base64
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.feed_server.test_pages import Browser, Server
from tests.feed_server.test_ws_alerts import raise_alerts
from tests.support.stack import base_settings, free_port, fresh_stack

pytestmark = pytest.mark.integration
ROWS = "[...document.querySelectorAll('#alerts > li')]"


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Browser, Path]]:
    logs = tmp_path_factory.mktemp("dashboard-alerts")
    with fresh_stack(base_settings(), port=free_port(), read_rate_limit=1e6) as settings:
        raise_alerts(settings, range(1, 13))  # 12 alerts: the panel shows the newest 10
        server = Server(settings, logs)
        browser: Browser | None = None
        try:
            browser = Browser(logs / "profile", logs / "chromium.log")
            yield server, browser, logs
        finally:
            if browser is not None:
                browser.close()
            server.process.stop()
            shutil.rmtree(logs / "profile", ignore_errors=True)


def test_dashboard_shows_the_latest_alerts_then_new_ones_live(dashboard: tuple[Server, Browser, Path]) -> None:
    """On arrival the panel lists the 10 newest alerts, newest first; an alert the watchdog raises afterwards
    appears on top without a reload, with its rule, its title and a link to its process page."""
    server, browser, logs = dashboard
    browser.go(f"{server.settings.base_url}/")
    browser.wait(f"{ROWS}.length === 10")
    assert browser.js(f"{ROWS}.map((li) => li.dataset.cursor)") == [str(n) for n in range(12, 2, -1)]
    assert browser.js("document.querySelector('#alerts-empty').hidden") is True
    raise_alerts(server.settings, range(500, 501), "MX-DIRECT-OVER-MAX")
    browser.wait(f"{ROWS}[0].dataset.cursor === '13'")
    first = browser.js(f"{ROWS}[0].innerText")
    assert "MX-DIRECT-OVER-MAX" in first and "Adjudicación directa" in first and "ocds-a-500 · UC-0" in first
    assert browser.js(f"{ROWS}[0].querySelector('.alert-kind').textContent") == "Alerta / Alert"
    assert browser.js(f"{ROWS}[0].querySelector('a').getAttribute('href')") == "/records/ocds-a-500"
    assert browser.js(f"{ROWS}.length") == 10
    shot = browser.call("Page.captureScreenshot", session=True, format="png", captureBeyondViewport=True)
    folder = Path(os.environ.get("OCDS_LIVE_SCREENSHOTS", logs))  # to look at it: set this folder
    (folder / "dashboard-alerts.png").write_bytes(base64.b64decode(shot["data"]))
    assert browser.errors == []
