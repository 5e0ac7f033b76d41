"""Names for the shapes ocds-live passes around."""

from __future__ import annotations

from typing import Any

Release = dict[str, Any]
"""One OCDS release, as parsed JSON."""

Ocid = str
JSON = Any
