"""Change detection: JSON Pointer diffs and the procurement kinds of a merged release."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ocdsmerge
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.changes import KINDS, detect, diff
from core.schema import OcdsSchema

JALISCO_OCID = "ocds-xs1qbl-SFIN-03-0007-00-2017"


def test_modules_are_pure() -> None:
    """Importing change detection, summaries and the compiled merge loads no Kafka, database or socket module."""
    code = (
        "import sys, core.changes, core.summary, core.compiled; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('kafka', 'aiokafka', 'faust', 'psycopg2', 'websockets', 'socket', 'ssl')))"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- diff --------------------------------------------------------------------------------------------------


def test_diff_escapes_pointer_tokens() -> None:
    """Keys holding ``~`` and ``/`` are escaped as ``~0`` and ``~1`` (RFC 6901)."""
    changes = diff({"a/b": 1, "c~d": {"e/~f": 1}}, {"a/b": 2, "c~d": {"e/~f": 2}})
    assert [c["path"] for c in changes] == ["/a~1b", "/c~0d/e~1~0f"]


def test_diff_orders_paths_by_sorted_keys_whatever_the_insertion_order() -> None:
    """Paths come in sorted key order, so the same difference always gives the same list."""
    old = {"b": 1, "a": {"z": 1, "y": 1}}
    new = {"a": {"y": 2, "z": 2}, "c": 3, "b": 1}
    swapped = dict(reversed(list(new.items())))
    assert [c["path"] for c in diff(old, new)] == ["/a/y", "/a/z", "/c"]
    assert diff(old, new) == diff(old, swapped)


def test_diff_says_add_remove_or_replace() -> None:
    """A missing value is told apart from null by ``op``."""
    assert diff({"a": None, "b": 1}, {"b": None, "c": 2}) == [
        {"path": "/a", "op": "remove", "old": None, "new": None},
        {"path": "/b", "op": "replace", "old": 1, "new": None},
        {"path": "/c", "op": "add", "old": None, "new": 2},
    ]


def test_diff_compares_arrays_of_objects_by_id() -> None:
    """Changed and added items use the new index, removed items the old one, after them."""
    old = {"awards": [{"id": "a", "value": {"amount": 1}}, {"id": "b"}, {"id": "gone"}]}
    new = {"awards": [{"id": "new"}, {"id": "b"}, {"id": "a", "value": {"amount": 2}}]}
    assert diff(old, new) == [
        {"path": "/awards/0", "op": "add", "old": None, "new": {"id": "new"}},
        {"path": "/awards/2/value/amount", "op": "replace", "old": 1, "new": 2},
        {"path": "/awards/2", "op": "remove", "old": {"id": "gone"}, "new": None},
    ]


def test_diff_ignores_reordering_of_an_array_by_id() -> None:
    """Items with ids that only moved are no change."""
    assert diff({"parties": [{"id": 1}, {"id": 2}]}, {"parties": [{"id": 2}, {"id": 1}]}) == []


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ([1, 2], [2, 1]),
        ([{"id": "a"}, {"name": "no id"}], [{"id": "a"}]),
        ([{"id": "a"}, {"id": "a"}], [{"id": "a", "x": 1}]),
        ([{"id": {"not": "scalar"}}], [{"id": "b"}]),
    ],
)
def test_diff_compares_other_arrays_whole(old: list[Any], new: list[Any]) -> None:
    """Arrays without distinct scalar ids on every item are one entry for the whole array."""
    assert diff({"x": old}, {"x": new}) == [{"path": "/x", "op": "replace", "old": old, "new": new}]


def test_diff_reports_a_type_change_whole() -> None:
    """An object replaced by a scalar is one entry at its path."""
    assert diff({"tender": {"id": "1"}}, {"tender": "1"}) == [
        {"path": "/tender", "op": "replace", "old": {"id": "1"}, "new": "1"}
    ]


def test_diff_prefixes_the_given_path() -> None:
    """The ``path`` argument is the pointer of the values compared."""
    assert diff({"a": 1}, {"a": 2}, "/tender") == [{"path": "/tender/a", "op": "replace", "old": 1, "new": 2}]


# -- the life of a real process ----------------------------------------------------------------------------


def _steps(schema: OcdsSchema, real_data: Path, ocid: str) -> list[tuple[Any, Any, dict[str, Any]]]:
    lines = (real_data / "mx-jalisco.releases.jsonl").read_text(encoding="utf-8").splitlines()
    releases = [r for r in map(json.loads, lines) if r["ocid"] == ocid]
    merger = ocdsmerge.Merger(schema=schema.release)
    steps, before = [], None
    for i, release in enumerate(releases):
        after = merger.create_compiled_release(releases[: i + 1])
        steps.append((before, after, release))
        before = after
    return steps


def test_real_process_kinds_follow_its_stages(schema: OcdsSchema, real_data: Path) -> None:
    """Jalisco's planning -> tender -> award -> contract -> implementation releases get the right kinds."""
    steps = _steps(schema, real_data, JALISCO_OCID)
    detected = [detect(before, after, release) for before, after, release in steps]
    changes = [change for change in detected if change is not None]
    assert len(changes) == len(steps) == 5
    assert [c.kind for c in changes] == [
        "planning.published",
        "tender.published",
        "award.made",
        "contract.signed",
        "contract.updated",  # only a non-standard field changed: named after the "implementation" tag
    ]
    assert "tender.completed" in changes[2].kinds
    assert {"payment.recorded", "documents.added"} <= set(changes[3].kinds)
    assert [c["path"] for c in changes[1].changes] == [
        "/additionalProcessInformation/stageDescription/stageNumber",
        "/tender/status",
    ]


