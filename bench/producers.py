"""Bulk-loader throughput and memory, next to the two limits measured on the same file in the same run.

    .venv/bin/python bench/producers.py [--releases N] [--sizes] [--max-gb G] [--workdir DIR]

Generates N simulated releases (JSON Lines, via ``producers.simulator``), then runs, each in its own
child process so that its peak RSS is its own (``os.wait4``):

- ``parse``:  orjson parses every line, nothing else (the physical limit: reading needs one parse);
- ``raw``:    kafka-python sends the same line bytes, key = ocid, no parsing (``ReleaseProducer``'s
              settings: idempotent, acks=all, zstd) to a throwaway topic;
- ``loader``: ``read_releases`` + ``send_items`` end to end, as ``ocds-live load`` does.

``--sizes`` also writes release packages of ~100 MB and ~1 GB (``--max-gb 2`` adds 2 GB; the files
take that much disk under ``--workdir``, deleted afterwards) and reports the peak RSS of ``read_releases``
over each, to show it stays flat. Topics are created with unique names and deleted afterwards.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def generate(path: Path, releases: int) -> tuple[int, int]:
    """N simulated releases, one per line, and a side file of their ocids (for ``raw``'s keys)."""
    from producers.simulator import simulate

    events = itertools.islice(simulate(seed=1, processes=max(1000, releases)), releases)
    size = count = 0
    import orjson

    with path.open("wb") as out, path.with_suffix(".keys").open("w") as keys:
        for event in events:
            line = orjson.dumps(event.release) + b"\n"
            out.write(line)
            keys.write(f"{event.release['ocid']}\n")
            size += len(line)
            count += 1
    return count, size


def build_package(lines: Path, out: Path, target_bytes: int) -> int:
    """A release package of about ``target_bytes``: the lines of ``lines``, repeated as needed."""
    written = 0
    with out.open("wb") as f:
        f.write(b'{"uri":"https://example.com/bench","publishedDate":"2024-01-01T00:00:00Z","releases":[\n')
        first = True
        while written < target_bytes:
            with lines.open("rb") as src:
                for line in src:
                    if not first:
                        f.write(b",\n")
                    first = False
                    f.write(line.rstrip(b"\n"))
                    written += len(line) + 1
                    if written >= target_bytes:
                        break
        f.write(b"\n]}\n")
    return out.stat().st_size


# --- the measurements, each run in a child process --------------------------------------------------------


def measure(mode: str, path: str, topic: str | None) -> dict[str, Any]:
    import orjson

    from core.settings import load_settings

    start = time.perf_counter()
    count = 0
    if mode == "parse":
        with open(path, "rb") as f:
            for line in f:
                orjson.loads(line)
                count += 1
    elif mode == "read":
        from producers.loader import read_releases

        for item in read_releases(path):
            count += item.value is not None
    elif mode == "raw":
        from core.kafka import ReleaseProducer

        producer = ReleaseProducer(load_settings(), client_id="bench-raw")
        raw = producer._producer  # noqa: SLF001 -- the very KafkaProducer (same settings) the loader uses
        with open(path, "rb") as f, open(Path(path).with_suffix(".keys"), "rb") as keys:
            for line, key in zip(f, keys, strict=True):
                raw.send(topic, key=key.rstrip(b"\n"), value=line.rstrip(b"\n"))
                count += 1
        raw.flush(timeout=300)
        producer.close()
    elif mode == "loader":
        from core.kafka import ReleaseProducer
        from producers.loader import read_releases
        from producers.send import send_items

        settings = load_settings().model_copy(update={"releases_topic": topic})
        producer = ReleaseProducer(settings, client_id="bench-loader")
        summary = send_items(read_releases(path), producer, publisher="bench", source="bench", progress=False)
        producer.close()
        count = summary.sent
    seconds = time.perf_counter() - start
    return {"count": count, "seconds": seconds}


def run_child(mode: str, path: Path, topic: str | None = None) -> dict[str, Any]:
    args = [sys.executable, __file__, "--child", mode, str(path)] + ([topic] if topic else [])
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, cwd=REPO)  # noqa: S603
    assert proc.stdout is not None
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{mode} failed with exit code {proc.returncode}")
    result: dict[str, Any] = json.loads(output)
    result["rss_mb"] = usage.ru_maxrss / 1024  # Linux: kilobytes
    result["bytes"] = path.stat().st_size
    return result


