"""Projects' pure core: membership, project ids per publisher, oc4idskit's conversion made deterministic,
supplied fields winning, and projects made to meet the OC4IDS 0.9.4 schema."""

from __future__ import annotations

import decimal
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from core.exceptions import ConfigurationError
from core.filters import ChangeFilter
from core.oc4ids import Oc4idsSchema, load_oc4ids_schema
from core.projects import (
    Member,
    ProjectFieldsError,
    build,
    canonical,
    check_supplied,
    conform,
    convert,
    default_title,
    figures,
    local_project_id,
    project_prefix,
    read_project_prefixes,
)
from tests.conftest import SHARED


@pytest.fixture(scope="module")
def oc4ids() -> Oc4idsSchema:
    return load_oc4ids_schema(SHARED / "oc4ids" / "0.9.4", Path("/nonexistent"))


def _release(ocid: str, **planning: Any) -> dict[str, Any]:
    return {"ocid": ocid, "id": f"{ocid}-1", "date": "2020-01-01T00:00:00Z", "tag": ["planning"], "planning": planning}


@pytest.mark.parametrize(("planning", "expected"), [
    ({"budget": {"projectID": "46101"}}, "46101"),
    ({"budget": {"projectID": 46101}}, "46101"),
    ({"budget": {"projectID": "\nPEI-0151/2018 "}}, "PEI-0151/2018"),
    ({"project": {"id": "P-1"}, "budget": {"projectID": "46101"}}, "P-1"),
    ({"project": {"id": " "}, "budget": {"projectID": "46101"}}, "46101"),
    ({"budget": {"projectID": ""}}, None),
    ({"budget": {"projectID": True}}, None),
    ({"budget": {"projectID": {"id": "x"}}}, None),
    ({"budget": "46101"}, None),
    ({}, None),
])
def test_membership_reads_the_projects_extension_then_core_budget(
    planning: dict[str, Any], expected: str | None
) -> None:
    """planning.project.id wins over planning.budget.projectID; numbers count, blanks and objects do not."""
    assert local_project_id(_release("ocds-1", **planning)) == expected


def test_membership_never_raises_on_odd_json() -> None:
    """A compiled release that is not an object, or whose planning is not one, names no project."""
    assert local_project_id(None) is None
    assert local_project_id({"planning": []}) is None
    assert local_project_id({"planning": {"project": "x", "budget": None}}) is None


def test_project_prefixes_come_from_the_publishers_file(tmp_path: Path) -> None:
    """Each publisher's project_prefix is read; without one the id is scoped by the publisher's name."""
    path = tmp_path / "publishers.toml"
    path.write_text('[[publisher]]\nname = "gacm"\nprefixes = ["*"]\nproject_prefix = "oc4ids-abc123"\n'
                    '[[publisher]]\nname = "bulk"\nprefixes = ["*"]\n')
    prefixes = read_project_prefixes(path)
    assert prefixes == {"gacm": "oc4ids-abc123"}
    assert project_prefix("gacm", prefixes) == "oc4ids-abc123"
    assert project_prefix("bulk", prefixes) == "oc4ids-live-bulk"
    path.write_text('[[publisher]]\nname = "gacm"\nprefixes = ["*"]\nproject_prefix = "a/b"\n')
    with pytest.raises(ConfigurationError, match="publisher #1: project_prefix"):
        read_project_prefixes(path)


def _naicm(real_data: Path, schema: Any, count: int = 40) -> list[Member]:
    from core.merge import RecordMerger

    merger = RecordMerger(schema, versioned=False)
    by: dict[str, list[dict[str, Any]]] = {}
    for line in (real_data / "mx-gacm-naicm.releases.jsonl").read_bytes().splitlines():
        release = orjson.loads(line)
        by.setdefault(release["ocid"], []).append(release)
    return [Member(ocid, merger.merge(releases).compiled) for ocid, releases in sorted(by.items())[:count]]


