"""The simulator of Mexican federal procurement: valid, deterministic, ordered, realistic, with planted defects."""

from __future__ import annotations

import io
import itertools
import json
import re
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import jsonschema
import ocdsmerge
import orjson
import pytest

from core.schema import OcdsSchema
from producers.simulator import (
    DEFECTS,
    DIRECT_AWARD_LIMIT,
    INFRASTRUCTURE,
    PREFIX,
    RED_FLAGS,
    SimulatedRelease,
    simulate,
    write_jsonl,
)


@pytest.fixture(scope="module")
def sample() -> list[SimulatedRelease]:
    """The releases of 300 processes, a few of them long, with no defects."""
    return list(simulate(seed=11, processes=300, long_process_rate=0.01, long_process_releases=40))


@dataclass
class Process:
    method: str = ""
    flags: tuple[str, ...] = ()
    buyer: str = ""
    tender_days: float | None = None
    bidders: int | None = None
    suppliers: tuple[str, ...] = ()
    awarded: float | None = None
    contract_values: list[float] = field(default_factory=list)


@pytest.fixture(scope="module")
def processes() -> dict[str, Process]:
    """A summary of each of 5,000 simulated processes, read from its releases."""
    out: dict[str, Process] = defaultdict(Process)
    for event in simulate(seed=5, processes=5000):
        release, process = event.release, out[event.release["ocid"]]
        tender = release["tender"]
        process.method, process.flags, process.buyer = tender["procurementMethod"], event.red_flags, release[
            "buyer"]["id"]
        if "tenderPeriod" in tender:
            period = tender["tenderPeriod"]
            days = datetime.fromisoformat(period["endDate"]) - datetime.fromisoformat(period["startDate"])
            process.tender_days = days.total_seconds() / 86400
        if "numberOfTenderers" in tender:
            process.bidders = tender["numberOfTenderers"]
        if "awards" in release:
            process.suppliers = tuple(s["id"] for a in release["awards"] for s in a["suppliers"])
            process.awarded = sum(a["value"]["amount"] for a in release["awards"])
        if "contracts" in release:
            process.contract_values.append(release["contracts"][0]["value"]["amount"])
    return out


