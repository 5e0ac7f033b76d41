"""The bulk loader's reading side: every input format, what is skipped and why, bounded memory."""

from __future__ import annotations

import gzip
import io
import os
import subprocess
import sys
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from producers.loader import Item, read_releases, read_stream
from tests.conftest import REPO


def _release(n: int, ocid: str = "ocds-07smqs-1", **extra: Any) -> dict[str, Any]:
    return {"ocid": ocid, "id": f"{ocid}-{n}", "date": "2024-01-01T00:00:00Z", "tag": ["tender"], **extra}


def _sent(items: list[Item]) -> list[tuple[str | None, str | None, bytes | None]]:
    return [(i.ocid, i.release_id, i.value) for i in items if i.value is not None]


def _write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def test_release_package_yields_each_release_reserialised(tmp_path: Path) -> None:
    """A pretty-printed release package yields each release as orjson bytes, keyed by ocid and id."""
    releases = [_release(1), _release(2, "ocds-07smqs-2", description="año ñ")]
    path = _write(tmp_path / "p.json", orjson.dumps({"uri": "x", "releases": releases}, option=orjson.OPT_INDENT_2))
    assert _sent(list(read_releases(path))) == [(r["ocid"], r["id"], orjson.dumps(r)) for r in releases]


def test_record_package_sends_embedded_and_skips_linked(tmp_path: Path) -> None:
    """Embedded releases of a record package are sent; linked ones are skipped naming their URL."""
    package = {"records": [{"ocid": "ocds-07smqs-1", "releases": [
        _release(1), {"url": "https://example.com/r2.json", "date": "2024-01-02T00:00:00Z", "tag": ["award"]},
    ], "compiledRelease": _release(9, tag=["compiled"])}, {"ocid": "ocds-07smqs-3"}]}
    items = list(read_releases(_write(tmp_path / "r.json", orjson.dumps(package, option=orjson.OPT_INDENT_2))))
    assert _sent(items) == [("ocds-07smqs-1", "ocds-07smqs-1-1", orjson.dumps(_release(1)))]
    skipped = [(i.location, i.skipped) for i in items if i.value is None]
    assert skipped == [
        ("records[0].releases[1] https://example.com/r2.json", "a linked release: only its URL is in the file"),
        ("records[1]", "the record lists no releases"),
    ]


def test_jsonl_of_releases_sends_the_line_bytes_as_given(tmp_path: Path) -> None:
    """Each JSON Lines release is sent as its own line's bytes, not re-serialised."""
    lines = [b'{"ocid": "ocds-07smqs-1", "id": "a",  "x": 1.50}', b'{"ocid":"ocds-07smqs-2","id":"b"}']
    path = _write(tmp_path / "r.jsonl", b"\n".join(lines) + b"\n")
    assert _sent(list(read_releases(path))) == [("ocds-07smqs-1", "a", lines[0]), ("ocds-07smqs-2", "b", lines[1])]


def test_jsonl_of_packages_yields_their_releases(tmp_path: Path) -> None:
    """A JSON Lines file of release and record packages yields every embedded release, with its line."""
    lines = [orjson.dumps({"releases": [_release(1), _release(2)]}),
             orjson.dumps({"records": [{"ocid": "ocds-07smqs-1", "releases": [_release(3)]}]})]
    items = list(read_releases(_write(tmp_path / "p.txt", b"\n".join(lines))))
    assert [i.release_id for i in items] == ["ocds-07smqs-1-1", "ocds-07smqs-1-2", "ocds-07smqs-1-3"]
    assert [i.location for i in items] == [
        "line 1: releases[0]", "line 1: releases[1]", "line 2: records[0].releases[0]"]


def test_gzip_is_detected_by_content(tmp_path: Path) -> None:
    """A gzip file (whatever its name) is decompressed on the fly, for JSON Lines and packages alike."""
    jsonl = _write(tmp_path / "a.data", gzip.compress(orjson.dumps(_release(1)) + b"\n"))
    package = _write(tmp_path / "b.json.gz", gzip.compress(orjson.dumps({"releases": [_release(2)]})))
    assert [i.release_id for i in read_releases(jsonl)] == ["ocds-07smqs-1-1"]
    assert [i.release_id for i in read_releases(package)] == ["ocds-07smqs-1-2"]


def test_stdin_dash_reads_a_pipe() -> None:
    """``-`` reads standard input (a real pipe from another process), gzip included."""
    data = gzip.compress(b"\n".join(orjson.dumps(_release(n)) for n in range(3)))
    code = ("import sys\nfrom producers.loader import read_releases\n"
            "print(','.join(i.release_id or '-' for i in read_releases('-')))")
    result = subprocess.run([sys.executable, "-c", code], input=data, capture_output=True, cwd=REPO,
                            check=True, timeout=30)
    assert result.stdout.decode().strip() == "ocds-07smqs-1-0,ocds-07smqs-1-1,ocds-07smqs-1-2"


