"""Shared fixtures. Tests read the OCDS schema and real data from ../shared (OCDS_LIVE_SCHEMA_DIR)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.extensions import ExtensionResolver
from core.profiles import Profiles
from core.schema import OcdsSchema, load_schema

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("OCDS_LIVE_SHARED_DIR", REPO.parent / "shared"))
SCHEMA_DIR = Path(os.environ.get("OCDS_LIVE_SCHEMA_DIR", SHARED / "ocds" / "1.1.5"))
REAL_DATA = SHARED / "data" / "real"
EXTENSIONS_DIR = Path(os.environ.get("OCDS_LIVE_EXTENSIONS_DIR", SHARED / "ocds" / "extensions"))


@pytest.fixture(scope="session")
def schema() -> OcdsSchema:
    """The OCDS 1.1.5 schema from ../shared (never downloaded in tests)."""
    return load_schema(SCHEMA_DIR, cache_dir=Path("/nonexistent"))


@pytest.fixture(scope="session")
def profiles(schema: OcdsSchema, tmp_path_factory: pytest.TempPathFactory) -> Profiles:
    """Profiles over ../shared's extensions (never downloaded in tests)."""
    resolver = ExtensionResolver(EXTENSIONS_DIR, tmp_path_factory.mktemp("cache"), download=False)
    return Profiles(schema, resolver)


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The folder of real published OCDS data (../shared/data/real)."""
    assert REAL_DATA.is_dir(), f"{REAL_DATA} is missing: tests need ../shared/data/real"
    return REAL_DATA
