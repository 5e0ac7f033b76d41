"""The OCDS API: packages valid against the 1.1.5 schemas, seek paging under concurrent writes, bulk files, limits.

The store is filled through the store's own writer, one transaction per batch the way the stream
processor writes (numbers taken last with ``writer.allocate``), from schema-valid releases: the real
data of Jalisco, CDMX, Nuevo León and Paraguay, and the simulator's defect-free output.
"""

from __future__ import annotations

import gzip
import hashlib
import random
import threading
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import psycopg2
import pytest
from fastapi.testclient import TestClient
from jsonschema import Draft4Validator
from referencing import Registry
from referencing.jsonschema import DRAFT4

from core.changes import detect
from core.exceptions import Finding
from core.filters import ChangeFilter
from core.merge import RecordMerger, order_key
from core.schema import OcdsSchema
from core.settings import Settings
from core.store import writer
from feed_server.app import create_app
from producers.simulator import simulate
from tests.support.changes import append_events, synthetic_event
from tests.support.stack import base_settings, fresh_stack

pytestmark = pytest.mark.integration

VALID_REAL = ("mx-jalisco", "mx-cdmx", "mx-nuevoleon", "py-dncp")


class StoreWriter:
    """Writes batches of releases as the stream processor does: merge, detect, number last, commit."""

    def __init__(self, settings: Settings, schema: OcdsSchema, hold: float = 0.0, *, versioned: bool = True) -> None:
        self.conn = psycopg2.connect(settings.database_url)
        self.merger = RecordMerger(schema, versioned=versioned)
        self.base_url = settings.base_url
        self.hold = hold  # seconds to sit on taken numbers before committing (widens the race)
        self.offset = 0

    def write(self, releases: Iterable[dict[str, Any]]) -> None:
        by_ocid: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for release in releases:
            by_ocid[release["ocid"]].append(release)
        records, events, rows = {}, [], []
        with self.conn.cursor() as cur:
            for ocid, new in sorted(by_ocid.items()):
                known = writer.load_releases(cur, ocid)
                record = self.merger.merge(known) if known else None
                for release in sorted(new, key=order_key):
                    known.append(release)
                    before = orjson.loads(orjson.dumps(record.compiled)) if record is not None else None
                    if self.merger.can_extend(record, release):
                        record = self.merger.extend(record, release)
                    else:
                        record = self.merger.merge(known)
                    change = detect(before, record.compiled, release)
                    digest = hashlib.sha256(orjson.dumps(release, option=orjson.OPT_SORT_KEYS)).hexdigest()
                    self.offset += 1
                    rows.append(writer.ReleaseRow(release, digest, "test", [], "test", 0, self.offset))
                    if change is not None:
                        events.append({"id": digest[:32], "ocid": ocid, "release_id": release["id"],
                                       "date": release["date"], "tags": release.get("tag") or [],
                                       "publisher": "test", **change.as_dict()})
                assert record is not None
                records[ocid] = record
            numbers = writer.allocate(cur, len(events), len(rows), len(records))
            writer.insert_releases(cur, rows, numbers.release)
            for seq, (ocid, record) in enumerate(sorted(records.items()), start=numbers.record):
                writer.save_record(cur, ocid, record, seq)
            writer.append_changes(cur, events, self.base_url, numbers.change)
            if self.hold:
                time.sleep(self.hold)  # numbers taken, nothing visible yet: readers must not page past them
        self.conn.commit()

    def close(self) -> None:
        self.conn.close()


def valid_releases(real_data: Path) -> list[dict[str, Any]]:
    releases = [orjson.loads(line) for name in VALID_REAL
                for line in (real_data / f"{name}.releases.jsonl").read_bytes().splitlines()]
    return releases + [s.release for s in simulate(seed=1, processes=50)]


def query(settings: Settings, sql: str) -> list[tuple[Any, ...]]:
    conn = psycopg2.connect(settings.database_url)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return list(cur.fetchall())
    finally:
        conn.close()


