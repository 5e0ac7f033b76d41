"""The projects API, bulk file, feeds and pages on a real database filled by the stream processor: OC4IDS
0.9.4 packages, seek paging, publishers supplying project-level fields, and the project= filter."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import feedparser
import orjson
import pytest
from fastapi.testclient import TestClient

from core.settings import Settings
from feed_server.app import create_app
from tests.support import pipeline
from tests.support import projects as support
from tests.support.stack import base_settings, fresh_stack

pytestmark = pytest.mark.integration

NAICM = "oc4ids-test01-46101"
PREFIXES = {"bulk": "oc4ids-test01", "other": "oc4ids-test02"}


@pytest.fixture(scope="module")
def stack(real_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, TestClient]]:
    folder = tmp_path_factory.mktemp("projects")
    with fresh_stack(base_settings(), publishers_file=support.publishers_file(folder), read_rate_limit=1e6) as settings:
        feeder = support.Feeder(settings)
        try:
            feeder.send(support.read_jsonl(real_data / "mx-gacm-naicm.releases.jsonl"), batch=150)
            feeder.send(support.read_jsonl(real_data / "mx-nuevoleon.releases.jsonl"))
        finally:
            feeder.close()
        with TestClient(create_app(settings)) as client:
            yield settings, client


def _all_projects(client: TestClient, **params: Any) -> list[dict[str, Any]]:
    """Follow links.next from the start; every page must be a valid OC4IDS project package."""
    found: list[dict[str, Any]] = []
    url = "/api/projects?" + "&".join(f"{k}={quote(str(v))}" for k, v in {"limit": 1, **params}.items())
    for _ in range(100):
        body = client.get(url).json()
        assert support.oc4ids().package_errors(body) == [] or body["projects"] == []
        found += body["projects"]
        if "next" not in body["links"]:
            return found
        url = body["links"]["next"].removeprefix("http://127.0.0.1:8000")
    raise AssertionError("links.next never ended")


def test_list_pages_every_project_once_as_valid_oc4ids(stack: tuple[Settings, TestClient]) -> None:
    """/api/projects pages through every project once (links.next), each page a valid OC4IDS 0.9.4 package."""
    settings, client = stack
    listed = _all_projects(client)
    assert sorted(p["id"] for p in listed) == sorted(support.stored_projects(settings))
    assert len(listed) == 4  # NAICM + Nuevo León's three


def test_search_by_name_buyer_and_process(stack: tuple[Settings, TestClient]) -> None:
    """q matches the title or a buyer without regard to accents or case; ocid finds a process's project."""
    _, client = stack
    assert [p["id"] for p in _all_projects(client, q="aeropuerto")] == [NAICM]
    assert [p["id"] for p in _all_projects(client, q="grupo aeroportuario")] == [NAICM]
    assert [p["id"] for p in _all_projects(client, q="ESFERA cultural")] == ["oc4ids-test01-PEI-0011/2017"]
    assert [p["id"] for p in _all_projects(client, ocid="105")] == [NAICM]
    assert _all_projects(client, q="nothing-like-this") == []
    listed = client.get("/api/projects", params={"view": "overview", "q": "aeropuerto"}).json()["projects"]
    assert listed[0]["processes"] == 292 and listed[0]["contracted"][0]["currency"] == "MXN"


def test_get_one_project_and_404(stack: tuple[Settings, TestClient]) -> None:
    """/api/projects/{id} is a valid package of the stored project (ids with '/' too); an unknown id is 404."""
    settings, client = stack
    stored = support.stored_projects(settings)
    for pid in stored:
        body = client.get(f"/api/projects/{pid}").json()
        assert support.oc4ids().package_errors(body) == []
        assert body["projects"] == [stored[pid]]
    assert client.get("/api/projects/oc4ids-test01-nope").status_code == 404
    overview = client.get(f"/api/projects/{NAICM}/overview").json()
    assert len(overview["processes"]) == 292 and overview["figures"]["budget"] is None


