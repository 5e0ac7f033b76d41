"""Read releases from files, streaming: release packages, record packages, JSON Lines, .gz, stdin.

Reading is separate from sending: :func:`read_releases` yields :class:`Item` objects (a release's
bytes, or something that could not be used and why), in bounded memory whatever the file size.

- JSON Lines (of releases, or of packages): each line is parsed once with orjson; a release line is
  sent as the bytes it was given, never re-serialised. A line that is not JSON is reported with its
  number, and reading goes on.
- A single JSON document (a release package, a record package, an array, or one release): the top
  level is probed with ijson until the ``releases`` or ``records`` array starts; the bytes read so far
  are replayed and the array's items are built one at a time by ijson's C backend (``yajl2_c``),
  which is ~25% faster than building them from ijson's events in Python. Such releases are sent as
  ``orjson.dumps(release)``.
- Record packages: embedded releases are sent; linked releases (only a ``url``) and records without
  releases are skipped with the reason. Compiled releases (tag ``compiled``) are skipped everywhere.
- A package's ``extensions`` travel with each of its releases (:attr:`Item.extensions`), so each release is
  validated and merged with its package's profile. In a streamed document they are read when they come
  before the ``releases``/``records`` array (where the OCDS package schema lists them).
"""

from __future__ import annotations

import gzip
import io
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol, cast

import ijson
import orjson

MAX_LINE_BYTES = 64 * 1024 * 1024  # a longer line is skipped, not held in memory
FIRST_LINE_BYTES = 8 * 1024 * 1024  # a longer first line is a one-line document: streamed, not held
MAX_PROBE_BYTES = 64 * 1024 * 1024  # a document without a releases/records array is read whole up to this
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")
READ_BUFFER = 1024 * 1024  # few large reads: each read releases the GIL, and getting it back costs
PACKAGE_ARRAYS = ("releases", "records")


@dataclass(frozen=True, slots=True)
class Item:
    """One thing read from an input: a release to send, or something skipped, with where and why."""

    source: str
    location: str  # "line 12", "releases[3]" or "records[0].releases[2]"
    value: bytes | None = None
    ocid: str | None = None
    release_id: str | None = None
    skipped: str | None = None  # why it is not sent
    broken: bool = False  # a line or document that is not JSON
    extensions: tuple[str, ...] = ()  # the extension URLs its package declares