def test_real_process_other_ocid(schema: OcdsSchema, real_data: Path) -> None:
    """A second Jalisco process (4 releases) gets the same sequence of kinds."""
    steps = _steps(schema, real_data, "ocds-xs1qbl-SFIN-03-0001-00-2017")
    kinds = [change.kind for change in (detect(*step) for step in steps) if change]
    assert kinds == ["planning.published", "tender.published", "award.made", "contract.signed"]


def test_redelivered_release_changes_nothing(schema: OcdsSchema, real_data: Path) -> None:
    """Merging a release already merged gives the same compiled release: no change."""
    _, after, release = _steps(schema, real_data, JALISCO_OCID)[3]
    assert detect(after, copy.deepcopy(after), release) is None


def test_ignores_compiled_id_date_and_tag() -> None:
    """Changes to the compiled release's own id, date and tag alone are no change."""
    before = {"id": "x-1", "date": "2020-01-01T00:00:00Z", "tag": ["compiled"], "ocid": "x"}
    after = {"id": "x-2", "date": "2020-02-01T00:00:00Z", "tag": ["compiled", "x"], "ocid": "x"}
    assert detect(before, after, {"tag": ["tender"]}) is None
    assert detect(None, {}, {}) is None


# -- one synthetic case for each kind ----------------------------------------------------------------------


def _record() -> dict[str, Any]:
    return {
        "ocid": "ocds-07smqs-1",
        "id": "ocds-07smqs-1-2020",
        "date": "2020-01-01T00:00:00Z",
        "tag": ["compiled"],
        "buyer": {"id": "B1", "name": "Secretaría"},
        "parties": [{"id": "B1", "name": "Secretaría", "roles": ["buyer"]}],
        "planning": {"budget": {"amount": {"amount": 100, "currency": "MXN"}}},
        "tender": {
            "id": "T1",
            "status": "active",
            "tenderPeriod": {"endDate": "2020-02-01T00:00:00Z"},
            "milestones": [{"id": "M1", "status": "scheduled"}],
            "documents": [{"id": "D1", "url": "https://example.mx/1.pdf"}],
        },
        "awards": [{"id": "A1", "status": "active", "value": {"amount": 90, "currency": "MXN"}}],
        "contracts": [
            {
                "id": "C1",
                "awardID": "A1",
                "status": "pending",
                "value": {"amount": 90, "currency": "MXN"},
                "implementation": {"transactions": [{"id": "P1", "value": {"amount": 10}}]},
            }
        ],
    }


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(record: dict[str, Any]) -> None:
        *parents, last = path.strip("/").split("/")
        target: Any = record
        for token in parents:
            target = target[int(token)] if isinstance(target, list) else target[token]
        if isinstance(target, list):
            target.append(value)
        else:
            target[last] = value

    return mutate