def test_conversion_is_the_same_in_every_process(real_data: Path, schema: Any, tmp_path: Path) -> None:
    """oc4idskit builds roles and sectors from sets: canonical JSON is byte-identical whatever PYTHONHASHSEED."""
    members = [Member("ocds-a-1", {"ocid": "ocds-a-1", "parties": [
        {"id": "1", "name": "A", "roles": ["buyer", "procuringEntity", "payer", "supplier"]}],
        "planning": {"project": {"sector": {"scheme": "s", "id": "x"}}}}),
        Member("ocds-a-2", {"ocid": "ocds-a-2", "parties": [
            {"id": "1", "name": "A", "roles": ["tenderer", "buyer"]}],
            "planning": {"project": {"sector": {"scheme": "s", "id": "y"}}}})]
    (tmp_path / "members.json").write_bytes(orjson.dumps([[m.ocid, m.compiled] for m in members]))
    script = ("import orjson,sys; from core.projects import Member, convert; "
              f"m=[Member(o, c) for o, c in orjson.loads(open({str(tmp_path / 'members.json')!r},'rb').read())]; "
              "sys.stdout.buffer.write(orjson.dumps(convert('p', m), option=orjson.OPT_SORT_KEYS))")
    outputs = {subprocess.run([sys.executable, "-c", script], capture_output=True, check=True,
                              env={"PYTHONHASHSEED": str(seed), "PATH": ""}, cwd=Path(__file__).parents[2]).stdout
               for seed in range(6)}
    assert len(outputs) == 1
    project = orjson.loads(outputs.pop())
    assert project["parties"][0]["roles"] == sorted(project["parties"][0]["roles"])
    assert project["sector"] == ["s-x", "s-y"]


def test_conversion_leaves_the_compiled_releases_alone(real_data: Path, schema: Any) -> None:
    """oc4idskit writes into the records it reads (party ids, document ids); members' compiled releases and
    linked releases are untouched, also with parties of one id in two processes and documents of one id."""
    doc = {"id": "1", "documentType": "budgetApproval", "title": "t"}
    odd = [Member(f"ocds-b-{n}", {"ocid": f"ocds-b-{n}", "parties": [
        {"id": "1", "name": f"Org {n}", "roles": ["buyer", "funder"], "identifier": {"scheme": "X", "id": str(n)}}],
        "planning": {"documents": [dict(doc), dict(doc)],
                     "budget": {"budgetBreakdown": [{"sourceParty": {"id": "1"}}]}},
        "contracts": [{"id": "c", "implementation": {"documents": [{**doc, "documentType": "finalAudit"}]}}]},
        [{"id": "r", "url": "u", "date": "d", "tag": ["planning"]}]) for n in range(3)]
    members = _naicm(real_data, schema, 10) + odd
    before = orjson.dumps([[m.compiled, m.releases] for m in members])
    project = convert("p", members)
    assert len(project["documents"]) == 9 and {p["id"] for p in project["parties"]} == {"X-0", "X-1", "X-2"}
    assert orjson.dumps([[m.compiled, m.releases] for m in members]) == before


def test_supplied_fields_win_over_the_conversion_and_the_default_title(real_data: Path, schema: Any) -> None:
    """build = {default title, oc4idskit's conversion, supplied fields}: later ones win; id is the project's."""
    members = _naicm(real_data, schema)
    converted = convert("oc4ids-x-46101", members)
    assert "title" not in converted  # NAICM's releases have no planning.project
    plain = build("oc4ids-x-46101", members)
    assert plain == {"title": "Nuevo Aeropuerto Internacional de la Ciudad de Mexico", **converted}
    assert default_title(members) == plain["title"]
    supplied = {"title": "NAICM", "purpose": "Un aeropuerto", "id": "ignored"}
    built = build("oc4ids-x-46101", members, supplied)
    assert built == {**converted, "title": "NAICM", "purpose": "Un aeropuerto", "id": "oc4ids-x-46101"}
    assert [p["id"] for p in built["contractingProcesses"]] == sorted(m.ocid for m in members)


