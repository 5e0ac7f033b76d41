"""Read releases from files, streaming: release packages, record packages, JSON Lines, .gz, stdin.

Reading is separate from sending: :func:`read_releases` yields :class:`Item` objects (a release's
bytes, or a line that could not be used and why), in bounded memory whatever the file size.
"""

from __future__ import annotations

import gzip
import io
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

import ijson
import orjson


@dataclass(frozen=True)
class Item:
    """One thing read from an input: a release to send, or something skipped, with where and why."""

    source: str
    location: str  # "line 12" or "releases[3]"
    value: bytes | None = None
    ocid: str | None = None
    release_id: str | None = None
    skipped: str | None = None  # why it is not sent
    broken: bool = False  # a line or document that is not JSON


def _open(path: str) -> IO[bytes]:
    raw = sys.stdin.buffer if path == "-" else Path(path).open("rb")  # noqa: SIM115
    buffered = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(cast(io.RawIOBase, raw))
    if buffered.peek(2)[:2] == b"\x1f\x8b":
        return cast(IO[bytes], gzip.GzipFile(fileobj=buffered))
    return buffered


def _release_item(source: str, location: str, obj: Any, raw: bytes | None = None) -> Item:
    if not isinstance(obj, dict):
        return Item(source, location, skipped="not a JSON object")
    ocid, release_id = obj.get("ocid"), obj.get("id")
    if not isinstance(ocid, str) or not ocid:
        return Item(source, location, skipped="no ocid: the release cannot be keyed")
    tags = obj.get("tag")
    if isinstance(tags, list) and "compiled" in tags:
        return Item(source, location, skipped="a compiled release, not a release: it cannot be merged again")
    value = raw if raw is not None else orjson.dumps(obj)
    return Item(source, location, value, ocid, release_id if isinstance(release_id, str) else None)


def _from_package(source: str, location: str, obj: dict[str, Any]) -> Iterator[Item]:
    if isinstance(obj.get("releases"), list):
        for i, release in enumerate(obj["releases"]):
            yield _release_item(source, f"{location}releases[{i}]", release)
    elif isinstance(obj.get("records"), list):
        for i, record in enumerate(obj["records"]):
            yield from _from_record(source, f"{location}records[{i}]", record)
    else:
        yield _release_item(source, location or "document", obj)


def _from_record(source: str, location: str, record: Any) -> Iterator[Item]:
    if not isinstance(record, dict):
        yield Item(source, location, skipped="a record must be a JSON object")
        return
    releases = record.get("releases")
    if not isinstance(releases, list) or not releases:
        yield Item(source, location, skipped="the record lists no releases")
        return
    for j, release in enumerate(releases):
        where = f"{location}.releases[{j}]"
        if isinstance(release, dict) and "url" in release and "id" not in release:
            yield Item(source, where, skipped=f"linked release ({release.get('url')}): only its URL is in the file")
        else:
            yield _release_item(source, where, release)


def _jsonl(source: str, stream: IO[bytes], first: bytes) -> Iterator[Item]:
    lines = iter(stream)
    number = 0
    for line in _chain(first, lines):
        number += 1
        stripped = line.strip()
        if not stripped:
            continue
        try:
            obj = orjson.loads(stripped)
        except orjson.JSONDecodeError as exc:
            yield Item(source, f"line {number}", skipped=f"not JSON: {exc}", broken=True)
            continue
        if isinstance(obj, dict) and ("releases" in obj or "records" in obj) and "ocid" not in obj:
            yield from _from_package(source, f"line {number}: ", obj)
        else:
            yield _release_item(source, f"line {number}", obj, stripped)


def _chain(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


def _document(source: str, stream: IO[bytes]) -> Iterator[Item]:
    """A single JSON document, streamed with ijson: a release package, a record package or a release."""
    builders: dict[str, Any] = {}
    top = ijson.ObjectBuilder()
    depth_top = True
    index = {"releases": 0, "records": 0}
    try:
        for prefix, event, value in ijson.parse(stream, use_float=True):
            if prefix in ("releases.item", "records.item") or prefix.startswith(("releases.item.", "records.item.")):
                key = prefix.split(".", 1)[0]
                if prefix == f"{key}.item" and event in ("start_map", "start_array"):
                    builders[key] = ijson.ObjectBuilder()
                builder = builders.get(key)
                if builder is not None:
                    builder.event(event, value)
                    if prefix == f"{key}.item" and event in ("end_map", "end_array"):
                        obj = builder.value
                        builders.pop(key)
                        i = index[key]
                        index[key] += 1
                        if key == "releases":
                            yield _release_item(source, f"releases[{i}]", obj)
                        else:
                            yield from _from_record(source, f"records[{i}]", obj)
                elif prefix == f"{key}.item":  # a scalar item
                    i = index[key]
                    index[key] += 1
                    yield Item(source, f"{key}[{i}]", skipped="not a JSON object")
            elif depth_top:
                top.event(event, value)
    except ijson.JSONError as exc:
        yield Item(source, "document", skipped=f"not JSON: {exc}", broken=True)
        return
    if index["releases"] == 0 and index["records"] == 0:
        obj = top.value
        if isinstance(obj, dict) and not ("releases" in obj or "records" in obj):
            yield _release_item(source, "document", obj)
        elif isinstance(obj, dict):
            yield Item(source, "document", skipped="the package holds no releases")
        else:
            yield Item(source, "document", skipped="not a release, a release package or a record package")


def read_releases(path: str) -> Iterator[Item]:
    """Every release in ``path`` (``-`` for stdin), and every part that had to be skipped."""
    source = "stdin" if path == "-" else path
    with _open(path) as stream:
        first = stream.readline()
        stripped = first.strip()
        if stripped.startswith(b"{") and stripped.endswith(b"}"):
            try:
                orjson.loads(stripped)
                yield from _jsonl(source, stream, first)
                return
            except orjson.JSONDecodeError:
                pass
        yield from _document(source, cast(IO[bytes], io.BufferedReader(_Prepend(first, stream))))


class _Prepend(io.RawIOBase):
    """A stream that yields ``head`` before the rest of ``tail`` (for a line already read)."""

    def __init__(self, head: bytes, tail: IO[bytes]) -> None:
        self._head = head
        self._tail = tail

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._tail.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            return self._head + self._tail.read()
        return super().read(size) or b""