CASES: list[tuple[str, str, Callable[[dict[str, Any]], None], list[str]]] = [
    ("planning.published", "planning published", lambda r: r.pop("planning"), []),
    ("planning.updated", "budget changed", _set("/planning/budget/amount/amount", 120), []),
    ("tender.published", "tender opened", _set("/tender/status", "planned"), []),
    ("tender.updated", "deadline moved", _set("/tender/tenderPeriod/endDate", "2020-03-01T00:00:00Z"), []),
    ("tender.cancelled", "status cancelled", _set("/tender/status", "cancelled"), []),
    ("tender.cancelled", "tag hint", _set("/tender/statusDetails", "Cancelada"), ["tenderCancellation"]),
    ("tender.unsuccessful", "status unsuccessful", _set("/tender/status", "unsuccessful"), []),
    ("tender.completed", "status complete", _set("/tender/status", "complete"), []),
    ("award.made", "new award", _set("/awards/-", {"id": "A2", "status": "pending"}), []),
    ("award.changed", "award value", _set("/awards/0/value/amount", 95), []),
    ("award.cancelled", "award cancelled", _set("/awards/0/status", "cancelled"), []),
    ("award.cancelled", "tag hint", _set("/awards/0/statusDetails", "x"), ["awardCancellation"]),
    ("contract.signed", "pending to active", _set("/contracts/0/status", "active"), []),
    ("contract.signed", "new signed", _set("/contracts/-", {"id": "C2", "dateSigned": "2020-03-01"}), []),
    ("contract.amended", "amendment", _set("/contracts/0/amendments", [{"id": "AM1"}]), []),
    ("contract.amended", "value changed", _set("/contracts/0/value/amount", 80), []),
    ("contract.amended", "tag hint", _set("/contracts/0/period", {"endDate": "2021"}), ["contractAmendment"]),
    ("contract.terminated", "terminated", _set("/contracts/0/status", "terminated"), []),
    ("contract.terminated", "tag hint", _set("/contracts/0/statusDetails", "x"), ["contractTermination"]),
    ("contract.updated", "description", _set("/contracts/0/description", "Servicio"), ["contractUpdate"]),
    (
        "payment.recorded",
        "new transaction",
        _set("/contracts/0/implementation/transactions/-", {"id": "P2"}),
        [],
    ),
    ("milestone.updated", "milestone met", _set("/tender/milestones/0/status", "met"), []),
    ("documents.added", "new document", _set("/tender/documents/-", {"id": "D2"}), []),
    ("parties.updated", "new address", _set("/parties/0/address", {"locality": "CDMX"}), []),
    ("record.updated", "extension field", _set("/additionalProcessInformation", {"x": 1}), []),
]


@pytest.mark.parametrize(("kind", "what", "mutate", "tags"), CASES, ids=[f"{case[0]}: {case[1]}" for case in CASES])
def test_kind_of_synthetic_change(
    kind: str, what: str, mutate: Callable[[dict[str, Any]], None], tags: list[str]
) -> None:
    """Each kind is detected from the change that defines it (and only that kind)."""
    before, after = _record(), _record()
    target = before if kind in ("planning.published", "tender.published") else after
    mutate(target)
    change = detect(before, after, {"tag": tags})
    assert change is not None
    assert change.kinds == (kind,), what


def test_every_kind_has_a_synthetic_case_and_two_titles() -> None:
    """The synthetic cases cover all kinds of process changes, and each kind has a Spanish and an English title
    (``project.updated`` is a project's own event, never detected from a process's release)."""
    assert {case[0] for case in CASES} == set(KINDS) - {"project.updated"}
    assert all(len(titles) == 2 and all(titles) for titles in KINDS.values())
    assert KINDS["contract.signed"] == ("Contrato firmado", "Contract signed")


