"""Where the cores go while the pipeline runs: workers, their relay threads and project builder processes,
PostgreSQL, Kafka, and everything else on the machine.

The relay (streams/relay.py, with its Kafka producer's network thread) is a thread of a worker: py-spy names
a worker's threads (``py-spy dump --json``), and their CPU time is read per thread from /proc. Without py-spy
it is counted with the workers, and the table says so. The project builder is a child process of each worker
(streams/project_builder.py): ``projects`` is the CPU of the workers' children.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson

from bench._common import CpuMeter

THREADS = {"relay": ("ocds-relay", "kafka-python-producer")}


def children(workers: list[int]) -> Callable[[], list[int]]:
    """The child processes of the workers: their project builders (and multiprocessing's resource tracker)."""
    import psutil

    def pids() -> list[int]:
        out = []
        for pid in workers:
            with contextlib.suppress(psutil.Error):
                out += [child.pid for child in psutil.Process(pid).children(recursive=True)]
        return out

    return pids


def postgres_pids(data_directory: str) -> Callable[[], list[int]]:
    """The processes of the PostgreSQL server whose data directory is given: its postmaster and children."""
    import psutil

    def pids() -> list[int]:
        for proc in psutil.process_iter(["name", "cmdline"]):
            with contextlib.suppress(psutil.Error):
                if proc.info["name"] == "postgres" and data_directory in (proc.info["cmdline"] or []):
                    return [proc.pid, *(child.pid for child in proc.children())]
        return []

    return pids


def kafka_pids(data_dir: Path) -> Callable[[], list[int]]:
    """The local Kafka broker whose logs are under ``data_dir`` (not another broker on the machine)."""
    import psutil

    def pids() -> list[int]:
        out = []
        for proc in psutil.process_iter(["name", "cmdline"]):
            with contextlib.suppress(psutil.Error):
                cmd = " ".join(proc.info["cmdline"] or [])
                if proc.info["name"] == "java" and "kafka" in cmd.lower() and str(data_dir) in cmd:
                    out.append(proc.pid)
        return out

    return pids


def named_threads(pid: int) -> dict[str, list[int]] | None:
    """The OS thread ids of worker ``pid`` per group of :data:`THREADS`; None without py-spy."""
    exe = Path(sys.executable).with_name("py-spy")
    if not exe.exists():
        return None
    try:
        out = subprocess.run([str(exe), "dump", "--pid", str(pid), "--json", "--nonblocking"],  # noqa: S603
                             capture_output=True, check=True, timeout=30).stdout
    except (subprocess.SubprocessError, OSError):
        return None
    threads = orjson.loads(out)
    return {group: [int(t["os_thread_id"]) for t in threads if t.get("os_thread_id")
                    and str(t.get("thread_name") or "").startswith(prefixes)]
            for group, prefixes in THREADS.items()}


def thread_seconds(pid: int, tids: list[int]) -> float:
    """CPU seconds (user + system) of the given threads of ``pid`` so far."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for tid in tids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rpartition(")")[2].split()
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


class SplitMeter(CpuMeter):
    """A CpuMeter over workers, their project builders, PostgreSQL and Kafka that also takes the workers' relay
    threads apart: ``workers`` is then what is left of the workers besides ``relay``.

    The threads are looked up at ``start`` and again at ``stop``; one that appeared in between (a worker that
    was still starting) counts with all its CPU time, which before its first batch is close to none."""

    def __init__(self, workers: list[int], data_directory: str, kafka_dir: Path) -> None:
        groups: dict[str, list[int] | Callable[[], list[int]]] = {
            "workers": workers, "projects": children(workers), "postgres": postgres_pids(data_directory),
            "kafka": kafka_pids(kafka_dir)}
        super().__init__(groups)
        self.workers = workers
        self.found: dict[int, dict[str, list[int]]] = {}
        self._thread_start: dict[tuple[int, int], float] = {}

    def _threads(self) -> dict[tuple[str, int, int], float]:
        """CPU seconds so far of every named thread of the workers, by (group, pid, thread id)."""
        out = {}
        for pid in self.workers:
            named = named_threads(pid)
            if named is None:
                continue
            self.found[pid] = named
            for group, tids in named.items():
                for tid in tids:
                    out[group, pid, tid] = thread_seconds(pid, [tid])
        return out

    def start(self) -> None:
        super().start()
        self._thread_start = {(pid, tid): seconds for (_, pid, tid), seconds in self._threads().items()}

    def stop(self) -> dict[str, float]:
        wall = max(1e-9, time.monotonic() - self._wall)
        out = super().stop()
        spent = {group: 0.0 for group in THREADS}
        for (group, pid, tid), seconds in self._threads().items():
            spent[group] += seconds - self._thread_start.get((pid, tid), 0.0)
        for group in THREADS:
            out[group] = spent[group] / wall
            out["workers"] -= out[group]
        out["other"] = out["machine"] - sum(out[g] for g in ("workers", *THREADS, "projects", "postgres", "kafka"))
        return out

    @property
    def threads_known(self) -> bool:
        """Whether py-spy named the relay thread of every worker."""
        return len(self.found) == len(self.workers) and all(tids["relay"] for tids in self.found.values())
