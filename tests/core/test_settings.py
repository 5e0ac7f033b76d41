"""Settings: read once from the environment, with errors that name the setting."""

from __future__ import annotations

import pytest

from core.exceptions import ConfigurationError, MissingSettingError
from core.settings import load_settings


def test_conventional_names_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """DATABASE_URL and KAFKA_BOOTSTRAP_SERVERS keep their conventional names; the rest take OCDS_LIVE_."""
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@h/db")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "k:9999")
    monkeypatch.setenv("OCDS_LIVE_PARTITIONS", "8")
    settings = load_settings()
    assert (settings.database_url, settings.kafka_bootstrap_servers, settings.partitions) == (
        "postgresql://u@h/db", "k:9999", 8)


def test_a_wrong_value_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    """A value of the wrong type fails with the setting's name and what was expected."""
    monkeypatch.setenv("OCDS_LIVE_PORT", "eighty")
    with pytest.raises(ConfigurationError, match="port: Input should be a valid integer"):
        load_settings()


def test_a_missing_required_setting_says_it_has_no_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """Asking for the operator token when none is set fails with 'missing, and has no default'."""
    monkeypatch.delenv("OCDS_LIVE_OPERATOR_TOKEN", raising=False)
    with pytest.raises(MissingSettingError, match="OCDS_LIVE_OPERATOR_TOKEN is missing, and has no default"):
        load_settings().require_operator_token()


def test_settings_are_frozen() -> None:
    """The settings object cannot be changed after start-up."""
    settings = load_settings()
    with pytest.raises(ValueError, match="frozen"):
        settings.port = 1