def test_new_record_lists_every_stage_most_important_first() -> None:
    """A first release holding every stage names the latest; ``kinds`` is ordered by importance."""
    after = _record()
    after["contracts"][0]["status"] = "active"
    change = detect(None, after, {"tag": ["planning", "tender", "award", "contract"]})
    assert change is not None
    assert change.kind == "contract.signed"
    assert change.kinds == (
        "contract.signed",
        "award.made",
        "payment.recorded",
        "tender.published",
        "planning.published",
        "milestone.updated",
        "documents.added",
        "parties.updated",
    )
    assert [c["path"] for c in change.changes][:2] == ["/awards", "/buyer"]


def test_tag_names_a_change_outside_the_standard() -> None:
    """When only a non-standard field changed, the release's tag names the kind."""
    before, after = _record(), _record()
    after["additionalProcessInformation"] = {"stage": 5}
    change = detect(before, after, {"tag": ["tenderCancellation"]})
    assert change is not None
    assert change.kind == "tender.cancelled"


def test_planned_tender_changes_are_planning_updates() -> None:
    """Changes to a tender still in planning are planning updates."""
    before, after = _record(), _record()
    before["tender"]["status"] = after["tender"]["status"] = "planned"
    after["tender"]["title"] = "Equipo de cómputo"
    change = detect(before, after, {"tag": ["planningUpdate"]})
    assert change is not None
    assert change.kinds == ("planning.updated",)


def test_status_case_is_ignored() -> None:
    """``Active`` (seen in GACM data) counts as ``active``."""
    before, after = _record(), _record()
    after["contracts"][0]["status"] = "Active"
    change = detect(before, after, {"tag": ["contract"]})
    assert change is not None
    assert change.kind == "contract.signed"


def test_as_dict_is_json() -> None:
    """``as_dict`` gives the kind, kinds, summary and changes, serialisable as JSON."""
    before, after = _record(), _record()
    after["awards"][0]["value"]["amount"] = 95
    change = detect(before, after, {"tag": ["awardUpdate"]})
    assert change is not None
    event = json.loads(json.dumps(change.as_dict()))
    assert event["kind"] == "award.changed"
    assert event["kinds"] == ["award.changed"]
    assert event["changes"] == [{"path": "/awards/0/value/amount", "op": "replace", "old": 90, "new": 95}]
    assert event["summary"]["award_amount"] == 95.0
    assert "search_text" not in event["summary"]


# -- properties --------------------------------------------------------------------------------------------

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6)
keys = st.text(alphabet="ab~/", max_size=3) | st.text(max_size=4)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
    max_leaves=12,
)
statuses = st.sampled_from(["active", "pending", "cancelled", "unsuccessful", "complete", "planned", "Active"])
ids = st.sampled_from(["1", "2", 1, None]) | json_values
items = st.fixed_dictionaries(
    {},
    optional={
        "id": ids,
        "status": statuses | json_values,
        "value": st.fixed_dictionaries({}, optional={"amount": json_values, "currency": json_values}) | json_values,
        "dateSigned": json_values,
        "documents": st.lists(st.fixed_dictionaries({}, optional={"id": ids}), max_size=2) | json_values,
        "milestones": st.lists(st.fixed_dictionaries({}, optional={"id": ids, "status": statuses})) | json_values,
        "amendments": st.lists(st.fixed_dictionaries({"id": ids}), max_size=2) | json_values,
        "implementation": st.fixed_dictionaries(
            {},
            optional={"transactions": st.lists(st.fixed_dictionaries({}, optional={"id": ids}), max_size=3)},
        )
        | json_values,
        "suppliers": st.lists(st.fixed_dictionaries({}, optional={"id": ids, "name": json_values})) | json_values,
    },
)
compiled = st.fixed_dictionaries(
    {},
    optional={
        name: st.one_of(items, st.lists(items, max_size=3), json_values)
        for name in (
            "tender",
            "planning",
            "awards",
            "contracts",
            "parties",
            "buyer",
            "tag",
            "date",
            "id",
            "x",
        )
    },
)


