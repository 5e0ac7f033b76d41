"""Detect what a release changed in its record, in the language of procurement.

Pure: the record's compiled release before and after, in; a change description out.
"""

from __future__ import annotations

from typing import Any

from core.types import Release

_MISSING = object()


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def diff(old: Any, new: Any, path: str = "") -> list[dict[str, Any]]:
    """The leaf differences between two JSON values, as JSON Pointer paths with old and new values."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[dict[str, Any]] = []
        for key in sorted(old.keys() | new.keys()):
            out += diff(old.get(key, _MISSING), new.get(key, _MISSING), f"{path}/{_escape(key)}")
        return out
    if old == new:
        return []
    return [{"path": path, "old": None if old is _MISSING else old, "new": None if new is _MISSING else new}]


def kind_of(release: Release) -> str:
    """What happened, named after the release's tags."""
    tags = release.get("tag") or []
    return str(tags[-1]) if tags else "update"


def summarize(compiled: Release) -> dict[str, Any]:
    """What filters and dashboards need from a compiled release."""
    buyer = compiled.get("buyer") or {}
    return {"buyer": {"id": buyer.get("id"), "name": buyer.get("name")}}


def detect(before: Release | None, after: Release, release: Release) -> dict[str, Any] | None:
    """The change ``release`` made to its record, or None when it changed nothing."""
    ignored = {"/id", "/date", "/tag"}
    changes = [c for c in diff(before or {}, after) if c["path"] not in ignored]
    if before is not None and not changes:
        return None
    return {"kind": kind_of(release), "summary": summarize(after), "changes": changes}