class _Reader(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def read_releases(path: str, *, max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[Item]:
    """Every release in ``path`` (``-`` for stdin, ``.gz`` detected by content), and every part skipped."""
    if path == "-":
        yield from read_stream(sys.stdin.buffer, "stdin", max_line_bytes=max_line_bytes)
        return
    with Path(path).open("rb", buffering=READ_BUFFER) as raw:
        yield from read_stream(raw, path, max_line_bytes=max_line_bytes)


def read_stream(stream: IO[bytes], source: str, *, max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[Item]:
    """Every release in a binary stream (a file, a pipe, gzip or not); ``source`` names it in the items."""
    buffered = stream if isinstance(stream, io.BufferedReader) else io.BufferedReader(
        cast(io.RawIOBase, stream), READ_BUFFER)
    reader: IO[bytes] = buffered
    if buffered.peek(2)[:2] == b"\x1f\x8b":
        reader = cast(IO[bytes], gzip.GzipFile(fileobj=buffered, mode="rb"))
    limit = min(FIRST_LINE_BYTES, max_line_bytes)
    first = _first_line(reader, limit)
    if _looks_like_jsonl(first, source, limit):
        yield from _jsonl(source, reader, first, max_line_bytes)
    else:
        yield from _document(source, _Prepend(b"".join(first), reader))


def _first_line(reader: IO[bytes], limit: int) -> list[bytes]:
    """The first non-empty line, plus the empty lines before it (so they can be replayed)."""
    lines: list[bytes] = []
    while True:
        line = reader.readline(limit)
        lines.append(line)
        if not line or line.strip() or len(line) >= limit:
            return lines


def _looks_like_jsonl(first: list[bytes], source: str, limit: int) -> bool:
    """JSON Lines when the name says so, or when the first line holds a whole object on its own."""
    line = first[-1]
    if len(line) >= limit and not line.endswith(b"\n"):
        return False  # a long first line: a one-line document, streamed rather than held
    if source.lower().endswith(JSONL_SUFFIXES):
        return True
    stripped = line.strip()
    return stripped.startswith(b"{") and stripped.endswith(b"}")


def _jsonl(source: str, reader: IO[bytes], first: list[bytes], limit: int) -> Iterator[Item]:
    number = 0
    pending = list(first)
    readline = reader.readline
    loads = orjson.loads
    while True:
        line = pending.pop(0) if pending else readline(limit)
        if not line:
            return
        number += 1
        if len(line) >= limit and not line.endswith(b"\n"):
            while (rest := readline(limit)) and not rest.endswith(b"\n"):
                pass
            yield Item(source, f"line {number}", skipped=f"longer than {limit} bytes", broken=True)
            continue
        stripped = line.strip()
        if not stripped:
            continue
        try:
            obj = loads(stripped)
        except orjson.JSONDecodeError as exc:
            yield Item(source, f"line {number}", skipped=f"not JSON: {exc}", broken=True)
            continue
        if type(obj) is dict and "ocid" not in obj and ("releases" in obj or "records" in obj):
            yield from _from_package(source, f"line {number}: ", obj)
        else:
            yield _release_item(source, f"line {number}", obj, stripped)


def _declared(package: Any) -> tuple[str, ...]:
    """The extension URLs a package declares (strings of its ``extensions`` array)."""
    urls = package.get("extensions") if type(package) is dict else None
    return tuple(u for u in urls if type(u) is str and u) if type(urls) is list else ()


def _release_item(source: str, location: str, obj: Any, raw: bytes | None = None,
                  extensions: tuple[str, ...] = ()) -> Item:
    if type(obj) is not dict:
        return Item(source, location, skipped="not a JSON object")
    ocid, release_id = obj.get("ocid"), obj.get("id")
    if type(ocid) is not str or not ocid:
        return Item(source, location, skipped="no ocid: the release cannot be keyed")
    tags = obj.get("tag")
    if type(tags) is list and "compiled" in tags:
        return Item(source, location, skipped="a compiled release, not a release: it cannot be merged again")
    if raw is None:
        try:
            raw = orjson.dumps(obj)
        except orjson.JSONEncodeError as exc:
            return Item(source, location, skipped=f"cannot be written as JSON: {exc}")
    return Item(source, location, raw, ocid, release_id if type(release_id) is str else None,
                extensions=extensions)


def _from_package(source: str, location: str, obj: dict[str, Any]) -> Iterator[Item]:
    """A package already in memory (a JSON Lines line, or an item of a top-level array)."""
    releases, records = obj.get("releases"), obj.get("records")
    declared = _declared(obj)
    if type(releases) is list and releases:
        for i, release in enumerate(releases):
            yield _release_item(source, f"{location}releases[{i}]", release, extensions=declared)
    elif type(records) is list and records:
        for i, record in enumerate(records):
            yield from _from_record(source, f"{location}records[{i}]", record, declared)
    else:
        yield Item(source, location.rstrip(": ") or "document", skipped="the package holds no releases")


def _from_record(source: str, location: str, record: Any, declared: tuple[str, ...] = ()) -> Iterator[Item]:
    if type(record) is not dict:
        yield Item(source, location, skipped="a record must be a JSON object")
        return
    releases = record.get("releases")
    if type(releases) is not list or not releases:
        yield Item(source, location, skipped="the record lists no releases")
        return
    for j, release in enumerate(releases):
        where = f"{location}.releases[{j}]"
        if type(release) is dict and "url" in release and "id" not in release and "ocid" not in release:
            yield Item(source, f"{where} {release.get('url')}",
                       skipped="a linked release: only its URL is in the file")
        else:
            yield _release_item(source, where, release, extensions=declared)


def _document(source: str, stream: _Reader) -> Iterator[Item]:
    """One JSON document, streamed: a release package, a record package, an array, or a release."""
    probe = _Recorder(stream, MAX_PROBE_BYTES)
    kind: str | None = None
    declared: list[str] = []
    try:
        for prefix, event, value in ijson.parse(probe, use_float=True):
            if prefix == "extensions.item" and event == "string" and value:
                declared.append(value)
            if prefix == "" and event == "map_key" and value in PACKAGE_ARRAYS:
                kind = value
                break
            if prefix == "" and event == "start_array":
                kind = "item"
                break
    except _TooLarge:
        yield Item(source, "document", skipped=f"no releases or records array in its first {MAX_PROBE_BYTES} bytes")
        return
    except ijson.JSONError as exc:
        yield Item(source, "document", skipped=f"not JSON: {exc}", broken=True)
        return
    if kind is None:
        yield from _whole(source, probe.recorded())
        return
    count = 0
    where = "document"
    try:
        prefix = "item" if kind == "item" else f"{kind}.item"
        for obj in ijson.items(_Prepend(probe.recorded(), stream), prefix, use_float=True):
            where = f"[{count}]" if kind == "item" else f"{kind}[{count}]"
            count += 1
            if kind == "records":
                yield from _from_record(source, where, obj, tuple(declared))
            elif kind == "item" and type(obj) is dict and "ocid" not in obj and (
                    "releases" in obj or "records" in obj):
                yield from _from_package(source, f"{where}.", obj)
            else:
                yield _release_item(source, where, obj, extensions=tuple(declared))
    except ijson.JSONError as exc:
        after = f" after {where}" if count else ""
        yield Item(source, "document", skipped=f"not JSON{after}: {exc}", broken=True)
        return
    if not count:
        yield Item(source, "document", skipped=f"the package holds no {kind if kind != 'item' else 'releases'}")


def _whole(source: str, data: bytes) -> Iterator[Item]:
    """A small document with no releases or records array: one release, or not a release at all."""
    obj = orjson.loads(data)
    if type(obj) is dict and any(key in obj for key in PACKAGE_ARRAYS):
        yield Item(source, "document", skipped="the package holds no releases")
    elif type(obj) is dict and "ocid" in obj:
        yield _release_item(source, "document", obj)
    else:
        yield Item(source, "document", skipped="not a release, a release package or a record package")


class _TooLarge(Exception):
    """The probe read more than it may hold."""


class _Recorder:
    """Reads from ``stream`` and keeps a copy of what was read (at most ``limit`` bytes)."""

    def __init__(self, stream: _Reader, limit: int) -> None:
        self._stream = stream
        self._chunks: list[bytes] = []
        self._size = 0
        self._limit = limit

    def read(self, size: int = -1, /) -> bytes:
        data = self._stream.read(size)
        self._chunks.append(data)
        self._size += len(data)
        if self._size > self._limit:
            raise _TooLarge
        return data

    def recorded(self) -> bytes:
        return b"".join(self._chunks)


class _Prepend:
    """A stream that yields ``head`` before the rest of ``tail`` (bytes already read from it)."""

    def __init__(self, head: bytes, tail: _Reader) -> None:
        self._head = head
        self._tail = tail

    def read(self, size: int = -1, /) -> bytes:
        if not self._head:
            return self._tail.read(size)
        if size is None or size < 0:
            data, self._head = self._head + self._tail.read(), b""
            return data
        data, self._head = self._head[:size], self._head[size:]
        return data
