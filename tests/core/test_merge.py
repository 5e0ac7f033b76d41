"""core.merge: equal to ocdsmerge 0.8.0 on its own fixtures, on real records, and on variations of real releases."""

from __future__ import annotations

import copy
import json
import re
import warnings
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import ocdsmerge
import orjson
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from ocdsmerge.exceptions import DuplicateIdValueWarning, InconsistentTypeError
from ocdsmerge.rules import get_merge_rules

from core.changes import diff
from core.exceptions import MergeConflictError
from core.merge import MergedRecord, RecordMerger, order_key
from core.schema import OcdsSchema
from core.types import Release
from producers.simulator import simulate

# As in ocdsmerge's tests/test_merge.py: fixture folder -> schemas (None: the latest, i.e. our 1.1.5).
FIXTURE_SCHEMAS: dict[str, list[str | None]] = {
    "1.1": [None, "release-schema-1__1__4.json"],
    "1.0": ["release-schema-1__0__3.json"],
    "schema": ["schema.json"],
}
REAL_RECORDS = {
    "mx-jalisco/ocds-xs1qbl-SFIN-03-0001-00-2017.json": "mx-jalisco",
    "mx-jalisco/ocds-xs1qbl-SFIN-03-0007-00-2017.json": "mx-jalisco",
    "mx-apf/record-package-1.json": "mx-apf",
    "mx-apf/record-package-2.json": "mx-apf",
}
PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def reference(schema: dict[str, Any], releases: Iterable[Release]) -> tuple[Release, Release]:
    """ocdsmerge's compiled and versioned releases, given the releases in order_key order."""
    merger = ocdsmerge.Merger(schema=schema)
    ordered = sorted(releases, key=order_key)
    return merger.create_compiled_release(ordered), merger.create_versioned_release(ordered)


def fold(merger: RecordMerger, releases: Iterable[Release]) -> MergedRecord | None:
    record = None
    for release in sorted(releases, key=order_key):
        assert merger.can_extend(record, release)
        record = merger.extend(record, release)
    return record


def fixture_cases(fixtures: Path, schema: OcdsSchema) -> Iterable[tuple[str, RecordMerger, Path]]:
    for folder, schema_files in FIXTURE_SCHEMAS.items():
        for schema_file in schema_files:
            release_schema = schema.release if schema_file is None else json.loads((fixtures / schema_file).read_text())
            merger = RecordMerger(OcdsSchema(folder=fixtures, files={"release-schema.json": release_schema}))
            for path in sorted((fixtures / folder).glob("*-*ed.json")):
                if path.stem.endswith(("-compiled", "-versioned")):
                    yield f"{folder}/{path.name} with {schema_file or 'the 1.1.5 schema'}", merger, path


def load_fixture(path: Path) -> tuple[list[Release], Release, str]:
    infix = "compiled" if path.stem.endswith("-compiled") else "versioned"
    releases = json.loads(path.with_name(re.sub(r"-(?:compiled|versioned)\.json$", ".json", path.name)).read_text())
    return releases, json.loads(path.read_text()), infix


@pytest.mark.parametrize("how", ["merge", "extend"])
def test_ocdsmerge_fixtures(ocdsmerge_fixtures: Path, schema: OcdsSchema, how: str) -> None:
    """Every compiled and versioned fixture of ocdsmerge 0.8.0 is reproduced by merge() and by folding extend()."""
    failures, count = [], 0
    for name, merger, path in fixture_cases(ocdsmerge_fixtures, schema):
        releases, expected, infix = load_fixture(path)
        original = copy.deepcopy(releases)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no unexpected warnings, as in ocdsmerge's own tests
            if path.name == "identifier-merge-duplicate-id-compiled.json":
                warnings.filterwarnings("ignore", category=DuplicateIdValueWarning)
            record = merger.merge(releases) if how == "merge" else fold(merger, releases)
        assert record is not None
        actual = record.compiled if infix == "compiled" else record.versioned
        assert releases == original, f"{name}: the releases were modified"
        count += 1
        if actual != expected:
            failures.append(f"{name}: {json.dumps(actual)}")
    assert count >= 60, f"only {count} fixtures found"
    assert not failures, "\n".join(failures)


