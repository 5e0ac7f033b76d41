"""The checks behind :mod:`core.validate`: RFC 3339 dates, the plan of a release's shape, slow exact passes.

Pure: no Kafka, database or socket import. Everything here reports :class:`~core.exceptions.Finding`\\ s.
"""

from __future__ import annotations

import calendar
import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from core.exceptions import Finding

Path = tuple[str | int, ...]

MAX_INT = 2**64 - 1  # orjson reads integers in [-2**63, 2**64) exactly, and larger ones as lossy floats
MIN_INT = -(2**63)

_RFC3339 = re.compile(
    r"(\d{4})-(0[1-9]|1[0-2])-(\d{2})[Tt](?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d+)?"
    r"(?:[Zz]|[+-](?:[01]\d|2[0-3]):[0-5]\d)",
    re.ASCII,
)


def pointer(path: Path) -> str:
    """The JSON Pointer (RFC 6901) of ``path``: ``~`` and ``/`` escaped."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


def shorten(text: str, limit: int = 200) -> str:
    """``text`` cut to ``limit`` characters, so a huge value never floods a message."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


@lru_cache(maxsize=4096)
def date_problem(value: str) -> str | None:
    """Why ``value`` is not an RFC 3339 date-time, or None when it is one.

    The same rules as ``rfc3339-validator`` (what ``jsonschema`` uses): ``T`` and ``Z`` in either case,
    a real calendar day, no year 0, no leap second. Cached: a release repeats its dates.
    """
    match = _RFC3339.fullmatch(value)
    if match is None:
        return "is not an RFC 3339 date-time such as 2017-03-01T12:00:00Z"
    day = int(match[3])
    if 1 <= day <= 28 and match[1] != "0000":
        return None
    year, month = int(match[1]), int(match[2])
    if year == 0:
        return "has year 0000, which does not exist"
    if not 1 <= day <= calendar.monthrange(year, month)[1]:
        return f"names day {day:02} of {year:04}-{month:02}, which does not exist"
    return None


def is_date_time(value: object) -> bool:
    """Whether ``value`` is an RFC 3339 date-time (the ``date-time`` format handed to jsonschema-rs)."""
    return type(value) is str and date_problem(value) is None


# --- the plan: what the release schema says about the shape of each field ---------------------------------


OBJECT, ARRAY, DATE, CODES = range(4)


@dataclass
class Plan:
    """For one object in the schema: what each field must hold (an object, objects, a date, codes)."""

    fields: dict[str, tuple[int, Any]] = field(default_factory=dict)  # key -> (kind, sub-plan or codelist)
    value: bool = False  # a Value: an amount needs a currency
    reference: bool = False  # an OrganizationReference: its id names an entry of /parties
    known: frozenset[str] | None = None  # the fields the schema defines here (None: any field is known)
    patterns: tuple[re.Pattern[str], ...] = ()  # the schema's patternProperties (language variants)

    def defines(self, key: str) -> bool:
        """Whether the schema defines ``key`` in this object (by name or by a pattern)."""
        if self.known is None or key in self.known:
            return True
        return any(p.search(key) for p in self.patterns)