def test_publishers_supply_fields_of_their_own_projects(stack: tuple[Settings, TestClient]) -> None:
    """POST needs the publisher's token and prefix and valid OC4IDS fields; the project is rebuilt with them
    (winning over the conversion) and a project.updated event names the changed fields."""
    settings, client = stack
    fields = {"title": "Nuevo Aeropuerto Internacional de México", "sector": ["transport.air"], "type": "construction",
              "budget": {"amount": {"amount": 186000000000, "currency": "MXN"}},
              "publicAuthority": {"id": "GACM", "name": "Grupo Aeroportuario de la Ciudad de México"},
              "locations": [{"id": "1", "description": "Texcoco, Estado de México"}], "status": "cancelled"}
    url = f"/api/projects/{NAICM}"
    assert client.post(url, json=fields).status_code == 401
    assert client.post(url, json=fields, headers={"Authorization": "Bearer other-token"}).status_code == 403
    bulk = {"Authorization": "Bearer bulk-token"}
    assert client.post(url, json={"contractingProcesses": []}, headers=bulk).status_code == 422
    bad = client.post(url, json={"budget": {"amount": {"amount": "lots"}}}, headers=bulk)
    assert bad.status_code == 422 and bad.json()["findings"][0].startswith("/budget/amount/amount")
    before = pipeline.query(settings, "SELECT max(cursor) FROM changes")[0][0]
    answer = client.post(url, json=fields, headers=bulk)
    assert answer.status_code == 200 and answer.json()["changed"] is True
    project = support.stored_projects(settings)[NAICM]
    assert project["title"] == fields["title"] and project["budget"] == fields["budget"]
    assert project == support.reference(settings, PREFIXES)[NAICM]
    events = support.project_events(settings)[NAICM]
    assert events[-1]["cursor"] == before + 1
    paths = {c["path"] for c in events[-1]["changes"]}
    assert {"/title", "/budget", "/sector", "/status"} <= paths
    again = client.post(url, json=fields, headers=bulk)
    assert again.json()["changed"] is False
    assert pipeline.query(settings, "SELECT max(cursor) FROM changes")[0][0] == before + 1
    support.assert_event_chains(settings)
    page = client.get("/api/projects", params={"view": "overview", "status": "cancelled"}).json()["projects"]
    assert [p["id"] for p in page] == [NAICM] and page[0]["budget"]["amount"] == 186000000000


def test_bulk_file_holds_every_project(stack: tuple[Settings, TestClient]) -> None:
    """/api/bulk/projects.jsonl.gz is every project, one per line."""
    settings, client = stack
    response = client.get("/api/bulk/projects.jsonl.gz")
    assert response.status_code == 200 and response.headers["content-type"] == "application/gzip"
    lines = [orjson.loads(line) for line in gzip.decompress(response.content).splitlines()]
    assert {p["id"]: p for p in lines} == support.stored_projects(settings)


def test_project_filter_selects_its_own_and_its_processes_changes(stack: tuple[Settings, TestClient]) -> None:
    """project= on /api/changes and /feeds/project/{id}.atom gives the project's changes and its processes'."""
    settings, client = stack
    body = client.get("/api/changes", params={"project": NAICM, "limit": 1000}).json()
    want = pipeline.query(settings, "SELECT cursor FROM changes WHERE event::jsonb #>> '{summary,project}' = %s "
                                    "ORDER BY cursor", (NAICM,))
    assert [c["cursor"] for c in body["changes"]] == [c for (c,) in want]
    kinds = {c["kind"] for c in body["changes"]}
    assert "project.updated" in kinds and len(kinds) > 1
    assert all(c["summary"]["project"] == NAICM for c in body["changes"])
    nl = client.get("/api/changes", params={"project": "oc4ids-test01-SIE-201/2016"}).json()["changes"]
    assert {c["ocid"] for c in nl} == {"oc4ids-test01-SIE-201/2016", "ocds-7wj9x5-LO-919009986-E126-2016-v0001"}
    feed = client.get(f"/feeds/project/{quote(NAICM, safe='')}.atom")
    assert feed.status_code == 200
    parsed = feedparser.parse(feed.content)
    assert parsed.entries and not parsed.bozo
    project_entries = [e for e in parsed.entries if e.link.endswith(f"/api/projects/{NAICM}")]
    assert project_entries


@pytest.mark.parametrize("path", ["/projects", "/projects?q=aeropuerto", f"/projects/{NAICM}",
                                  "/projects/oc4ids-test01-PEI-0011/2017", "/projects/nope"])
def test_project_pages_are_html_with_a_strict_policy(stack: tuple[Settings, TestClient], path: str) -> None:
    """The project pages are HTML that allows only this origin, with their module script."""
    _, client = stack
    response = client.get(path)
    assert response.status_code == 200 and response.headers["content-type"] == "text/html; charset=utf-8"
    assert "default-src 'self'" in response.headers["content-security-policy"]
    script = "projects.js" if path.startswith("/projects?") or path == "/projects" else "project.js"
    assert f'<script type="module" src="/static/{script}">' in response.text
    assert client.get(f"/static/{script}").status_code == 200

