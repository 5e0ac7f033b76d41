"""A worker's background stage: a thread that runs one loop against the store, retried after trouble."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from core.settings import Settings
from core.store.connection import Connection


class StoreThread:
    """Runs :meth:`work` in a daemon thread until :meth:`stop`; an exception is logged and the work starts again
    after 2 seconds (``work`` returns only when it is asked to stop, or raises)."""

    name = "ocds-background"
    what = "background work"
    logger = logging.getLogger("ocds_live.streams")
    join_timeout = 10.0

    def __init__(self, settings: Settings, connect: Callable[[], Connection]) -> None:
        self.settings = settings
        self._connect = connect
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.join_timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.work()
            except Exception as exc:  # noqa: BLE001 - keep going after broker or store trouble
                self.logger.warning("%s failed (%s); retrying in 2s", self.what, exc)
                self._stop.wait(2.0)

    def work(self) -> None:
        raise NotImplementedError
