"""feed_server.hub: how often the hub steps."""

from __future__ import annotations

import asyncio
import random

from core.merge import RecordMerger
from core.schema import OcdsSchema
from core.settings import Settings
from feed_server.hub import ChangeHub, Database
from tests.support.changes import append_events, synthetic_event
from tests.support.stack import base_settings, fresh_stack


async def _steps_while_committing(settings: Settings, compiler: RecordMerger, min_step: float, commits: int,
                                  every: float) -> list[int]:
    """The hub's head at each step while ``commits`` one-change transactions commit ``every`` seconds apart."""
    url = settings.database_url
    assert url is not None  # fresh_stack always names its database
    db = Database(url)
    hub = ChangeHub(db, compiler, min_step=min_step, poll_interval=0.05)
    await hub.start()
    heads: list[int] = []

    async def watch() -> None:
        while True:
            await hub.wait()
            heads.append(hub.head)

    watcher = asyncio.ensure_future(watch())
    try:
        rng = random.Random(1)
        start = hub.head
        for n in range(commits):
            await asyncio.to_thread(append_events, settings, [synthetic_event(rng, n)])
            await asyncio.sleep(every)
        for _ in range(100):
            if hub.head == start + commits:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(min_step)
        assert hub.head == start + commits  # every change reached the hub
        return heads
    finally:
        watcher.cancel()
        await hub.stop()
        db.close()


def test_hub_steps_are_at_least_min_step_apart_and_commits_between_them_go_together(schema: OcdsSchema) -> None:
    """With min_step, commits that come closer than it share a step (fewer wake-ups per subscriber); without
    it, nearly every commit is a step of its own."""
    compiler = RecordMerger(schema, versioned=False)
    with fresh_stack(base_settings()) as settings:
        paced = asyncio.run(_steps_while_committing(settings, compiler, 0.25, 20, 0.025))
        eager = asyncio.run(_steps_while_committing(settings, compiler, 0.0, 20, 0.025))
    assert len(paced) <= 20 * 0.025 / 0.25 + 4, paced
    assert len(eager) >= 10, eager
    assert paced == sorted(paced) and eager == sorted(eager)
