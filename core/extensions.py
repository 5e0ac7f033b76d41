"""OCDS extensions declared by URL, resolved offline first: a configured folder, the cache, then one download.

A publisher declares an extension by the URL of its ``extension.json``. The files are found, in order:

1. ``OCDS_LIVE_EXTENSIONS_DIR``: a folder laid out as ``../shared/ocds/extensions`` (an ``index.json`` that maps
   each declared URL to ``{"dir": "OWNER/REPO/REF"}``, and each ``dir`` holding ``extension.json``,
   ``release-schema.json`` when there is one, and ``codelists/*.csv``);
2. the cache, ``<cache_dir>/extensions``, in the same layout;
3. a download, once, from the declared URL into the cache (``extension.json``, then the schema patch and the
   codelists it lists). Only ``https`` URLs ending in ``extension.json`` are fetched.

An extension that cannot be resolved raises :class:`~core.exceptions.ExtensionUnavailableError` with the reason;
callers record it as a finding and go on (``core.profiles``). A resolver looks each URL up once and remembers
the folder or the failure, so a missing extension costs one attempt per process, not one per release, and
ingest's check of a package's extensions reads no file after the first request.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import threading
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from core.exceptions import ExtensionUnavailableError

logger = logging.getLogger("ocds_live.extensions")

INDEX = "index.json"
_GITHUB_RAW = re.compile(r"\Ahttps://raw\.githubusercontent\.com/([^/]+)/([^/]+)/([^/]+)/extension\.json\Z")
_SAFE_PART = re.compile(r"[^A-Za-z0-9._-]+")
_CODELIST_NAME = re.compile(r"\A[+-]?[A-Za-z0-9_]+\.csv\Z")


def _read_index(folder: Path) -> dict[str, Any]:
    path = folder / INDEX
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except json.JSONDecodeError as exc:
        logger.warning("%s is not JSON (%s): its extensions are ignored", path, exc)
        return {}
    return index if isinstance(index, dict) else {}


def cache_dir_for(url: str) -> str:
    """The folder a downloaded extension is kept in, relative to the cache: ``OWNER/REPO/REF`` for GitHub."""
    match = _GITHUB_RAW.match(url)
    if match:
        return "/".join(match.groups())
    parts = urlsplit(url)
    pieces = [parts.netloc, *parts.path.split("/")[:-1]]
    return "/".join(_SAFE_PART.sub("_", p) for p in pieces if p and p not in (".", ".."))


class ExtensionResolver:
    """Finds the files of declared extensions. Thread-safe; build one per process and share it."""

    def __init__(self, extensions_dir: Path | None, cache_dir: Path, *, download: bool = True,
                 timeout: float = 20.0, schemes: tuple[str, ...] = ("https",)) -> None:
        self.extensions_dir = extensions_dir
        self.schemes = schemes  # of the URLs it may download
        self.cache = cache_dir / "extensions"
        self.download = download
        self.timeout = timeout
        self._configured = _read_index(extensions_dir) if extensions_dir is not None else {}
        self._found: dict[str, Path] = {}
        self._failed: dict[str, str] = {}
        self._lock = threading.Lock()

    def resolve(self, url: str) -> Path:
        """The folder holding the files of the extension declared as ``url`` (each URL looked up once)."""
        with self._lock:
            found = self._found.get(url)
            if found is None:
                if url in self._failed:
                    raise ExtensionUnavailableError(url, self._failed[url])
                try:
                    found = self._found[url] = self._locate(url)
                except ExtensionUnavailableError as exc:
                    self._failed[url] = exc.reason
                    raise
            return found

    def _locate(self, url: str) -> Path:
        entry = self._configured.get(url)
        if isinstance(entry, dict) and isinstance(entry.get("dir"), str) and self.extensions_dir is not None:
            folder = self.extensions_dir / str(entry["dir"])
            if (folder / "extension.json").is_file():
                return folder
        cached = _read_index(self.cache).get(url)
        if isinstance(cached, dict) and isinstance(cached.get("dir"), str):
            folder = self.cache / str(cached["dir"])
            if (folder / "extension.json").is_file():
                return folder
        if not self.download:
            where = f"{self.extensions_dir}/{INDEX}" if self.extensions_dir else "OCDS_LIVE_EXTENSIONS_DIR (unset)"
            raise ExtensionUnavailableError(url, f"not in {where} nor in the cache {self.cache}, and downloads are off")
        return self._download(url)

    def _download(self, url: str) -> Path:
        parts = urlsplit(url)
        if parts.scheme not in self.schemes or not parts.path.endswith("/extension.json"):
            allowed = " or ".join(self.schemes)
            raise ExtensionUnavailableError(url, f"only {allowed} URLs of an extension.json are downloaded")
        base = url[: -len("extension.json")]
        metadata_bytes = self._fetch(url)
        try:
            metadata = json.loads(metadata_bytes)
        except json.JSONDecodeError as exc:
            raise ExtensionUnavailableError(url, f"its extension.json is not JSON: {exc}") from exc
        if not isinstance(metadata, dict):
            raise ExtensionUnavailableError(url, "its extension.json is not a JSON object")
        files = {"extension.json": metadata_bytes}
        schemas = metadata.get("schemas", ["release-schema.json"])
        if isinstance(schemas, list) and "release-schema.json" in schemas:
            files["release-schema.json"] = self._fetch(base + "release-schema.json")
        codelists = metadata.get("codelists", [])
        for name in codelists if isinstance(codelists, list) else []:
            if isinstance(name, str) and _CODELIST_NAME.match(name):
                files[f"codelists/{name}"] = self._fetch(f"{base}codelists/{name}")
        relative = cache_dir_for(url)
        target = self.cache / relative
        self.cache.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".partial-", dir=self.cache))
        for name, body in files.items():
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            (staging / name).write_bytes(body)
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging.rename(target)
        index = _read_index(self.cache)
        index[url] = {"dir": relative, "note": "downloaded by ocds-live"}
        tmp = self.cache / f".{INDEX}.{os.getpid()}"
        tmp.write_text(json.dumps(index, indent=2, sort_keys=True), encoding="utf-8")
        tmp.replace(self.cache / INDEX)
        logger.info("downloaded the extension %s into %s", url, target)
        return target

    def _fetch(self, url: str) -> bytes:
        logger.info("downloading %s", url)
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as response:  # noqa: S310 (schemes checked)
                return bytes(response.read())
        except OSError as exc:
            raise ExtensionUnavailableError(url, f"cannot download {url}: {exc}") from exc