def test_decimals_become_json_numbers() -> None:
    """oc4idskit sums budgets as Decimals; they become integers when whole, else floats."""
    value = canonical({"budget": {"amount": {"amount": decimal.Decimal("12.50")}}, "n": [decimal.Decimal(3)]})
    assert value == {"budget": {"amount": {"amount": 12.5}}, "n": [3]}
    assert isinstance(value["n"][0], int)


def test_conform_drops_what_breaks_the_schema(oc4ids: Oc4idsSchema) -> None:
    """A value that violates OC4IDS is dropped and reported (NAICM's currency typo 'MNX'); valid stays valid."""
    project = {"id": "p", "title": "T", "contractingProcesses": [
        {"id": "1", "summary": {"ocid": "1", "contractValue": {"amount": 5, "currency": "MNX"}}},
        {"id": "2", "summary": {"ocid": "2", "contractValue": {"amount": 6, "currency": "MXN"}}}],
        "locations": [{"description": "sin id"}]}
    fixed, removed = conform(orjson.loads(orjson.dumps(project)), oc4ids)
    assert oc4ids.project_errors(fixed) == []
    assert fixed["contractingProcesses"][0]["summary"]["contractValue"] == {"amount": 5}
    assert fixed["contractingProcesses"][1] == project["contractingProcesses"][1]
    assert "locations" not in fixed  # its one location had no id; then the empty list went too
    assert any("MNX" in r for r in removed) and len(removed) == 3
    assert conform({"id": "p"}, oc4ids) == ({"id": "p"}, [])


def test_only_project_level_fields_may_be_supplied() -> None:
    """id, contractingProcesses and parties come from the data; other OC4IDS fields may be supplied."""
    assert check_supplied({"title": "x", "sector": ["transport"]}) == {"title": "x", "sector": ["transport"]}
    with pytest.raises(ProjectFieldsError, match="contractingProcesses, id"):
        check_supplied({"id": "x", "contractingProcesses": []})
    with pytest.raises(ProjectFieldsError, match="JSON object"):
        check_supplied(["title"])


def test_figures_sum_contracts_and_payments_per_currency() -> None:
    """The page's figures: contracted and paid per currency, amendments counted, the most frequent buyer first."""
    members = [
        Member("a", {"buyer": {"name": "SCT"}, "contracts": [
            {"value": {"amount": 100, "currency": "MXN"}, "amendments": [{}, {}],
             "implementation": {"transactions": [{"value": {"amount": 30, "currency": "MXN"}}]}}]}),
        Member("b", {"buyer": {"name": "SCT"}, "contracts": [
            {"value": {"amount": 50.5, "currency": "MXN"},
             "implementation": {"transactions": [{"amount": {"amount": 10, "currency": "USD"}}]}}, "odd"]}),
        Member("c", {"buyer": {"name": "GACM"}}),
    ]
    found = figures({"id": "p", "budget": {"amount": {"amount": 1000, "currency": "MXN"}}}, members)
    assert found["contracted"] == [{"amount": 150.5, "currency": "MXN"}]
    assert found["paid"] == [{"amount": 30.0, "currency": "MXN"}, {"amount": 10.0, "currency": "USD"}]
    assert found["budget"] == {"amount": 1000.0, "currency": "MXN"} and found["amendments"] == 2
    assert found["buyers"] == ["SCT", "GACM"] and found["processes"] == 3


def test_project_filter_matches_the_project_and_its_processes() -> None:
    """project= matches events whose summary names the project (its own and its processes'), nothing else."""
    wanted = ChangeFilter.from_mapping({"project": "oc4ids-x-1"})
    assert wanted.matches({"ocid": "oc4ids-x-1", "kind": "project.updated", "summary": {"project": "oc4ids-x-1"}})
    assert wanted.matches({"ocid": "ocds-a-1", "kind": "award.made", "summary": {"project": "oc4ids-x-1"}})
    assert not wanted.matches({"ocid": "ocds-a-2", "kind": "award.made", "summary": {"project": "oc4ids-x-2"}})
    assert not wanted.matches({"ocid": "ocds-a-3", "kind": "award.made", "summary": {}})
