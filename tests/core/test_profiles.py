"""Profiles: the core schema patched with declared extensions, for validation, codelists and merging."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import ocdsmerge
import orjson
import pytest

from core.checks import walk
from core.extensions import ExtensionResolver
from core.profiles import Profile, Profiles, extension_set
from core.schema import OcdsSchema
from tests.conftest import EXTENSIONS_DIR

Release = dict[str, Any]
EXT = "https://raw.githubusercontent.com/{}/extension.json"
MISSING = "https://example.org/ocds_missing_extension/master/extension.json"


def _package(real_data: Path, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((real_data / "records" / name).read_text(encoding="utf-8"))
    return data


def _releases_of(package: dict[str, Any]) -> list[Release]:
    """A package's embedded releases; for packages that only link them, the compiled releases."""
    out: list[Release] = []
    for record in package["records"]:
        embedded = [r for r in record.get("releases", []) if "id" in r]
        out += embedded or ([record["compiledRelease"]] if "compiledRelease" in record else [])
    return out


def _defined_fields(profile: Profile) -> set[str]:
    """Every field name an applied extension's release-schema patch defines (under some ``properties``)."""
    index = json.loads((EXTENSIONS_DIR / "index.json").read_text(encoding="utf-8"))
    names: set[str] = set()
    for url in profile.applied:
        patch = EXTENSIONS_DIR / index[url]["dir"] / "release-schema.json"
        if patch.exists():
            for path, value in walk(json.loads(patch.read_text(encoding="utf-8"))):
                if path and path[-1] == "properties" and isinstance(value, dict):
                    names.update(value)
    return names


def test_profile_is_built_once_per_distinct_set(profiles: Profiles, real_data: Path) -> None:
    """The same extensions in any order and with repeats give the same profile, validator and merger objects."""
    declared = _package(real_data, "mx-apf/record-package-1.json")["extensions"]
    first = profiles.profile(declared)
    assert profiles.profile(list(reversed(declared)) + declared[:1]) is first
    assert profiles.validator(declared) is profiles.validator(reversed(declared))
    assert profiles.compiler(declared) is profiles.compiler(sorted(declared))
    assert first.declared == extension_set(declared) and len(first.applied) == 4 and not first.missing
    assert profiles.profile([]).schema is profiles.core


@pytest.mark.parametrize("name", [
    "mx-apf/record-package-1.json", "mx-apf/record-package-2.json", "mx-inai-edca/record-package_191.json",
    "mx-inai-edca/record-package_269.json", "mx-inai-edca/record-package_312.json",
    "mx-inai-edca/record-package_342.json", "mx-inai-edca/record-package_410.json",
])
def test_real_packages_report_no_field_of_a_declared_extension_as_additional(
        profiles: Profiles, real_data: Path, name: str) -> None:
    """With its package's profile, no field that a declared (and available) extension defines is reported as
    an additional field (INAI's: with the core schema alone, some are)."""
    package = _package(real_data, name)
    profile = profiles.profile(package["extensions"])
    assert not profile.missing
    defined = _defined_fields(profile)
    core_only, with_profile = set(), set()
    for release in _releases_of(package):
        raw = orjson.dumps(release)
        core_only |= {f.pointer.rsplit("/", 1)[1] for f in profiles.validator().check(raw).findings
                      if f.rule == "additional-field"}
        with_profile |= {f.pointer.rsplit("/", 1)[1] for f in profiles.validator(package["extensions"]).check(
            raw).findings if f.rule == "additional-field"}
    assert not with_profile & defined, f"reported although an extension defines them: {with_profile & defined}"
    if "inai" in name:
        assert core_only & defined, "the core schema alone should report some extension fields"


def _evolve(release: Release, suffix: str, date: str) -> Release:
    """A later release of the same process: new id and date, with the arrays extensions define changed."""
    later = copy.deepcopy(release)
    later.update(id=f"{release['id']}-{suffix}", date=date, tag=["contractUpdate"])
    for party in later.get("parties", []):
        for point in party.get("additionalContactPoints", []) or []:
            point["name"] = f"{point.get('name')} ({suffix})"
        if party.get("additionalContactPoints"):
            party["additionalContactPoints"] = party["additionalContactPoints"][:1]
    for contract in later.get("contracts", []):
        if contract.get("suppliers"):
            contract["suppliers"] = contract["suppliers"][:1]
    budget = later.get("planning", {}).get("budget", {})
    if budget.get("budgetBreakdown"):
        budget["budgetBreakdown"] = budget["budgetBreakdown"][:1]
    return later


def _as_release(compiled: Release, release_id: str, date: str) -> Release:
    release = copy.deepcopy(compiled)
    release.update(id=release_id, date=date, tag=["tender"])
    return release


@pytest.mark.parametrize("name", [
    "mx-apf/record-package-1.json", "mx-apf/record-package-2.json", "mx-inai-edca/record-package_191.json",
    "mx-inai-edca/record-package_342.json",
])
def test_merge_with_a_profile_equals_ocdsmerge_with_the_patched_schema(
        profiles: Profiles, real_data: Path, name: str) -> None:
    """Compiled (incremental) and versioned releases of a profile equal ocdsmerge's with the patched schema."""
    package = _package(real_data, name)
    first = _releases_of(package)[0]
    if "id" not in first or first.get("tag") == ["compiled"]:
        first = _as_release(first, "r1", "2019-01-01T00:00:00Z")
    releases = [first, _evolve(first, "b", "2030-01-02T00:00:00Z"), _evolve(first, "c", "2030-01-03T00:00:00Z")]
    declared = package["extensions"]
    patched = profiles.profile(declared).schema.release
    reference = ocdsmerge.Merger(schema=patched)
    compiler = profiles.compiler(declared)
    record = None
    for n, release in enumerate(releases, start=1):
        record = compiler.extend(record, release)
        expected = reference.create_compiled_release(copy.deepcopy(releases[:n]))
        assert orjson.loads(orjson.dumps(record.compiled)) == expected
    versioned = profiles.versioned(declared).merge(releases).versioned
    assert versioned == reference.create_versioned_release(copy.deepcopy(releases))


