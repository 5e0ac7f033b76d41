"""consumers.watchdog.Engine on the real PostgreSQL: alerts stored once per (rule, key), history in the store,
withdrawn by their own event, population fences kept exact as processes change, replays deliver nothing."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import orjson
import psycopg2
import pytest

from consumers.watchdog import Engine, Message
from core.merge import RecordMerger
from core.schema import OcdsSchema
from core.settings import Settings
from tests.feed_server.test_api import StoreWriter
from tests.support.stack import base_settings, fresh_stack
from tests.support.watchdog import (
    active_alerts,
    alert_events,
    assert_each_alert_once,
    expected_alerts,
    raised_counts,
    rules_for_tests,
    simulated,
)

pytestmark = pytest.mark.integration


def messages(settings: Settings, after: int = 0) -> list[Message]:
    """The change log as the change topic carries it (one partition: offset = cursor - 1)."""
    conn = psycopg2.connect(settings.database_url)
    with conn.cursor() as cur:
        cur.execute("SELECT cursor, ocid, event FROM changes WHERE cursor > %s ORDER BY cursor", (after,))
        rows = cur.fetchall()
    conn.close()
    return [Message(0, c - 1, o, orjson.loads(e).get("date")) for c, o, e in rows]


@pytest.fixture()
def stack(schema: OcdsSchema) -> Iterator[tuple[Settings, StoreWriter, Engine]]:
    with fresh_stack(base_settings()) as settings:
        store = StoreWriter(settings, schema, versioned=False)
        engine = Engine(psycopg2.connect(settings.database_url), RecordMerger(schema, versioned=False),
                        rules_for_tests(), group="test-watchdog", topic="changes", base_url=settings.base_url)
        yield settings, store, engine
        engine.conn.close()
        store.close()


def run(engine: Engine, batch: list[Message], size: int = 40) -> list[dict[str, Any]]:
    return [e for start in range(0, len(batch), size) for e in engine.process(batch[start:start + size])]


def test_alerts_are_stored_once_and_a_replay_writes_nothing(stack: tuple[Settings, StoreWriter, Engine]) -> None:
    """Over 300 simulated processes the active alerts equal the rules' verdicts on the final records, each raised
    once; processing the log again (a re-delivered batch, then a replay from offset 0) writes no event."""
    settings, store, engine = stack
    releases = simulated(300)
    for start in range(0, len(releases), 100):
        store.write(releases[start:start + 100])
        run(engine, messages(settings))  # everything so far: earlier batches come again, as after a crash
    events = alert_events(settings)
    assert_each_alert_once(events)
    want = expected_alerts(settings, engine.merger, engine.config)
    assert active_alerts(settings) == want and len(want) > 10
    assert set(raised_counts(events).values()) == {1}
    with engine.conn.cursor() as cur:
        cur.execute("DELETE FROM consumer_offsets")
    engine.conn.commit()
    assert run(engine, messages(settings)) == []
    assert alert_events(settings) == events


def bid(ident: str, tenderer: str, amount: float) -> dict[str, Any]:
    return {"id": ident, "status": "valid", "tenderers": [{"id": tenderer}],
            "value": {"amount": amount, "currency": "MXN"}}


def bidding(ocid: str, date: str, win: float, lose: float, rid: str = "1") -> dict[str, Any]:
    return {"ocid": ocid, "id": rid, "date": date, "tag": ["award"], "buyer": {"id": "UC-9", "name": "UC"},
            "tender": {"id": "t", "procurementMethod": "open", "numberOfTenderers": 2},
            "bids": {"details": [bid("b1", "W", win), bid("b2", "L", lose)]},
            "awards": [{"id": "a", "status": "active", "suppliers": [{"id": "W"}]}]}


def test_a_corrected_release_withdraws_its_alert(stack: tuple[Settings, StoreWriter, Engine]) -> None:
    """A single-bid tender is raised; a later release correcting numberOfTenderers withdraws it with an event."""
    settings, store, engine = stack
    release = bidding("ocds-test-1", "2024-01-01T00:00:00Z", 10, 11)
    release["tender"]["numberOfTenderers"] = 1
    store.write([release])
    assert [(e["kind"], e["rule"]) for e in run(engine, messages(settings))] == [("alert.raised", "R018")]
    fixed = {**release, "id": "2", "date": "2024-01-02T00:00:00Z", "tender": {**release["tender"],
                                                                              "numberOfTenderers": 2}}
    store.write([fixed])
    events = run(engine, messages(settings, after=1))
    assert [(e["kind"], e["rule"], e["key"]) for e in events] == [("alert.withdrawn", "R018", "ocds-test-1")]
    assert events[0]["record_url"] == f"{settings.base_url}/records/ocds-test-1"


def test_population_fences_move_with_the_population(stack: tuple[Settings, StoreWriter, Engine]) -> None:
    """R058 follows Cardinal's example once 5 ratios exist (F at 99 flagged), and is withdrawn when four more
    heavily discounted processes move the upper fence above F's ratio."""
    settings, store, engine = stack
    date = "2024-02-01T00:00:00Z"
    store.write([bidding("ocds-test-F", date, 1, 100)] + [bidding(f"ocds-test-{i}", date, 1, 2) for i in range(4)])
    events = run(engine, messages(settings))
    assert [(e["kind"], e["rule"], e["key"]) for e in events] == [("alert.raised", "R058", "ocds-test-F")]
    assert [e["pointer"] for e in events[0]["evidence"]] == ["/bids/details/0/value/amount",
                                                             "/bids/details/1/value/amount"]
    store.write([bidding(f"ocds-test-x{i}", date, 1, 300) for i in range(4)])
    events = run(engine, messages(settings, after=5))
    assert ("alert.withdrawn", "R058", "ocds-test-F") in [(e["kind"], e["rule"], e["key"]) for e in events]
    assert_each_alert_once(alert_events(settings))


