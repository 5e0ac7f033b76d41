"""What a rule returns, and the small readers of odd JSON the rules share."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from core.summary import parse_amount


@dataclass(frozen=True)
class Evidence:
    """One fact behind a flag: where it is (a JSON Pointer into the compiled release of ``ocid``) and its value."""

    pointer: str
    value: Any
    ocid: str | None = None  # set when the flag spans several processes

    def as_dict(self) -> dict[str, Any]:
        out = {"pointer": self.pointer, "value": self.value}
        if self.ocid is not None:
            out["ocid"] = self.ocid
        return out


@dataclass(frozen=True)
class Flag:
    """A red flag raised by ``rule`` on what ``key`` names (a process, a buyer, a pair of parties, ...).

    ``scope`` is what the rule was evaluated over (the ocid for per-process rules, ``buyer|supplier`` for repeated
    direct awards, the currency or party kind for population rules): re-evaluating a scope withdraws the flags of
    that scope it no longer finds.
    """

    rule: str
    key: str
    scope: str
    ocids: tuple[str, ...]
    evidence: tuple[Evidence, ...]
    detail: dict[str, Any] = field(default_factory=dict)
    buyer: str | None = None
    suppliers: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "key": self.key, "scope": self.scope, "ocids": list(self.ocids),
                "evidence": [e.as_dict() for e in self.evidence], "detail": self.detail, "buyer": self.buyer,
                "suppliers": list(self.suppliers)}


def obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def dicts(value: Any) -> list[tuple[int, dict[str, Any]]]:
    """(index, item) of the objects in a list (the index makes the JSON Pointer)."""
    return [(i, v) for i, v in enumerate(value) if isinstance(v, dict)] if isinstance(value, list) else []


def text(value: Any) -> str | None:
    """A string or an integer identifier as a string, else None."""
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def number(value: Any) -> float | None:
    """A JSON number (not a string, not a bool): Cardinal reads amounts only when they are numbers."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def amount(value: Any) -> float | None:
    """A forgiving amount (numbers or numeric strings), for the Mexican rules over real data."""
    return parse_amount(obj(value).get("amount"))


def when(value: Any) -> datetime | None:
    """An RFC 3339 date-time (a date without an offset is read as UTC); None when unreadable."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def party_ids(items: Any) -> tuple[str, ...]:
    return tuple(sorted({i for _, o in dicts(items) if (i := text(o.get("id"))) is not None}))


def buyer_id(compiled: dict[str, Any]) -> str | None:
    return text(obj(compiled.get("buyer")).get("id"))
