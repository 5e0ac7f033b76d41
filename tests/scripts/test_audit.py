"""scripts/audit.py: vulnerabilities fail CI unless explained; what could not be audited is said, loudly."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

SCRIPT = Path(__file__).resolve().parent.parent.parent / "scripts" / "audit.py"


def _audit() -> ModuleType:
    spec = importlib.util.spec_from_file_location("audit", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


REPORT = {"dependencies": [
    {"name": "good", "version": "1.0", "vulns": []},
    {"name": "bad", "version": "2.0", "vulns": [{"id": "PYSEC-1", "fix_versions": ["2.1"]}]},
    {"name": "gone", "skip_reason": "Dependency not found on PyPI and could not be audited: gone (3.0)"},
    {"name": "ocds-live", "skip_reason": "distribution marked as editable"},
]}


def test_an_unexplained_vulnerability_fails() -> None:
    """A vulnerability not in .ci/audit-ignore is named with its fix and exits 1."""
    lines, status = _audit().summarize(REPORT, {})
    assert status == 1
    assert "pip-audit: VULNERABLE: bad 2.0: PYSEC-1 (fixed in 2.1)" in "\n".join(lines)


def test_an_explained_vulnerability_passes_with_its_reason() -> None:
    """A vulnerability listed with a reason is printed with that reason and does not fail."""
    lines, status = _audit().summarize(REPORT, {"PYSEC-1": "we never call the affected function"})
    assert status == 0
    assert "PYSEC-1 does not apply: we never call the affected function" in "\n".join(lines)


def test_what_could_not_be_audited_is_counted() -> None:
    """Dependencies the service could not audit are counted and named (the project itself is not one)."""
    lines, _ = _audit().summarize(REPORT, {})
    assert lines[0] == "pip-audit: 2 of 3 installed dependencies audited"
    assert lines[1].startswith("pip-audit: NOT AUDITED: 1 dependencies (Dependency not found on PyPI")
