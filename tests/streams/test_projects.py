"""Projects built live by the stream processor, on a real database: membership, OC4IDS records equal to
oc4idskit's conversion of the members plus supplied fields, moves between projects, coalesced rebuilds and
gapless project change events."""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from core.settings import Settings
from tests.support import pipeline
from tests.support import projects as support
from tests.support.stack import base_settings, cli, fresh_stack

pytestmark = pytest.mark.integration

PREFIXES = {"bulk": "oc4ids-test01", "other": "oc4ids-test02"}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Settings]:
    with fresh_stack(base_settings(), publishers_file=support.publishers_file(tmp_path)) as settings:
        yield settings


def _package(projects: list[dict[str, Any]]) -> dict[str, Any]:
    return {"uri": "http://127.0.0.1/api/projects", "publishedDate": "2026-01-01T00:00:00Z", "version": "0.9",
            "publisher": {"name": "ocds-live"}, "projects": projects}


def assert_valid_and_reference(settings: Settings) -> dict[str, dict[str, Any]]:
    stored = support.stored_projects(settings)
    want = support.reference(settings, PREFIXES)
    assert sorted(stored) == sorted(want)
    for pid, project in want.items():
        assert orjson.dumps(stored[pid], option=orjson.OPT_SORT_KEYS) == orjson.dumps(
            project, option=orjson.OPT_SORT_KEYS), f"project {pid} is not oc4idskit's conversion of its members"
    errors = support.oc4ids().package_errors(_package(list(stored.values())))
    assert not errors, errors[:5]
    support.assert_event_chains(settings)
    return stored


def test_naicm_is_one_project_of_292_processes(store: Settings, real_data: Path) -> None:
    """The 302 NAICM releases give exactly one project, 46101, with 292 processes, valid OC4IDS 0.9.4."""
    feeder = support.Feeder(store)
    try:
        feeder.send(support.read_jsonl(real_data / "mx-gacm-naicm.releases.jsonl"), batch=100)
    finally:
        feeder.close()
    stored = assert_valid_and_reference(store)
    assert list(stored) == ["oc4ids-test01-46101"]
    project = stored["oc4ids-test01-46101"]
    assert len(project["contractingProcesses"]) == 292
    assert project["title"] == "Nuevo Aeropuerto Internacional de la Ciudad de Mexico"
    assert pipeline.query(store, "SELECT count(*) FROM project_members")[0][0] == 292
    # coalesced: the builder rebuilt it once for the 4 batches (302 releases) that marked it
    assert len(support.project_events(store)["oc4ids-test01-46101"]) == 1
    # every process change names its project, so the project= filter finds it
    kinds = pipeline.query(store, "SELECT count(*) FROM changes WHERE kind <> 'project.updated' "
                                  "AND event::jsonb #>> '{summary,project}' = 'oc4ids-test01-46101'")
    assert kinds[0][0] == pipeline.query(store, "SELECT count(*) FROM changes WHERE kind <> 'project.updated'")[0][0]


def test_nuevo_leon_gives_one_project_per_project_id(store: Settings, real_data: Path) -> None:
    """Nuevo León's releases and record packages give one project per distinct project id (whitespace trimmed)."""
    releases = list(support.read_jsonl(real_data / "mx-nuevoleon.releases.jsonl"))
    compiled = []
    for path in sorted((real_data / "records" / "mx-nuevoleon").glob("*.json")):
        for record in orjson.loads(path.read_bytes()).get("records", []):
            if isinstance(record.get("compiledRelease"), dict):
                compiled.append(record["compiledRelease"])
    feeder = support.Feeder(store)
    try:
        feeder.send(releases + compiled, batch=7)
    finally:
        feeder.close()
    ids = {str(r["planning"]["budget"]["projectID"]).strip() for r in releases + compiled
           if (r.get("planning") or {}).get("budget", {}).get("projectID")}
    stored = assert_valid_and_reference(store)
    assert sorted(stored) == sorted(f"oc4ids-test01-{i}" for i in ids)
    assert "oc4ids-test01-PEI-0011/2017" in stored


