"""What the end-to-end benchmarks share: an isolated stack, child ``ocds-live`` processes, percentiles.

A copy of the few helpers of ``tests/support/stack.py`` the benchmarks need (benchmarks never import
from ``tests/``): a fresh migrated database and topics of their own per run, dropped afterwards, and
``ocds-live process`` / ``ocds-live serve`` started as real child processes with those settings.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import orjson
import psycopg2

from core.settings import Settings, load_settings
from core.store.connection import database_url
from core.store.migrate import migrate

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("OCDS_LIVE_SHARED_DIR", REPO.parent / "shared"))
SCHEMA_DIR = Path(os.environ.get("OCDS_LIVE_SCHEMA_DIR", SHARED / "ocds" / "1.1.5"))


def base_settings() -> Settings:
    """The environment's settings, with the schema from ../shared when it is there (no download)."""
    return load_settings(schema_dir=SCHEMA_DIR) if SCHEMA_DIR.is_dir() else load_settings()


def require_services(settings: Settings) -> str:
    """The database URL; exits with what to do when Kafka or PostgreSQL is missing."""
    from kafka.admin import KafkaAdminClient

    try:
        url = database_url(settings)
        psycopg2.connect(url, connect_timeout=3).close()
    except Exception as exc:  # noqa: BLE001
        raise SystemExit(f"PostgreSQL is not reachable ({exc}); run `ocds-live services up` first") from exc
    try:
        admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers, request_timeout_ms=5000)
        admin.list_topics()
        admin.close()
    except Exception as exc:  # noqa: BLE001
        raise SystemExit(f"Kafka is not reachable at {settings.kafka_bootstrap_servers} ({exc}); "
                         "run `ocds-live services up` first") from exc
    return url


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def delete_topics(settings: Settings, names: Sequence[str]) -> None:
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    try:
        existing = set(admin.list_topics())
        doomed = [n for n in names if n in existing]
        if doomed:
            admin.delete_topics(doomed)
    finally:
        admin.close()


@contextlib.contextmanager
def fresh_stack(base: Settings, **overrides: object) -> Iterator[Settings]:
    """Settings for an isolated stack: a new migrated database and topics of its own, removed afterwards."""
    from core.kafka import ensure_topics

    url = require_services(base)
    tag = uuid.uuid4().hex[:10]
    name = f"ocds_bench_{tag}"
    admin = psycopg2.connect(url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    settings = base.model_copy(update={
        "database_url": _with_database(url, name),
        "releases_topic": f"b{tag}.releases",
        "rejected_topic": f"b{tag}.rejected",
        "changes_topic": f"b{tag}.changes",
        "app_id": f"b{tag}",
        **overrides,
    })
    try:
        conn = psycopg2.connect(settings.database_url)
        migrate(conn)
        conn.close()
        ensure_topics(settings)
        yield settings
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
        with contextlib.suppress(Exception):
            delete_topics(settings, [settings.releases_topic, settings.rejected_topic, settings.changes_topic])


def env_for(settings: Settings, **extra: str) -> dict[str, str]:
    """Environment variables that reproduce ``settings`` in a child process."""
    env = dict(os.environ)
    for field, value in settings.model_dump().items():
        if value is None:
            continue
        if field == "database_url":
            env["DATABASE_URL"] = str(value)
        elif field == "kafka_bootstrap_servers":
            env["KAFKA_BOOTSTRAP_SERVERS"] = str(value)
        elif hasattr(value, "get_secret_value"):
            env[f"OCDS_LIVE_{field.upper()}"] = value.get_secret_value()
        else:
            env[f"OCDS_LIVE_{field.upper()}"] = str(value)
    env.update(extra)
    return env


class Process:
    """A long-running ``ocds-live`` subcommand, its output in ``log``; stopped after the benchmark."""

    def __init__(self, settings: Settings, *args: str, log: Path, **extra_env: str) -> None:
        self.log = log
        self._fh = log.open("wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "ocds_live.cli", *args],  # noqa: S603
                                     env=env_for(settings, **extra_env), stdout=self._fh,
                                     stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._fh.close()


def peak_rss_mb(pid: int) -> float:
    """The peak resident set size of a live process (VmHWM), in MB; 0 when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_http(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - localhost
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not answer within {timeout:.0f}s")


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values`` by the nearest-rank method; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def generate(path: Path, releases: int, *, seed: int = 1, processes: int | None = None,
             project_share: float | None = None, projects: int | None = None) -> tuple[int, int]:
    """``releases`` simulated releases (the first of a date-ordered stream), one per line; (count, bytes).
    ``project_share`` of the processes build one of ``projects`` infrastructure projects (default: the
    simulator's)."""
    from producers.simulator import PROJECT_SHARE, simulate

    share = PROJECT_SHARE if project_share is None else project_share
    events = itertools.islice(simulate(seed=seed, processes=processes or max(1000, releases), project_share=share,
                                       projects=projects), releases)
    size = count = 0
    with path.open("wb") as out:
        for event in events:
            line = orjson.dumps(event.release) + b"\n"
            out.write(line)
            size += len(line)
            count += 1
    return count, size


class CpuMeter:
    """Cores used between ``start`` and ``stop``: the whole machine's, and each named group of processes'.

    A group is a list of pids or a function giving them (asked again at ``stop``, so processes started
    in between count too). The machine may be shared: ``machine`` minus the groups is everybody else.
    """

    def __init__(self, groups: dict[str, list[int] | Callable[[], list[int]]]) -> None:
        self.groups = groups
        self._wall = 0.0
        self._busy = 0.0
        self._own: dict[str, dict[int, float]] = {}

    @staticmethod
    def _busy_seconds() -> float:
        import psutil

        t = psutil.cpu_times()
        return float(t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)
                     + getattr(t, "steal", 0.0))

    def _seconds(self, name: str) -> dict[int, float]:
        import psutil

        group = self.groups[name]
        out: dict[int, float] = {}
        for pid in group() if callable(group) else group:
            with contextlib.suppress(psutil.Error):
                times = psutil.Process(pid).cpu_times()
                out[pid] = float(times.user + times.system)
        return out

    def start(self) -> None:
        self._wall = time.monotonic()
        self._busy = self._busy_seconds()
        self._own = {name: self._seconds(name) for name in self.groups}

    def stop(self) -> dict[str, float]:
        """Cores used (1.0 = one core busy all the time) by ``machine`` and by each group."""
        wall = max(1e-9, time.monotonic() - self._wall)
        out = {"machine": (self._busy_seconds() - self._busy) / wall}
        for name in self.groups:
            before = self._own[name]
            now = self._seconds(name)
            out[name] = sum(seconds - before.get(pid, 0.0) for pid, seconds in now.items()) / wall
        return out


def load_note() -> str:
    """The machine's load right now (other jobs share these cores)."""
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min), {five:.1f} (5 min) on {os.cpu_count()} cores"


def service_pids() -> list[int]:
    """PostgreSQL's and Kafka's processes (shared with anything else using the local services)."""
    import psutil

    pids = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        with contextlib.suppress(psutil.Error):
            cmd = " ".join(proc.info["cmdline"] or [])
            if proc.info["name"] == "postgres" or (proc.info["name"] == "java" and "kafka" in cmd.lower()):
                pids.append(proc.pid)
    return pids
