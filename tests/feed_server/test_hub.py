"""feed_server.hub: what the hub keeps of each change in its ring."""

from __future__ import annotations

from typing import Any

import orjson

from feed_server.hub import brief, compact

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


def test_compact_leaves_an_event_without_a_change_list_alone() -> None:
    """An event whose ``changes`` is not a list is kept as it is, with no brief form."""
    odd = {**EVENT, "changes": None}
    assert compact(odd) == (odd, None)