def _with_projects(releases: list[dict[str, Any]], seed: int) -> tuple[list[dict[str, Any]], set[str]]:
    """Simulated releases whose processes name one of 20 projects; 30% of processes have no project, and
    some move to another project with their last release. Returns the releases and the moved ocids."""
    rng = random.Random(seed)
    ocids = sorted({r["ocid"] for r in releases})
    project = {o: (f"P{rng.randrange(20)}" if rng.random() < 0.7 else None) for o in ocids}
    last = {r["ocid"]: r["id"] for r in releases}
    moved = {o for o in ocids if project[o] and rng.random() < 0.2}
    out = []
    for release in releases:
        release = copy.deepcopy(release)
        pid = project[release["ocid"]]
        if pid and release["ocid"] in moved and last[release["ocid"]] == release["id"]:
            pid = f"P{(int(pid[1:]) + 1) % 20}"
        if pid:
            planning = release.setdefault("planning", {})
            planning.setdefault("budget", {})["projectID"] = pid
        out.append(release)
    return out, moved


def test_projects_follow_members_in_random_order_and_moves(store: Settings) -> None:
    """Shuffled generated releases: every project equals oc4idskit's conversion of its members after each
    batch, processes that move leave one project and join another, and the events chain gaplessly."""
    base = pipeline.simulated(11, 900, 160)
    releases, moved = _with_projects(base, seed=3)
    assert moved
    shuffled = pipeline.shuffled_per_process(releases, seed=4)
    feeder = support.Feeder(store)
    try:
        for start in range(0, len(shuffled), 300):
            feeder.send(shuffled[start:start + 300], batch=60)
            assert_valid_and_reference(store)
        # a move: a later release names another project; both projects are updated
        target = sorted(moved)[0]
        before = dict(pipeline.query(store, "SELECT ocid, project_id FROM project_members WHERE ocid = %s",
                                     (target,)))[target]
        counts = {pid: len(events) for pid, events in support.project_events(store).items()}
        move = {"ocid": target, "id": "move-1", "date": "2099-01-01T00:00:00Z", "tag": ["planningUpdate"],
                "planning": {"budget": {"projectID": "elsewhere"}}}
        feeder.send([move])
    finally:
        feeder.close()
    stored = assert_valid_and_reference(store)
    events = support.project_events(store)
    assert len(events[before]) == counts[before] + 1
    assert [p["id"] for p in stored[before].get("contractingProcesses", [])].count(target) == 0
    assert [p["id"] for p in stored["oc4ids-test01-elsewhere"]["contractingProcesses"]] == [target]
    assert events["oc4ids-test01-elsewhere"][-1]["release_id"] == "move-1"


def test_operators_supply_fields_from_the_projects_file(store: Settings, real_data: Path, tmp_path: Path) -> None:
    """`ocds-live projects apply` stores the file's fields (checked first: one bad entry applies nothing), rebuilds
    the project with them on top, and is idempotent."""
    feeder = support.Feeder(store)
    try:
        feeder.send(support.read_jsonl(real_data / "mx-gacm-naicm.releases.jsonl"), batch=400)
    finally:
        feeder.close()
    good = (Path(__file__).parents[2] / "config" / "projects.toml").read_text()  # the example, for publisher bulk
    bad = good + '\n[[project]]\npublisher = "bulk"\nproject_id = "x"\n[project.fields]\ntype = "flying"\n'
    settings = store.model_copy(update={"projects_file": tmp_path / "projects.toml"})
    settings.projects_file.write_text(bad)
    failed = cli(settings, "projects", "apply")
    assert failed.returncode != 0 and "oc4ids-test01-x" in failed.stderr and "flying" in failed.stderr
    assert support.stored_projects(store)["oc4ids-test01-46101"]["title"] != "Nuevo Aeropuerto Internacional de " \
        "la Ciudad de México (NAICM)"
    settings.projects_file.write_text(good)
    done = cli(settings, "projects", "apply")
    assert done.returncode == 0, done.stderr
    assert "oc4ids-test01-46101: changed" in done.stdout
    project = support.stored_projects(store)["oc4ids-test01-46101"]
    assert project["status"] == "cancelled" and project["sector"] == ["transport.air"]
    assert project == support.reference(store, PREFIXES)["oc4ids-test01-46101"]
    assert "oc4ids-test01-46101: unchanged" in cli(settings, "projects", "apply").stdout
    support.assert_event_chains(store)
