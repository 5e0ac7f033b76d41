"""feed_server.fanout, its pure parts: the index of a step's page and the framing of messages."""

from __future__ import annotations

import random
from typing import Any

from websockets import frames as ws_frames

from core.filters import ChangeFilter
from feed_server.fanout import PageIndex, text_frame
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
