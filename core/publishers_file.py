"""Editing the publishers file safely: ``ocds-live publishers list | add | hash-token | rotate-token``.

The file is edited with tomlkit, so its comments, its order and keys this module does not know (for example
a publisher's ``extensions`` or ``rules``) stay as they were. A change is written to a temporary file in the
same folder, checked by reading it back with :func:`core.publishers.load_publishers`, and renamed over the
file (atomic); concurrent edits take turns through a lock file beside it. Tokens are stored only as their
SHA-256; a token made here is returned to the caller once and never logged.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.exceptions import TOMLKitError

from core.exceptions import ConfigurationError
from core.publishers import Publisher, hash_token, load_publishers

TOKEN_BYTES = 32  # 256 bits of randomness, URL-safe base64 (43 characters)


def new_token() -> str:
    """A new random bearer token."""
    return secrets.token_urlsafe(TOKEN_BYTES)


@dataclass(frozen=True)
class Entry:
    """What ``publishers list`` shows of a publisher (never its token hash)."""

    name: str
    prefixes: tuple[str, ...]
    policy: str
    rate_limit: float | None
    has_token: bool
    description: str

    @classmethod
    def of(cls, publisher: Publisher) -> Entry:
        return cls(publisher.name, publisher.prefixes, publisher.policy, publisher.rate_limit,
                   bool(publisher.token_sha256), publisher.description)

    def line(self) -> str:
        rate = f"{self.rate_limit:g}/s" if self.rate_limit else "no limit"
        token = "token set" if self.has_token else "no token (HTTP ingest refused)"
        return f"{self.name}\t{','.join(self.prefixes)}\t{self.policy}\t{rate}\t{token}\t{self.description}"


def list_entries(path: Path) -> list[Entry]:
    """The publishers of the file at ``path``, in file order."""
    return [Entry.of(p) for p in load_publishers(path).by_name.values()]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    lock = path.with_name(f".{path.name}.lock")
    with lock.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read(path: Path) -> tomlkit.TOMLDocument:
    try:
        return tomlkit.parse(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigurationError(f"{path}: publishers file not found; set OCDS_LIVE_PUBLISHERS_FILE "
                                 "or pass --publishers-file") from exc
    except TOMLKitError as exc:
        raise ConfigurationError(f"{path}: not valid TOML: {exc}; fix it by hand first") from exc


def _write(path: Path, document: tomlkit.TOMLDocument) -> None:
    """Write ``document`` over ``path`` atomically, after checking that it loads."""
    text = tomlkit.dumps(document)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o640
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp, mode)
        load_publishers(Path(temp))  # never install a file the server and workers would refuse
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


def _entries(document: tomlkit.TOMLDocument) -> Any:
    entries = document.get("publisher")
    if entries is None:
        entries = tomlkit.aot()
        document.append("publisher", entries)
    return entries


def _find(document: tomlkit.TOMLDocument, path: Path, name: str) -> Any:
    for entry in _entries(document):
        if entry.get("name") == name:
            return entry
    known = ", ".join(str(e.get("name")) for e in _entries(document)) or "none"
    raise ConfigurationError(f"{path}: no publisher named {name!r} (known: {known}); "
                             "add it with `ocds-live publishers add`")


def add_publisher(
    path: Path, name: str, prefixes: Sequence[str], *, policy: str = "strict", rate_limit: float | None = None,
    description: str = "", token: str | None = None,
) -> str:
    """Append a publisher to the file; return its bearer token (``token``, or a new one), stored only hashed."""
    if not name or not prefixes:
        raise ConfigurationError("a publisher needs a name and at least one ocid prefix")
    token = token or new_token()
    with _locked(path):
        document = _read(path)
        if any(e.get("name") == name for e in _entries(document)):
            raise ConfigurationError(f"{path}: a publisher named {name!r} exists already; "
                                     "use `ocds-live publishers rotate-token` to give it a new token")
        entry = tomlkit.table()
        entry["name"] = name
        if description:
            entry["description"] = description
        entry["prefixes"] = list(prefixes)
        entry["policy"] = policy
        if rate_limit:
            entry["rate_limit"] = rate_limit
        entry["token_sha256"] = hash_token(token)
        _entries(document).append(entry)
        _write(path, document)
    return token


def rotate_token(path: Path, name: str, token: str | None = None) -> str:
    """Give publisher ``name`` a new token (``token`` or a new one); the old one stops working on reload."""
    token = token or new_token()
    with _locked(path):
        document = _read(path)
        _find(document, path, name)["token_sha256"] = hash_token(token)
        _write(path, document)
    return token
