"""Profiles: the OCDS core schema patched with a set of declared extensions, built once per distinct set.

A release is validated and merged against the profile of the extensions its package declares (plus those its
publisher names); a record, against the union of its releases' sets. The patching is ocdsextensionregistry's
(JSON Merge Patch of each extension's ``release-schema.json``, codelists added, removed or replaced; package
and versioned schemas derived from the patched release schema), fed offline: the standard's files come from the
loaded :class:`~core.schema.OcdsSchema`, the extensions' from :class:`~core.extensions.ExtensionResolver`.

An extension that cannot be resolved never stops anything: the profile is built from what could be resolved,
and :meth:`Profile.findings` names each missing extension (severity ``error``: a strict publisher's release is
rejected, a lenient one's accepted with the finding).
"""

from __future__ import annotations

import copy
import io
import json
import logging
import tempfile
import threading
import warnings
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ocdsextensionregistry import ProfileBuilder
from ocdsextensionregistry.extension_version import ExtensionVersion
from ocdsextensionregistry.versioned_release_schema import get_versioned_release_schema

from core.exceptions import ExtensionUnavailableError, Finding
from core.extensions import ExtensionResolver
from core.merge import RecordMerger
from core.schema import OcdsSchema
from core.validate import ReleaseValidator

if TYPE_CHECKING:
    from core.settings import Settings

logger = logging.getLogger("ocds_live.profiles")

STANDARD_TAG = "1__1__5"
MAX_DEPENDENCY_DEPTH = 5

Extensions = tuple[str, ...]
"""A set of declared extension URLs, sorted: the key of a profile."""


def extension_set(*declarations: Iterable[str] | None) -> Extensions:
    """The sorted union of extension declarations, ignoring anything but non-empty strings."""
    urls: set[str] = set()
    for declared in declarations:
        if declared:
            urls.update(url for url in declared if isinstance(url, str) and url)
    return tuple(sorted(urls))


@dataclass(frozen=True)
class Profile:
    """The core schema patched with the extensions of ``declared`` that could be resolved."""

    declared: Extensions
    schema: OcdsSchema
    applied: Extensions = ()  # the resolved extensions applied, dependencies included
    missing: tuple[tuple[str, str], ...] = ()  # (url, why) of each extension that could not be resolved

    def findings(self) -> list[Finding]:
        """One finding per missing extension: the release is checked against what could be resolved."""
        return [
            Finding("", "extension-unavailable",
                    f"the declared extension {url} is unavailable ({why}): the release was checked without it")
            for url, why in self.missing
        ]


def _standard_zip(schema: OcdsSchema) -> bytes:
    """The standard's schema files as the ZIP layout ProfileBuilder reads (``<root>/schema/...``)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("standard/", "")
        archive.writestr("standard/schema/", "")
        for name, content in schema.files.items():
            archive.writestr(f"standard/schema/{name}", json.dumps(content))
        for path in sorted((schema.folder / "codelists").glob("*.csv")):
            archive.writestr(f"standard/schema/codelists/{path.name}", path.read_bytes())
    return buffer.getvalue()


def _extension_zip(folder: Path, target: Path) -> None:
    """An extension's folder as the ZIP layout ExtensionVersion reads (a root folder, then its files)."""
    with zipfile.ZipFile(target, "w") as archive:
        archive.writestr("extension/", "")
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, f"extension/{path.relative_to(folder).as_posix()}")


class _OfflineBuilder(ProfileBuilder):  # type: ignore[misc]  # ocdsextensionregistry has no type hints
    """ocdsextensionregistry's ProfileBuilder over extension versions that were resolved to local files."""

    def __init__(self, versions: list[ExtensionVersion], standard: bytes) -> None:
        super().__init__(STANDARD_TAG, [], standard_base_url=standard)
        self._versions = versions

    def extensions(self) -> Iterator[ExtensionVersion]:
        yield from self._versions