def test_the_store_answers_the_same_quartiles_as_the_pure_rule(stack: tuple[Settings, StoreWriter, Engine]) -> None:
    """Quartiles read by rank from PostgreSQL equal the in-memory R-8 quartiles of the same ratios."""
    from core.redflags.population import quantile, quartiles
    from core.store import alerts

    settings, store, engine = stack
    amounts = [(1, 1 + k * 0.37 % 5) for k in range(23)]
    store.write([bidding(f"ocds-test-q{k}", "2024-03-01T00:00:00Z", w, lose) for k, (w, lose) in enumerate(amounts)])
    run(engine, messages(settings))
    with engine.conn.cursor() as cur:
        n, kth = alerts.ratio_population(cur, "MXN")
        stored = (quantile(n, 0.25, kth), quantile(n, 0.75, kth))
    engine.conn.commit()
    assert n == 23 and stored == pytest.approx(quartiles([lose / w - 1 for w, lose in amounts]))



class Breaking(Engine):
    """An engine whose rules fail on one process (a stand-in for a rule's defect meeting odd data)."""

    def _evaluate(self, cur: Any, messages: Any, compiled: dict[str, dict[str, Any]]) -> list[Any]:
        if any(m.ocid == "ocds-test-bad" for m in messages):
            raise KeyError("a rule's defect")
        return super()._evaluate(cur, messages, compiled)


def test_a_message_that_breaks_a_rule_is_passed_over_alone(stack: tuple[Settings, StoreWriter, Engine]) -> None:
    """The batch is evaluated message by message: the others' alerts are stored, every offset is stored."""
    settings, store, engine = stack
    good = bidding("ocds-test-good", "2024-01-01T00:00:00Z", 10, 11)
    good["tender"]["numberOfTenderers"] = 1
    store.write([good, bidding("ocds-test-bad", "2024-01-01T00:00:00Z", 10, 11)])
    breaking = Breaking(engine.conn, engine.merger, engine.config, group="g", topic="t", base_url="http://x")
    events = breaking.process_isolating(messages(settings))
    assert [(e["rule"], e["ocid"]) for e in events] == [("R018", "ocds-test-good")]
    assert breaking.stored_offsets() == {0: 2}