def _check_detect(before: Any, after: Any, release: Any) -> None:
    change = detect(before, after, release)
    changed = [c for c in diff(before or {}, after) if c["path"] not in ("/id", "/date", "/tag")]
    assert (change is None) == (not changed)
    if change is not None:
        assert change.kind == change.kinds[0]
        assert set(change.kinds) <= set(KINDS)
        ranks = [list(KINDS).index(kind) for kind in change.kinds]
        assert ranks == sorted(ranks)
        json.dumps(change.as_dict())


@settings(max_examples=200, deadline=None)
@given(before=st.none() | compiled, after=compiled, patch=compiled, release=json_values | compiled)
def test_detect_never_raises(before: Any, after: Any, patch: dict[str, Any], release: Any) -> None:
    """``detect`` names known kinds for any JSON-ish pair (or an edited copy), None when nothing changed."""
    _check_detect(before, after, release)
    _check_detect(before, {**(before or {}), **patch}, release)


@settings(max_examples=200, deadline=None)
@given(value=json_values | compiled)
def test_diff_of_equal_values_is_empty(value: Any) -> None:
    """``diff(a, a)`` and ``diff(a, copy of a)`` are empty."""
    assert diff(value, value) == []
    assert diff(value, copy.deepcopy(value)) == []


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _apply(document: dict[str, Any], changes: list[dict[str, Any]]) -> dict[str, Any]:
    result = copy.deepcopy(document)
    for change in changes:
        *parents, last = [_unescape(t) for t in change["path"].split("/")[1:]]
        target = result
        for token in parents:
            target = target[token]
        if change["op"] == "remove":
            del target[last]
        else:
            target[last] = change["new"]
    return result


nested = st.recursive(
    st.dictionaries(keys, scalars, max_size=4),
    lambda inner: st.dictionaries(keys, scalars | inner | st.lists(scalars, max_size=3), max_size=4),
    max_leaves=16,
)


@settings(max_examples=300, deadline=None)
@given(a=st.dictionaries(keys, scalars), b=st.dictionaries(keys, scalars))
def test_applying_the_diff_of_flat_dicts_round_trips(a: dict[str, Any], b: dict[str, Any]) -> None:
    """Applying ``diff(a, b)`` to ``a`` gives ``b`` for dicts of scalars."""
    assert _apply(a, diff(a, b)) == b


@settings(max_examples=300, deadline=None)
@given(a=nested, b=nested)
def test_applying_the_diff_of_nested_dicts_round_trips(a: dict[str, Any], b: dict[str, Any]) -> None:
    """Applying ``diff(a, b)`` to ``a`` gives ``b`` for nested dicts (lists replaced whole)."""
    assert _apply(a, diff(a, b)) == b


def _streams(real_data: Path) -> list[list[dict[str, Any]]]:
    """Releases in order: simulated Mexican processes (some with hundreds of payments) and real publishers."""
    from producers.simulator import simulate

    streams = [[s.release for s in simulate(seed=11, processes=60, long_process_rate=0.1, long_process_releases=120)]]
    for name in ("mx-jalisco", "py-dncp"):
        lines = (real_data / f"{name}.releases.jsonl").read_text(encoding="utf-8").splitlines()
        streams.append([json.loads(line) for line in lines])
    return streams


def test_part_kinds_from_the_changes_equal_comparing_whole_records(schema: OcdsSchema, real_data: Path) -> None:
    """payment.recorded, documents.added and milestone.updated found from the changed paths alone equal what
    comparing every payment, document and milestone of the records before and after finds."""
    from core import changes as module
    from core.merge import RecordMerger, order_key

    merger = RecordMerger(schema, versioned=False)
    compared, found = 0, set()
    for stream in _streams(real_data):
        records: dict[str, Any] = {}
        for release in sorted(stream, key=lambda r: (r["ocid"], *order_key(r))):
            step = merger.step(records.get(release["ocid"]), release)
            records[release["ocid"]] = step.record
            before = json.loads(json.dumps(step.before or {}))
            after = step.record.compiled
            kinds = module._Kinds()
            module._items(before, after, diff(before, after), kinds)
            whole = module._items_whole(before, after)
            assert kinds.found == whole, release["id"]
            compared += 1
            found |= whole
    assert compared > 1000
    assert found == {"payment.recorded", "documents.added", "milestone.updated"}
