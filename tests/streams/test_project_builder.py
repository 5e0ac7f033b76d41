"""The project builder, off the stream's hot path: marks coalesce, a build never goes back in time, one builder
runs at a time, and its share of the time is bounded."""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from core.profiles import Profiles
from core.settings import Settings
from core.store import projects
from core.store.connection import connect
from core.store.locks import PROJECT_BUILDER_LOCK
from streams.project_builder import BuilderProcess, ProjectBuilder, rest_after
from tests.support import pipeline
from tests.support import projects as support
from tests.support.stack import base_settings, fresh_stack

PID = "oc4ids-test01-46101"


def test_rest_after_keeps_the_builder_within_its_share() -> None:
    """Short rounds wait the interval; a long round waits long enough that rebuilding takes at most its share."""
    assert rest_after(0.01, 1.0, 0.1) == 1.0
    assert rest_after(3.0, 1.0, 0.1) == pytest.approx(27.0)
    took, rest = 2.0, rest_after(2.0, 0.5, 0.25)
    assert took / (took + rest) == pytest.approx(0.25)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Settings]:
    with fresh_stack(base_settings(), publishers_file=support.publishers_file(tmp_path)) as settings:
        yield settings


def _naicm(real_data: Path) -> list[dict[str, object]]:
    return list(support.read_jsonl(real_data / "mx-gacm-naicm.releases.jsonl"))