def test_extension_merge_rules_change_the_compiled_release(profiles: Profiles, real_data: Path) -> None:
    """An extension's array of objects without ids is merged whole with the profile, item by item without:
    merging with the core schema would publish a different record."""
    package = _package(real_data, "mx-apf/record-package-1.json")
    release = _releases_of(package)[0]
    with_points = copy.deepcopy(release)
    with_points["parties"][1]["additionalContactPoints"] = [{"name": "A"}, {"name": "B"}]
    later = copy.deepcopy(with_points)
    later.update(id="later", date="2030-01-01T00:00:00Z")
    later["parties"][1]["additionalContactPoints"] = [{"name": "C"}]
    declared = package["extensions"]
    profiled = profiles.compiler(declared).merge([with_points, later]).compiled
    core = profiles.compiler().merge([with_points, later]).compiled
    assert profiled["parties"][1]["additionalContactPoints"] == [{"name": "C"}]
    assert core["parties"][1]["additionalContactPoints"] != [{"name": "C"}]


def test_unresolvable_extension_is_named_and_the_rest_still_applies(schema: OcdsSchema, tmp_path: Path) -> None:
    """A declared extension that cannot be resolved leaves a finding naming it; the others are applied."""
    resolver = ExtensionResolver(EXTENSIONS_DIR, tmp_path, download=False)
    suppliers = EXT.format("open-contracting/ocds_contract_suppliers_extension/master")
    profile = Profiles(schema, resolver).profile([MISSING, suppliers])
    assert profile.applied == (suppliers,)
    assert [url for url, _ in profile.missing] == [MISSING]
    (finding,) = profile.findings()
    assert finding.rule == "extension-unavailable" and MISSING in finding.message and finding.severity == "error"
    assert "suppliers" in profile.schema.release["definitions"]["Contract"]["properties"]


def test_extension_codelists_extend_open_codelists_and_enforce_closed_ones(profiles: Profiles) -> None:
    """Codes an extension adds to an open codelist are known; its closed codelists are schema enums."""
    guarantees = EXT.format("INAImexico/ocds_guarantees_extension/master")
    exchange = EXT.format("INAImexico/ocds_exchangeRate_extension/master")
    release = {
        "ocid": "ocds-07smqs-1", "id": "1", "date": "2020-01-01T00:00:00Z", "tag": ["contract"],
        "initiationType": "tender",
        "parties": [{"id": "G1", "name": "Afianzadora", "roles": ["guarantor"]}],
        "tender": {"id": "t", "value": {"amount": 10, "currency": "USD",
                                        "exchangeRates": [{"rate": 20, "currency": "NOT-A-CURRENCY"}]}},
    }
    raw = orjson.dumps(release)
    core = profiles.validator().check(raw).findings
    profiled = profiles.validator([guarantees, exchange]).check(raw).findings
    assert any(f.rule == "codelist" and f.pointer == "/parties/0/roles/0" for f in core)
    assert not any(f.rule == "codelist" and f.pointer == "/parties/0/roles/0" for f in profiled)
    assert any(f.rule == "enum" and f.pointer == "/tender/value/exchangeRates/0/currency" for f in profiled)
    assert not any(f.pointer.startswith("/tender/value/exchangeRates/0/currency") and f.rule == "enum" for f in core)


def _differences(published: Any, ours: Any, at: str = "") -> list[str]:
    """The JSON Pointers where two JSON values differ."""
    if isinstance(published, dict) and isinstance(ours, dict):
        return [p for key in sorted(set(published) | set(ours))
                for p in (_differences(published[key], ours[key], f"{at}/{key}")
                          if key in published and key in ours else [f"{at}/{key}"])]
    if isinstance(published, list) and isinstance(ours, list) and len(published) == len(ours):
        pairs = enumerate(zip(published, ours, strict=True))
        return [p for i, (a, b) in pairs for p in _differences(a, b, f"{at}/{i}")]
    return [] if published == ours else [at]


def test_federal_bulk_compiled_releases_are_reproduced(profiles: Profiles, real_data: Path) -> None:
    """The 2018 federal bulk file's compiled releases, merged as one release each with the APF profile, come
    back as published, but for the compiled release's id and one empty array ocdsmerge omits."""
    declared = _package(real_data, "mx-apf/record-package-1.json")["extensions"]
    path = real_data / "records" / "mx-apf" / "bulk-2018-compiled-releases.jsonl"
    published = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    differences = {}
    for compiled in published:
        release = {**copy.deepcopy(compiled), "tag": ["tender"]}
        ours = profiles.compiler(declared).merge([release]).compiled
        differences[compiled["ocid"]] = _differences(compiled, ours)
        assert ours["id"] == f"{compiled['ocid']}-{compiled['date']}" and compiled["id"] != ours["id"]
    assert len(published) == 10
    assert {ocid: d for ocid, d in differences.items() if d != ["/id"]} == {
        "ocds-07smqs-1419": ["/contracts/0/suppliers", "/id"]}