def test_valid_releases_validate(schema: OcdsSchema, sample: list[SimulatedRelease]) -> None:
    """Every release without a defect validates against the 1.1.5 schema, formats checked."""
    validator = jsonschema.Draft4Validator(schema.release, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER)
    started = time.process_time()
    for event in sample[:: max(1, len(sample) // 1000)]:
        errors = [f"{e.json_path}: {e.message}" for e in validator.iter_errors(event.release)]
        assert not errors, (event.release["id"], errors[:5])
    assert time.process_time() - started < 30


def test_releases_look_mexican(schema: OcdsSchema, sample: list[SimulatedRelease]) -> None:
    """Prefix, language, -06:00 dates, MXN amounts, codelist values and references to existing parties."""
    stages: Counter[str] = Counter()
    for event in sample:
        release = event.release
        assert release["ocid"].startswith(f"{PREFIX}-") and release["language"] == "es"
        assert release["date"].endswith("-06:00")
        stages.update(release["tag"])
        parties = {p["id"]: p for p in release["parties"]}
        assert len(parties) == len(release["parties"])
        assert "buyer" in parties[release["buyer"]["id"]]["roles"]
        for party in release["parties"]:
            assert set(party["roles"]) <= schema.codelists["partyRole"]
            assert party["identifier"]["scheme"] == "MX-RFC"
        for award in release.get("awards", []):
            assert all("supplier" in parties[s["id"]]["roles"] for s in award["suppliers"])
        for org in release["tender"].get("tenderers", []):
            assert "tenderer" in parties[org["id"]]["roles"]
        for contract in release.get("contracts", []):
            for tx in contract.get("implementation", {}).get("transactions", []):
                assert "payer" in parties[tx["payer"]["id"]]["roles"]
                assert "payee" in parties[tx["payee"]["id"]]["roles"]
        text = json.dumps(release)
        assert '"currency": "MXN"' in text and '"currency": null' not in text
        for doc in release["tender"].get("documents", []):
            assert doc["documentType"] in schema.codelists["documentType"] and doc["url"].startswith("https://")
    assert set(stages) >= {"planning", "tender", "tenderUpdate", "award", "contract", "contractAmendment",
                           "implementation"}


def test_releases_merge_per_process(schema: OcdsSchema, sample: list[SimulatedRelease]) -> None:
    """The releases of each process merge with ocdsmerge, into compiled and versioned releases."""
    merger = ocdsmerge.Merger(schema=schema.release)
    by_ocid: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in sample:
        by_ocid[event.release["ocid"]].append(event.release)
    for releases in itertools.islice(by_ocid.values(), 120):
        compiled = merger.create_compiled_release(releases)
        merger.create_versioned_release(releases)
        assert compiled["ocid"] == releases[0]["ocid"]
    longest = max(by_ocid.values(), key=len)
    assert len(longest) > 40
    compiled = merger.create_compiled_release(longest)
    paid = compiled["contracts"][0]["implementation"]["transactions"]
    assert len(paid) >= 20


def test_ids_are_unique_and_dates_ascending(sample: list[SimulatedRelease]) -> None:
    """Release ids are unique per ocid and the stream is in ascending date order."""
    seen = Counter((e.release["ocid"], e.release["id"]) for e in sample)
    assert max(seen.values()) == 1
    dates = [datetime.fromisoformat(e.release["date"]) for e in sample]
    assert dates == sorted(dates)
    assert len({e.release["ocid"] for e in sample}) == 300


def test_same_seed_same_bytes() -> None:
    """The same seed gives byte-identical releases; another seed gives different ones."""
    def first(seed: int) -> list[str]:
        return [json.dumps(e.release, sort_keys=True) for e in itertools.islice(
            simulate(seed=seed, processes=200, defect_rate=0.05), 600)]
    assert first(3) == first(3)
    assert first(3) != first(4)


def test_defects_are_labelled_and_fail(schema: OcdsSchema) -> None:
    """Releases broken on purpose are labelled, fail validation or the structure checks, and are a set fraction."""
    validator = jsonschema.Draft4Validator(schema.release, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER)
    events = list(simulate(seed=2, processes=400, defect_rate=0.1))
    broken = [e for e in events if e.defect]
    assert 0.06 < len(broken) / len(events) < 0.14
    assert {e.defect for e in broken} == set(DEFECTS)
    for event in broken:
        release = event.release
        invalid = any(True for _ in validator.iter_errors(release))
        wrong_prefix = not release["ocid"].startswith(f"{PREFIX}-")
        dangling = release["buyer"]["id"] not in {p["id"] for p in release["parties"]}
        assert invalid or wrong_prefix or dangling, event.defect
    for event in events[:300]:
        if not event.defect:
            assert not any(True for _ in validator.iter_errors(event.release))


def test_method_proportions_near_mexico(processes: dict[str, Process]) -> None:
    """Direct awards ~70-78%, invitations to three ~10-15%, open tenders the rest."""
    methods = Counter(p.method for p in processes.values())
    total = sum(methods.values())
    assert total == 5000
    assert 0.70 <= methods["direct"] / total <= 0.78
    assert 0.10 <= methods["limited"] / total <= 0.15
    assert 0.09 <= methods["open"] / total <= 0.17


def test_red_flags_planted_and_labelled(processes: dict[str, Process]) -> None:
    """Each suspicious pattern appears in a few percent of processes, and exactly where it is labelled."""
    flagged = Counter(flag for p in processes.values() for flag in p.flags)
    assert set(flagged) == set(RED_FLAGS)
    assert 0.02 <= sum(1 for p in processes.values() if p.flags) / len(processes) <= 0.12
    for p in processes.values():
        competitive = p.method in ("open", "limited")
        if competitive and p.bidders is not None:
            assert (p.bidders == 1) == ("single-bidder" in p.flags)
        if competitive and p.tender_days is not None:
            assert (p.tender_days < 5) == ("short-tender-period" in p.flags)
        if len(p.contract_values) > 1:
            raised = max(p.contract_values) > 1.2 * p.contract_values[0]
            assert raised == ("value-raising-amendment" in p.flags)
    groups: dict[tuple[str, tuple[str, ...]], list[Process]] = defaultdict(list)
    for p in processes.values():
        if p.method == "direct" and p.awarded and 0.9 * DIRECT_AWARD_LIMIT <= p.awarded < DIRECT_AWARD_LIMIT:
            assert "split-below-threshold" in p.flags
            groups[(p.buyer, p.suppliers)].append(p)
        else:
            assert "split-below-threshold" not in p.flags
    assert groups and all(len(g) >= 3 for g in groups.values())


def test_a_share_of_processes_build_infrastructure_projects() -> None:
    """About 30% of processes name one of 20 investment projects by a Cartera key (every release of such a
    process names the same key and the project's name); the rest name none, and project_share=0 names none."""
    named: dict[str, set[tuple[str, str] | None]] = defaultdict(set)
    for event in simulate(seed=4, processes=3000):
        budget = (event.release.get("planning") or {}).get("budget") or {}
        named[event.release["ocid"]].add((budget["projectID"], budget["project"]) if "projectID" in budget else None)
    assert all(len(keys) == 1 for keys in named.values()), "a process changed project"
    keys = Counter(next(iter(k)) for k in named.values())
    members = sum(n for key, n in keys.items() if key is not None)
    assert 0.27 < members / len(named) < 0.33
    projects = {key for key in keys if key is not None}
    assert len(projects) == len(INFRASTRUCTURE) == 20
    assert all(re.fullmatch(r"24\d{2}[0-9A-Z]{3}\d{4}", key) for key, _ in projects)
    assert len({name for _, name in projects}) == 20
    plain = simulate(seed=4, processes=300, project_share=0.0)
    assert not any("projectID" in ((e.release.get("planning") or {}).get("budget") or {}) for e in plain)


def test_long_process_and_speed() -> None:
    """A long process gets hundreds of implementation releases; generation is fast."""
    started = time.process_time()
    events = list(simulate(seed=9, processes=2000, long_process_rate=0.001, long_process_releases=250))
    elapsed = time.process_time() - started
    per_ocid = Counter(e.release["ocid"] for e in events)
    assert max(per_ocid.values()) > 250
    assert len(events) / elapsed > 1500


def test_write_jsonl_counts_lines() -> None:
    """write_jsonl writes one release per line, defects included, and returns the count."""
    events = list(simulate(seed=1, processes=30, defect_rate=0.2))
    out = io.BytesIO()
    assert write_jsonl(events, out) == len(events)
    lines = out.getvalue().splitlines()
    assert [orjson.loads(line) for line in lines] == [e.release for e in events]


def test_bad_arguments_rejected() -> None:
    """Negative seeds or rates outside [0, 1] are refused at once."""
    with pytest.raises(ValueError):
        simulate(seed=-1, processes=1)
    with pytest.raises(ValueError):
        simulate(seed=1, processes=1, defect_rate=1.5)