def test_read_stream_accepts_an_unbuffered_file_object() -> None:
    """The stream seam takes any binary file object; a release package on it is read."""
    stream = io.BytesIO(orjson.dumps({"releases": [_release(1)]}))
    assert [i.release_id for i in read_stream(stream, "memory")] == ["ocds-07smqs-1-1"]


def test_broken_lines_are_reported_with_line_numbers(tmp_path: Path) -> None:
    """Lines that are not JSON are reported broken with their numbers; the good ones around them are read."""
    data = b"\n".join([orjson.dumps(_release(1)), b'{"ocid": "x", "id":', b"", b"nope",
                       orjson.dumps(_release(2)), b"[1, 2]"])
    items = list(read_releases(_write(tmp_path / "b.jsonl", data)))
    assert [i.release_id for i in items if i.value] == ["ocds-07smqs-1-1", "ocds-07smqs-1-2"]
    assert [(i.location, i.broken) for i in items if i.value is None] == [
        ("line 2", True), ("line 4", True), ("line 6", False)]
    assert items[1].skipped is not None and items[1].skipped.startswith("not JSON")


def test_a_first_line_that_is_broken_still_means_json_lines(tmp_path: Path) -> None:
    """A .jsonl file whose lines are all broken reports each line, not one broken document."""
    items = list(read_releases(_write(tmp_path / "all-broken.jsonl", b"{oops\n{\"a\":\n")))
    assert [(i.location, i.broken) for i in items] == [("line 1", True), ("line 2", True)]


def test_overlong_line_is_skipped_not_held(tmp_path: Path) -> None:
    """A line longer than the limit is reported and skipped; reading goes on with the next line."""
    data = orjson.dumps(_release(1)) + b"\n" + b'{"x": "' + b"y" * 5000 + b'"}\n' + orjson.dumps(_release(2))
    items = list(read_releases(_write(tmp_path / "l.jsonl", data), max_line_bytes=1000))
    assert [(i.location, i.release_id) for i in items] == [
        ("line 1", "ocds-07smqs-1-1"), ("line 2", None), ("line 3", "ocds-07smqs-1-2")]
    assert items[1].skipped == "longer than 1000 bytes"


def test_compiled_releases_and_releases_without_ocid_are_skipped(tmp_path: Path) -> None:
    """Compiled releases and releases with no ocid are skipped with the reason."""
    data = orjson.dumps({"releases": [_release(1, tag=["compiled"]), {"id": "1"}, 5, _release(2)]},
                        option=orjson.OPT_INDENT_2)
    items = list(read_releases(_write(tmp_path / "c.json", data)))
    assert [(i.location, i.skipped) for i in items] == [
        ("releases[0]", "a compiled release, not a release: it cannot be merged again"),
        ("releases[1]", "no ocid: the release cannot be keyed"),
        ("releases[2]", "not a JSON object"),
        ("releases[3]", None),
    ]


def test_single_release_array_and_empty_package(tmp_path: Path) -> None:
    """A bare release, a top-level array of releases and packages, and an empty package are all handled."""
    single = _write(tmp_path / "one.json", orjson.dumps(_release(1), option=orjson.OPT_INDENT_2))
    array = _write(tmp_path / "arr.json", b"[\n" + orjson.dumps(_release(2)) + b",\n"
                   + orjson.dumps({"releases": [_release(3)]}) + b"\n]")
    empty = _write(tmp_path / "empty.json", b'{"uri": "x",\n "releases": []}')
    assert [i.release_id for i in read_releases(single)] == ["ocds-07smqs-1-1"]
    assert [i.release_id for i in read_releases(array)] == ["ocds-07smqs-1-2", "ocds-07smqs-1-3"]
    assert [i.skipped for i in read_releases(empty)] == ["the package holds no releases"]


def test_truncated_package_yields_what_came_before_and_a_broken_document(tmp_path: Path) -> None:
    """A package cut off mid-way yields the releases before the cut, then one broken item saying where."""
    data = orjson.dumps({"releases": [_release(1), _release(2)]})[:-30]
    items = list(read_releases(_write(tmp_path / "t.json", data)))
    assert [i.release_id for i in items if i.value] == ["ocds-07smqs-1-1"]
    assert items[-1].broken and items[-1].skipped is not None and "after releases[0]" in items[-1].skipped


def test_big_package_is_streamed_in_bounded_memory(tmp_path: Path) -> None:
    """A ~50 MB release package is read with a peak of traced memory far below its size."""
    release = _release(0, description="x" * 4000)
    body = b",\n".join(orjson.dumps({**release, "id": str(n)}) for n in range(12_000))
    path = tmp_path / "big.json"
    path.write_bytes(b'{"uri": "x", "releases": [\n' + body + b"\n]}")
    size = path.stat().st_size
    del body
    tracemalloc.start()
    try:
        count = sum(1 for item in read_releases(str(path)) if item.value is not None)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 12_000
    assert size > 45e6
    assert peak < 8e6, f"peak {peak / 1e6:.1f} MB for a {size / 1e6:.0f} MB package"


