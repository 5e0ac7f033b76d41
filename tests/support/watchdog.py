"""Watchdog test helpers: releases that raise known flags, the expected alerts, and reads of the alert tables."""

from __future__ import annotations

import re
import tomllib
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import psycopg2

from core.profiles import CompilerSource
from core.redflags import mexico
from core.redflags.config import RulesConfig, parse_config
from core.redflags.rules import process_flags
from core.settings import Settings
from core.store import reader
from producers.simulator import simulate

REPO = Path(__file__).resolve().parent.parent.parent
# The shipped rules, with repeated direct awards at 2 (the simulator plants pairs) and no late publication (its
# first-publication dates depend on how changes were batched, so no fixed expectation exists for it).
TEST_SETTINGS = {"repeated_min_awards": "2", "late_publication_days": "1e9", "min_population": "5"}


def rules_text() -> str:
    """The shipped rules file (its table of maximum amounts included) with the test settings above."""
    text = (REPO / "config" / "redflags.toml").read_text(encoding="utf-8")
    for name, value in TEST_SETTINGS.items():
        text, found = re.subn(rf"^{name} = [^#\n]*", f"{name} = {value} ", text, count=1, flags=re.M)
        assert found == 1, f"config/redflags.toml has no {name} line"
    return text


def rules_for_tests() -> RulesConfig:
    return parse_config(tomllib.loads(rules_text()))


def simulated(processes: int, seed: int = 11) -> list[dict[str, Any]]:
    return [e.release for e in simulate(seed=seed, processes=processes)]


def expected_alerts(settings: Settings, merger: CompilerSource, config: RulesConfig) -> set[tuple[str, str]]:
    """(rule, key) of every process and history flag the stored records raise now (pure evaluation)."""
    conn = psycopg2.connect(settings.database_url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT ocid FROM records")
            ocids = [r[0] for r in cur.fetchall()]
        conn.commit()
        compiled = reader.compiled_many(conn, ocids, merger)
    finally:
        conn.close()
    found = {(f.rule, f.key) for o, c in compiled.items() for f in process_flags(o, c, config)}
    awards = [a for o, c in compiled.items() for a in mexico.direct_awards(o, c, config)]
    return found | {(f.rule, f.key) for f in mexico.repeated_direct_awards(awards, config)}


def alert_events(settings: Settings) -> list[dict[str, Any]]:
    conn = psycopg2.connect(settings.database_url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT event FROM alert_events ORDER BY cursor")
            return [orjson.loads(r[0]) for r in cur.fetchall()]
    finally:
        conn.close()


def active_alerts(settings: Settings) -> set[tuple[str, str]]:
    conn = psycopg2.connect(settings.database_url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT rule, key FROM alerts WHERE active")
            return set(cur.fetchall())
    finally:
        conn.close()


def assert_each_alert_once(events: list[dict[str, Any]]) -> None:
    """Per (rule, key), events alternate raised / withdrawn starting with raised: nothing is stored twice."""
    last: dict[tuple[str, str], str] = {}
    for event in events:
        key = (event["rule"], event["key"])
        assert last.get(key, "alert.withdrawn") != event["kind"], f"{event['kind']} twice in a row for {key}"
        last[key] = event["kind"]
    cursors = [e["cursor"] for e in events]
    assert cursors == list(range(1, len(events) + 1)), "alert cursors are not gapless"


def raised_counts(events: list[dict[str, Any]]) -> Counter[tuple[str, str]]:
    return Counter((e["rule"], e["key"]) for e in events if e["kind"] == "alert.raised")
