"""feed_server.hub: what the hub keeps of each change in its ring, and how often it steps."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from core.merge import RecordMerger
from core.schema import OcdsSchema
from core.settings import Settings
from feed_server.hub import ChangeHub, Database, ascii_json, brief, compact
from tests.support.changes import append_events, synthetic_event
from tests.support.stack import base_settings, fresh_stack

EVENT: dict[str, Any] = {
    "cursor": 7, "id": "e7", "ocid": "ocds-07smqs-1", "kind": "award.made", "kinds": ["award.made"],
    "summary": {"buyer": {"id": "MX-UC-1", "name": "Secretaría de Salud"}, "suppliers": []},
    "changes": [
        {"path": "/awards/0", "op": "add", "old": None,
         "new": {"id": "a1", "title": "Adquisición de vacunas", "value": {"amount": 1.5, "currency": "MXN"},
                 "items": [{"id": str(i), "description": "dosis"} for i in range(50)]}},
        {"path": "/tender/status", "op": "replace", "old": "active", "new": "complete"},
    ],
}


def _objects(value: Any) -> int:
    """The Python objects ``value`` is made of (containers, strings, numbers)."""
    seen = [value]
    count = 0
    while seen:
        item = seen.pop()
        count += 1
        if isinstance(item, dict):
            seen += [*item.keys(), *item.values()]
        elif isinstance(item, list):
            seen += item
    return count


def test_compact_event_encodes_as_the_event_and_its_brief_form() -> None:
    """The ring's compact event serialises to the same JSON as the event, and with its kept brief changes to
    the same JSON as brief(event), while made of a fifth of the objects or fewer."""
    kept, brief_changes = compact(EVENT)
    assert brief_changes is not None
    assert orjson.dumps(kept) == orjson.dumps(EVENT)
    assert orjson.dumps({**kept, "changes": brief_changes}) == orjson.dumps(brief(EVENT))
    assert _objects(kept) * 5 < _objects(EVENT)


PIECES = ["a", "x", "0", "\\", '"', "é", "ñ", "—", "\x7f", "\n", "\x01", "😀", "\\x", "ÿ"]
TEXT = st.lists(st.sampled_from(PIECES)).map("".join)
JSON = st.recursive(st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | TEXT,
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4), max_leaves=12)


@given(JSON)
def test_ascii_json_is_ascii_and_reads_back_as_the_value(value: Any) -> None:
    """Whatever the text holds (accents, backslashes before an "x", control and astral characters), the
    encoding is ASCII JSON that parses back to the same value."""
    text = ascii_json(value)
    assert text.isascii()
    assert orjson.loads(text) == value


def test_compact_leaves_an_event_without_a_change_list_alone() -> None:
    """An event whose ``changes`` is not a list is kept as it is, with no brief form."""
    odd = {**EVENT, "changes": None}
    assert compact(odd) == (odd, None)


async def _steps_while_committing(settings: Settings, compiler: RecordMerger, min_step: float, commits: int,
                                  every: float) -> list[int]:
    """The hub's head at each step while ``commits`` one-change transactions commit ``every`` seconds apart."""
    url = settings.database_url
    assert url is not None  # fresh_stack always names its database
    db = Database(url)
    hub = ChangeHub(db, compiler, url, min_step=min_step, poll_interval=0.05)
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