def build_plan(release_schema: dict[str, Any], open_codelists: frozenset[str]) -> Plan:
    """The plan of the release schema; ``open_codelists`` names the codelists whose codes are loaded.

    Objects and arrays of objects are what ocdsmerge descends into (so their shape must hold), except
    ``wholeListMerge`` arrays, which it merges as one value. Schema keys hold no ``/`` or ``~``, so the
    walk below can build JSON Pointers without escaping.
    """
    definitions: dict[str, Any] = release_schema.get("definitions", {})
    memo: dict[str, Plan] = {}

    def resolve(node: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/definitions/"):
            name = ref.rsplit("/", 1)[1]
            return definitions.get(name, {}), name
        return node, None

    def types_of(node: dict[str, Any]) -> list[str]:
        types = node.get("type", ["object"] if "properties" in node else [])
        return [types] if isinstance(types, str) else list(types)

    def plan_of(node: dict[str, Any], name: str | None) -> Plan:
        if name is not None and name in memo:
            return memo[name]
        plan = Plan(value=name == "Value", reference=name == "OrganizationReference")
        if "properties" in node:
            plan.known = frozenset(node["properties"])
            plan.patterns = tuple(re.compile(p) for p in node.get("patternProperties", {}))
        if name is not None:
            memo[name] = plan  # before recursing, so a recursive definition terminates
        for key, raw_property in node.get("properties", {}).items():
            prop, prop_name = resolve(raw_property)
            types = types_of(prop)
            codelist = str(prop.get("codelist", "")).removesuffix(".csv")
            if "object" in types and "array" not in types:
                plan.fields[key] = (OBJECT, plan_of(prop, prop_name))
            elif "array" in types and not prop.get("wholeListMerge"):
                items, items_name = resolve(prop.get("items", {}))
                if "object" in types_of(items):
                    plan.fields[key] = (ARRAY, plan_of(items, items_name))
            if prop.get("format") == "date-time":
                plan.fields[key] = (DATE, None)
            elif prop.get("openCodelist") and codelist in open_codelists:
                plan.fields[key] = (CODES, codelist)
        return plan

    return plan_of(release_schema, None)


@dataclass
class Inspection:
    """What one walk of a release along the plan found."""

    shape: list[Finding] = field(default_factory=list)  # ocdsmerge cannot merge: always rejected
    quality: list[Finding] = field(default_factory=list)  # layer (c): dates, codes, currency, references
    additional: dict[tuple[int, str], list[Any]] = field(default_factory=dict)  # (plan, key) -> [pointer, count]
    foreign: list[tuple[str, str]] = field(default_factory=list)  # (pointer, currency) of amounts not in MXN


def inspect(release: dict[str, Any], plan: Plan, codelists: dict[str, frozenset[str]]) -> Inspection:
    """Walk ``release`` along ``plan`` (iteratively) and report shapes, dates, codes, currencies, references."""
    found = Inspection()
    shape, quality = found.shape, found.quality
    references: list[tuple[str, object]] = []
    stack: list[tuple[dict[str, Any], Plan, str]] = [(release, plan, "")]
    while stack:
        obj, node, where = stack.pop()
        fields = node.fields
        for key, value in obj.items():
            action = fields.get(key)
            if action is None:
                if not node.defines(key):
                    _additional(found, node, key, f"{where}/{key.replace('~', '~0').replace('/', '~1')}")
                continue
            if value is None:
                continue
            kind, arg = action
            if kind == OBJECT:
                if type(value) is dict:
                    stack.append((value, arg, f"{where}/{key}"))
                else:
                    shape.append(_shape(f"{where}/{key}", value, "an object"))
            elif kind == ARRAY:
                if type(value) is not list:
                    shape.append(_shape(f"{where}/{key}", value, "an array of objects"))
                    continue
                for index, item in enumerate(value):
                    if type(item) is dict:
                        stack.append((item, arg, f"{where}/{key}/{index}"))
                    else:
                        shape.append(_shape(f"{where}/{key}/{index}", item, "an object"))
            elif kind == DATE:
                if type(value) is str and (problem := date_problem(value)) is not None:
                    at = f"{where}/{key}"
                    quality.append(Finding(at, "date", f"{shorten(value)!r} at {at} {problem}"))
            else:
                _check_codes(value, f"{where}/{key}", arg, codelists[arg], quality)
        if node.value and obj.get("amount") is not None:
            currency = obj.get("currency")
            if currency is None:
                quality.append(Finding(f"{where}/currency", "currency", f"the amount at {where} has no currency"))
            elif currency != "MXN" and type(currency) is str and not rate_to_mxn(obj.get("exchangeRates")):
                found.foreign.append((where, currency))
        if node.reference and obj.get("id") is not None:
            references.append((where, obj["id"]))
    if references:
        quality.extend(_dangling(release, references))
    for (_, key), (at, count) in found.additional.items():
        times = f" ({count} times)" if count > 1 else ""
        message = (f"{shorten(key, 80)!r} at {at}{times} is not defined by the schema of this release's profile: "
                   "declare the extension that defines it, or check its spelling")
        quality.append(Finding(at, "additional-field", message, severity="warning"))
    return found


def rate_to_mxn(rates: object) -> bool:
    """Whether a Value's ``exchangeRates`` (the exchangeRate extension) give a rate to MXN."""
    return type(rates) is list and any(type(r) is dict and r.get("currency") == "MXN" for r in rates)


def _additional(found: Inspection, node: Plan, key: str, where: str) -> None:
    seen = found.additional.get((id(node), key))
    if seen is None:
        found.additional[(id(node), key)] = [where, 1]
    else:
        seen[1] += 1


def _shape(where: str, value: object, expected: str) -> Finding:
    return Finding(
        where,
        "merge-shape",
        f"{where} must be {expected} or null, not {kind_of(value)}: releases of one process could not be merged",
    )


def _unhashable_id(path: Path) -> Finding:
    where = pointer(path)
    return Finding(where, "merge-shape", f"{where} must be a string or an integer: objects are merged by id")


def kind_of(value: object) -> str:
    """What ``value`` is, in JSON's words: "an object", "a string", "null", ..."""
    if value is None:
        return "null"
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(type(value), "a number")


def _check_codes(value: object, where: str, name: str, codes: frozenset[str], out: list[Finding]) -> None:
    if type(value) is str:
        items: list[tuple[str, object]] = [(where, value)]
    elif type(value) is list:
        items = [(f"{where}/{index}", code) for index, code in enumerate(value)]
    else:
        return
    for at, code in items:
        if type(code) is str and code not in codes:
            message = f"{shorten(code)!r} at {at} is not in the open {name} codelist"
            out.append(Finding(at, "codelist", message, severity="warning"))


def _dangling(release: dict[str, Any], references: list[tuple[str, object]]) -> Iterator[Finding]:
    parties = release.get("parties")
    ids = (
        {str(p["id"]) for p in parties if type(p) is dict and p.get("id") is not None}
        if (type(parties) is list)
        else set()
    )
    for where, reference in references:
        if str(reference) not in ids:
            at = f"{where}/id"
            yield Finding(
                at, "party-reference", f"{at} is {shorten(str(reference))!r}, but no entry of /parties has that id"
            )


# --- slow exact passes, run only when a cheap test says they might find something -------------------------


class _Object(dict[str, Any]):
    """A parsed JSON object that remembers which keys it held more than once."""

    duplicates: list[str]


class _BigInt(int):
    """A parsed integer outside the range orjson reads exactly."""


def _object(pairs: list[tuple[str, Any]]) -> _Object:
    obj = _Object(pairs)
    obj.duplicates = (
        [key for key, n in Counter(k for k, _ in pairs).items() if n > 1] if (len(obj) != len(pairs)) else []
    )
    return obj


def _integer(literal: str) -> int:
    number = int(literal)
    return _BigInt(number) if not MIN_INT <= number <= MAX_INT else number


def walk(tree: object) -> Iterator[tuple[Path, object]]:
    """Every (path, value) in ``tree``, parents before children, without recursion."""
    stack: list[tuple[Path, object]] = [((), tree)]
    while stack:
        path, value = stack.pop()
        yield path, value
        if type(value) is list:
            stack.extend(((*path, i), item) for i, item in reversed(list(enumerate(value))))
        elif isinstance(value, dict):
            stack.extend(((*path, k), item) for k, item in reversed(list(value.items())))


def exact_findings(text: str) -> list[Finding]:
    """Duplicate keys and out-of-range integers, with their pointers (``text`` is known to be valid JSON)."""
    tree = json.loads(text, object_pairs_hook=_object, parse_int=_integer)
    findings = []
    for path, value in walk(tree):
        if isinstance(value, _Object):
            for key in value.duplicates:
                where = pointer((*path, key))
                findings.append(
                    Finding(where, "duplicate-key", f"the key {shorten(key)!r} appears more than once at {where}")
                )
        elif isinstance(value, _BigInt):
            where = pointer(path).replace("\x00", "\\u0000")  # the finding itself is stored as JSONB
            findings.append(
                Finding(
                    where,
                    "number",
                    f"the integer at {where} ({shorten(str(int(value)), 40)}) does not fit in 64 bits; "
                    "send it as a string",
                )
            )
    return findings


def null_characters(tree: object) -> list[Finding]:
    """Keys and strings that hold U+0000, which PostgreSQL's JSONB cannot store."""
    findings = []
    for path, value in walk(tree):
        key = path[-1] if path else None
        if (type(value) is str and "\x00" in value) or (type(key) is str and "\x00" in key):
            where = pointer(path)
            findings.append(Finding(where, "null-character", f"{where} holds the character U+0000 (\\u0000)"))
    return findings


def too_deep(tree: object, max_depth: int) -> Finding | None:
    """The first container nested deeper than ``max_depth`` (the root is at depth 1), if any."""
    stack: list[tuple[Path, object]] = [((), tree)]
    while stack:
        path, value = stack.pop()
        if type(value) is dict or type(value) is list:
            if len(path) >= max_depth:
                where = pointer(path)
                message = f"{shorten(where, 80)} is nested deeper than the limit of {max_depth} levels"
                return Finding(where, "depth", message)
            items = value.items() if type(value) is dict else enumerate(value)
            stack.extend(((*path, k), item) for k, item in items)
    return None


def unhashable_ids(tree: object) -> list[Finding]:
    """Objects in arrays (anywhere, extensions too) whose ``id`` is an object or array: ocdsmerge cannot key them."""
    return [
        _unhashable_id((*path, index, "id"))
        for path, value in walk(tree)
        if type(value) is list
        for index, item in enumerate(value)
        if type(item) is dict and isinstance(item.get("id"), dict | list)
    ]
