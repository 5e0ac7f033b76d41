"""The OC4IDS 0.9.4 project schemas, read from a folder or downloaded once into a cache, and validation.

Like the OCDS schema (core.schema), never bundled: ``OCDS_LIVE_OC4IDS_DIR`` names a folder holding
``project-schema.json`` and ``project-package-schema.json``; without it the cache folder is used, filled on
first use from the standard's website. The package schema names the project schema by its URL; both are
registered under their ``id``, so validation never goes to the network.
"""

from __future__ import annotations

import functools
import json
import urllib.request
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import jsonschema_rs
from jsonschema import Draft4Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from core.checks import is_date_time
from core.exceptions import SchemaUnavailableError

VERSION = "0.9.4"
PACKAGE_VERSION = "0.9"
BASE_URL = "https://standard.open-contracting.org/infrastructure/schema/0__9__4/"
FILES = ("project-schema.json", "project-package-schema.json")


@dataclass(frozen=True)
class Oc4idsSchema:
    """The project and project package schemas, with validators that resolve each other offline."""

    folder: Path
    project: dict[str, Any]
    package: dict[str, Any]

    @cached_property
    def _registry(self) -> Registry[Any]:
        resources = [(s["id"], Resource.from_contents(s, default_specification=DRAFT4))
                     for s in (self.project, self.package)]
        return Registry().with_resources(resources)

    @cached_property
    def _project(self) -> Draft4Validator:
        return Draft4Validator(self.project, registry=self._registry, format_checker=Draft4Validator.FORMAT_CHECKER)

    @cached_property
    def _package(self) -> Draft4Validator:
        return Draft4Validator(self.package, registry=self._registry, format_checker=Draft4Validator.FORMAT_CHECKER)

    @staticmethod
    def _messages(validator: Draft4Validator, instance: Any) -> list[str]:
        errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
        return [f"/{'/'.join(str(p) for p in e.absolute_path)}: {e.message}" for e in errors]

    def project_errors(self, project: Any) -> list[str]:
        """Where and why ``project`` violates the OC4IDS project schema (empty: valid)."""
        return self._messages(self._project, project)

    @cached_property
    def _fast(self) -> jsonschema_rs.Draft4Validator:
        return jsonschema_rs.Draft4Validator(self.project, validate_formats=True, formats={"date-time": is_date_time})

    def project_error_paths(self, project: Any) -> list[tuple[tuple[str | int, ...], str]]:
        """Each violation of the project schema: the path of the offending value, and why (jsonschema-rs: the
        stream processor checks every project it builds; ``jsonschema`` took 190 ms for NAICM's, this 2 ms)."""
        return [(tuple(e.instance_path), e.message) for e in self._fast.iter_errors(project)]

    def package_errors(self, package: Any) -> list[str]:
        """Where and why ``package`` violates the OC4IDS project package schema (empty: valid)."""
        return self._messages(self._package, package)


def _read(folder: Path) -> Oc4idsSchema:
    parsed = []
    for name in FILES:
        path = folder / name
        try:
            parsed.append(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError as exc:
            raise SchemaUnavailableError(f"{path} is missing: point OCDS_LIVE_OC4IDS_DIR at a folder with the "
                                         f"OC4IDS {VERSION} schema files, or unset it to download them once") from exc
        except json.JSONDecodeError as exc:
            raise SchemaUnavailableError(f"{path} is not JSON: {exc}") from exc
    return Oc4idsSchema(folder, parsed[0], parsed[1])


def _download(folder: Path, timeout: float = 30.0) -> None:
    tmp = folder.with_name(folder.name + ".partial")
    tmp.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        try:
            with urllib.request.urlopen(BASE_URL + name, timeout=timeout) as response:  # noqa: S310 (fixed URL)
                (tmp / name).write_bytes(response.read())
        except OSError as exc:
            raise SchemaUnavailableError(f"cannot download {BASE_URL + name}: {exc}; set OCDS_LIVE_OC4IDS_DIR to "
                                         "a folder with the OC4IDS schema files") from exc
    tmp.rename(folder)


@functools.lru_cache(maxsize=2)
def cached_oc4ids_schema(folder: Path | None, cache_dir: Path) -> Oc4idsSchema:
    """:func:`load_oc4ids_schema`, once per process (the stream processor's rebuilds use it)."""
    return load_oc4ids_schema(folder, cache_dir)


def load_oc4ids_schema(folder: Path | None, cache_dir: Path) -> Oc4idsSchema:
    """The OC4IDS schemas: from ``folder`` if set, else the cache, downloading them there once."""
    if folder is not None:
        return _read(folder)
    cached = cache_dir / f"oc4ids-{VERSION}"
    if not (cached / FILES[0]).exists():
        cached.parent.mkdir(parents=True, exist_ok=True)
        _download(cached)
    return _read(cached)
