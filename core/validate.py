"""Validate one release in three layers: structure, the OCDS release schema, and what the schema cannot say.

Pure: bytes in, a :class:`Verdict` out. No Kafka, database or socket import.

(a) **Structure** — always rejected, whatever the policy: oversize input, invalid UTF-8, not JSON, NaN or
    Infinity, duplicate keys, integers beyond 64 bits, U+0000, nesting deeper than ``max_depth``, not an
    object, ``ocid``/``id``/``date`` missing or not non-empty strings, ``date`` not RFC 3339, shapes ocdsmerge
    cannot merge; and an ocid outside the publisher's prefixes (rule ``prefix``).
(b) **Schema** — OCDS 1.1.5, draft 4 with formats, through jsonschema-rs (its verdicts are tested equal to
    ``jsonschema``'s); rule = the schema keyword, pointer = the instance path.
(c) **Beyond the schema** — real dates (rule ``date``, replacing the schema's ``format`` finding at the same
    pointer), references to ``parties`` (``party-reference``), amounts without currency (``currency``), and
    codes outside *open* codelists (``codelist``, severity ``warning``; closed codelists are schema enums).

``strict`` rejects any release with an ``error`` finding; ``lenient`` keeps (b) and (c) findings as quality
warnings and accepts. Duplicate keys, big integers and U+0000 are found by cheap byte counts on the common
path; an exact (slower) pass runs only when a count says it might find something.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import jsonschema_rs
import orjson

from core.checks import (
    build_plan,
    date_problem,
    exact_findings,
    inspect,
    is_date_time,
    kind_of,
    null_characters,
    pointer,
    shorten,
    too_deep,
    unhashable_ids,
)
from core.exceptions import ConfigurationError, Finding
from core.mexico import Facts, ProfileRule, check_rules
from core.schema import OcdsSchema
from core.types import Release

Policy = Literal["strict", "lenient"]

MAX_SUPPORTED_DEPTH = 250  # orjson reads 1,024 levels and writes 254; the depth test needs the latter
_DIGIT_RUNS = bytes.maketrans(b"0123456789", b"0000000000")
_LONG_INTEGER = b"0" * 19  # -2**63 - 1 has 19 digits: any shorter integer fits in 64 bits


@dataclass
class Verdict:
    """What validation concluded about one release."""

    release: Release | None
    findings: list[Finding] = field(default_factory=list)
    accepted: bool = False

    @property
    def errors(self) -> list[Finding]:
        """The findings of severity ``error``."""
        return [f for f in self.findings if f.severity == "error"]


class ReleaseValidator:
    """Validates releases against one OCDS schema. Build once; call :meth:`check` per release."""

    def __init__(self, schema: OcdsSchema, *, max_bytes: int = 10 * 1024 * 1024, max_depth: int = 64) -> None:
        if not 1 <= max_depth <= MAX_SUPPORTED_DEPTH:
            raise ConfigurationError(f"max_depth is {max_depth}; it must be between 1 and {MAX_SUPPORTED_DEPTH}")
        self.max_bytes = max_bytes
        self.max_depth = max_depth
        self._schema = jsonschema_rs.Draft4Validator(
            schema.release, validate_formats=True, formats={"date-time": is_date_time}
        )
        self._codelists = dict(schema.codelists)
        self._plan = build_plan(schema.release, frozenset(self._codelists))
        self._too_deep = b"\n" + b" " * (2 * max_depth)  # a line this indented sits max_depth levels down

    def check(
        self,
        raw: bytes | bytearray | memoryview | str,
        *,
        policy: Policy = "lenient",
        prefixes: Sequence[str] | None = None,
        rules: Sequence[ProfileRule] = (),
        rules_severity: str = "warning",
        notes: Sequence[Finding] = (),
    ) -> Verdict:
        """The verdict on one release given as bytes (UTF-8 JSON); never raises on bad input.

        ``rules`` are profile rules (``core.mexico``) checked with ``rules_severity``; ``notes`` are findings
        known beforehand (an extension of the release's profile that could not be resolved): both count
        towards the policy like schema findings, once the release's structure is sound.
        """
        _check_policy(policy)
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogatepass")
        elif not isinstance(raw, bytes):
            raw = bytes(raw)
        if len(raw) > self.max_bytes:
            size = f"the release is {len(raw):,} bytes, over the limit of {self.max_bytes:,} bytes"
            return Verdict(None, [Finding("", "size", size)])
        try:
            tree = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return Verdict(None, [_parse_error(raw, exc, self.max_depth)])
        return self._check_tree(tree, raw, policy, prefixes, _Extra(rules, rules_severity, notes))

    def check_release(
        self, release: Release, *, policy: Policy = "lenient", prefixes: Sequence[str] | None = None,
        rules: Sequence[ProfileRule] = (), rules_severity: str = "warning", notes: Sequence[Finding] = (),
    ) -> Verdict:
        """The verdict on an already-parsed release (HTTP ingest); ``release`` is never changed."""
        _check_policy(policy)
        as_object = release if isinstance(release, dict) else None
        try:
            raw = orjson.dumps(release)
        except (orjson.JSONEncodeError, TypeError) as exc:
            return Verdict(as_object, [_encode_error(exc, self.max_depth)])
        verdict = self._check_tree(orjson.loads(raw), raw, policy, prefixes, _Extra(rules, rules_severity, notes))
        if verdict.release is not None and verdict.release != release:
            message = "the release holds values JSON cannot carry (NaN, Infinity or non-JSON types)"
            return Verdict(as_object, [Finding("", "number", message)])
        return Verdict(as_object, verdict.findings, verdict.accepted)

    def schema_findings(self, release: object) -> list[Finding]:
        """Layer (b) alone: every error of the OCDS release schema, as jsonschema-rs reports it."""
        findings = []
        for error in self._schema.iter_errors(release):
            where = pointer(tuple(error.instance_path))
            keyword = error.schema_path[-1] if error.schema_path else "schema"
            message = f"{shorten(error.message, 300)} at {where or '/'}"
            findings.append(Finding(where, str(keyword), message))
        return findings

    def _check_tree(self, tree: Any, raw: bytes, policy: Policy, prefixes: Sequence[str] | None,
                    extra: _Extra) -> Verdict:
        release = tree if type(tree) is dict else None
        try:
            dumped = orjson.dumps(tree, option=orjson.OPT_INDENT_2)
        except orjson.JSONEncodeError:  # deeper than orjson writes, so deeper than max_depth
            dumped = b""
        if not dumped or self._too_deep in dumped:
            deep = too_deep(tree, self.max_depth)
            if deep is not None:
                return Verdict(release, [deep])
        structural = self._byte_level(tree, raw, dumped)
        if release is None:
            structural.append(Finding("", "object", f"a release must be a JSON object, not {kind_of(tree)}"))
            return Verdict(None, structural)
        structural.extend(_identity(release))
        inspection = inspect(release, self._plan, self._codelists)
        structural.extend(inspection.shape)
        ocid = release.get("ocid")
        if prefixes is not None and type(ocid) is str and ocid and not _has_prefix(ocid, prefixes):
            allowed = ", ".join(prefixes) or "none"
            message = f"ocid {shorten(ocid)!r} does not start with a prefix of this publisher ({allowed})"
            structural.append(Finding("/ocid", "prefix", message))
        if structural:
            return Verdict(release, structural)
        dated = {f.pointer for f in inspection.quality if f.rule == "date"}
        findings = [f for f in self.schema_findings(release) if not (f.rule == "format" and f.pointer in dated)]
        findings.extend(inspection.quality)
        if extra.rules:
            facts = Facts(foreign_amounts=inspection.foreign)
            findings.extend(check_rules(release, extra.rules, extra.severity, facts))
        findings.extend(extra.notes)
        accepted = policy == "lenient" or not any(f.severity == "error" for f in findings)
        return Verdict(release, findings, accepted)

    @staticmethod
    def _byte_level(tree: Any, raw: bytes, dumped: bytes) -> list[Finding]:
        """Duplicate keys, big integers, U+0000 and unmergeable ids: counted cheaply, then found exactly."""
        # Every key brings one colon. orjson writes colons in strings unescaped, so if the input (counting
        # \u003a escapes) has no more colons than what orjson read, no key was dropped as a duplicate.
        colons = raw.count(b":") + raw.count(b"\\u003")
        long_run = _LONG_INTEGER in raw.translate(_DIGIT_RUNS)  # 19 digits in a row: maybe a big integer
        findings = exact_findings(raw.decode("utf-8")) if colons != dumped.count(b":") or long_run else []
        if b"\\u0000" in raw:
            findings.extend(null_characters(tree))
        if b'"id": {' in dumped or b'"id": [' in dumped:
            findings.extend(unhashable_ids(tree))
        return findings


@dataclass(frozen=True)
class _Extra:
    """What a profile adds to the three layers: its rules, their severity, findings known beforehand."""

    rules: Sequence[ProfileRule] = ()
    severity: str = "warning"
    notes: Sequence[Finding] = ()


def _check_policy(policy: str) -> None:
    if policy not in ("strict", "lenient"):
        raise ConfigurationError(f"validation policy is {policy!r}; it must be 'strict' or 'lenient'")


def _has_prefix(ocid: str, prefixes: Sequence[str]) -> bool:
    if isinstance(prefixes, str):
        prefixes = [prefixes]
    lowered = ocid.lower()
    return any(lowered.startswith(p.lower().rstrip("-") + "-") for p in prefixes)


def _identity(release: dict[str, Any]) -> list[Finding]:
    """``ocid``, ``id`` and ``date`` as non-empty strings, ``date`` in RFC 3339, ``tag`` a list of strings."""
    findings = []
    for key in ("ocid", "id", "date"):
        if key not in release:
            findings.append(Finding(f"/{key}", "missing", f"/{key} is missing: every release needs one"))
        elif type(release[key]) is not str or not release[key]:
            shown = shorten(orjson.dumps(release[key]).decode(), 60)
            findings.append(Finding(f"/{key}", "not-a-string", f"/{key} must be a non-empty string, not {shown}"))
        elif key == "date" and (problem := date_problem(release[key])) is not None:
            findings.append(Finding("/date", "date", f"{shorten(release[key])!r} at /date {problem}"))
    tag = release.get("tag")
    if tag is not None and not (type(tag) is list and all(type(t) is str for t in tag)):
        findings.append(Finding("/tag", "merge-shape", "/tag must be an array of strings"))
    return findings


def _parse_error(raw: bytes, exc: orjson.JSONDecodeError, max_depth: int) -> Finding:
    """A clear finding for input orjson could not read."""
    at = f"line {exc.lineno} column {exc.colno}"
    if not raw.strip():
        return Finding("", "json", "the release is empty: send one JSON object")
    if raw.startswith(b"\xef\xbb\xbf"):
        return Finding("", "encoding", "the release starts with a byte order mark: send UTF-8 without one")
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")) or raw[1:4:2] == b"\x00\x00" or raw[0:3:2] == b"\x00\x00":
        return Finding("", "encoding", "the release looks like UTF-16: send UTF-8")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as bad:
        return Finding("", "encoding", f"the release is not valid UTF-8 at byte {bad.start}: {bad.reason}")
    if "depth limit" in exc.msg:
        return Finding("", "depth", f"the release is nested deeper than the limit of {max_depth} levels")
    rest = text[exc.pos : exc.pos + 9].lstrip("-+")
    if rest.startswith(("NaN", "Infinity", "nan", "inf", "Inf")):
        return Finding("", "number", f"NaN and Infinity are not JSON numbers ({at}): send null or a string")
    if "infinity" in exc.msg:
        return Finding("", "number", f"a number is too large for a double ({at}): send it as a string")
    if text[exc.pos : exc.pos + 1] == "\x00":
        return Finding("", "null-character", f"the release holds a null byte ({at})")
    return Finding("", "json", f"the release is not JSON: {exc.msg.lower()} ({at})")


def _encode_error(exc: Exception, max_depth: int) -> Finding:
    """A clear finding for an object that orjson could not write."""
    message = str(exc)
    if "Recursion" in message:
        return Finding("", "depth", f"the release is nested deeper than the limit of {max_depth} levels")
    if "Integer" in message:
        return Finding("", "number", "an integer in the release does not fit in 64 bits; send it as a string")
    return Finding("", "json", f"the release cannot be written as JSON: {message.lower()}")
