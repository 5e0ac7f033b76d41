"""consumers.watch: the websocket bot prints, once each, the flags the rules find on the processes it follows,
through a real feed server; the lines name the rule, the process and its record."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest

from consumers.watch import Alert, Watchdog, alert_text, watch
from core.merge import RecordMerger, order_key
from core.redflags import mexico
from core.redflags.config import RulesConfig
from core.redflags.rules import process_flags
from core.schema import OcdsSchema
from tests.feed_server.test_api import StoreWriter, query
from tests.support.pipeline import count
from tests.support.stack import Process, base_settings, free_port, fresh_stack, wait_http
from tests.support.watchdog import expected_alerts, simulated

CONFIG = replace(RulesConfig(), repeated_min_awards=2)


def direct(ocid: str, date: str) -> dict[str, Any]:
    return {"ocid": ocid, "buyer": {"id": "UC-1"}, "tender": {"procurementMethod": "direct"},
            "awards": [{"id": "a1", "date": date, "value": {"amount": 10}, "suppliers": [{"id": "S-1"}]}]}


def test_each_rule_and_key_is_reported_once() -> None:
    """A process that keeps its red flag through later states is reported only the first time."""
    compiled = {"tender": {"procurementMethod": "open", "numberOfTenderers": 1}}
    dog = Watchdog(CONFIG)
    assert [(a.rule, a.key) for a in dog.check("ocds-1", compiled)] == [("R018", "ocds-1")]
    assert dog.check("ocds-1", compiled) == []


def test_repeated_direct_awards_are_found_across_processes_and_states() -> None:
    """The second direct award to one supplier within the window raises the run, named by its latest process;
    a process seen again with its award moved away leaves the pair."""
    dog = Watchdog(CONFIG)
    assert dog.check("ocds-1", direct("ocds-1", "2024-01-01T00:00:00Z")) == []
    alerts = dog.check("ocds-2", direct("ocds-2", "2024-02-01T00:00:00Z"), 7, "http://x/api/records/ocds-2")
    assert [(a.rule, a.key, a.ocid, a.record_url) for a in alerts] == [
        ("MX-REPEATED-DIRECT", "UC-1|S-1|ocds-1|a1", "ocds-2", "http://x/api/records/ocds-2")]
    assert [e["ocid"] for e in alerts[0].evidence] == ["ocds-1", "ocds-2"]
    fresh = Watchdog(CONFIG)
    fresh.check("ocds-1", direct("ocds-1", "2024-01-01T00:00:00Z"))
    fresh.check("ocds-1", direct("ocds-1", "2023-01-01T00:00:00Z"))  # corrected: one award, not two
    assert fresh.check("ocds-2", direct("ocds-2", "2024-02-01T00:00:00Z")) == []


def ever_flagged(releases: list[dict[str, Any]], log: list[tuple[str, str]],
                 merger: RecordMerger) -> set[tuple[str, str]]:
    """(rule, key) of the flags of every state the processes went through, in the order of the change ``log``
    ((ocid, release id) per change; a process's releases are merged in date order up to the one logged)."""
    pending: dict[str, list[dict[str, Any]]] = {}
    for release in sorted(releases, key=order_key):
        pending.setdefault(release["ocid"], []).append(release)
    records: dict[str, Any] = {}
    awards: dict[str, list[Any]] = {}
    found = set()
    for ocid, release_id in log:
        while pending[ocid]:
            release = pending[ocid].pop(0)
            records[ocid] = merger.extend(records.get(ocid), release)
            if release["id"] == release_id:
                break
        found |= {(f.rule, f.key) for f in process_flags(ocid, records[ocid].compiled, CONFIG)}
        awards[ocid] = mexico.direct_awards(ocid, records[ocid].compiled, CONFIG)
        everything = [a for own in awards.values() for a in own]
        found |= {(f.rule, f.key) for f in mexico.repeated_direct_awards(everything, CONFIG)}
    return found


@pytest.mark.integration
def test_watch_bot_alerts_through_the_feed_server(schema: OcdsSchema, tmp_path: Path) -> None:
    """``watch`` follows a real feed server with ``detail=full`` and writes one JSON line per flag: every flag the
    rules find on the final records (the simulator plants single bids, amendments and repeated direct awards), and
    those that held only at an earlier state of a process."""
    releases = simulated(400)
    with fresh_stack(base_settings(), port=free_port()) as settings:
        StoreWriter(settings, schema, versioned=False).write(releases)
        want = expected_alerts(settings, RecordMerger(schema, versioned=False), CONFIG)
        log = [(o, r) for o, r in query(settings, "SELECT ocid, release_id FROM changes ORDER BY cursor")]
        server = Process(settings, "serve", log=tmp_path / "serve.log")
        try:
            wait_http(f"{settings.base_url}/healthz")
            lines: list[bytes] = []
            url = f"{settings.base_url.replace('http', 'ws', 1)}/ws/changes"
            written = asyncio.run(asyncio.wait_for(
                watch(url, CONFIG, after="start", out=lines.append, flush=lambda: None,
                      limit=count(settings, "changes")), 120))
        finally:
            server.stop()
    alerts = [orjson.loads(line) for line in lines]
    got = {(a["rule"], a["key"]) for a in alerts}
    assert written == len(alerts) == len(got) and len(want) > 10
    assert want <= got  # and what else it printed held at an earlier state (a tender extended later, ...)
    assert got - want <= ever_flagged(releases, log, RecordMerger(schema, versioned=False))
    assert all(a["record_url"] == f"{settings.base_url}/api/records/{a['ocid']}" for a in alerts)


def test_text_alert_names_the_rule_the_process_and_its_record() -> None:
    """``--text`` lines say which rule fired on which process, in Spanish and English, with the record's link."""
    line = alert_text(Alert("R018", "ocds-07smqs-1", "ocds-07smqs-1", "Una sola oferta recibida / Single bid received",
                            7, "http://x/api/records/ocds-07smqs-1")).decode()
    assert line.startswith("ALERT R018") and line.endswith("http://x/records/ocds-07smqs-1\n")
    assert "ocds-07smqs-1" in line and "Una sola oferta recibida / Single bid received" in line
