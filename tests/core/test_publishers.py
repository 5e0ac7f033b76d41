"""The publishers file: a publisher's extensions and profile rules, and clear errors for wrong entries."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.exceptions import ConfigurationError
from core.mexico import RULES
from core.publishers import load_publishers
from tests.conftest import REPO

EXT = "https://raw.githubusercontent.com/o/ocds_a_extension/master/extension.json"


def _file(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "publishers.toml"
    path.write_text(f'[[publisher]]\nname = "p"\nprefixes = ["ocds-07smqs"]\n{extra}\n', encoding="utf-8")
    return path


def test_extensions_and_rules_are_read(tmp_path: Path) -> None:
    """extensions, rules (a set name or rule ids) and rules_severity are read into the publisher."""
    path = _file(tmp_path, f'extensions = ["{EXT}"]\nrules = ["MX-RFC", "mx-cur"]\nrules_severity = "error"')
    publisher = load_publishers(path).by_name["p"]
    assert publisher.extensions == (EXT,)
    assert [r.id for r in publisher.rules] == ["MX-RFC", "MX-CUR"] and publisher.rules_severity == "error"


def test_without_them_a_publisher_has_no_extensions_and_no_rules(tmp_path: Path) -> None:
    """A publisher that names neither is checked with the core schema alone, and no profile rules."""
    publisher = load_publishers(_file(tmp_path, "")).by_name["p"]
    assert publisher.extensions == () and publisher.rules == () and publisher.rules_severity == "warning"


@pytest.mark.parametrize(("extra", "message"), [
    ('extensions = "https://x/extension.json"', "'extensions' must be a list"),
    ('rules = ["MX-NOPE"]', "unknown profile rule 'MX-NOPE'"),
    ('rules = ["mx"]\nrules_severity = "fatal"', "rules_severity must be 'warning' or 'error'"),
])
def test_wrong_entries_name_the_publisher_and_the_key(tmp_path: Path, extra: str, message: str) -> None:
    """A wrong extensions, rules or rules_severity value fails with the file, the publisher and the key."""
    with pytest.raises(ConfigurationError, match=message) as info:
        load_publishers(_file(tmp_path, extra))
    assert "publisher #1 (p)" in str(info.value)


def test_shipped_file_gives_the_federal_publisher_its_profile() -> None:
    """config/publishers.toml gives shcp the 4 extensions APF packages declare and every Mexican rule."""
    shcp = load_publishers(REPO / "config" / "publishers.toml").by_name["shcp"]
    assert len(shcp.extensions) == 4 and shcp.rules == RULES
