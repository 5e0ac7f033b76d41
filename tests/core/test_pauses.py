"""core.pauses: full garbage collections on a timer instead of automatic ones."""

from __future__ import annotations

import gc
import time
from typing import Any

from core.pauses import PlannedCollections


def test_full_collections_run_on_the_timer_and_stop_restores_the_defaults() -> None:
    """While running, automatic full collections are off and one runs every interval; stop puts it all back."""
    before = gc.get_threshold()
    full: list[float] = []

    def seen(phase: str, info: dict[str, Any]) -> None:
        if phase == "start" and info["generation"] == 2:
            full.append(time.monotonic())

    collections = PlannedCollections(0.05).start()
    gc.callbacks.append(seen)
    try:
        assert gc.get_threshold()[:2] == before[:2]
        assert gc.get_threshold()[2] > 1_000_000
        assert gc.get_freeze_count() > 0
        deadline = time.monotonic() + 10
        while len(full) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        gc.callbacks.remove(seen)
        collections.stop()
    assert len(full) >= 4, full
    assert min(b - a for a, b in zip(full, full[1:], strict=False)) > 0.03, "full collections closer than the timer"
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