def normalise(value: Any) -> Any:
    """The data README's normalisation: drop empty arrays, objects, null and "" (recursively)."""
    if isinstance(value, dict):
        pairs = ((k, normalise(v)) for k, v in value.items())
        return {k: v for k, v in pairs if v not in ([], {}, None, "")}
    if isinstance(value, list):
        return [v for v in map(normalise, value) if v not in ([], {}, None, "")]
    return value


def stream(real_data: Path, name: str) -> dict[str, list[Release]]:
    by_ocid: dict[str, list[Release]] = defaultdict(list)
    for line in (real_data / f"{name}.releases.jsonl").read_text(encoding="utf-8").splitlines():
        release = orjson.loads(line)
        by_ocid[release["ocid"]].append(release)
    return by_ocid


@pytest.mark.parametrize("package", sorted(REAL_RECORDS))
def test_real_record_packages(real_data: Path, schema: OcdsSchema, package: str) -> None:
    """The publisher's compiledRelease (normalised) and ocdsmerge's result are reproduced from the releases."""
    record = json.loads((real_data / "records" / package).read_text(encoding="utf-8"))["records"][0]
    releases = stream(real_data, REAL_RECORDS[package])[record["ocid"]]
    assert len(releases) == len(record["releases"])
    merger = RecordMerger(schema)
    merged = merger.merge(reversed(releases))
    folded = fold(merger, releases)
    assert folded is not None
    compiled, versioned = reference(schema.release, releases)
    assert dumps(merged.compiled) == dumps(compiled) == dumps(folded.compiled)
    assert dumps(merged.versioned) == dumps(versioned) == dumps(folded.versioned)
    ignored = ("id", "tag", "date")
    ours = {k: v for k, v in normalise(merged.compiled).items() if k not in ignored}
    theirs = {k: v for k, v in normalise(record["compiledRelease"]).items() if k not in ignored}
    assert ours == theirs


# Hypothesis: real release shapes with small synthetic variations.

DATES = ["2017-08-08T08:24:09-04:00", "2017-08-08T12:24:09Z", "2018-01-18T04:39:51Z", "2018-01-18T04:39:52Z"]


@pytest.fixture(scope="module")
def processes(real_data: Path) -> list[bytes]:
    """Real processes with several releases (Jalisco and Paraguay's DNCP), as immutable JSON."""
    found = []
    for name in ("mx-jalisco", "py-dncp"):
        found += [orjson.dumps(releases) for releases in stream(real_data, name).values() if len(releases) >= 2]
    return found