def _builder_locks(store: Settings, granted: bool = False) -> int:
    """The project builder's advisory locks in the store's database (held, or also waited for)."""
    rows = pipeline.query(store, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = %s AND "
                                 "database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                                 "AND (granted OR NOT %s)", (PROJECT_BUILDER_LOCK, granted))
    return int(rows[0][0])


def _wait_until_built(store: Settings, seconds: float) -> None:
    """Until no project is marked any more, or ``seconds`` passed."""
    deadline = time.monotonic() + seconds
    while _marks(store) and time.monotonic() < deadline:
        time.sleep(0.1)


def _mark_naicm(store: Settings, real_data: Path) -> None:
    """The NAICM releases through the processor, which marks their project without building it."""
    feeder = support.Feeder(store)
    try:
        feeder.send(_naicm(real_data), batch=400, build=False)
    finally:
        feeder.close()


def _marks(settings: Settings) -> list[tuple[str, int, str]]:
    return [(p, int(v), r) for p, v, r in pipeline.query(settings, "SELECT project_id, version, release_id "
                                                                   "FROM project_dirty ORDER BY project_id")]


@pytest.mark.integration
def test_batches_mark_a_project_that_the_builder_rebuilds_once(store: Settings, real_data: Path,
                                                                profiles: Profiles) -> None:
    """Four batches of NAICM releases leave one mark (the newest version and cause) and no project yet; one
    builder round writes the project once, with one event caused by the newest release, and clears the mark."""
    releases = _naicm(real_data)
    feeder = support.Feeder(store)
    try:
        feeder.send(releases, batch=80, build=False)
    finally:
        feeder.close()
    marks = _marks(store)
    assert [m[0] for m in marks] == [PID]
    newest = max(releases, key=lambda r: (str(r["date"]), str(r["id"])))
    assert marks[0][2] == newest["id"]
    assert marks[0][1] == pipeline.query(store, "SELECT last_record FROM feed_counter")[0][0]
    assert pipeline.count(store, "projects") == 0
    conn = connect(store)
    try:
        assert projects.build_pending(conn, store, profiles) == (1, 1)
        assert projects.build_pending(conn, store, profiles) == (0, 0)
    finally:
        conn.close()
    assert _marks(store) == []
    events = support.project_events(store)[PID]
    assert len(events) == 1 and events[0]["release_id"] == newest["id"]
    assert support.stored_projects(store)[PID] == support.reference(store, {"bulk": "oc4ids-test01"})[PID]


@pytest.mark.integration
def test_a_mark_older_than_the_stored_build_writes_nothing(store: Settings, real_data: Path,
                                                            profiles: Profiles) -> None:
    """A project rebuilt at a newer version (a publisher's supplied fields) after a batch marked it: the builder's
    round clears the mark without writing the older build or an event, and the events still chain."""
    _mark_naicm(store, real_data)
    conn = connect(store)
    try:
        assert projects.supply(conn, PID, "bulk", "46101", {"title": "Aeropuerto"}, "bulk", store, profiles)
        before = pipeline.count(store, "changes")
        assert projects.build_pending(conn, store, profiles) == (1, 0)
    finally:
        conn.close()
    assert _marks(store) == []
    assert pipeline.count(store, "changes") == before
    assert support.stored_projects(store)[PID]["title"] == "Aeropuerto"
    support.assert_event_chains(store)


@pytest.mark.integration
def test_one_builder_runs_at_a_time_and_builds_what_the_worker_marked(store: Settings, real_data: Path,
                                                                       profiles: Profiles) -> None:
    """Two builders (two workers' threads): one holds the advisory lock and builds the marked project, the other
    waits; stopping both leaves no lock behind."""
    _mark_naicm(store, real_data)
    builders = [ProjectBuilder(store, lambda: connect(store), profiles) for _ in range(2)]
    for b in builders:
        b.start()
    try:
        _wait_until_built(store, 60)
        assert _marks(store) == [], "the builder did not build the marked project within 60 s"
        assert _builder_locks(store, granted=True) == 1
    finally:
        for b in builders:
            b.stop()
    assert len(support.project_events(store)[PID]) == 1
    assert _builder_locks(store) == 0


@pytest.mark.integration
def test_an_idle_stream_does_not_make_the_builder_rest(store: Settings, profiles: Profiles) -> None:
    """40 projects marked and no stream: the builder's rounds (32 projects at most) follow each other after the
    interval, not after the rest that keeps it to its share while the stream is busy (here 99x a round)."""
    rows = [(f"oc4ids-test01-P{n}", "bulk", f"P{n}", orjson.dumps({"title": f"Proyecto {n}"}).decode(), "operator")
            for n in range(40)]
    conn = connect(store)
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO project_fields (id, publisher, local_id, fields, supplied_by) "
                        "VALUES (%s, %s, %s, %s, %s)", rows)
        cur.executemany("INSERT INTO project_dirty (project_id, version, owner, local_id) VALUES (%s, 1, %s, %s)",
                        [(pid, owner, local) for pid, owner, local, *_ in rows])
    conn.commit()
    conn.close()
    quick = store.model_copy(update={"project_build_interval": 0.1, "project_build_share": 0.01})
    builder = ProjectBuilder(quick, lambda: connect(quick), profiles)
    builder.start()
    try:
        _wait_until_built(store, 20)
    finally:
        builder.stop()
    assert _marks(store) == [], "the builder rested as if the stream were busy"
    assert pipeline.count(store, "projects") == 40
    assert support.stored_projects(store)["oc4ids-test01-P7"]["title"] == "Proyecto 7"


@pytest.mark.integration
def test_the_builder_process_builds_what_the_worker_marked_and_stops_when_asked(store: Settings,
                                                                                real_data: Path) -> None:
    """The worker's builder runs in a child process (off the stream's GIL): it builds the marked project, and
    stop() ends the process and releases the builder's lock."""
    _mark_naicm(store, real_data)
    builder = BuilderProcess(store)
    builder.start()
    try:
        _wait_until_built(store, 90)
        assert _marks(store) == [], "the builder process did not build the marked project within 90 s"
        assert builder.pid is not None and builder.pid != os.getpid()
    finally:
        builder.stop()
    assert not builder._process.is_alive()
    assert len(support.project_events(store)[PID]) == 1
    assert _builder_locks(store) == 0


def test_the_builder_process_stops_by_itself_when_its_worker_is_gone(store: Settings) -> None:
    """A worker killed with -9 cannot stop its builder: the builder sees that its parent changed and stops."""
    from streams import project_builder

    stop = mp.get_context("spawn").Event()
    started = time.monotonic()
    project_builder._run(store, os.getppid() + 10**7, stop)  # a parent that is not ours: returns at the first check
    assert time.monotonic() - started < 30 and not stop.is_set()