EXPECTED_REAL = {  # file (under real/) -> (sent, {reason: count}); see ../shared/data/README.md
    "mx-gacm-naicm.releases.jsonl": (302, {}),
    "mx-inai-2017.releases.jsonl": (88, {}),
    "mx-cdmx.releases.jsonl": (20, {}),
    "mx-jalisco.releases.jsonl": (10, {}),
    "mx-apf.releases.jsonl": (2, {}),
    "mx-nuevoleon.releases.jsonl": (3, {}),
    "py-dncp.releases.jsonl": (50, {}),
    "package_metadata.json": (0, {"not a release, a release package or a record package": 1}),
    "records/mx-apf/bulk-2018-compiled-releases.jsonl": (
        0, {"a compiled release, not a release: it cannot be merged again": 10}),
    "records/mx-apf": (2, {}),
    "records/mx-inai-edca": (0, {"a linked release: only its URL is in the file": 333}),
    "records/mx-jalisco": (0, {"a linked release: only its URL is in the file": 49}),
    "records/mx-nuevoleon": (0, {"a linked release: only its URL is in the file": 24}),
    "records/py-dncp": (0, {"a linked release: only its URL is in the file": 48}),
}


@pytest.mark.parametrize("name", sorted(EXPECTED_REAL))
def test_every_real_file_is_read_with_expected_counts(real_data: Path, name: str) -> None:
    """Each real file (or folder of record packages) yields the documented releases; the rest is skipped why."""
    target = real_data / name
    paths = sorted(target.glob("*.json")) if target.is_dir() else [target]
    items = [item for path in paths for item in read_releases(str(path))]
    sent, reasons = EXPECTED_REAL[name]
    assert sum(1 for i in items if i.value is not None) == sent
    assert Counter(i.skipped for i in items if i.value is None) == Counter(reasons)
    assert not any(i.broken for i in items)


def test_expected_real_covers_every_real_file(real_data: Path) -> None:
    """The table of expected counts names every file under real/, so none is left untested."""
    covered = {real_data / n for n in EXPECTED_REAL}
    files = [p for p in real_data.rglob("*") if p.is_file()]
    assert all(p in covered or p.parent in covered for p in files), sorted(
        os.fspath(p) for p in files if p not in covered and p.parent not in covered)


def test_package_releases_equal_a_whole_file_parse(real_data: Path) -> None:
    """Releases streamed from real record packages are byte-equal to orjson re-serialising the whole file."""
    for path in sorted((real_data / "records" / "mx-apf").glob("*.json")):
        whole = orjson.loads(path.read_bytes())
        expected = [orjson.dumps(r) for record in whole["records"] for r in record["releases"]]
        assert [i.value for i in read_releases(str(path)) if i.value] == expected


EXT_A = "https://raw.githubusercontent.com/o/ocds_a_extension/master/extension.json"
EXT_B = "https://raw.githubusercontent.com/o/ocds_b_extension/master/extension.json"


def test_package_extensions_travel_with_each_release(tmp_path: Path) -> None:
    """A streamed release package, a record package and a JSON Lines package line give each release the
    extensions its package declares; bare releases declare none."""
    streamed = {"uri": "x", "extensions": [EXT_A, EXT_B], "releases": [_release(1), _release(2)]}
    records = {"extensions": [EXT_B], "records": [{"ocid": "ocds-07smqs-1", "releases": [_release(3)]}]}
    line = {"extensions": [EXT_A, 7, ""], "releases": [_release(4)]}
    files = [
        _write(tmp_path / "p.json", orjson.dumps(streamed, option=orjson.OPT_INDENT_2)),
        _write(tmp_path / "r.json", orjson.dumps(records, option=orjson.OPT_INDENT_2)),
        _write(tmp_path / "l.jsonl", orjson.dumps(line) + b"\n" + orjson.dumps(_release(5)) + b"\n"),
    ]
    declared = [(i.release_id, i.extensions) for path in files for i in read_releases(path) if i.value]
    assert declared == [
        ("ocds-07smqs-1-1", (EXT_A, EXT_B)), ("ocds-07smqs-1-2", (EXT_A, EXT_B)), ("ocds-07smqs-1-3", (EXT_B,)),
        ("ocds-07smqs-1-4", (EXT_A,)), ("ocds-07smqs-1-5", ()),
    ]


def test_real_federal_packages_declare_their_four_extensions(real_data: Path) -> None:
    """The APF record packages' embedded releases carry the 4 extensions the packages declare."""
    items = [i for i in read_releases(str(real_data / "records" / "mx-apf" / "record-package-1.json")) if i.value]
    assert len(items) == 1 and len(items[0].extensions) == 4
    assert all(url.endswith("/extension.json") for url in items[0].extensions)
