"""Layered validation: structure, the OCDS 1.1.5 schema (jsonschema-rs, checked against jsonschema), and more."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.checks import pointer
from core.exceptions import ConfigurationError
from core.schema import OcdsSchema
from core.types import Release
from core.validate import Policy, ReleaseValidator, Verdict
from tests.conftest import REAL_DATA
from tests.corpus.bad_releases import BASE_RELEASE, PREFIX, bad_inputs, mutate, schema_defects

POLICIES: tuple[Policy, ...] = ("lenient", "strict")
Labelled = list[tuple[str, Release]]


@pytest.fixture(scope="module")
def validator(schema: OcdsSchema) -> ReleaseValidator:
    """One validator for the whole module, as the stream processor keeps one."""
    return ReleaseValidator(schema)


@pytest.fixture(scope="module")
def reference(schema: OcdsSchema) -> jsonschema.Draft4Validator:
    """The reference engine: jsonschema's draft 4 validator with its format checker."""
    return jsonschema.Draft4Validator(schema.release, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER)


def real_lines(name: str = "*") -> list[tuple[str, bytes]]:
    """The real releases as (file:line, raw bytes)."""
    return [
        (f"{path.name}:{number}", line)
        for path in sorted(REAL_DATA.glob(f"{name}.releases.jsonl"))
        for number, line in enumerate(path.read_bytes().splitlines(), 1)
        if line.strip()
    ]


def real_releases() -> Labelled:
    """The 475 real releases, parsed."""
    return [(label, orjson.loads(line)) for label, line in real_lines()]


def mutated_releases() -> Labelled:
    """The corpus's schema defects, on its base release and on the first release of four real files."""
    bases = [("base", BASE_RELEASE)] + [
        (label, orjson.loads(line))
        for name in ("mx-apf", "mx-jalisco", "py-dncp", "mx-inai-2017")
        for label, line in real_lines(name)[:1]
    ]
    return schema_defects(bases)


# Add a set here (e.g. the simulator's output) to hold it to the same standard.
PARITY_SETS: dict[str, Callable[[], Labelled]] = {"real": real_releases, "mutated": mutated_releases}


def assert_schema_parity(
    validator: ReleaseValidator, reference: jsonschema.Draft4Validator, releases: Iterable[tuple[str, Release]]
) -> int:
    """Assert jsonschema-rs and jsonschema report the same (pointer, keyword) multiset on each release."""
    compared = 0
    for label, release in releases:
        fast = sorted((f.pointer, f.rule) for f in validator.schema_findings(release))
        slow = sorted((pointer(tuple(e.absolute_path)), str(e.validator)) for e in reference.iter_errors(release))
        assert fast == slow, f"{label}: jsonschema-rs and jsonschema disagree"
        compared += len(slow)
    return compared


@pytest.mark.parametrize("name", sorted(PARITY_SETS))
def test_schema_layer_agrees_with_jsonschema(
    name: str, validator: ReleaseValidator, reference: jsonschema.Draft4Validator
) -> None:
    """jsonschema-rs reports the same errors (instance path, keyword) as jsonschema on every release of a set."""
    releases = PARITY_SETS[name]()
    assert len(releases) > 30
    assert assert_schema_parity(validator, reference, releases) > 0


def test_schema_layer_counts_match_the_data_readme(validator: ReleaseValidator) -> None:
    """The schema layer finds the error counts the data README reports per file."""
    expected = {"mx-gacm-naicm": (292, 478), "mx-inai-2017": (88, 1270), "mx-apf": (2, 2), "mx-cdmx": (0, 0)}
    for name, (invalid, errors) in expected.items():
        found = [validator.schema_findings(orjson.loads(line)) for _, line in real_lines(name)]
        assert (sum(1 for f in found if f), sum(len(f) for f in found)) == (invalid, errors), name


def test_schema_findings_escape_pointers(validator: ReleaseValidator) -> None:
    """Schema findings carry the instance path as a JSON Pointer with ~ and / escaped."""
    release = mutate(BASE_RELEASE, "parties.0.roles", "buyer")
    assert [(f.pointer, f.rule) for f in validator.schema_findings(release)] == [("/parties/0/roles", "type")]
    assert pointer(("a/b", "c~d", 0)) == "/a~1b/c~0d/0"