class Profiles:
    """Builds and keeps one profile (and its validator and mergers) per distinct set of extensions."""

    def __init__(self, core: OcdsSchema, resolver: ExtensionResolver | None = None, *,
                 max_bytes: int = 10 * 1024 * 1024, max_depth: int = 64) -> None:
        self.core = core
        self.resolver = resolver
        self.max_bytes = max_bytes
        self.max_depth = max_depth
        self._standard: bytes | None = None
        self._profiles: dict[Extensions, Profile] = {(): Profile((), core)}
        self._validators: dict[Extensions, ReleaseValidator] = {}
        self._mergers: dict[tuple[Extensions, bool], RecordMerger] = {}
        self._lock = threading.RLock()

    @classmethod
    def from_settings(cls, settings: Settings, core: OcdsSchema | None = None) -> Profiles:
        """The profiles of a process: ``core`` (or the schema from the settings' folder or cache), extensions
        resolved as the settings say, and the settings' limits on a release's size and depth."""
        from core.schema import load_schema

        resolver = ExtensionResolver(settings.extensions_dir, settings.cache_dir, download=settings.extensions_download)
        return cls(core if core is not None else load_schema(settings.schema_dir, settings.cache_dir), resolver,
                   max_bytes=settings.max_release_bytes, max_depth=settings.max_depth)

    def profile(self, extensions: Iterable[str] = ()) -> Profile:
        key = extension_set(extensions)
        found = self._profiles.get(key)
        if found is None:
            with self._lock:
                found = self._profiles.get(key)
                if found is None:
                    found = self._profiles[key] = self._build(key)
        return found

    def validator(self, extensions: Iterable[str] = ()) -> ReleaseValidator:
        key = extension_set(extensions)
        found = self._validators.get(key)
        if found is None:
            with self._lock:
                found = self._validators.get(key) or ReleaseValidator(
                    self.profile(key).schema, max_bytes=self.max_bytes, max_depth=self.max_depth)
                self._validators[key] = found
        return found

    def compiler(self, extensions: Iterable[str] = ()) -> RecordMerger:
        """The compiled-only merger of a record whose releases declare ``extensions`` (their union)."""
        return self._merger(extension_set(extensions), versioned=False)

    def versioned(self, extensions: Iterable[str] = ()) -> RecordMerger:
        """The merger that also builds versioned releases, for ``extensions``."""
        return self._merger(extension_set(extensions), versioned=True)

    def _merger(self, key: Extensions, *, versioned: bool) -> RecordMerger:
        found = self._mergers.get((key, versioned))
        if found is None:
            with self._lock:
                found = self._mergers.get((key, versioned)) or RecordMerger(self.profile(key).schema,
                                                                            versioned=versioned)
                self._mergers[(key, versioned)] = found
        return found

    # -- building ---------------------------------------------------------------------------------

    def _resolve(self, declared: Extensions) -> tuple[dict[str, Path], list[tuple[str, str]]]:
        """The folders of the declared extensions and of their dependencies, and what is missing."""
        folders: dict[str, Path] = {}
        missing: list[tuple[str, str]] = []
        pending = [(url, 0) for url in declared]
        while pending:
            url, depth = pending.pop(0)
            if url in folders or any(url == m for m, _ in missing):
                continue
            if self.resolver is None:
                missing.append((url, "no extension resolver is configured"))
                continue
            try:
                folder = self.resolver.resolve(url)
            except ExtensionUnavailableError as exc:
                missing.append((url, exc.reason))
                continue
            folders[url] = folder
            if depth < MAX_DEPENDENCY_DEPTH:
                pending.extend((dep, depth + 1) for dep in _dependencies(folder) if dep not in folders)
        return folders, missing

    def _build(self, declared: Extensions) -> Profile:
        folders, missing = self._resolve(declared)
        if not folders:
            return Profile(declared, self.core, (), tuple(missing))
        if self._standard is None:
            self._standard = _standard_zip(self.core)
        try:
            schema = self._patch(folders)
        except Exception as exc:  # noqa: BLE001 - a broken extension must not stop the stream
            why = f"the extensions could not be applied together: {type(exc).__name__}: {exc}"
            logger.warning("profile %s: %s; using the core schema", declared, why)
            return Profile(declared, self.core, (), tuple(missing + [(url, why) for url in folders]))
        logger.info("built the profile of %d extension(s) (%d missing)", len(folders), len(missing))
        return Profile(declared, schema, tuple(sorted(folders)), tuple(missing))

    def _patch(self, folders: dict[str, Path]) -> OcdsSchema:
        with (tempfile.TemporaryDirectory(prefix="ocds-live-profile-") as tmp,
              warnings.catch_warnings(record=True) as caught):
            warnings.simplefilter("always")
            versions = []
            for i, url in enumerate(sorted(folders)):
                target = Path(tmp) / f"{i}.zip"
                _extension_zip(folders[url], target)
                version = ExtensionVersion(dict.fromkeys(["Id", "Date", "Version", "Base URL"]) | {
                    "Download URL": target.as_uri()}, input_url=url)
                version.allow_schemes = {"file"}
                version.files  # noqa: B018 - read the ZIP while it exists
                versions.append(version)
            builder = _OfflineBuilder(versions, self._standard or b"")
            release = builder.patched_release_schema(schema=copy.deepcopy(self.core.release))
            files = {
                "release-schema.json": release,
                "release-package-schema.json": builder.release_package_schema(
                    schema=copy.deepcopy(self.core.release_package), patched=copy.deepcopy(release)),
                "record-package-schema.json": builder.record_package_schema(
                    schema=copy.deepcopy(self.core.record_package), patched=copy.deepcopy(release)),
                "versioned-release-validation-schema.json": get_versioned_release_schema(release, STANDARD_TAG),
            }
            codelists = {
                codelist.name.removesuffix(".csv"): frozenset(code for code in codelist.codes if code)
                for codelist in builder.patched_codelists()
            }
        for warning in caught:
            logger.info("building a profile: %s", warning.message)
        return OcdsSchema(folder=self.core.folder, files=files, codelists=codelists)


def _dependencies(folder: Path) -> list[str]:
    """The extension URLs an extension's ``extension.json`` declares as ``dependencies``."""
    try:
        metadata = json.loads((folder / "extension.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return []
    deps: Any = metadata.get("dependencies") if isinstance(metadata, dict) else None
    return [d for d in deps if isinstance(d, str)] if isinstance(deps, list) else []


CompilerSource = RecordMerger | Profiles
"""Where readers get the merger of a record: the profiles (by the record's extensions), or one fixed merger."""


def compiler_for(source: CompilerSource, extensions: Iterable[str] = ()) -> RecordMerger:
    """The compiled-only merger for a record whose releases declare ``extensions``."""
    return source if isinstance(source, RecordMerger) else source.compiler(extensions)