def _slots(value: Any, out: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, child in items:
        out.append((value, key))
        if isinstance(child, (dict, list)):
            _slots(child, out)
    return out


@st.composite
def variations(draw: st.DrawFn, processes: list[bytes], conflicts: bool = False) -> list[Release]:
    """A real process's releases with new ids, dates drawn from a small pool (ties, offsets), and edits."""
    originals: list[bytes] = [orjson.dumps(r) for r in orjson.loads(draw(st.sampled_from(processes)))]
    releases: list[Release] = [orjson.loads(r) for r in draw(st.lists(st.sampled_from(originals), min_size=1,
                                                                     max_size=6))]
    edits: list[Any] = [None, "", 7, "otro"]
    if conflicts:  # values that may change a field's type: objects, arrays of values, arrays of objects
        edits += [["a", "b"], {"x": 1}, [{"id": "1", "x": 2}]]
    for number, release in enumerate(releases):
        release["id"] = f"r{draw(st.integers(0, 9))}-{number}"  # unique ids, in an order unrelated to dates
        release["date"] = draw(st.sampled_from(DATES))
        slots = [(container, key) for container, key in _slots(release, []) if key not in ("id", "date", "ocid")]
        for _ in range(draw(st.integers(0, 3)) if slots else 0):  # draw indices: never sample mutable objects
            container, key = slots[draw(st.integers(0, len(slots) - 1))]
            if isinstance(container, dict) and draw(st.booleans()):
                container.pop(key, None)
            elif conflicts or not isinstance(container.get(key) if isinstance(container, dict) else container[key],
                                             (dict, list)):
                container[key] = copy.deepcopy(edits[draw(st.integers(0, len(edits) - 1))])
    return releases


def test_hypothesis_examples_use_real_processes(processes: list[bytes]) -> None:
    """The property tests draw from real processes of more than one release."""
    assert len(processes) >= 10


@PROPERTY
@given(data=st.data())
def test_merge_equals_ocdsmerge(processes: list[bytes], schema: OcdsSchema, data: st.DataObject) -> None:
    """merge() equals ocdsmerge, or raises MergeConflictError where ocdsmerge raises (or would mix types)."""
    releases = data.draw(variations(processes, conflicts=True))
    original = dumps(releases)
    try:
        expected: tuple[Release, Release] | None = reference(schema.release, copy.deepcopy(releases))
    except InconsistentTypeError:
        expected = None
    try:
        record = RecordMerger(schema).merge(releases)
    except MergeConflictError as exc:
        assert expected is None or "had an array of values" in str(exc), exc
        event("conflict" if expected is None else "conflict where ocdsmerge would mix values and objects")
        return
    event("merged")
    assert expected is not None, "ocdsmerge raised, merge() did not"
    assert dumps(record.compiled) == dumps(expected[0])
    assert dumps(record.versioned) == dumps(expected[1])
    assert dumps(releases) == original


@PROPERTY
@given(data=st.data())
def test_any_delivery_order_gives_the_same_record(
    processes: list[bytes], schema: OcdsSchema, data: st.DataObject
) -> None:
    """merge() of any permutation of a process's releases is byte-identical."""
    releases = data.draw(variations(processes))
    shuffled = [releases[index] for index in data.draw(st.permutations(range(len(releases))))]
    merger = RecordMerger(schema)
    first, second = merger.merge(releases), merger.merge(shuffled)
    assert dumps(first.compiled) == dumps(second.compiled)
    assert dumps(first.versioned) == dumps(second.versioned)
    assert (
        (first.latest, first.count) == (second.latest, second.count) == (max(map(order_key, releases)), len(releases))
    )


@PROPERTY
@given(data=st.data())
def test_extend_equals_merge_after_every_release(
    processes: list[bytes], schema: OcdsSchema, data: st.DataObject
) -> None:
    """Folding extend() in order_key order equals merge() of the releases so far, after every release."""
    releases = sorted(data.draw(variations(processes)), key=order_key)
    merger = RecordMerger(schema)
    record = None
    for end, release in enumerate(releases, 1):
        assert merger.can_extend(record, release)
        record = merger.extend(record, release)
        expected = merger.merge(releases[:end])
        assert dumps(record.compiled) == dumps(expected.compiled)
        assert dumps(record.versioned) == dumps(expected.versioned)
        assert (record.latest, record.count) == (expected.latest, expected.count) == (order_key(release), end)


@PROPERTY
@given(data=st.data())
def test_extend_after_resume_equals_merge(
    processes: list[bytes], schema: OcdsSchema, data: st.DataObject
) -> None:
    """A record resumed from its stored JSON, then extended, equals merge() of all its releases."""
    releases = sorted(data.draw(variations(processes)), key=order_key)
    split = data.draw(st.integers(1, len(releases)))
    merger = RecordMerger(schema)
    stored = merger.merge(releases[:split])
    record = merger.resume(
        orjson.loads(orjson.dumps(stored.compiled)),
        orjson.loads(orjson.dumps(stored.versioned)),
        stored.latest,
        stored.count,
    )
    for release in releases[split:]:
        record = merger.extend(record, release)
    expected = merger.merge(releases)
    assert dumps(record.compiled) == dumps(expected.compiled)
    assert dumps(record.versioned) == dumps(expected.versioned)
    assert (record.latest, record.count) == (expected.latest, expected.count)


@PROPERTY
@given(data=st.data())
def test_redelivery_changes_nothing(processes: list[bytes], schema: OcdsSchema, data: st.DataObject) -> None:
    """A release delivered twice merges as once, in merge() and in extend() of the latest."""
    releases = data.draw(variations(processes))
    again = copy.deepcopy(releases[data.draw(st.integers(0, len(releases) - 1))])
    merger = RecordMerger(schema)
    once, twice = merger.merge(releases), merger.merge([*releases, again])
    assert dumps(once.compiled) == dumps(twice.compiled)
    assert dumps(once.versioned) == dumps(twice.versioned)
    assert once.count == twice.count
    latest = copy.deepcopy(max(releases, key=order_key))
    before = dumps([once.compiled, once.versioned])
    assert not merger.can_extend(once, latest)
    assert merger.extend(once, latest) is once
    assert dumps([once.compiled, once.versioned]) == before


def test_tie_on_date_extends_by_id(schema: OcdsSchema) -> None:
    """A release on the latest's date extends when its id sorts after, and needs merge() when before."""
    merger = RecordMerger(schema)
    record = merger.merge([{"ocid": "ocds-1", "id": "b", "date": "2020-01-01T00:00:00Z", "title": "b"}])
    after = {"ocid": "ocds-1", "id": "c", "date": "2020-01-01T00:00:00Z", "title": "c"}
    before = {"ocid": "ocds-1", "id": "a", "date": "2020-01-01T00:00:00Z", "title": "a"}
    assert merger.can_extend(record, after)
    assert not merger.can_extend(record, before)
    with pytest.raises(ValueError, match="older than the record's latest"):
        merger.extend(record, before)
    assert merger.extend(record, after).compiled["title"] == "c"


def test_dates_order_as_raw_strings_like_ocdsmerge(schema: OcdsSchema) -> None:
    """Dates are ordered as ocdsmerge orders them: raw strings, whatever their UTC offsets."""
    later_instant = {"ocid": "ocds-1", "id": "1", "date": "2020-01-01T01:00:00-06:00", "title": "06:00"}
    earlier_instant = {"ocid": "ocds-1", "id": "2", "date": "2020-01-01T05:00:00Z", "title": "05:00Z"}
    record = RecordMerger(schema).merge([later_instant, earlier_instant])
    assert record.compiled == reference(schema.release, [later_instant, earlier_instant])[0]
    assert record.compiled["title"] == "05:00Z"


CONFLICTS = [
    pytest.param({"value": "x"}, {"value": {"amount": 1}}, id="scalar-then-object"),
    pytest.param({"value": {"amount": 1}}, {"value": [{"amount": 1}]}, id="object-then-array"),
    pytest.param({"value": None}, {"value": {"amount": 1}}, id="null-then-object"),
    pytest.param({"value": ["x"]}, {"value": [{"id": "1"}]}, id="values-then-objects"),
]


@pytest.mark.parametrize(("first", "second"), CONFLICTS)
def test_type_conflict_raises(schema: OcdsSchema, first: Release, second: Release) -> None:
    """A field that changes type between releases raises MergeConflictError in merge() and extend()."""
    releases = [
        {"ocid": "ocds-1", "id": "1", "date": "2020-01-01T00:00:00Z", "tender": {"id": "t", **first}},
        {"ocid": "ocds-1", "id": "2", "date": "2020-01-02T00:00:00Z", "tender": {"id": "t", **second}},
    ]
    merger = RecordMerger(schema)
    with pytest.raises(MergeConflictError) as raised:
        merger.merge(releases)
    assert (raised.value.where.ocid, raised.value.where.release_id) == ("ocds-1", "2")
    record = merger.extend(None, releases[0])
    before = dumps([record.compiled, record.versioned, record.latest, record.count])
    with pytest.raises(MergeConflictError):
        merger.extend(record, releases[1])
    assert dumps([record.compiled, record.versioned, record.latest, record.count]) == before
    third = {"ocid": "ocds-1", "id": "3", "date": "2020-01-03T00:00:00Z", "tender": {"id": "t", "title": "z"}}
    assert merger.extend(record, third).compiled == merger.merge([releases[0], third]).compiled


def test_release_without_date_raises(schema: OcdsSchema) -> None:
    """A release without a date string cannot be ordered and raises MergeConflictError."""
    with pytest.raises(MergeConflictError, match="no date"):
        RecordMerger(schema).merge([{"ocid": "ocds-1", "id": "1"}])


def test_no_releases(schema: OcdsSchema) -> None:
    """merge() of no releases gives ocdsmerge's empty compiled and versioned releases."""
    record = RecordMerger(schema).merge([])
    assert (record.compiled, record.versioned, record.count) == (reference(schema.release, [])[0], {}, 0)


def test_compiled_only_merger_builds_the_same_compiled_release(schema: OcdsSchema, real_data: Path) -> None:
    """A merger built with versioned=False gives the same compiled release, by merge and by extend."""
    releases = [orjson.loads(line) for line in (real_data / "mx-jalisco.releases.jsonl").read_bytes().splitlines()]
    full, lean = RecordMerger(schema), RecordMerger(schema, versioned=False)
    by_ocid: dict[str, list[Release]] = {}
    for release in releases:
        by_ocid.setdefault(release["ocid"], []).append(release)
    for items in by_ocid.values():
        expected = full.merge(items)
        record = None
        for release in sorted(items, key=order_key):
            record = lean.extend(record, release)
        assert record is not None and record.versioned is None
        assert dumps(record.compiled) == dumps(expected.compiled)
        assert dumps(lean.merge(items).compiled) == dumps(expected.compiled)


# The compiled-only hot path (core.compiled, through RecordMerger.step).


def incremental(schema: OcdsSchema, compiled: Release | None, release: Release) -> Release:
    """ocdsmerge's own incremental merge: a CompiledRelease built from the stored compiled release, appended to."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DuplicateIdValueWarning)  # a stored record may repeat an id; so may we
        merged = ocdsmerge.merge.CompiledRelease(copy.deepcopy(compiled), merge_rules=get_merge_rules(schema.release))
        merged.append(copy.deepcopy(release))
        result: Release = merged.asdict()
        return result


@PROPERTY
@given(data=st.data())
def test_step_equals_merge_and_finds_the_diff(processes: list[bytes], schema: OcdsSchema, data: st.DataObject) -> None:
    """Folding step() of a compiled-only merger equals merge() of the releases so far (so ocdsmerge's full merge),
    and its before and changes equal the old compiled release and diff(old, new).

    One difference, by design: where an earlier release set a field to null and a later one puts an object
    under it, merge() raises (ocdsmerge does) while the stored compiled release has no trace of the null and
    the record goes on (as ocdsmerge's own CompiledRelease(stored).append does). A conflict leaves the record
    as it was.
    """
    releases = sorted(data.draw(variations(processes, conflicts=True)), key=order_key)
    merger, full = RecordMerger(schema, versioned=False), RecordMerger(schema)
    record: MergedRecord | None = None
    for end, release in enumerate(releases, 1):
        old = orjson.loads(dumps(record.compiled)) if record is not None else None
        try:
            expected: Release | None = full.merge(releases[:end]).compiled
        except MergeConflictError:
            expected = None
        try:
            step = merger.step(record, release)
        except MergeConflictError:
            assert expected is None, "merge() did not raise, step() did"
            assert record is None or dumps(record.compiled) == dumps(old)
            event("conflict")
            return
        record = step.record
        if expected is None:
            event("merge() raised, the record went on")
            assert dumps(record.compiled) == dumps(incremental(schema, old, release))
            return
        assert dumps(record.compiled) == dumps(expected)
        if old is not None:
            assert dumps(step.before) == dumps(old)
            if step.changes is not None:
                event("changes found by the merge")
                assert step.changes == diff(old, record.compiled)


def test_step_finds_changes_on_simulated_processes(schema: OcdsSchema) -> None:
    """On simulated Mexican processes (a long one included) every step after the first finds its changes
    during the merge, and they equal diff() of the compiled release before and after."""
    releases = [s.release for s in simulate(seed=5, processes=40, long_process_rate=0.1, long_process_releases=60)]
    merger = RecordMerger(schema, versioned=False)
    records: dict[str, MergedRecord] = {}
    found = 0
    for release in releases:
        record = records.get(release["ocid"])
        old = orjson.loads(dumps(record.compiled)) if record is not None else None
        step = merger.step(record, release)
        records[release["ocid"]] = step.record
        assert dumps(step.record.compiled) == dumps(incremental(schema, old, release))
        if old is not None:
            assert step.changes is not None, f"{release['id']} took the general merge"
            assert step.changes == diff(old, step.record.compiled)
            assert dumps(step.before) == dumps(old)
            found += 1
    assert found > 100


def test_step_falls_back_where_the_record_has_an_object(schema: OcdsSchema) -> None:
    """A null where the record has an object needs the general merge: the record is left for it intact,
    and the result is ocdsmerge's (the object stays: a null cannot remove a merged object)."""
    first = {"ocid": "ocds-1", "id": "1", "date": "2020-01-01T00:00:00Z", "tender": {"id": "t", "value": {"amount": 1}}}
    second = {"ocid": "ocds-1", "id": "2", "date": "2020-01-02T00:00:00Z", "tender": {"id": "t", "value": None,
                                                                                      "title": "x"}}
    merger = RecordMerger(schema, versioned=False)
    record = merger.step(None, first).record
    old = orjson.loads(dumps(record.compiled))
    step = merger.step(record, second)
    assert step.changes is None
    assert dumps(step.before) == dumps(old)
    assert dumps(step.record.compiled) == dumps(incremental(schema, old, second))
    assert step.record.compiled["tender"]["value"] == {"amount": 1}
