"""What a scale run needs and uses on disk: bytes per release measured beforehand, the free space checked,
and where the bytes are at the end (tables, TOAST, indexes; the topics' partitions)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import psycopg2

from bench._common import fresh_stack, require_services
from core.settings import Settings


def scalar(conn: Any, sql: str, *params: object) -> int:
    """The first column of the first row (0 when NULL or no row); nothing for a statement without rows."""
    with conn.cursor() as cur:
        cur.execute(sql, params)
        row = cur.fetchone() if cur.description else None
    return int(row[0]) if row and row[0] is not None else 0


def calibrate(settings: Settings, lines: list[bytes]) -> tuple[float, float]:
    """(JSON bytes, PostgreSQL bytes) per release, from ``lines`` (releases) through the processor."""
    from core.publishers import load_publishers
    from core.schema import load_schema
    from core.store.connection import connect
    from streams.processor import BatchProcessor, Incoming

    with fresh_stack(settings) as stack:
        conn = psycopg2.connect(stack.database_url)
        conn.autocommit = True
        size = scalar(conn, "SELECT pg_database_size(current_database())")
        processor = BatchProcessor(stack, load_schema(stack.schema_dir, stack.cache_dir),
                                   load_publishers(stack.publishers_file), lambda: connect(stack))
        try:
            for start in range(0, len(lines), 500):
                batch = [Incoming(f"{stack.releases_topic}.direct", 0, start + n, line, {"publisher": "simulator"})
                         for n, line in enumerate(lines[start:start + 500])]
                processor.process(batch)
        finally:
            processor.close()
        scalar(conn, "CHECKPOINT")
        grown = scalar(conn, "SELECT pg_database_size(current_database())") - size
        conn.close()
    return sum(map(len, lines)) / len(lines), grown / len(lines)


def check_disk(settings: Settings, count: int, json_bytes: float, pg_bytes: float, measured: int) -> None:
    """Print what the run needs on disk, and stop when the file systems of PostgreSQL or Kafka lack it."""
    pgdata = Path(data_directory(settings))
    kafka_dir = settings.data_dir / "kafka"
    topics = 2 * count * json_bytes  # the releases topic, and the change topic (summaries of about that size)
    store = 2 * count * pg_bytes * 1.25  # the store and its replay, with a quarter more for growing indexes
    wal = 4e9
    need = {pgdata: store + wal, kafka_dir if kafka_dir.exists() else pgdata: topics}
    print(f"disk: {count:,} releases x ({json_bytes / 1e3:.1f} KB JSON, {pg_bytes / 1e3:.1f} KB in PostgreSQL, "
          f"measured on {measured:,}) -> topics {topics / 1e9:.1f} GB, store + replay {store / 1e9:.1f} GB, "
          f"WAL {wal / 1e9:.0f} GB: {sum(need.values()) / 1e9:.1f} GB in all", flush=True)
    by_device: dict[int, tuple[Path, float]] = {}
    for path, size in need.items():
        device = path.stat().st_dev
        by_device[device] = (path, by_device.get(device, (path, 0.0))[1] + size)
    for path, size in by_device.values():
        free = shutil.disk_usage(path).free
        print(f"disk: {free / 1e9:.1f} GB free on the file system of {path}, {size / 1e9:.1f} GB needed", flush=True)
        if free < size:
            raise SystemExit(f"not enough disk for {count:,} releases: {size / 1e9:.1f} GB needed on the file system "
                             f"of {path}, {free / 1e9:.1f} GB free; run fewer --releases or free space")


def data_directory(settings: Settings) -> str:
    """The PostgreSQL server's data directory."""
    conn = psycopg2.connect(require_services(settings))
    with conn.cursor() as cur:
        cur.execute("SHOW data_directory")
        row = cur.fetchone()
    conn.close()
    return str(row[0]) if row else ""


def table_sizes(conn: Any) -> list[tuple[str, int, int, int, int]]:
    """(table, total, heap, TOAST, indexes) in bytes, for the store's largest tables."""
    with conn.cursor() as cur:
        cur.execute("SELECT c.relname, pg_total_relation_size(c.oid), pg_relation_size(c.oid), "
                    "coalesce(pg_total_relation_size(nullif(c.reltoastrelid, 0)), 0), pg_indexes_size(c.oid) "
                    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE c.relkind = 'r' AND n.nspname = 'public' ORDER BY 2 DESC LIMIT 5")
        return [(str(r[0]), int(r[1]), int(r[2]), int(r[3]), int(r[4])) for r in cur.fetchall()]


def kafka_bytes(settings: Settings) -> int:
    """Bytes on disk of the stack's topics' partitions in the local broker's log folder (0 when elsewhere);
    blocks in use, as the index files are sparse."""
    names = (settings.releases_topic, settings.changes_topic, settings.rejected_topic)
    root = settings.data_dir / "kafka"
    return sum(f.stat().st_blocks * 512 for d in root.rglob("*") if d.is_dir() and d.name.rsplit("-", 1)[0] in names
               for f in d.iterdir() if f.is_file()) if root.exists() else 0
