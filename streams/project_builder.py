"""Rebuilds the infrastructure projects the stream processor marked, off the hot path, one builder at a time.

The processor only moves processes between projects and marks the projects its batch touched (in the batch's
transaction, so a crash never loses a mark). This thread rebuilds each marked project once per round, however
many batches marked it since the last, with :func:`core.store.projects.build_pending`, and appends the
``project.updated`` events to the change log. One worker's builder runs at a time (a PostgreSQL advisory
lock); the others wait to take over.

Its cost is bounded: rounds start at least ``project_build_interval`` seconds apart, and when the stream marked
projects during a round (it is busy) the builder rests long enough to take at most ``project_build_share`` of
the time; when it did not (the stream is idle, or a backlog of old marks is left), the next round comes after
the interval. A project's record therefore lags its processes by about a round under load, and catches up when
the stream slows; a mark never expires.

A worker runs its builder in a **process of its own** (:class:`BuilderProcess`). A round is pure Python
(bringing the members' records up to date, building and conforming each OC4IDS project), and as a thread of
the worker it held the GIL for whole rounds against the stream's own threads: with a round a second, the
releases' load-to-commit p99 went from 0.13 s (builder off) to 0.5-1.6 s (`bench/feeds.py`, 200 releases/s).
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import time
from collections.abc import Callable
from typing import Any

from core.profiles import CompilerSource, Profiles
from core.settings import Settings
from core.store import projects
from core.store.connection import Connection, connect
from core.store.locks import PROJECT_BUILDER_LOCK
from streams.background import StoreThread

logger = logging.getLogger("ocds_live.projects")


def rest_after(seconds: float, interval: float, share: float) -> float:
    """How long the builder waits after a round of ``seconds`` so rebuilds take at most ``share`` of the time."""
    return max(interval, seconds * (1.0 / share - 1.0))


class ProjectBuilder(StoreThread):
    name = "ocds-projects"
    what = "project builder (marked projects stay marked)"
    logger = logger
    join_timeout = 30.0

    def __init__(self, settings: Settings, connect: Callable[[], Connection], merger: CompilerSource) -> None:
        super().__init__(settings, connect)
        self.merger = merger  # the members' records are brought up to date with their own profiles

    def work(self) -> None:
        conn = self._connect()
        try:
            with conn.cursor() as cur:
                while not self._stop.is_set():
                    # one builder per store: a store rebuilt beside the live one (replay --switch) has its own
                    cur.execute("SELECT pg_try_advisory_lock(%s, hashtext(current_schema()))", (PROJECT_BUILDER_LOCK,))
                    row = cur.fetchone()
                    conn.commit()
                    if row and row[0]:
                        break
                    self._stop.wait(5.0)  # another worker builds
            while not self._stop.is_set():
                newest = projects.newest_mark(conn)
                started = time.monotonic()
                built, events = projects.build_pending(conn, self.settings, self.merger)
                took = time.monotonic() - started
                if not built:
                    self._stop.wait(0.2)
                    continue
                logger.debug("rebuilt %d projects (%d changed) in %.2fs", built, events, took)
                # the stream marked projects during the round: it is busy, and rebuilding keeps to its share;
                # else (the stream is idle, or a backlog of old marks is left) the next round comes soon
                busy = projects.newest_mark(conn) > newest
                self._stop.wait(rest_after(took, self.settings.project_build_interval,
                                           self.settings.project_build_share) if busy
                                else self.settings.project_build_interval)
        finally:
            conn.close()  # also releases the lock


class BuilderProcess:
    """A :class:`ProjectBuilder` in a child process, so its rounds never take the GIL from the stream's threads.

    The child loads the schemas itself (the extensions' profiles too: members' records are brought up to
    date with their own), builds until :meth:`stop`, and exits by itself if the worker that started it dies
    (``kill -9``: it checks its parent every ``PARENT_CHECK`` seconds), which releases the builder's lock for
    another worker's builder."""

    PARENT_CHECK = 0.5
    join_timeout = 30.0

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._ctx = mp.get_context("spawn")  # a fresh interpreter: nothing of the worker's threads or sockets
        self._stop = self._ctx.Event()
        self._process: Any = None

    def start(self) -> None:
        self._process = self._ctx.Process(target=_run, args=(self.settings, os.getpid(), self._stop),
                                          name="ocds-projects", daemon=True)
        self._process.start()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def stop(self) -> None:
        self._stop.set()
        if self._process is None:
            return
        self._process.join(timeout=self.join_timeout)
        if self._process.is_alive():
            logger.warning("the project builder did not stop within %.0fs; terminating it", self.join_timeout)
            self._process.terminate()
            self._process.join(timeout=5.0)


def _run(settings: Settings, parent: int, stop: Any) -> None:
    """The builder process: build until asked to stop, or until the worker that started it is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the worker stops us
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s (project builder) %(message)s")
    builder = ProjectBuilder(settings, lambda: connect(settings), Profiles.from_settings(settings))
    builder.start()
    try:
        while not stop.wait(BuilderProcess.PARENT_CHECK) and os.getppid() == parent:
            pass
    finally:
        builder.stop()
