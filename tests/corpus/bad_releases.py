"""A corpus of malformed and invalid releases: every entry must be rejected under the lenient policy.

Each entry is ``(label, raw bytes)``; labels are stable and unique (the stream tests send these to the real
Kafka and look for them on ``ocds.rejected``). Every entry starts from :data:`BASE_RELEASE`, which is valid
against the OCDS 1.1.5 release schema, and is checked with ``prefixes=["ocds-07smqs"]``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

PREFIX = "ocds-07smqs"

BASE_RELEASE: dict[str, Any] = {
    "ocid": "ocds-07smqs-1542970",
    "id": "1542970",
    "date": "2017-11-11T12:00:00Z",
    "tag": ["tender", "award"],
    "initiationType": "tender",
    "language": "es",
    "parties": [
        {
            "id": "SHCP-001",
            "name": "Secretaría de Hacienda y Crédito Público",
            "roles": ["buyer", "procuringEntity"],
            "address": {"countryName": "México", "locality": "Ciudad de México"},
        },
        {"id": "RFC-ABC010101AAA", "name": "Constructora del Norte, S.A. de C.V.", "roles": ["supplier"]},
    ],
    "buyer": {"id": "SHCP-001", "name": "Secretaría de Hacienda y Crédito Público"},
    "tender": {
        "id": "LA-006000998-E1-2017",
        "title": "Servicio de limpieza",
        "status": "complete",
        "procuringEntity": {"id": "SHCP-001", "name": "Secretaría de Hacienda y Crédito Público"},
        "procurementMethod": "open",
        "mainProcurementCategory": "services",
        "submissionMethod": ["electronicSubmission"],
        "value": {"amount": 1250000.5, "currency": "MXN"},
        "tenderPeriod": {"startDate": "2017-09-01T09:00:00-06:00", "endDate": "2017-09-20T18:00:00-06:00"},
        "items": [{"id": "1", "description": "Limpieza de oficinas", "quantity": 12}],
        "documents": [
            {
                "id": "doc-1",
                "documentType": "tenderNotice",
                "url": "https://compranet.hacienda.gob.mx/esop/toolkit/opportunity/1542970",
                "datePublished": "2017-09-01T09:00:00-06:00",
            }
        ],
    },
    "awards": [
        {
            "id": "1542970-1",
            "status": "active",
            "date": "2017-10-15T10:00:00-06:00",
            "value": {"amount": 1200000, "currency": "MXN"},
            "suppliers": [{"id": "RFC-ABC010101AAA", "name": "Constructora del Norte, S.A. de C.V."}],
        }
    ],
}


def base_bytes() -> bytes:
    """The base release, serialized compactly."""
    return _dump(BASE_RELEASE)


def _dump(release: Any) -> bytes:
    return json.dumps(release, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _with(change: Callable[[dict[str, Any]], object]) -> bytes:
    release = copy.deepcopy(BASE_RELEASE)
    change(release)
    return _dump(release)


def _set(path: str, value: Any) -> bytes:
    """The base release with the member at ``path`` (dot-separated; digits index arrays) set to ``value``."""

    def change(release: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = release
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        node[int(last) if last.isdigit() else last] = value

    return _with(change)


def _drop(key: str) -> bytes:
    return _with(lambda release: release.pop(key))


def _splice(marker: bytes, replacement: bytes) -> bytes:
    """The base bytes with the first ``marker`` replaced by ``replacement`` (to write what json cannot)."""
    raw = base_bytes()
    assert marker in raw, marker
    return raw.replace(marker, replacement, 1)


def _nested(depth: int, inner: bytes = b"1") -> bytes:
    return b"[" * depth + inner + b"]" * depth


def _nested_objects(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


def mutate(release: dict[str, Any], path: str, value: Any = None, *, drop: bool = False) -> dict[str, Any]:
    """A copy of ``release`` with the member at ``path`` (dot-separated, digits index) replaced or dropped."""
    changed = copy.deepcopy(release)
    *parents, last = path.split(".")
    node: Any = changed
    for part in parents:
        node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
    key: Any = int(last) if last.isdigit() else last
    if drop:
        del node[key]
    else:
        node[key] = value
    return changed


MUTATIONS: list[tuple[str, str, Any]] = [
    ("tag-unknown", "tag", ["notATag"]),
    ("initiation-type-unknown", "initiationType", "auction"),
    ("language-number", "language", 5),
    ("tender-status-unknown", "tender.status", "open"),
    ("amount-string", "tender.value.amount", "100"),
    ("currency-typo", "tender.value.currency", "MNX"),
    ("period-impossible-date", "tender.tenderPeriod.startDate", "2023-02-30T00:00:00Z"),
    ("period-leap-second", "tender.tenderPeriod.startDate", "2016-12-31T23:59:60Z"),
    ("period-year-zero", "tender.tenderPeriod.startDate", "0000-01-01T00:00:00Z"),
    ("period-lower-case", "tender.tenderPeriod.endDate", "2017-01-01t00:00:00z"),
    ("period-fraction-offset", "tender.tenderPeriod.endDate", "2017-01-01T00:00:00.123456+05:30"),
    ("period-no-zone", "tender.tenderPeriod.endDate", "2017-01-01T00:00:00"),
    ("award-date-words", "awards.0.date", "yesterday"),
    ("award-date-null", "awards.0.date", None),
    ("url-space", "tender.documents.0.url", "http://exa mple.com/a b"),
    ("url-relative", "tender.documents.0.url", "relative/path.pdf"),
    ("url-mailto", "tender.documents.0.url", "mailto:compras@example.mx"),
    ("url-empty", "tender.documents.0.url", ""),
    ("url-accent", "tender.documents.0.url", "https://example.mx/contratación.pdf"),
    ("items-duplicated", "tender.items", [{"id": "1"}, {"id": "1"}]),
    ("roles-string", "parties.0.roles", "buyer"),
    ("quantity-string", "tender.items.0.quantity", "12"),
    ("submission-method-string", "tender.submissionMethod", "electronicSubmission"),
    ("postal-code-number", "parties.0.address.postalCode", 6000),
    ("tenderers-number", "tender.numberOfTenderers", 1.5),
    ("contract-without-award", "contracts", [{"id": "c1", "status": "Active"}]),
    ("milestone-status-unknown", "tender.milestones", [{"id": "m1", "status": "late"}]),
    ("extension-field", "x", {"anything": [1, 2]}),
    ("buyer-integer-id", "buyer.id", 1),
    ("related-process", "relatedProcesses", [{"id": "1", "relationship": ["x"], "uri": "not a uri"}]),
    ("budget-amount-object", "planning.budget.amount", {"amount": "x", "currency": "XXX"}),
]
DROPS = ["tag", "initiationType", "awards.0.id", "tender.id", "parties.0.id"]


def schema_defects(bases: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    """Each schema defect injected into each base release, where the base has the defect's parent member.

    These break the schema (or probe its formats) but stay mergeable: lenient accepts them with findings.
    """
    out: list[tuple[str, dict[str, Any]]] = []
    for base_label, base in bases:
        out.extend(
            (f"{base_label}+{label}", mutate(base, path, value))
            for label, path, value in MUTATIONS
            if "." not in path or _has(base, path.rpartition(".")[0])
        )
        out.extend((f"{base_label}-{path}", mutate(base, path, drop=True)) for path in DROPS if _has(base, path))
    return out


def _has(release: dict[str, Any], path: str) -> bool:
    node: Any = release
    for part in path.split("."):
        if part.isdigit() and type(node) is list and int(part) < len(node):
            node = node[int(part)]
        elif type(node) is dict and part in node:
            node = node[part]
        else:
            return False
    return True


def bad_inputs() -> list[tuple[str, bytes]]:
    """Every entry of the corpus, as (label, raw bytes)."""
    raw = base_bytes()
    ten_mb = 10 * 1024 * 1024
    entries: list[tuple[str, bytes]] = [
        # empty and non-objects
        ("empty", b""),
        ("whitespace-only", b" \n\t "),
        ("null", b"null"),
        ("true", b"true"),
        ("number", b"42"),
        ("string", b'"ocds-07smqs-1"'),
        ("array-empty", b"[]"),
        ("array-of-release", b"[" + raw + b"]"),
        ("release-package", b'{"releases":[' + raw + b'],"version":"1.1"}'),
        # truncated and broken JSON
        *[(f"truncated-{n}-of-10", raw[: len(raw) * n // 10]) for n in range(1, 10)],
        ("truncated-last-brace", raw[:-1]),
        ("trailing-comma", raw[:-1] + b",}"),
        ("two-objects", raw + raw),
        ("trailing-garbage", raw + b"x"),
        ("single-quotes", raw.replace(b'"ocid"', b"'ocid'", 1)),
        ("unquoted-key", raw.replace(b'"ocid"', b"ocid", 1)),
        ("comment", b"/* release */" + raw),
        ("python-none", _splice(b'"language":"es"', b'"language":None')),
        ("undefined", _splice(b'"language":"es"', b'"language":undefined')),
        ("leading-zero", _splice(b'"quantity":12', b'"quantity":012')),
        ("hex-number", _splice(b'"quantity":12', b'"quantity":0x0C')),
        ("plus-number", _splice(b'"quantity":12', b'"quantity":+12')),
        ("bare-fraction", _splice(b'"quantity":12', b'"quantity":.5')),
        ("lone-surrogate-escape", _splice(b'"Servicio de limpieza"', b'"Servicio \\ud800 limpieza"')),
        ("bad-escape", _splice(b'"Servicio de limpieza"', b'"Servicio \\x41 limpieza"')),
        ("raw-tab-in-string", _splice(b'"Servicio de limpieza"', b'"Servicio\tde limpieza"')),
        ("raw-newline-in-string", _splice(b'"Servicio de limpieza"', b'"Servicio\nde limpieza"')),
        # encodings
        ("invalid-utf8-ff", _splice(b"limpieza", b"limp\xffieza")),
        ("invalid-utf8-continuation", _splice(b"limpieza", b"limp\x80ieza")),
        ("invalid-utf8-overlong", _splice(b"limpieza", b"limp\xc0\xafieza")),
        ("invalid-utf8-truncated-sequence", _splice(b"limpieza", b"limp\xe2\x82ieza")),
        ("invalid-utf8-encoded-surrogate", _splice(b"limpieza", b"limp\xed\xa0\x80ieza")),
        ("latin1-encoded", raw.decode("utf-8").encode("latin-1")),
        ("utf8-bom", b"\xef\xbb\xbf" + raw),
        ("utf16-with-bom", raw.decode("utf-8").encode("utf-16")),
        ("utf16le-without-bom", raw.decode("utf-8").encode("utf-16-le")),
        # NaN, Infinity and numbers orjson cannot hold exactly
        ("nan-amount", _splice(b'"amount":1250000.5', b'"amount":NaN')),
        ("infinity-amount", _splice(b'"amount":1250000.5', b'"amount":Infinity')),
        ("negative-infinity-amount", _splice(b'"amount":1250000.5', b'"amount":-Infinity')),
        ("nan-lowercase", _splice(b'"amount":1250000.5', b'"amount":nan')),
        ("float-overflow", _splice(b'"amount":1250000.5', b'"amount":1e400')),
        ("negative-float-overflow", _splice(b'"amount":1250000.5', b'"amount":-1e400')),
        ("integer-over-64-bits", _splice(b'"amount":1200000', b'"amount":18446744073709551616')),
        ("integer-under-64-bits", _splice(b'"amount":1200000', b'"amount":-9223372036854775809')),
        ("integer-400-digits", _splice(b'"quantity":12', b'"quantity":' + b"9" * 400)),
        ("integer-30-digits-in-extension", _splice(b'"language":"es"', b'"x":123456789012345678901234567890')),
        # duplicate keys
        ("duplicate-ocid", b'{"ocid":"ocds-07smqs-9",' + raw[1:]),
        ("duplicate-id", b'{"id":"other",' + raw[1:]),
        ("duplicate-date", raw[:-1] + b',"date":"2017-11-12T00:00:00Z"}'),
        ("duplicate-nested-title", _splice(b'"title":"Servicio de limpieza"', b'"title":"a","title":"b"')),
        ("duplicate-party-id", _splice(b'"id":"SHCP-001"', b'"id":"SHCP-001","id":"SHCP-002"')),
        ("duplicate-with-spaces", _splice(b'"language":"es"', b'"language" : "es" , "language" : "en"')),
        ("duplicate-same-value", _splice(b'"language":"es"', b'"language":"es","language":"es"')),
        ("duplicate-escaped-key", _splice(b'"language":"es"', b'"language":"es","\\u006canguage":"en"')),
        ("duplicate-colon-escape", _splice(b'"language":"es"', b'"a":"x\\u003ay","a":1,"b":"c"')),
        ("duplicate-in-extension", _splice(b'"language":"es"', b'"x":{"k":1,"k":2}')),
        # nesting
        ("nested-10000-arrays", _nested(10_000)),
        ("nested-10000-objects", _nested_objects(10_000)),
        ("nested-10000-in-extension", _splice(b'"language":"es"', b'"x":' + _nested(10_000))),
        ("nested-65-in-extension", _splice(b'"language":"es"', b'"x":' + _nested(64))),
        ("nested-100-objects-in-extension", _splice(b'"language":"es"', b'"x":' + _nested_objects(100))),
        ("nested-300-in-extension", _splice(b'"language":"es"', b'"x":' + _nested(300))),
        ("nested-2000-in-extension", _splice(b'"language":"es"', b'"x":' + _nested(2000))),
        ("unbalanced-brackets", b"[" * 5000),
        # size
        ("string-10mb-in-description", _set("tender.description", "x" * ten_mb)),
        ("padding-over-10mb", raw + b" " * ten_mb),
        ("array-over-10mb", _splice(b'"language":"es"', b'"x":[' + b'{"id":"1"},' * 1_000_000 + b"{}]")),
        # ocid, id, date: missing, null, empty, wrong type
        ("missing-ocid", _drop("ocid")),
        ("missing-id", _drop("id")),
        ("missing-date", _drop("date")),
        ("null-ocid", _set("ocid", None)),
        ("null-id", _set("id", None)),
        ("null-date", _set("date", None)),
        ("empty-ocid", _set("ocid", "")),
        ("empty-id", _set("id", "")),
        ("empty-date", _set("date", "")),
        ("number-ocid", _set("ocid", 1542970)),
        ("number-id", _set("id", 1542970)),
        ("number-date", _set("date", 20171111)),
        ("list-ocid", _set("ocid", ["ocds-07smqs-1542970"])),
        ("object-id", _set("id", {"id": "1542970"})),
        ("boolean-date", _set("date", True)),
        # release dates that are not RFC 3339 date-times
        ("date-february-30", _set("date", "2023-02-30T00:00:00Z")),
        ("date-february-29-common-year", _set("date", "2023-02-29T00:00:00Z")),
        ("date-april-31", _set("date", "2023-04-31T00:00:00Z")),
        ("date-month-13", _set("date", "2023-13-01T00:00:00Z")),
        ("date-year-zero", _set("date", "0000-01-01T00:00:00Z")),
        ("date-hour-24", _set("date", "2023-01-01T24:00:00Z")),
        ("date-leap-second", _set("date", "2016-12-31T23:59:60Z")),
        ("date-only", _set("date", "2017-11-11")),
        ("date-no-timezone", _set("date", "2017-11-11T12:00:00")),
        ("date-space-separator", _set("date", "2017-11-11 12:00:00Z")),
        ("date-trailing-newline", _set("date", "2017-11-11T12:00:00Z\n")),
        ("date-words", _set("date", "yesterday")),
        ("date-spanish-format", _set("date", "11/11/2017")),
        ("date-unix-timestamp-string", _set("date", "1510401600")),
        # ocid prefixes
        ("prefix-unknown", _set("ocid", "ocds-xxxxxx-1542970")),
        ("prefix-missing", _set("ocid", "1542970")),
        ("prefix-without-hyphen", _set("ocid", "ocds-07smqs1542970")),
        ("prefix-longer", _set("ocid", "ocds-07smqsx-1542970")),
        ("prefix-inside", _set("ocid", "x-ocds-07smqs-1542970")),
        ("prefix-other-mexican", _set("ocid", "OCDS-87SD3T-1542970")),
        # shapes ocdsmerge cannot merge
        ("tender-string", _set("tender", "x")),
        ("tender-number", _set("tender", 5)),
        ("tender-array", _set("tender", [{"id": "1"}])),
        ("buyer-string", _set("buyer", "SHCP-001")),
        ("tender-value-string", _set("tender.value", "1250000.5")),
        ("tender-period-string", _set("tender.tenderPeriod", "2017-09-01")),
        ("parties-object", _set("parties", {"id": "SHCP-001"})),
        ("parties-string", _set("parties", "SHCP-001")),
        ("parties-numbers", _set("parties", [1, 2])),
        ("award-string", _set("awards.0", "1542970-1")),
        ("award-suppliers-object", _set("awards.0.suppliers", {"id": "RFC-ABC010101AAA"})),
        ("award-id-object", _set("awards.0.id", {"value": "1542970-1"})),
        ("item-id-array", _set("tender.items.0.id", ["1"])),
        ("extension-array-id-object", _set("x", [{"id": {"a": 1}}])),
        ("tag-string", _set("tag", "tender")),
        ("tag-numbers", _set("tag", [1])),
        ("tag-null-item", _set("tag", [None])),
        ("tag-object", _set("tag", {"tender": True})),
        # null characters
        ("null-byte-between-tokens", raw[:1] + b"\x00" + raw[1:]),
        ("null-byte-in-string", _splice(b"limpieza", b"limp\x00ieza")),
        ("null-escape-in-string", _splice(b"limpieza", b"limp\\u0000ieza")),
        ("null-escape-in-key", _splice(b'"language":"es"', b'"lang\\u0000":"es"')),
        ("null-escape-in-ocid", _set("ocid", "ocds-07smqs-1\x00")),
    ]
    return entries