# --- (a) structure: always rejected ----------------------------------------------------------------------------

STRUCTURAL: list[tuple[str, str, str]] = [  # corpus label, rule, pointer
    ("empty", "json", ""),
    ("truncated-5-of-10", "json", ""),
    ("invalid-utf8-ff", "encoding", ""),
    ("utf8-bom", "encoding", ""),
    ("nan-amount", "number", ""),
    ("negative-infinity-amount", "number", ""),
    ("integer-over-64-bits", "number", "/awards/0/value/amount"),
    ("duplicate-nested-title", "duplicate-key", "/tender/title"),
    ("duplicate-escaped-key", "duplicate-key", "/language"),
    ("nested-10000-arrays", "depth", ""),
    ("nested-300-in-extension", "depth", "/x" + "/0" * 63),
    ("string-10mb-in-description", "size", ""),
    ("array-of-release", "object", ""),
    ("missing-ocid", "missing", "/ocid"),
    ("number-ocid", "not-a-string", "/ocid"),
    ("empty-id", "not-a-string", "/id"),
    ("date-february-30", "date", "/date"),
    ("prefix-unknown", "prefix", "/ocid"),
    ("tender-string", "merge-shape", "/tender"),
    ("parties-object", "merge-shape", "/parties"),
    ("award-id-object", "merge-shape", "/awards/0/id"),
    ("extension-array-id-object", "merge-shape", "/x/0/id"),
    ("tag-string", "merge-shape", "/tag"),
    ("null-escape-in-string", "null-character", "/tender/title"),
    ("null-byte-in-string", "null-character", ""),
]


@pytest.fixture(scope="module")
def corpus() -> dict[str, bytes]:
    """The bad-release corpus by label."""
    return dict(bad_inputs())


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize(("label", "rule", "where"), STRUCTURAL, ids=[s[0] for s in STRUCTURAL])
def test_check_rejects_structural_defects_under_both_policies(
    validator: ReleaseValidator, corpus: dict[str, bytes], label: str, rule: str, where: str, policy: Policy
) -> None:
    """Each structural defect is rejected whatever the policy, with its rule and pointer first."""
    verdict = validator.check(corpus[label], policy=policy, prefixes=[PREFIX])
    assert not verdict.accepted
    assert (verdict.findings[0].rule, verdict.findings[0].pointer) == (rule, where)
    assert all(f.severity == "error" for f in verdict.findings)


def test_check_rejects_duplicate_keys_under_lenient(validator: ReleaseValidator) -> None:
    """Duplicate keys are rejected (orjson would keep the last one silently), each one named."""
    raw = b'{"ocid":"ocds-07smqs-1","id":"1","date":"2017-01-01T00:00:00Z","tag":["tender"],"tag":["award"],'
    raw += b'"tender":{"id":"t","id":"u"}}'
    verdict = validator.check(raw, policy="lenient")
    assert not verdict.accepted
    found = {(f.rule, f.pointer) for f in verdict.findings}
    assert found == {("duplicate-key", "/tag"), ("duplicate-key", "/tender/id")}


def test_check_rejects_10000_deep_nesting_without_recursion_error(validator: ReleaseValidator) -> None:
    """10,000 levels of nesting are rejected as too deep, not a RecursionError, also through check_release."""
    assert validator.check(b"[" * 10_000 + b"]" * 10_000).findings[0].rule == "depth"
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(10_000):
        node["a"] = {}
        node = node["a"]
    release = {**BASE_RELEASE, "x": deep}
    assert validator.check_release(release).findings[0].rule == "depth"


def test_check_rejects_oversize_input_before_parsing(schema: OcdsSchema) -> None:
    """Input over max_bytes is rejected on its length alone, so even invalid bytes report only the size."""
    small = ReleaseValidator(schema, max_bytes=100)
    verdict = small.check(b"\xff" * 101)
    assert (verdict.release, [f.rule for f in verdict.findings]) == (None, ["size"])


