"""Profiles end to end on a real database: releases are validated and merged with the extensions their
package (and publisher) declare, records with the union of their releases' sets, and the API's packages
declare those extensions and validate against the patched package schemas."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ocdsmerge
import orjson
import psycopg2
import pytest
from fastapi.testclient import TestClient
from jsonschema import Draft4Validator

from core.kafka import HEADER_EXTENSIONS, HEADER_PUBLISHER
from core.profiles import Profiles, extension_set
from core.publishers import load_publishers
from core.schema import OcdsSchema
from core.settings import Settings
from core.store.connection import connect
from feed_server.app import create_app
from streams.processor import BatchProcessor, BatchResult, Incoming
from tests.support.stack import base_settings, fresh_stack

pytestmark = pytest.mark.integration

Release = dict[str, Any]
MISSING = "https://example.org/ocds_missing_extension/master/extension.json"


def _apf(real_data: Path) -> tuple[list[str], list[Release]]:
    """The APF federal packages' declared extensions and embedded releases (without the one schema error they
    have, ``tender.submissionMethod: [null]``, so that the packages served can be fully valid)."""
    releases: list[Release] = []
    declared: list[str] = []
    for name in ("record-package-1.json", "record-package-2.json"):
        package = json.loads((real_data / "records" / "mx-apf" / name).read_text(encoding="utf-8"))
        declared = package["extensions"]
        releases += [r for record in package["records"] for r in record["releases"]]
    for release in releases:
        assert release["tender"].pop("submissionMethod") == [None]
    return declared, releases


def _later(release: Release, n: int) -> Release:
    """The n-th later release of the same process, changing arrays that the APF extensions define."""
    later = copy.deepcopy(release)
    later.update(id=f"{release['id']}-{n}", date=f"2030-01-{n:02}T00:00:00Z", tag=["contractUpdate"])
    later["parties"][1]["additionalContactPoints"] = [{"name": f"Contacto {n}"}, {"name": "Otro"}][: 1 + n % 2]
    later["contracts"] = [{"id": "c1", "awardID": later["awards"][0]["id"] if later.get("awards") else "a1",
                           "suppliers": [{"id": later["parties"][-1]["id"], "name": later["parties"][-1]["name"]}],
                           "value": {"amount": 1000 * n, "currency": "MXN"}}]
    return later


class Feeder:
    """Sends releases as messages of one partition to a BatchProcessor, with a publisher and extensions."""

    def __init__(self, settings: Settings, schema: OcdsSchema) -> None:
        self.settings = settings
        self.processor = BatchProcessor(settings, schema, load_publishers(settings.publishers_file),
                                        lambda: connect(settings))
        self.offset = 0

    def send(self, releases: list[Release], publisher: str, extensions: list[str] | None = None) -> BatchResult:
        batch = []
        for release in releases:
            headers = {HEADER_PUBLISHER: publisher}
            if extensions is not None:
                headers[HEADER_EXTENSIONS] = json.dumps(extensions)
            batch.append(Incoming("releases", 0, self.offset, orjson.dumps(release), headers))
            self.offset += 1
        return self.processor.process(batch)

    def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        conn = psycopg2.connect(self.settings.database_url)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, args)
                return list(cur.fetchall())
        finally:
            conn.close()


@pytest.fixture
def store(schema: OcdsSchema) -> Iterator[tuple[Settings, Feeder]]:
    with fresh_stack(base_settings(), read_rate_limit=1e6) as settings:
        feeder = Feeder(settings, schema)
        yield settings, feeder
        feeder.processor.close()


def _validator(schema: dict[str, Any]) -> Draft4Validator:
    return Draft4Validator(schema, format_checker=Draft4Validator.FORMAT_CHECKER)


def test_records_of_declared_extensions_equal_ocdsmerge_and_packages_declare_them(
        store: tuple[Settings, Feeder], profiles: Profiles, real_data: Path) -> None:
    """Real APF releases (and later ones changing extension arrays) are merged with the patched schema: the
    API's compiled and versioned releases equal ocdsmerge's with it, and its packages declare the extensions
    and validate against the patched package schemas."""
    settings, feeder = store
    declared, apf = _apf(real_data)
    releases = apf + [_later(apf[0], n) for n in range(1, 6)]
    for release in releases:  # one batch per release: the record is extended, checkpointed and caught up
        result = feeder.send([release], "shcp", declared)
        assert result.accepted == 1, result
    profile = profiles.profile(declared)
    reference = ocdsmerge.Merger(schema=profile.schema.release)
    record_schema = _validator(profile.schema.record_package)
    release_schema = _validator(profile.schema.release_package)
    with TestClient(create_app(settings)) as client:
        for ocid in sorted({r["ocid"] for r in releases}):
            own = [copy.deepcopy(r) for r in releases if r["ocid"] == ocid]
            package = client.get(f"/api/records/{ocid}").json()
            assert package["extensions"] == sorted(declared)
            (record,) = package["records"]
            assert record["compiledRelease"] == reference.create_compiled_release(copy.deepcopy(own))
            assert record["versionedRelease"] == reference.create_versioned_release(copy.deepcopy(own))
            assert not sorted(e.message for e in record_schema.iter_errors(package))
        one = client.get(f"/api/releases/{apf[0]['ocid']}/{apf[0]['id']}").json()
        assert one["extensions"] == sorted(declared)
        assert not [e.message for e in release_schema.iter_errors(one)]
        listed = client.get("/api/releases?limit=1000").json()
        assert listed["extensions"] == sorted(declared) and len(listed["releases"]) == len(releases)
        meta = client.get("/api/bulk/package.json").json()
        assert meta["extensions"] == sorted(declared)
    events = feeder.query("SELECT event::jsonb->'extensions' FROM changes ORDER BY cursor")
    assert events and all(row[0] == sorted(declared) for row in events)


def test_record_whose_releases_declare_different_sets_is_merged_with_their_union(
        store: tuple[Settings, Feeder], profiles: Profiles, real_data: Path) -> None:
    """A release that brings extensions its record had not merges the whole record again with the union."""
    settings, feeder = store
    declared, apf = _apf(real_data)
    first, second, third = apf[0], _later(apf[0], 1), _later(apf[0], 2)
    # the "bulk" publisher names no extensions of its own: each release has only what its package declares
    assert feeder.send([first], "bulk").accepted == 1
    assert feeder.send([second], "bulk", declared[:2]).accepted == 1
    assert feeder.send([third], "bulk", declared[2:]).accepted == 1
    union = extension_set(declared)
    stored = feeder.query("SELECT extensions FROM records WHERE ocid = %s", first["ocid"])
    assert tuple(stored[0][0]) == union
    per_release = feeder.query("SELECT release_id, extensions FROM releases ORDER BY seq")
    assert [tuple(e) for _, e in per_release] == [(), extension_set(declared[:2]), extension_set(declared[2:])]
    reference = ocdsmerge.Merger(schema=profiles.profile(union).schema.release)
    core = ocdsmerge.Merger(schema=profiles.profile().schema.release)
    trio = [first, second, third]
    with TestClient(create_app(settings)) as client:
        package = client.get(f"/api/records/{first['ocid']}").json()
    assert package["extensions"] == list(union)
    compiled = package["records"][0]["compiledRelease"]
    assert compiled == reference.create_compiled_release(copy.deepcopy(trio))
    assert compiled != core.create_compiled_release(copy.deepcopy(trio))


def test_unavailable_extension_rejects_for_strict_and_warns_for_lenient_publishers(
        store: tuple[Settings, Feeder], real_data: Path) -> None:
    """An extension nobody can resolve: a strict publisher's release is rejected with a finding naming it, a
    lenient one's is accepted and keeps the finding; the stream goes on."""
    _, feeder = store
    _, apf = _apf(real_data)
    valid = copy.deepcopy(apf[0])
    valid["tender"]["value"]["currency"] = "MXN"  # its one other error: an amount without a currency
    assert feeder.send([valid], "simulator", [MISSING]).rejected == 1
    (findings, kept_extensions) = feeder.query("SELECT findings, extensions FROM rejected")[0]
    assert kept_extensions == [MISSING], "a retry must re-send what the package declared"
    errors = [f for f in findings if f["severity"] == "error"]
    assert [f["rule"] for f in errors] == ["extension-unavailable"] and MISSING in errors[0]["message"]
    assert feeder.send([apf[1]], "shcp", [MISSING]).accepted == 1
    (kept,) = feeder.query("SELECT findings FROM releases WHERE release_id = %s", apf[1]["id"])[0]
    assert any(f["rule"] == "extension-unavailable" and MISSING in f["message"] for f in kept)
    assert feeder.send([_later(apf[1], 1)], "shcp").accepted == 1
