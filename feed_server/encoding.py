"""How change events are encoded for subscribers: compact JSON in ASCII, and the ``brief`` form. Pure."""

from __future__ import annotations

import codecs
from typing import Any

import orjson


def _json_escape(error: UnicodeError) -> tuple[str, int]:
    """The ``\\uXXXX`` escapes of the characters ASCII cannot encode (in JSON they only occur in strings)."""
    if not isinstance(error, UnicodeEncodeError):
        raise error
    out = []
    for char in error.object[error.start:error.end]:
        code = ord(char)
        if code > 0xFFFF:
            code -= 0x10000
            out.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}")
        else:
            out.append(f"\\u{code:04x}")
    return "".join(out), error.end


codecs.register_error("ocds-live-json", _json_escape)


def ascii_json(value: Any) -> str:
    """``value`` as compact JSON text in ASCII only.

    What is sent is encoded to UTF-8 again for every subscriber: an ASCII string is copied as it is,
    while accented Spanish text would be transcoded each time (about 35 times slower).
    """
    data = orjson.dumps(value)
    if data.isascii():
        return data.decode()
    # in C, not with an error handler called per run of accents (5x slower): ``unicode_escape`` doubles
    # every backslash (JSON's own escapes; orjson leaves no raw control character) and writes \xhh or
    # \uhhhh for the rest; the doubled ones are set aside while \xhh becomes \u00hh
    escaped = data.decode().encode("unicode_escape").replace(b"\\\\", b"\0")
    if b"\\U" in escaped:  # astral characters need surrogate pairs: the general way
        return data.decode().encode("ascii", "ocds-live-json").decode()
    return escaped.replace(b"\\x", b"\\u00").replace(b"\0", b"\\").decode()


def _brief_changes(changes: list[Any]) -> list[Any]:
    return [{key: change[key] for key in ("path", "op") if key in change} if isinstance(change, dict) else change
            for change in changes]


def brief(event: dict[str, Any]) -> dict[str, Any]:
    """The change event with only the ``path`` and ``op`` of each changed field (no ``old``/``new`` values)."""
    changes = event.get("changes")
    if not isinstance(changes, list):
        return event
    return {**event, "changes": _brief_changes(changes)}


def compact(event: dict[str, Any]) -> tuple[dict[str, Any], orjson.Fragment | None]:
    """The event as the ring keeps it, and the ``changes`` of its brief form.

    The changed fields (most of an event: every old and new value, as Python objects) become one encoded
    JSON fragment, and so do their brief form: hundreds of objects fewer per event, in a ring that holds
    tens of thousands of events, and nothing to serialise again when the event is sent.
    """
    changes = event.get("changes")
    if not isinstance(changes, list):
        return event, None
    return ({**event, "changes": orjson.Fragment(orjson.dumps(changes))},
            orjson.Fragment(orjson.dumps(_brief_changes(changes))))
