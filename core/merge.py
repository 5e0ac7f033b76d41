"""Merge a process's releases into compiled and versioned releases, by ocdsmerge's rules.

Pure: dicts in, dicts out. The schema is always passed in, so ocdsmerge downloads nothing.
"""

from __future__ import annotations

import ocdsmerge

from core.schema import OcdsSchema
from core.types import Release


class RecordMerger:
    """Builds compiled and versioned releases for one ocid from its releases."""

    def __init__(self, schema: OcdsSchema) -> None:
        self._merger = ocdsmerge.Merger(schema=schema.release)

    def merge(self, releases: list[Release]) -> tuple[Release, Release]:
        """The compiled and the versioned release of ``releases`` (any order; sorted by date)."""
        ordered = sorted(releases, key=lambda r: r["date"])
        return self._merger.create_compiled_release(ordered), self._merger.create_versioned_release(ordered)