def test_r038_agrees_with_cardinals_example_and_names_the_processes(
        stack: tuple[Settings, StoreWriter, Engine]) -> None:
    """Cardinal's R038 example through the store: buyer B (1 of 2 bids disqualified) is flagged, and only B, with
    the process where it disqualified a bid as evidence."""
    settings, store, engine = stack
    engine.config = replace(engine.config, min_population=0)
    releases = []
    for i, buyer in enumerate(["B", "1", "2", "3", "4"]):
        details = [{"id": "v", "status": "valid", "tenderers": [{"id": "W"}]}]
        if i == 0:
            details.append({"id": "d", "status": "disqualified", "tenderers": [{"id": "D"}]})
        releases.append({"ocid": f"ocds-test-r{i}", "id": "1", "date": "2024-01-01T00:00:00Z", "tag": ["tender"],
                         "buyer": {"id": buyer}, "bids": {"details": details}})
    store.write(releases)
    events = run(engine, messages(settings))
    assert [(e["rule"], e["key"], e["detail"]["ratio"]) for e in events] == [("R038", "buyer|B", 0.5)]
    assert events[0]["evidence"] == [{"pointer": "/bids/details", "value": {"disqualified": 1, "submitted": 2},
                                      "ocid": "ocds-test-r0"}]


def test_late_publication_keeps_the_first_publication_date(stack: tuple[Settings, StoreWriter, Engine]) -> None:
    """A contract signed in January first published in June is raised once; later releases of the process do not
    move its first publication, so nothing more is raised or withdrawn."""
    settings, store, engine = stack
    engine.config = replace(engine.config, late_publication_days=90)
    contract = {"ocid": "ocds-test-late", "id": "1", "date": "2024-06-01T00:00:00Z", "tag": ["contract"],
                "contracts": [{"id": "c1", "dateSigned": "2024-01-01T00:00:00Z"}]}
    store.write([contract])
    events = run(engine, messages(settings))
    assert [(e["rule"], e["evidence"][0]["pointer"]) for e in events] == [("MX-LATE-PUBLICATION",
                                                                           "/contracts/0/dateSigned")]
    assert events[0]["detail"]["first_published"] == "2024-06-01T00:00:00Z"
    store.write([{**contract, "id": "2", "date": "2024-07-01T00:00:00Z", "tag": ["contractUpdate"],
                  "contracts": [{"id": "c1", "title": "Servicio"}]}])
    assert run(engine, messages(settings, after=1)) == []


def test_a_project_over_budget_raises_an_alert_and_its_correction_withdraws_it(
        stack: tuple[Settings, StoreWriter, Engine]) -> None:
    """A ``project.updated`` change of a stored OC4IDS project whose contracts exceed its budget by more than 25%
    raises PROJECT-COST-OVERRUN linking to the project page; the same change again writes nothing; the project
    rebuilt under the threshold withdraws it."""
    settings, _, engine = stack
    pid = "oc4ids-test01-NAICM"

    def store(contracted: float) -> None:
        data = {"id": pid, "budget": {"amount": {"amount": 1000.0, "currency": "MXN"}},
                "contractingProcesses": [{"id": "ocds-1", "summary": {
                    "contractValue": {"amount": contracted, "currency": "MXN"}}}]}
        with engine.conn.cursor() as cur:
            cur.execute("INSERT INTO projects (id, publisher, local_id, data, digest, seq) VALUES (%s, 'bulk', "
                        "'NAICM', %s, '', 1) ON CONFLICT (id) DO UPDATE SET data = EXCLUDED.data",
                        (pid, orjson.dumps(data).decode()))
        engine.conn.commit()

    store(1300.0)
    raised = engine.process([Message(0, 0, pid)])
    assert [(e["kind"], e["rule"], e["key"]) for e in raised] == [("alert.raised", "PROJECT-COST-OVERRUN", pid)]
    assert raised[0]["record_url"] == f"{settings.base_url}/projects/{pid}"
    assert raised[0]["evidence"][1]["pointer"] == "/contractingProcesses/0/summary/contractValue/amount"
    assert engine.process([Message(0, 1, pid)]) == []
    store(1250.0)
    withdrawn = engine.process([Message(0, 2, pid)])
    assert [(e["kind"], e["key"]) for e in withdrawn] == [("alert.withdrawn", pid)]