def follow(client: TestClient, url: str) -> str:
    """The path and query of a ``links.next`` URL (the client talks to the app, not to base_url)."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def get(client: TestClient, url: str) -> dict[str, Any]:
    response = client.get(url)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture(scope="module")
def loaded(schema: OcdsSchema, real_data: Path) -> Iterator[Settings]:
    with fresh_stack(base_settings(), read_rate_limit=1e6) as settings:
        store = StoreWriter(settings, schema)
        releases = valid_releases(real_data)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ocdsmerge warns of duplicate ids in real data
            for start in range(0, len(releases), 40):
                store.write(releases[start:start + 40])
        store.close()
        yield settings


@pytest.fixture(scope="module")
def client(loaded: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(loaded)) as client:
        yield client


@pytest.fixture(scope="module")
def validators(schema: OcdsSchema) -> dict[str, Draft4Validator]:
    registry: Registry[Any] = Registry().with_resources(
        (url, DRAFT4.create_resource(contents)) for url, contents in schema.registry_by_url.items()
    )
    checker = Draft4Validator.FORMAT_CHECKER
    assert {"date-time", "uri"} <= set(checker.checkers), "install rfc3339-validator and rfc3987"
    return {name: Draft4Validator(getattr(schema, name), registry=registry, format_checker=checker)
            for name in ("record_package", "release_package")}


# Four CDMX processes publish the same tenderers/suppliers, without ids, in each of their (valid) releases.
# ocdsmerge appends id-less objects, so their compiled releases hold duplicates and break uniqueItems: the
# API serves the reference merge faithfully (guarantee 4), so exactly these errors are expected.
DUPLICATED_BY_MERGE = frozenset(f"OCDS-87SD3T-AD-SF-DRM-{n}-2015" for n in ("063", "065", "066", "069"))


def assert_valid(validator: Draft4Validator, package: dict[str, Any]) -> None:
    errors = []
    for error in validator.iter_errors(package):
        path = list(error.absolute_path)
        if (error.validator == "uniqueItems" and path[:1] == ["records"] and path[2:3] == ["compiledRelease"]
                and package["records"][path[1]]["ocid"] in DUPLICATED_BY_MERGE):
            continue
        errors.append(f"{'/'.join(map(str, path))}: {error.message[:200]}")
    assert not errors, errors[:5]


def test_validators_check_formats(validators: dict[str, Draft4Validator]) -> None:
    """The package validators refuse a bad date-time, a relative uri and an empty package (minItems)."""
    package = {"uri": "not a uri", "version": "1.1", "publishedDate": "yesterday", "publisher": {"name": "x"},
               "releases": []}
    paths = {e.absolute_path[0] for e in validators["release_package"].iter_errors(package)}
    assert paths == {"uri", "publishedDate", "releases"}


def test_record_packages_validate(client: TestClient, loaded: Settings,
                                  validators: dict[str, Draft4Validator]) -> None:
    """Every record package validates and holds the stored compiled and versioned release and linked releases."""
    stored = query(loaded, "SELECT ocid, compiled::text, versioned::text, release_count FROM records")
    assert len(stored) == 76
    for ocid, compiled, versioned, count in stored:
        package = get(client, f"/api/records/{ocid}")
        assert_valid(validators["record_package"], package)
        (record,) = package["records"]
        assert record["compiledRelease"] == orjson.loads(compiled)
        assert record["versionedRelease"] == orjson.loads(versioned)
        assert len(record["releases"]) == count
        assert package["uri"] == f"{loaded.base_url}/api/records/{ocid}"
        assert package["publisher"]["name"] == "ocds-live"


def test_versioned_release_not_stored_is_derived_and_kept(schema: OcdsSchema, real_data: Path,
                                                          validators: dict[str, Draft4Validator]) -> None:
    """A record stored without versioned release (as the processor stores it) gets one derived, valid and kept."""
    releases = [s.release for s in simulate(seed=3, processes=5)]
    with fresh_stack(base_settings(), read_rate_limit=1e6) as settings:
        StoreWriter(settings, schema, versioned=False).write(releases)
        assert query(settings, "SELECT count(*) FROM records WHERE versioned IS NULL")[0][0] == 5
        with TestClient(create_app(settings)) as client:
            for ocid in sorted({r["ocid"] for r in releases}):
                package = get(client, f"/api/records/{ocid}")
                assert_valid(validators["record_package"], package)
                expected = RecordMerger(schema).merge(r for r in releases if r["ocid"] == ocid)
                assert package["records"][0]["versionedRelease"] == expected.versioned
                assert package["records"][0]["compiledRelease"] == expected.compiled
        assert query(settings, "SELECT count(*) FROM records WHERE versioned IS NULL")[0][0] == 0


def test_release_packages_validate(client: TestClient, loaded: Settings,
                                   validators: dict[str, Draft4Validator]) -> None:
    """Every linked release URL answers a valid release package holding exactly the stored release."""
    stored = {(o, i): orjson.loads(d) for o, i, d in query(loaded, "SELECT ocid, release_id, data::text FROM releases")}
    assert len(stored) == 374
    linked = []
    for (ocid,) in query(loaded, "SELECT ocid FROM records"):
        linked += [r["url"] for r in get(client, f"/api/records/{ocid}")["records"][0]["releases"]]
    assert len(linked) == len(stored)
    found = {}
    for url in linked:
        package = get(client, follow(client, url))
        assert_valid(validators["release_package"], package)
        assert package["uri"] == url.split("?")[0]
        (release,) = package["releases"]
        found[(release["ocid"], release["id"])] = release
    assert found == stored


def test_release_list_pages_validate_and_cover_the_store(client: TestClient, loaded: Settings,
                                                         validators: dict[str, Draft4Validator]) -> None:
    """Following links.next through /api/releases gives valid packages with every release once, in stored order."""
    order = [(o, i) for o, i in query(loaded, "SELECT ocid, release_id FROM releases ORDER BY seq")]
    seen, url, pages = [], "/api/releases?limit=37", 0
    while True:
        package = get(client, url)
        assert_valid(validators["release_package"], package)
        pages += 1
        seen += [(r["ocid"], r["id"]) for r in package["releases"]]
        if "next" not in package["links"]:
            break
        url = follow(client, package["links"]["next"])
    assert seen == order
    assert pages == -(-len(order) // 37)
    caught_up = get(client, follow(client, package["links"]["resume"]))
    assert caught_up["releases"] == [] and caught_up["links"]["resume"] == package["links"]["resume"]


def test_release_list_since_filters_by_date(client: TestClient, loaded: Settings) -> None:
    """``since`` keeps the releases dated at or after it, and a value that is not a date is a 400."""
    expected = {(o, i) for o, i in query(loaded, "SELECT ocid, release_id FROM releases WHERE date >= '2019-01-01'")}
    assert 0 < len(expected) < 374
    seen, url = set(), "/api/releases?since=2019-01-01&limit=100"
    while True:
        package = get(client, url)
        seen |= {(r["ocid"], r["id"]) for r in package["releases"]}
        link = package["links"].get("next") or package["links"]["resume"]
        assert "since=2019-01-01" in link
        if "next" not in package["links"]:
            break
        url = follow(client, link)
    assert seen == expected
    bad = client.get("/api/releases", params={"since": "last tuesday"})
    assert bad.status_code == 400
    assert "since" in bad.json()["error"]


def test_record_list_pages_validate(client: TestClient, loaded: Settings,
                                    validators: dict[str, Draft4Validator]) -> None:
    """/api/records pages (records without versioned release) validate and hold every stored compiled release."""
    stored = {o: orjson.loads(c) for o, c in query(loaded, "SELECT ocid, compiled::text FROM records")}
    seen: dict[str, Any] = {}
    url = "/api/records?limit=9"
    while True:
        package = get(client, url)
        assert_valid(validators["record_package"], package)
        for record in package["records"]:
            assert "versionedRelease" not in record
            assert record["ocid"] not in seen
            seen[record["ocid"]] = record["compiledRelease"]
        if "next" not in package["links"]:
            break
        url = follow(client, package["links"]["next"])
    assert seen == stored


def test_unknown_record_and_release_are_404_with_message(client: TestClient) -> None:
    """An unknown ocid or release id (also one with a NUL) is a 404 naming it."""
    for url in ("/api/records/ocds-nope-1", "/api/releases/ocds-nope-1/1", "/api/records/a%00b",
                "/api/bulk/other.jsonl.gz"):
        response = client.get(url)
        assert response.status_code == 404, url
        assert response.json()["status"] == 404
        assert response.json()["error"]


class Writers:
    """Threads inserting releases through the writer while a test pages (each owns its own ocids)."""

    def __init__(self, settings: Settings, schema: OcdsSchema, releases: list[dict[str, Any]], threads: int = 2):
        self.errors: list[BaseException] = []
        shards: list[list[dict[str, Any]]] = [[] for _ in range(threads)]
        for release in releases:
            shards[hash(release["ocid"]) % threads].append(release)
        self.threads = [threading.Thread(target=self._run, args=(settings, schema, shard, n), daemon=True)
                        for n, shard in enumerate(shards)]
        for thread in self.threads:
            thread.start()

    def _run(self, settings: Settings, schema: OcdsSchema, releases: list[dict[str, Any]], n: int) -> None:
        rng = random.Random(n)
        store = StoreWriter(settings, schema)
        try:
            while releases:
                size = rng.randint(1, 6)
                batch, releases = releases[:size], releases[size:]
                store.hold = rng.choice([0.0, 0.0, 0.002, 0.01])
                store.write(batch)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.errors.append(exc)
        finally:
            store.close()

    def alive(self) -> bool:
        return any(t.is_alive() for t in self.threads)

    def join(self) -> None:
        for thread in self.threads:
            thread.join(60)
        assert not self.errors, self.errors


def page_while_writing(client: TestClient, settings: Settings, schema: OcdsSchema, url: str,
                       items: Callable[[dict[str, Any]], list[Any]],
                       caught_up: Callable[[dict[str, Any]], bool]) -> tuple[list[Any], int]:
    """Follow links.next from ``url`` while writers run, until caught up after they stopped.

    Returns every item seen and how many of them were read while the writers were still writing.
    """
    preload = [s.release for s in simulate(seed=7, processes=20)]
    StoreWriter(settings, schema).write(preload)
    writers = Writers(settings, schema, [s.release for s in simulate(seed=8, processes=60)])
    seen: list[Any] = []
    during = 0
    while True:
        finished = not writers.alive()  # decided before the request: then everything was committed before it
        body = get(client, url)
        page = items(body)
        seen += page
        during += 0 if finished else len(page)
        if finished and caught_up(body):
            writers.join()
            return seen, during
        url = follow(client, body["links"].get("next") or body["links"]["resume"])
        if not page:
            time.sleep(0.01)


@pytest.fixture
def live(schema: OcdsSchema) -> Iterator[tuple[Settings, TestClient]]:
    with fresh_stack(base_settings(), read_rate_limit=1e6) as settings, TestClient(create_app(settings)) as client:
        yield settings, client


def test_release_paging_under_concurrent_writes_sees_each_once(live: tuple[Settings, TestClient],
                                                               schema: OcdsSchema) -> None:
    """Following /api/releases links.next while two writers commit gives every stored release once, in order."""
    settings, client = live
    seen, during = page_while_writing(client, settings, schema, "/api/releases?limit=5",
                                      lambda b: [(r["ocid"], r["id"]) for r in b["releases"]],
                                      lambda b: "next" not in b["links"])
    stored = [(o, i) for o, i in query(settings, "SELECT ocid, release_id FROM releases ORDER BY seq")]
    assert len(stored) > 300
    assert seen == stored
    assert during > 0, "the pages were not read while the writers wrote"


def test_change_paging_under_concurrent_writes_sees_each_once(live: tuple[Settings, TestClient],
                                                              schema: OcdsSchema) -> None:
    """Following /api/changes links.next while writers commit gives every change once, in cursor order."""
    settings, client = live
    final: list[int] = []

    def caught_up(body: dict[str, Any]) -> bool:
        if not final:
            final.append(query(settings, "SELECT last FROM feed_counter")[0][0])
        return not body["changes"] and body["next_cursor"] == final[0]

    seen, during = page_while_writing(client, settings, schema, "/api/changes?limit=7",
                                      lambda b: [(c["cursor"], c["id"]) for c in b["changes"]], caught_up)
    stored = [(c, i) for c, i in query(settings, "SELECT cursor, event::jsonb->>'id' FROM changes ORDER BY cursor")]
    assert seen == stored
    assert [c for c, _ in seen] == list(range(1, final[0] + 1))
    assert during > 0, "the pages were not read while the writers wrote"


def test_record_paging_under_concurrent_writes_never_skips(live: tuple[Settings, TestClient],
                                                           schema: OcdsSchema) -> None:
    """Paging /api/records while records are updated: every record seen, its last sighting the stored version.

    A record written again after the reader passed it appears again later, with more releases.
    """
    settings, client = live
    seen, during = page_while_writing(client, settings, schema, "/api/records?limit=4",
                                      lambda b: [(r["ocid"], r) for r in b["records"]],
                                      lambda b: "next" not in b["links"])
    stored = {o: orjson.loads(c) for o, c in query(settings, "SELECT ocid, compiled::text FROM records")}
    last: dict[str, dict[str, Any]] = {}
    again = 0
    for ocid, record in seen:
        if ocid in last:
            again += 1
            earlier = {r["url"] for r in last[ocid]["releases"]}
            assert earlier < {r["url"] for r in record["releases"]}, f"{ocid} came again without a new release"
        last[ocid] = record
    assert {o: r["compiledRelease"] for o, r in last.items()} == stored
    assert during > 0
    assert again > 0, "no record was updated behind the reader; the test did not exercise re-appearance"


def test_changes_filters_match_python(client: TestClient, loaded: Settings) -> None:
    """/api/changes with filters returns exactly the stored changes ChangeFilter matches, in cursor order."""
    events = [orjson.loads(e) for (e,) in query(loaded, "SELECT event::text FROM changes ORDER BY cursor")]
    assert len(events) > 300
    buyer = events[-1]["summary"]["buyer"]["id"]
    cases: list[dict[str, str]] = [{}, {"kind": "tender."}, {"kind": "award.made"}, {"ocid_prefix": "ocds-07smqs"},
                                   {"buyer": buyer}, {"min_amount": "1000000", "currency": "MXN"}, {"q": "servicio"},
                                   {"method": "open", "category": "goods"}, {"ocid": events[0]["ocid"]}]
    for params in cases:
        expected = [e["cursor"] for e in events if ChangeFilter.from_mapping(params).matches(e)]
        seen, after = [], 0
        while True:
            body = get(client, "/api/changes?" + "&".join(f"{k}={v}" for k, v in {**params, "after": after,
                                                                                    "limit": 25}.items()))
            seen += [c["cursor"] for c in body["changes"]]
            if body["next_cursor"] == body["head"] and not body["changes"]:
                break
            after = body["next_cursor"]
        assert seen == expected, params
        assert expected or params.get("q"), f"{params} matched nothing: a weak case"


def test_changes_errors_say_what_is_wrong(loaded: Settings) -> None:
    """A cursor past the head is 404, one before the kept log 410, a bad filter 400; each with a message."""
    with fresh_stack(base_settings(), read_rate_limit=1e6) as settings:
        append_events(settings, [synthetic_event(random.Random(3), n) for n in range(1, 31)])
        query_conn = psycopg2.connect(settings.database_url)
        with query_conn.cursor() as cur:
            cur.execute("DELETE FROM changes WHERE cursor <= 10")
        query_conn.commit()
        query_conn.close()
        with TestClient(create_app(settings)) as client:
            ahead = client.get("/api/changes", params={"after": 31})
            gone = client.get("/api/changes", params={"after": 3})
            bad = client.get("/api/changes", params={"buyer": "x" * 201})
            fine = client.get("/api/changes", params={"after": 10})
    assert ahead.status_code == 404 and "newest change is 30" in ahead.json()["error"]
    assert gone.status_code == 410 and "oldest change kept is 11" in gone.json()["error"]
    assert bad.status_code == 400 and "buyer" in bad.json()["error"]
    assert [c["cursor"] for c in fine.json()["changes"]] == list(range(11, 31))


def test_rejected_lists_findings_and_source(client: TestClient, loaded: Settings) -> None:
    """/api/rejected lists rejected releases with findings and source, pages by id, filters by publisher."""
    conn = psycopg2.connect(loaded.database_url)
    with conn.cursor() as cur:
        for n in range(5):
            finding = Finding("/date", "schema", f"bad date {n}")
            writer.insert_rejected(cur, b'{"ocid": "ocds-x-1", "id": "%d"}' % n, [finding],
                                   "pub-a" if n % 2 else "pub-b", {"ocid": "ocds-x-1", "id": str(n)}, "t", 0, n)
        writer.insert_rejected(cur, b"\xff\xfe not json", [Finding("", "json", "not JSON")], None, None, "t", 1, 0)
    conn.commit()
    conn.close()
    first = get(client, "/api/rejected?limit=4")
    assert [r["release_id"] for r in first["rejected"]] == ["0", "1", "2", "3"]
    assert first["rejected"][2]["findings"][0]["message"] == "bad date 2"
    assert first["rejected"][0]["source"] == {"topic": "t", "partition": 0, "offset": 0}
    rest = get(client, follow(client, first["links"]["next"]))
    assert [r["release_id"] for r in rest["rejected"]] == ["4", None]
    assert rest["rejected"][1]["excerpt"] is None and rest["rejected"][1]["size"] == 11
    only = get(client, "/api/rejected?publisher=pub-a")
    assert [r["release_id"] for r in only["rejected"]] == ["1", "3"]


@pytest.mark.parametrize(("kind", "sql"), [
    ("releases", "SELECT data::text FROM releases ORDER BY seq"),
    ("records", "SELECT compiled::text FROM records ORDER BY seq"),
])
def test_bulk_files_hold_exactly_the_store(client: TestClient, loaded: Settings, kind: str, sql: str) -> None:
    """The bulk file decompresses to one JSON line per stored release (or compiled release), in stored order."""
    response = client.get(f"/api/bulk/{kind}.jsonl.gz")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/gzip"
    assert f'filename="{kind}.jsonl.gz"' in response.headers["content-disposition"]
    lines = gzip.decompress(response.content).splitlines()
    assert [orjson.loads(line) for line in lines] == [orjson.loads(row[0]) for row in query(loaded, sql)]


def test_reads_over_the_rate_get_429_with_retry_after(loaded: Settings) -> None:
    """Over the per-client read rate (2/s here) the API answers 429 with Retry-After, and serves again after it."""
    limited = loaded.model_copy(update={"read_rate_limit": 2.0})
    with TestClient(create_app(limited)) as client:
        codes = [client.get("/api/releases?limit=1").status_code for _ in range(3)]
        refused = client.get("/api/changes")
        assert codes[:2] == [200, 200] and codes[2] == 429
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) >= 1
        assert "2 requests/s" in refused.json()["error"]
        assert "2 requests/s" in client.get("/openapi.json").json()["info"]["description"]
        time.sleep(float(refused.headers["Retry-After"]))
        assert client.get("/api/records?limit=1").status_code == 200
