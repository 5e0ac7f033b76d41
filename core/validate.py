"""Validate one release: structure, the OCDS release schema, and the rules the schema cannot express.

Pure: bytes in, a :class:`Verdict` out. No Kafka, database or socket import.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import jsonschema_rs
import orjson

from core.exceptions import Finding
from core.schema import OcdsSchema
from core.types import Release

Policy = Literal["strict", "lenient"]


@dataclass
class Verdict:
    """What validation concluded about one release."""

    release: Release | None
    findings: list[Finding] = field(default_factory=list)
    accepted: bool = False


class ReleaseValidator:
    """Validates releases against one OCDS schema. Build once; call :meth:`check` per release."""

    def __init__(self, schema: OcdsSchema) -> None:
        self._schema = jsonschema_rs.Draft4Validator(schema.release, validate_formats=True)

    def check(self, raw: bytes, *, policy: Policy = "lenient") -> Verdict:
        try:
            release = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return Verdict(None, [Finding("", "json", f"not JSON: {exc}")])
        if not isinstance(release, dict):
            return Verdict(None, [Finding("", "type", "a release must be a JSON object")])
        structural = [
            Finding(f"/{key}", "required", f"'{key}' is missing or not a non-empty string")
            for key in ("ocid", "id", "date")
            if not isinstance(release.get(key), str) or not release[key]
        ]
        if structural:
            return Verdict(release, structural)
        findings = [
            Finding("/" + "/".join(str(p) for p in error.instance_path), "schema", error.message)
            for error in self._schema.iter_errors(release)
        ]
        accepted = policy == "lenient" or not findings
        return Verdict(release, findings, accepted)