# --- topics -----------------------------------------------------------------------------------------------


def create_topics(names: list[str]) -> None:
    from kafka.admin import KafkaAdminClient, NewTopic

    from core.settings import load_settings

    settings = load_settings()
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    big = str(settings.max_release_bytes + 1024 * 1024)
    admin.create_topics([NewTopic(n, num_partitions=settings.partitions, replication_factor=1,
                                  topic_configs={"max.message.bytes": big}) for n in names])
    admin.close()


def delete_topics(names: list[str]) -> None:
    from kafka.admin import KafkaAdminClient

    from core.settings import load_settings

    admin = KafkaAdminClient(bootstrap_servers=load_settings().kafka_bootstrap_servers)
    try:
        admin.delete_topics(names)
    finally:
        admin.close()


# --- the report -------------------------------------------------------------------------------------------


def row(name: str, r: dict[str, Any], parse_rate: float | None) -> str:
    rate = r["count"] / r["seconds"]
    mbs = r["bytes"] / r["seconds"] / 1e6
    ratio = f"{rate / parse_rate:6.0%}" if parse_rate else "     -"
    return f"{name:<34} {r['count']:>9,} {r['seconds']:>8.1f} {rate:>11,.0f} {mbs:>7.1f} {ratio} {r['rss_mb']:>9.0f}"


def header() -> str:
    return f"{'':<34} {'releases':>9} {'seconds':>8} {'releases/s':>11} {'MB/s':>7} {'/parse':>6} {'peak RSS':>9}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--releases", type=int, default=100_000)
    parser.add_argument("--sizes", action="store_true", help="peak RSS of read_releases on 100 MB and 1 GB packages")
    parser.add_argument("--max-gb", type=float, default=1.0, help="largest package for --sizes, in GB")
    parser.add_argument("--workdir", type=Path, default=None, help="where the files go (default: a temp dir)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, path, *topic = args.child
        print(json.dumps(measure(mode, path, topic[0] if topic else None)))
        return 0

    with tempfile.TemporaryDirectory(dir=args.workdir, prefix="ocds-bench-") as tmp:
        folder = Path(tmp)
        jsonl = folder / "releases.jsonl"
        t0 = time.perf_counter()
        count, size = generate(jsonl, args.releases)
        print(f"generated {count:,} simulated releases, {size / 1e6:.0f} MB ({size / count / 1e3:.1f} KB each) "
              f"in {time.perf_counter() - t0:.0f}s: {jsonl}")
        tag = uuid.uuid4().hex[:8]
        topics = [f"bench-{tag}.raw", f"bench-{tag}.loader"]
        create_topics(topics)
        try:
            parse = run_child("parse", jsonl)
            raw = run_child("raw", jsonl, topics[0])
            loader = run_child("loader", jsonl, topics[1])
        finally:
            delete_topics(topics)
        parse_rate = parse["count"] / parse["seconds"]
        print()
        print(f"JSON Lines, {count:,} releases, {size / 1e6:.0f} MB, one run (each line in its own process)")
        print(header())
        print(row("orjson parse only (limit)", parse, None))
        print(row("kafka-python raw send (limit)", raw, parse_rate))
        print(row("loader: read_releases + send_items", loader, parse_rate))
        if args.sizes:
            sizes = [100e6, 1e9] + ([args.max_gb * 1e9] if args.max_gb > 1 else [])
            print()
            print("read_releases over a release package (parse + build + re-serialise, no Kafka)")
            print(header())
            for target in sizes:
                package = folder / f"package-{int(target / 1e6)}MB.json"
                build_package(jsonl, package, int(target))
                result = run_child("read", package)
                print(row(f"package {package.stat().st_size / 1e6:,.0f} MB", result, parse_rate))
                package.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