def test_check_reports_nan_clearly(validator: ReleaseValidator, corpus: dict[str, bytes]) -> None:
    """NaN and Infinity get a message that names them, not orjson's generic one."""
    assert "NaN and Infinity" in validator.check(corpus["nan-amount"]).findings[0].message


def test_check_accepts_valid_release_under_strict(validator: ReleaseValidator) -> None:
    """The corpus base release is valid: accepted under strict with no findings."""
    verdict = validator.check(orjson.dumps(BASE_RELEASE), policy="strict", prefixes=[PREFIX])
    assert (verdict.accepted, verdict.findings) == (True, [])
    assert verdict.release == BASE_RELEASE


def test_check_accepts_real_mexican_data_under_lenient_with_findings(validator: ReleaseValidator) -> None:
    """All 425 real Mexican releases are accepted under lenient; those with schema errors keep them as findings."""
    verdicts = [validator.check(line) for label, line in real_lines("mx-*")]
    assert len(verdicts) == 425
    assert all(v.accepted for v in verdicts)
    assert sum(1 for v in verdicts if any(f.rule in ("type", "required", "format") for f in v.findings)) == 382


def test_check_rejects_real_mexican_data_under_strict(validator: ReleaseValidator) -> None:
    """Under strict, every real release with an error finding is rejected: all INAI-2017 and APF, most GACM."""
    for name, at_least in (("mx-gacm-naicm", 292), ("mx-inai-2017", 88), ("mx-apf", 2)):
        verdicts = [validator.check(line, policy="strict") for _, line in real_lines(name)]
        rejected = [v for v in verdicts if not v.accepted]
        assert all(v.errors for v in rejected) and not any(v.errors for v in verdicts if v.accepted), name
        assert len(rejected) >= at_least, name


def test_check_release_returns_the_caller_object(validator: ReleaseValidator) -> None:
    """check_release validates a parsed release and hands back the same object."""
    release = copy.deepcopy(BASE_RELEASE)
    verdict = validator.check_release(release, policy="strict", prefixes=[PREFIX])
    assert verdict.accepted and verdict.release is release


@pytest.mark.parametrize(
    ("value", "rule"), [(float("nan"), "number"), (float("inf"), "number"), (2**70, "number"), ({1, 2}, "json")]
)
def test_check_release_rejects_values_json_cannot_carry(validator: ReleaseValidator, value: object, rule: str) -> None:
    """check_release rejects NaN, Infinity, integers beyond 64 bits and non-JSON types."""
    verdict = validator.check_release({**BASE_RELEASE, "x": value})
    assert not verdict.accepted and verdict.findings[0].rule == rule


def test_validator_refuses_bad_settings(schema: OcdsSchema, validator: ReleaseValidator) -> None:
    """A max_depth beyond what the parser can check, or an unknown policy, is a configuration error."""
    with pytest.raises(ConfigurationError, match="max_depth"):
        ReleaseValidator(schema, max_depth=1000)
    with pytest.raises(ConfigurationError, match="policy"):
        validator.check(b"{}", policy="loose")  # type: ignore[arg-type]


def test_max_depth_is_exact(schema: OcdsSchema) -> None:
    """A release nested exactly max_depth levels passes; one more level is rejected."""
    shallow = ReleaseValidator(schema, max_depth=5)
    base = orjson.dumps(BASE_RELEASE)[:-1]
    assert shallow.check(base + b',"x":[[[[1]]]]}').accepted  # root + 4 arrays = 5 levels
    assert shallow.check(base + b',"x":[[[[[1]]]]]}').findings[0].rule == "depth"


# --- (c) what the schema cannot express ------------------------------------------------------------------------


def _findings(verdict: Verdict) -> set[tuple[str, str, str]]:
    return {(f.rule, f.pointer, f.severity) for f in verdict.findings}


