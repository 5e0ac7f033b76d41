"""feed_server.fanout: the index of a step's page, the framing of messages, and the order of a step's writes."""

from __future__ import annotations

import random
from types import SimpleNamespace
from typing import Any, cast

from websockets import frames as ws_frames
from websockets.protocol import State

from core.filters import ChangeFilter
from feed_server.fanout import FanOut, PageIndex, text_frame
from feed_server.hub import ChangeHub
from feed_server.ws import Subscription
from tests.support.changes import BUYERS, KINDS, synthetic_event


def _filters(rng: random.Random) -> list[ChangeFilter]:
    kinds = [*KINDS, *{k.split(".")[0] + "." for k in KINDS}, "nothing.", "nothing"]
    return [ChangeFilter(), *(ChangeFilter(buyer=b[0]) for b in BUYERS), ChangeFilter(buyer="nobody"),
            *(ChangeFilter(method=m) for m in ("open", "limited", "direct")),
            *(ChangeFilter(kind=k) for k in kinds),
            *(ChangeFilter(min_amount=a) for a in (1e5, 1e6)),
            ChangeFilter(ocid="ocds-07smqs-3"), ChangeFilter(category="works", kind="tender."),
            *(ChangeFilter(buyer=rng.choice(BUYERS)[0], method=m, kind=rng.choice(kinds))
              for m in ("open", "direct") for _ in range(5))]


def test_index_gives_each_filter_the_changes_it_would_select_from_the_whole_page() -> None:
    """Narrowing a page by its index, then asking the filter, selects what the filter selects from the page."""
    rng = random.Random(3)
    page: list[dict[str, Any]] = [synthetic_event(rng, n) for n in range(200)]
    page[5]["kinds"] = [page[5]["kind"], "award.made", 7]  # several kinds, and one that is not a string
    page[6]["summary"]["buyer"] = {"id": ["odd"]}  # an unhashable value: that field is not used to narrow
    page[7]["summary"] = None
    for size in (1, 7, 200):
        index = PageIndex(page[:size])
        for change_filter in _filters(rng):
            among = index.among(change_filter)
            candidates = page[:size] if among is None else among
            assert [e for e in candidates if change_filter.matches(e)] == \
                [e for e in page[:size] if change_filter.matches(e)], change_filter


def test_index_narrows_a_buyer_filter_to_that_buyers_changes() -> None:
    """A buyer filter is offered only the changes of its buyer (the point of the index)."""
    rng = random.Random(4)
    page = [synthetic_event(rng, n) for n in range(100)]
    buyer = page[0]["summary"]["buyer"]["id"]
    among = PageIndex(page).among(ChangeFilter(buyer=buyer, min_amount=1.0))
    assert among == [e for e in page if e["summary"]["buyer"]["id"] == buyer]
    assert PageIndex(page).among(ChangeFilter(min_amount=1.0)) is None


def test_text_frame_is_what_websockets_sends() -> None:
    """Frames built once for a group equal the websockets library's own server frames, at every length form."""
    for size in (0, 1, 125, 126, 65_535, 65_536, 100_000):
        text = "x" * size
        assert text_frame(text) == ws_frames.Frame(ws_frames.Opcode.TEXT, text.encode()).serialize(mask=False)


def test_a_step_writes_the_groups_with_the_fewest_bytes_per_change_first() -> None:
    """brief members (about a quarter of summary's bytes per change) are written before summary ones, whatever
    the order they joined in, and every member gets its group's frames once."""
    rng = random.Random(5)
    hub = ChangeHub(cast(Any, None), cast(Any, None), ring_size=1000)
    hub.append([{**synthetic_event(rng, n, padding=2000), "cursor": n + 1} for n in range(20)])
    fanout = FanOut(hub)
    written: list[tuple[str, bytes]] = []

    class Member:  # what the fan-out uses of a WebsocketSubscriber: its subscription, group and connection
        def __init__(self, name: str, detail: str, change_filter: ChangeFilter) -> None:
            transport = SimpleNamespace(write=lambda data: written.append((name, data)))
            self.conn = SimpleNamespace(paused=False, protocol=SimpleNamespace(state=State.OPEN), transport=transport)
            self.sub = Subscription(hub.head, change_filter, detail, 100)
            self.group: Any = None

    member = cast(Any, Member)

    open_ = ChangeFilter(method="open")
    members = [member("summary-all", "summary", ChangeFilter()), member("brief-open", "brief", open_),
               member("summary-open", "summary", open_), member("brief-all", "brief", ChangeFilter())]
    for m in members:
        fanout.join(m)
    before = hub.head
    hub.append([{**synthetic_event(rng, n, padding=2000), "cursor": n + 1} for n in range(20, 60)])
    fanout.step(before)
    names = [name for name, _ in written]
    assert len(names) == len(set(names)) == 4, names  # one write each: the step's changes fit in one run
    assert {names[0], names[1]} == {"brief-open", "brief-all"}, names
    assert all(m.group is not None and m.group.position == hub.head for m in members)
