"""feed_server.encoding: what the hub keeps of each change in its ring, and the ASCII JSON it sends."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from feed_server.encoding import ascii_json, brief, compact

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
