"""Subscription filters over change events: one definition for the websocket, Atom and the pull API.

Pure: a :class:`ChangeFilter` is built from query parameters or a subscribe message, and
:meth:`ChangeFilter.matches` decides on one change event (the dict the store's change log holds).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, fields
from functools import cached_property
from typing import Any

from core.exceptions import ConfigurationError

FILTER_FIELDS = (
    "ocid", "ocid_prefix", "buyer", "supplier", "method", "category", "kind", "min_amount", "max_amount",
    "currency", "q", "project",
)


class FilterError(ConfigurationError):
    """A filter parameter has a wrong value."""


def _fold(text: str) -> str:
    """Lower-case without accents, for accent-insensitive matching."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _amount(summary: Mapping[str, Any]) -> float | None:
    """The largest of the contract, award and tender amounts that exist (as the records' amount column)."""
    values = [float(v) for k in ("contract_amount", "award_amount", "tender_amount")
              if isinstance(v := summary.get(k), int | float) and not isinstance(v, bool)]
    return max(values) if values else None


@dataclass(frozen=True)
class ChangeFilter:
    """Every field is optional; a change matches when it satisfies all the fields that are set.

    ``kind`` matches the event's ``kind`` or any of its ``kinds``, and a value ending in ``.`` (for
    example ``contract.``) matches every kind with that prefix. ``q`` is free text, matched without
    regard to case or accents against the title, buyer and suppliers.
    """

    ocid: str | None = None
    ocid_prefix: str | None = None
    buyer: str | None = None
    supplier: str | None = None
    method: str | None = None
    category: str | None = None
    kind: str | None = None
    min_amount: float | None = None
    max_amount: float | None = None
    currency: str | None = None
    q: str | None = None
    project: str | None = None  # an infrastructure project's id: its own changes and its processes'

    @classmethod
    def from_mapping(cls, params: Mapping[str, Any]) -> ChangeFilter:
        """Build from query parameters or a JSON object; unknown keys are ignored."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = params.get(f.name)
            if raw is None or raw == "":
                continue
            if f.name in ("min_amount", "max_amount"):
                try:
                    values[f.name] = float(raw)
                except (TypeError, ValueError) as exc:
                    raise FilterError(f"{f.name} must be a number, not {raw!r}") from exc
            else:
                if not isinstance(raw, str):
                    raise FilterError(f"{f.name} must be a string, not {raw!r}")
                if len(raw) > 200:
                    raise FilterError(f"{f.name} is longer than 200 characters")
                if any(ord(c) < 32 for c in raw):
                    raise FilterError(f"{f.name} contains control characters")
                values[f.name] = raw
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    @cached_property
    def empty(self) -> bool:
        return not self.as_dict()

    @cached_property
    def _hash(self) -> int:
        return hash(tuple(getattr(self, f.name) for f in fields(self)))

    def __hash__(self) -> int:
        """Computed once: the feed server hashes each subscriber's filter for every change it sends."""
        return self._hash

    def matches(self, event: Mapping[str, Any]) -> bool:
        """Whether the change event satisfies every set field."""
        summary: Mapping[str, Any] = event.get("summary") or {}
        ocid = str(event.get("ocid") or "")
        if self.ocid is not None and ocid != self.ocid:
            return False
        if self.ocid_prefix is not None and not ocid.lower().startswith(self.ocid_prefix.lower()):
            return False
        if self.buyer is not None and (summary.get("buyer") or {}).get("id") != self.buyer:
            return False
        if self.supplier is not None and not any(
            (s or {}).get("id") == self.supplier for s in summary.get("suppliers") or []
        ):
            return False
        if self.method is not None and summary.get("method") != self.method:
            return False
        if self.category is not None and summary.get("category") != self.category:
            return False
        if self.currency is not None and summary.get("currency") != self.currency:
            return False
        if self.project is not None and summary.get("project") != self.project:
            return False
        if self.kind is not None and not self._kind_matches(event):
            return False
        if self.min_amount is not None or self.max_amount is not None:
            amount = _amount(summary)
            if amount is None:
                return False
            if self.min_amount is not None and amount < self.min_amount:
                return False
            if self.max_amount is not None and amount > self.max_amount:
                return False
        return self.q is None or self._text_matches(summary)

    def _kind_matches(self, event: Mapping[str, Any]) -> bool:
        assert self.kind is not None  # noqa: S101 - checked by the caller
        kinds = [event.get("kind"), *(event.get("kinds") or [])]
        if self.kind.endswith("."):
            return any(isinstance(k, str) and k.startswith(self.kind) for k in kinds)
        return self.kind in kinds

    def _text_matches(self, summary: Mapping[str, Any]) -> bool:
        assert self.q is not None  # noqa: S101 - checked by the caller
        parts = [summary.get("title"), (summary.get("buyer") or {}).get("name")]
        parts += [(s or {}).get("name") for s in summary.get("suppliers") or []]
        haystack = _fold(" ".join(p for p in parts if isinstance(p, str)))
        return all(word in haystack for word in _fold(self.q).split())
