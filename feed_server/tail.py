"""Reading the head of the change log in a thread of its own, while the event loop writes to subscribers.

The change hub (feed_server.hub) steps: it reads the changes committed since its head, then writes them to
every live subscriber. At 1,000 subscribers a step's writes take tens of milliseconds, during which the
event loop does nothing else; commits made meanwhile waited for the writes to end *and then* for their
own read. :class:`LogTail` takes the read off that path: the hub asks for the next read before it starts
writing, and this thread waits for a commit's NOTIFY (or ``poll_interval``), reads, and hands the changes
back to the loop, so a step's changes are usually in memory when the previous step's writes end.

One connection does both: it LISTENs on the stream processor's channel and runs the reads, in autocommit
(each read sees every transaction committed before it starts). A NOTIFY that arrives during a read may be
for a commit the read already saw; the next read then finds nothing, which costs one query.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import select
import threading
import time
from typing import Any

import orjson
import psycopg2

from core.store.connection import translated_errors

logger = logging.getLogger("ocds_live.feed")

CHANNEL = "ocds_changes"  # the stream processor NOTIFYs it in each transaction that appends changes
Read = tuple[list[dict[str, Any]], float]  # the changes read, and when the read started (time.monotonic())
_Request = tuple[int, int, float, asyncio.Future[Read]]


class LogTail:
    """Reads ``changes`` after a cursor in a thread, once a commit is notified (or ``poll_interval`` passed)."""

    def __init__(self, url: str, poll_interval: float = 1.0) -> None:
        self.url = url
        self.poll_interval = poll_interval
        self._requests: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._wake_read, self._wake_write = os.pipe()  # wakes the thread from its wait for a NOTIFY
        os.set_blocking(self._wake_read, False)
        self._hurry = threading.Event()  # read at once, without waiting for a NOTIFY
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.listening = threading.Event()  # set while the connection LISTENs

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="change-log-tail", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._requests.put(None)
        self._wake()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        for fd in (self._wake_read, self._wake_write):
            with contextlib.suppress(OSError):
                os.close(fd)

    def read(self, after: int, limit: int, not_before: float = 0.0) -> asyncio.Future[Read]:
        """The changes with cursor > ``after`` (at most ``limit``), read no sooner than ``not_before`` (a
        ``time.monotonic()``) and once a commit was notified since the last read began (or ``poll_interval``
        passed without one: then possibly none). Only one read may be asked for at a time."""
        future: asyncio.Future[Read] = asyncio.get_running_loop().create_future()
        self._requests.put((after, limit, not_before, future))
        return future

    def hurry(self) -> None:
        """Make the pending read (or the next one) read at once, without waiting for a NOTIFY."""
        self._hurry.set()
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_write, b"x")

    def _run(self) -> None:
        conn: Any = None
        notified = True  # nothing read yet: the first read goes at once
        while not self._stop.is_set():
            request = self._requests.get()
            if request is None:
                break
            after, limit, not_before, future = request
            try:
                if conn is None:
                    conn = self._connect()
                    notified = True  # commits made while it was not listening were not notified
                self._stop.wait(max(0.0, not_before - time.monotonic()))
                self._await_commit(conn, notified)
                notified = False
                started = time.monotonic()
                with translated_errors(), conn.cursor() as cur:
                    cur.execute("SELECT event::text FROM changes WHERE cursor > %s ORDER BY cursor LIMIT %s",
                                (after, limit))
                    rows = cur.fetchall()
                if conn.notifies:  # for commits during the read, which it may or may not have seen
                    conn.notifies.clear()
                    notified = True
                result: Read | BaseException = ([orjson.loads(row[0]) for row in rows], started)
            except Exception as exc:  # noqa: BLE001 - handed to the hub, which logs it and asks again
                result = exc
                if conn is not None:
                    with contextlib.suppress(Exception):
                        conn.close()
                conn = None
                self.listening.clear()
            with contextlib.suppress(RuntimeError):  # the loop is closed: the hub has stopped
                future.get_loop().call_soon_threadsafe(_settle, future, result)
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def _connect(self) -> Any:
        with translated_errors():
            conn = psycopg2.connect(self.url, application_name="ocds-live-tail", connect_timeout=5)
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f"LISTEN {CHANNEL}")
        self.listening.set()
        return conn

    def _await_commit(self, conn: Any, notified: bool) -> None:
        """Wait until a commit is notified (or was, since the last read began: ``notified``), ``hurry`` is
        called, or ``poll_interval`` passes."""
        deadline = time.monotonic() + self.poll_interval
        while True:
            with translated_errors():
                conn.poll()
            if conn.notifies:
                conn.notifies.clear()
                notified = True
            if notified or self._hurry.is_set() or self._stop.is_set():
                self._hurry.clear()
                return
            left = deadline - time.monotonic()
            if left <= 0:
                return
            ready = select.select([conn, self._wake_read], [], [], left)[0]
            if self._wake_read in ready:
                with contextlib.suppress(BlockingIOError):
                    os.read(self._wake_read, 4096)


def _settle(future: asyncio.Future[Read], result: Read | BaseException) -> None:
    if future.done():  # cancelled: the hub stopped waiting
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)
