"""Fixtures for the merge tests: ocdsmerge 0.8.0's own fixtures, fetched once from PyPI into a cache."""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SDIST_CACHE = REPO / ".local" / "cache" / "ocdsmerge-sdist"
SDIST = "ocdsmerge-0.8.0"


@pytest.fixture(scope="session")
def ocdsmerge_fixtures() -> Path:
    """The ``tests/fixtures`` folder of ocdsmerge 0.8.0's source distribution (downloaded once, not committed)."""
    fixtures = SDIST_CACHE / SDIST / "tests" / "fixtures"
    if not (fixtures / "schema.json").exists():
        SDIST_CACHE.mkdir(parents=True, exist_ok=True)
        archive = SDIST_CACHE / f"{SDIST}.tar.gz"
        if not archive.exists():
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "--quiet",
                    "--no-deps",
                    "--no-binary",
                    ":all:",
                    f"ocdsmerge=={SDIST.split('-')[1]}",
                    "--dest",
                    str(SDIST_CACHE),
                ],
                check=True,
            )
        with tarfile.open(archive) as tar:
            tar.extractall(SDIST_CACHE, filter="data")
    assert (fixtures / "1.1").is_dir(), f"{fixtures} is incomplete: delete {SDIST_CACHE} and rerun"
    return fixtures