def test_prefix_matches_case_insensitively(validator: ReleaseValidator) -> None:
    """CDMX's upper-case OCDS-87SD3T-… ocids match the registered prefix ocds-87sd3t."""
    for _, line in real_lines("mx-cdmx"):
        verdict = validator.check(line, prefixes=["ocds-87sd3t"])
        assert verdict.accepted and "prefix" not in {f.rule for f in verdict.findings}
    release = mutate(BASE_RELEASE, "ocid", "OCDS-07SMQS-1542970")
    assert validator.check_release(release, policy="strict", prefixes=[PREFIX]).accepted


@pytest.mark.parametrize("policy", POLICIES)
def test_prefix_mismatch_is_rejected_under_both_policies(validator: ReleaseValidator, policy: Policy) -> None:
    """An ocid outside the publisher's prefixes is rejected even under lenient; no prefixes at all rejects all."""
    verdict = validator.check_release(BASE_RELEASE, policy=policy, prefixes=["ocds-87sd3t"])
    assert not verdict.accepted and _findings(verdict) == {("prefix", "/ocid", "error")}
    assert not validator.check_release(BASE_RELEASE, policy=policy, prefixes=[]).accepted


def test_impossible_date_is_one_date_finding(validator: ReleaseValidator) -> None:
    """An impossible nested date is reported once, as rule date (not also as the schema's format)."""
    release = mutate(BASE_RELEASE, "tender.tenderPeriod.startDate", "2023-02-30T00:00:00Z")
    lenient = validator.check_release(release)
    assert lenient.accepted and _findings(lenient) == {("date", "/tender/tenderPeriod/startDate", "error")}
    assert "day 30 of 2023-02" in lenient.findings[0].message
    assert not validator.check_release(release, policy="strict").accepted


def test_dates_are_checked_everywhere_the_schema_has_one(validator: ReleaseValidator) -> None:
    """Award, document and period dates all go through the date check."""
    release = mutate(BASE_RELEASE, "awards.0.date", "2017-13-01T00:00:00Z")
    release = mutate(release, "tender.documents.0.datePublished", "0000-01-01T00:00:00Z")
    release = mutate(release, "awards.0.contractPeriod", {"endDate": "2017-06-31T00:00:00Z"})
    assert {f.pointer for f in validator.check_release(release).findings if f.rule == "date"} == {
        "/awards/0/date",
        "/tender/documents/0/datePublished",
        "/awards/0/contractPeriod/endDate",
    }


def test_open_codelist_value_is_a_warning(validator: ReleaseValidator) -> None:
    """Codes outside open codelists (documentType, partyRole) are warnings: strict still accepts."""
    release = mutate(BASE_RELEASE, "tender.documents.0.documentType", "oficio")
    release = mutate(release, "parties.1.roles", ["supplier", "contratista"])
    verdict = validator.check_release(release, policy="strict")
    assert verdict.accepted
    assert _findings(verdict) == {
        ("codelist", "/tender/documents/0/documentType", "warning"),
        ("codelist", "/parties/1/roles/1", "warning"),
    }


def test_closed_codelist_value_is_reported_once(validator: ReleaseValidator) -> None:
    """A currency outside the closed currency codelist is the schema's enum error, not also a codelist one."""
    verdict = validator.check_release(mutate(BASE_RELEASE, "tender.value.currency", "MNX"))
    assert _findings(verdict) == {("enum", "/tender/value/currency", "error")}


@pytest.mark.parametrize(
    ("path", "where"),
    [
        ("buyer.id", "/buyer/id"),
        ("tender.procuringEntity.id", "/tender/procuringEntity/id"),
        ("awards.0.suppliers.0.id", "/awards/0/suppliers/0/id"),
        ("tender.tenderers", "/tender/tenderers/0/id"),
    ],
)
def test_reference_to_missing_party_is_reported(validator: ReleaseValidator, path: str, where: str) -> None:
    """buyer, procuringEntity, suppliers and tenderers must name an entry of /parties."""
    value: Any = [{"id": "nobody", "name": "X"}] if path.endswith("tenderers") else "nobody"
    verdict = validator.check_release(mutate(BASE_RELEASE, path, value))
    assert verdict.accepted and _findings(verdict) == {("party-reference", where, "error")}
    assert not validator.check_release(mutate(BASE_RELEASE, path, value), policy="strict").accepted


