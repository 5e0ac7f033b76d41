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
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from core.profiles import CompilerSource
from core.settings import Settings
from core.store import projects
from core.store.connection import Connection
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
