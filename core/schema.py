"""The OCDS 1.1.5 schema and codelists, read from a folder or downloaded once into a cache.

Never bundled with the code: ``OCDS_LIVE_SCHEMA_DIR`` names a folder holding ``release-schema.json``,
the package schemas and ``codelists/*.csv``; without it the cache folder is used, filled on first use
from the standard's website.
"""

from __future__ import annotations

import csv
import json
import logging
import urllib.request
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from core.exceptions import SchemaUnavailableError

logger = logging.getLogger("ocds_live.schema")

VERSION = "1.1.5"
BASE_URL = "https://standard.open-contracting.org/schema/1__1__5/"
SCHEMA_FILES = (
    "release-schema.json",
    "release-package-schema.json",
    "record-package-schema.json",
    "versioned-release-validation-schema.json",
)
CODELISTS = (
    "awardCriteria", "awardStatus", "contractStatus", "currency", "documentType",
    "extendedProcurementCategory", "initiationType", "itemClassificationScheme", "method",
    "milestoneStatus", "milestoneType", "partyRole", "procurementCategory", "relatedProcess",
    "relatedProcessScheme", "releaseTag", "submissionMethod", "tenderStatus", "unitClassificationScheme",
)


@dataclass(frozen=True)
class OcdsSchema:
    """The schema files and codelists of one OCDS version, as parsed JSON and sets of codes."""

    folder: Path
    files: dict[str, dict[str, Any]]
    codelists: dict[str, frozenset[str]] = field(default_factory=dict)

    @property
    def release(self) -> dict[str, Any]:
        return self.files["release-schema.json"]

    @property
    def release_package(self) -> dict[str, Any]:
        return self.files["release-package-schema.json"]

    @property
    def record_package(self) -> dict[str, Any]:
        return self.files["record-package-schema.json"]

    @cached_property
    def registry_by_url(self) -> dict[str, dict[str, Any]]:
        """Each schema under its absolute ``id`` URL, so package schemas resolve offline."""
        return {schema["id"]: schema for schema in self.files.values() if "id" in schema}


def _read_folder(folder: Path) -> OcdsSchema:
    files: dict[str, dict[str, Any]] = {}
    for name in SCHEMA_FILES:
        path = folder / name
        try:
            files[name] = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise SchemaUnavailableError(
                f"{path} is missing: point OCDS_LIVE_SCHEMA_DIR at a folder with the OCDS {VERSION} "
                f"schema files, or unset it to download them once"
            ) from exc
        except json.JSONDecodeError as exc:
            raise SchemaUnavailableError(f"{path} is not JSON: {exc}") from exc
    codelists: dict[str, frozenset[str]] = {}
    for name in CODELISTS:
        path = folder / "codelists" / f"{name}.csv"
        if path.exists():
            with path.open(encoding="utf-8", newline="") as fh:
                codelists[name] = frozenset(row["Code"] for row in csv.DictReader(fh) if row.get("Code"))
    return OcdsSchema(folder=folder, files=files, codelists=codelists)


def _download(folder: Path, timeout: float = 30.0) -> None:
    """Fetch the official files into ``folder`` (all or nothing)."""
    tmp = folder.with_name(folder.name + ".partial")
    (tmp / "codelists").mkdir(parents=True, exist_ok=True)
    names = list(SCHEMA_FILES) + [f"codelists/{c}.csv" for c in CODELISTS]
    for name in names:
        url = BASE_URL + name
        logger.info("downloading %s", url)
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (fixed https URL)
                body = response.read()
        except OSError as exc:
            raise SchemaUnavailableError(
                f"cannot download {url}: {exc}; set OCDS_LIVE_SCHEMA_DIR to a folder with the schema files"
            ) from exc
        (tmp / name).write_bytes(body)
    tmp.rename(folder)


def load_schema(schema_dir: Path | None, cache_dir: Path) -> OcdsSchema:
    """The OCDS schema: from ``schema_dir`` if set, else the cache, downloading it there once."""
    if schema_dir is not None:
        return _read_folder(schema_dir)
    cached = cache_dir / VERSION
    if not (cached / SCHEMA_FILES[0]).exists():
        cached.parent.mkdir(parents=True, exist_ok=True)
        _download(cached)
    return _read_folder(cached)


