"""Project test helpers: a publishers file with project prefixes, feeding releases, and the reference project.

The reference is computed here from what the store serves, independently of ``core.store.projects``:
membership from each record's compiled release, oc4idskit's ``run_transforms`` called directly on the
members' compiled releases and linked releases, then the supplied fields on top.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson
import psycopg2
from oc4idskit.transforms import run_transforms

from core.oc4ids import Oc4idsSchema, load_oc4ids_schema
from core.profiles import CompilerSource
from core.projects import OPTIONAL_TRANSFORMS, canonical, conform, default_title, linked_releases, local_project_id
from core.projects import Member as ProjectMember
from core.publishers import load_publishers
from core.schema import OcdsSchema, load_schema
from core.settings import Settings
from core.store import projects as store_projects
from core.store.connection import connect
from streams.processor import BatchProcessor, Incoming
from tests.support import pipeline

PUBLISHERS = """
[[publisher]]
name = "bulk"
prefixes = ["*"]
policy = "lenient"
project_prefix = "oc4ids-test01"
# token: "bulk-token"
token_sha256 = "{bulk}"

[[publisher]]
name = "other"
prefixes = ["*"]
policy = "lenient"
project_prefix = "oc4ids-test02"
# token: "other-token"
token_sha256 = "{other}"
"""
PREFIX = "oc4ids-test01"


def oc4ids_dir() -> Path:
    from tests.conftest import SHARED

    return SHARED / "oc4ids" / "0.9.4"


@functools.cache
def oc4ids() -> Oc4idsSchema:
    return load_oc4ids_schema(oc4ids_dir(), Path("/nonexistent"))


def publishers_file(folder: Path) -> Path:
    """A publishers file: ``bulk`` (prefix oc4ids-test01) and ``other`` (oc4ids-test02), any ocid."""
    from core.publishers import hash_token

    path = folder / "publishers.toml"
    path.write_text(PUBLISHERS.format(bulk=hash_token("bulk-token"), other=hash_token("other-token")))
    return path


class Feeder:
    """Feeds releases to a BatchProcessor (one partition) in batches, as publisher ``bulk`` or another."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.offset = 0
        self.processor = BatchProcessor(settings, _schema(), load_publishers(settings.publishers_file),
                                        lambda: connect(settings))

    def send(self, releases: Iterable[dict[str, Any]], batch: int = 100, publisher: str = "bulk",
             build: bool = True) -> int:
        """Process the releases in batches, then (``build``) run the project builder until nothing is marked;
        returns the change events appended."""
        items = list(releases)
        changes = 0
        for start in range(0, len(items), batch):
            msgs = []
            for release in items[start:start + batch]:
                msgs.append(Incoming("releases", 0, self.offset, orjson.dumps(release), {"publisher": publisher}))
                self.offset += 1
            result = self.processor.process(msgs)
            assert result.rejected == 0, result
            changes += result.changes
        return changes + (build_all(self.settings, self.processor.profiles) if build else 0)

    def close(self) -> None:
        self.processor.close()


@functools.cache
def _schema() -> OcdsSchema:
    from tests.conftest import SCHEMA_DIR

    return load_schema(SCHEMA_DIR, cache_dir=Path("/nonexistent"))


def build_all(settings: Settings, merger: CompilerSource) -> int:
    """Run the project builder's rounds until no project is marked; returns the project events appended."""
    conn = connect(settings)
    events = 0
    try:
        while True:
            built, appended = store_projects.build_pending(conn, settings, merger)
            events += appended
            if not built:
                return events
    finally:
        conn.close()


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open("rb") as fh:
        for line in fh:
            if line.strip():
                yield orjson.loads(line)


def stored_projects(settings: Settings) -> dict[str, dict[str, Any]]:
    rows = pipeline.query(settings, "SELECT id, data FROM projects")
    return {pid: orjson.loads(data) for pid, data in rows}


def reference(settings: Settings, prefixes: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Every project as oc4idskit converts its members' compiled releases, plus the supplied fields."""
    compiled = {o: orjson.loads(c) for o, c in pipeline.compiled_releases(settings).items()}
    publisher: dict[str, str] = {}
    linked: dict[str, list[tuple[str, str, list[str]]]] = defaultdict(list)
    for ocid, rid, date, tags, pub in pipeline.query(
            settings, "SELECT ocid, release_id, date, tags, publisher FROM releases ORDER BY seq"):
        linked[ocid].append((rid, date, list(tags)))
        publisher[ocid] = pub  # the newest release's publisher
    groups: dict[str, list[str]] = defaultdict(list)
    for ocid, release in compiled.items():
        local = local_project_id(release)
        if local is not None:
            groups[f"{prefixes[publisher[ocid]]}-{local}"].append(ocid)
    supplied = dict(pipeline.query(settings, "SELECT id, supplied::text FROM projects"))
    out = {}
    for pid in set(groups) | set(supplied):
        ocids = sorted(groups.get(pid, []))
        records = [{"ocid": o, "releases": linked_releases(settings.base_url, o, linked[o]), "compiledRelease":
                    orjson.loads(orjson.dumps(compiled[o]))} for o in ocids]
        converted = canonical(run_transforms(dict(OPTIONAL_TRANSFORMS), [], project_id=pid, records=records)) \
            if records else {"id": pid}
        title = default_title([ProjectMember(o, compiled[o]) for o in ocids])
        fields = orjson.loads(supplied[pid]) if pid in supplied else {}
        out[pid] = conform({**({"title": title} if title else {}), **converted, **fields, "id": pid}, oc4ids())[0]
    return out


def project_events(settings: Settings) -> dict[str, list[dict[str, Any]]]:
    """Each project's ``project.updated`` events in cursor order."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for ocid, event in pipeline.query(settings, "SELECT ocid, event FROM changes WHERE kind = 'project.updated' "
                                                "ORDER BY cursor"):
        out[ocid].append(orjson.loads(event))
    return dict(out)


def assert_event_chains(settings: Settings) -> None:
    """Each project's events chain its digests (none lost, none repeated) up to the stored project."""
    digests = dict(pipeline.query(settings, "SELECT id, digest FROM projects"))
    for pid, events in project_events(settings).items():
        previous = None
        for event in events:
            assert event["summary"]["previous"] == previous, f"{pid}: a project change was lost or repeated"
            assert event["summary"]["digest"] != previous, f"{pid}: an event that changed nothing"
            previous = event["summary"]["digest"]
        assert previous == digests[pid], f"{pid}: the last event is not the stored project"


def connect_raw(settings: Settings) -> Any:
    return psycopg2.connect(settings.database_url)
