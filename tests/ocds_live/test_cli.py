"""The ``ocds-live`` command's conventions: help on every option, settings from options over the environment."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from ocds_live.cli import build_parser, settings_from


def _subparsers(parser: argparse.ArgumentParser, path: str = "ocds-live") -> list[tuple[str, argparse.ArgumentParser]]:
    found = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _subparsers(sub, f"{path} {name}")
    return found


def test_every_option_of_every_subcommand_has_help() -> None:
    """Each argument and option of each (sub)command says what it does in --help."""
    missing = [f"{path}: {action.option_strings or action.dest}"
               for path, parser in _subparsers(build_parser()) for action in parser._actions
               if not isinstance(action, argparse._HelpAction | argparse._SubParsersAction) and not action.help]
    assert missing == []


@pytest.mark.parametrize("command", [["db", "migrate"], ["process"], ["replay"], ["status"],
                                     ["rejected", "retry"]])
def test_database_and_kafka_options_override_the_environment(
        command: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """--database-url and --bootstrap-servers win over DATABASE_URL and KAFKA_BOOTSTRAP_SERVERS."""
    monkeypatch.setenv("DATABASE_URL", "postgresql://env/db")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "env:9092")
    argv = [*command, "--database-url", "postgresql://cli/db"]
    if command != ["db", "migrate"]:
        argv += ["--bootstrap-servers", "cli:9092"]
    settings = settings_from(build_parser().parse_args(argv))
    assert settings.database_url == "postgresql://cli/db"
    if command != ["db", "migrate"]:
        assert settings.kafka_bootstrap_servers == "cli:9092"


def test_the_environment_still_applies_without_options(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An option left out keeps the environment's value, for each kind of setting option."""
    monkeypatch.setenv("DATABASE_URL", "postgresql://env/db")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "env:9092")
    monkeypatch.setenv("OCDS_LIVE_PUBLISHERS_FILE", str(tmp_path / "p.toml"))
    settings = settings_from(build_parser().parse_args(["process"]))
    assert (settings.database_url, settings.kafka_bootstrap_servers, settings.publishers_file) == (
        "postgresql://env/db", "env:9092", tmp_path / "p.toml")
    settings = settings_from(build_parser().parse_args(["process", "--publishers-file", str(tmp_path / "q.toml")]))
    assert settings.publishers_file == tmp_path / "q.toml"


def test_options_only_where_they_mean_something() -> None:
    """`load` takes --bootstrap-servers but no --database-url: it never touches the store."""
    parser = build_parser()
    parser.parse_args(["load", "x.json", "--bootstrap-servers", "k:1"])
    with pytest.raises(SystemExit):
        parser.parse_args(["load", "x.json", "--database-url", "postgresql://x/y"])