def test_references_without_parties_are_all_reported(validator: ReleaseValidator) -> None:
    """With no parties array, every reference with an id dangles; a reference without id is left alone."""
    release = mutate(BASE_RELEASE, "parties", drop=True)
    release = mutate(release, "buyer", {"name": "SHCP"})
    pointers = {f.pointer for f in validator.check_release(release).findings if f.rule == "party-reference"}
    assert pointers == {"/tender/procuringEntity/id", "/awards/0/suppliers/0/id"}


def test_amount_without_currency_is_reported(validator: ReleaseValidator) -> None:
    """A Value with an amount needs a currency; a null currency counts as missing."""
    release = mutate(BASE_RELEASE, "tender.value.currency", drop=True)
    release = mutate(release, "awards.0.value.currency", None)
    assert _findings(validator.check_release(release)) == {
        ("currency", "/tender/value/currency", "error"),
        ("currency", "/awards/0/value/currency", "error"),
    }


# --- the corpus, properties and purity -------------------------------------------------------------------------


def test_corpus_is_rejected_under_lenient(validator: ReleaseValidator, corpus: dict[str, bytes]) -> None:
    """Every corpus entry (at least 100, unique labels) is rejected under lenient, and the lot checks in < 2 s."""
    labels = [label for label, _ in bad_inputs()]
    assert len(labels) >= 100 and len(set(labels)) == len(labels)
    started = time.perf_counter()
    verdicts = {label: validator.check(raw, policy="lenient", prefixes=[PREFIX]) for label, raw in corpus.items()}
    elapsed = time.perf_counter() - started
    accepted = [label for label, v in verdicts.items() if v.accepted or not v.findings]
    assert accepted == []
    assert elapsed < 2.0


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_check_never_raises_on_arbitrary_bytes(validator: ReleaseValidator, raw: bytes) -> None:
    """check() returns a Verdict for any bytes at all."""
    verdict = validator.check(raw)
    assert isinstance(verdict, Verdict) and (verdict.accepted or verdict.findings)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_check_never_raises_on_arbitrary_json(validator: ReleaseValidator, value: Any) -> None:
    """check() and check_release() return a Verdict for any JSON value, NaN and huge integers included."""
    assert isinstance(validator.check(json.dumps(value).encode()), Verdict)
    assert isinstance(validator.check_release(value), Verdict)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["ocid", "tag", "tender", "parties", "awards", "buyer", "date", "x"]), json_values)
def test_check_never_raises_on_a_release_with_arbitrary_member(
    validator: ReleaseValidator, key: str, value: Any
) -> None:
    """check() returns a Verdict when one member of a valid release holds anything at all."""
    assert isinstance(validator.check(json.dumps({**BASE_RELEASE, key: value}).encode()), Verdict)


def test_validation_never_mutates_the_release(validator: ReleaseValidator, corpus: dict[str, bytes]) -> None:
    """check_release leaves every release as it was (real data, mutations, parseable corpus entries)."""
    releases: list[Any] = [r for _, r in real_releases() + mutated_releases()]
    for raw in corpus.values():
        if len(raw) < 1_000_000:
            try:
                releases.append(json.loads(raw))
            except (ValueError, RecursionError):
                continue
    for release in releases:
        before = copy.deepcopy(release)
        validator.check_release(release, policy="strict", prefixes=[PREFIX])
        assert release == before


def test_validate_imports_no_kafka_database_or_socket() -> None:
    """core.validate is pure: it imports no socket itself, and importing it loads no Kafka or database module."""
    root = Path(__file__).resolve().parents[2]
    code = "import sys, core.validate; print(' '.join(sorted(sys.modules)))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
    assert not set(run.stdout.split()) & {"kafka", "aiokafka", "faust", "psycopg2", "pgserver", "asyncio"}
    for module in ("core/validate.py", "core/checks.py"):
        source = (root / module).read_text()
        assert "import socket" not in source and "urllib" not in source, module
