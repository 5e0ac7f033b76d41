"""feed_server.alerts: the alerts feed pages every event once with its filters, Atom names each alert and links its
process page, a process's flags carry their evidence, and only operators register webhooks."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import feedparser
import psycopg2
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from consumers.watchdog import Engine
from core.merge import RecordMerger
from core.schema import OcdsSchema
from feed_server.app import create_app
from tests.consumers.test_watchdog import bidding, messages, run
from tests.feed_server.test_api import StoreWriter
from tests.support.stack import base_settings, fresh_stack
from tests.support.watchdog import alert_events, rules_for_tests

pytestmark = pytest.mark.integration
TOKEN = "operator-secret"


@pytest.fixture(scope="module")
def client(schema: OcdsSchema) -> Iterator[TestClient]:
    """A feed server over a store where the watchdog raised alerts: 6 single bids, one close runner-up (R024)."""
    with fresh_stack(base_settings(), read_rate_limit=1e6, operator_token=SecretStr(TOKEN)) as settings:
        store = StoreWriter(settings, schema, versioned=False)
        releases = []
        for i in range(6):
            release = bidding(f"ocds-test-{i}", "2024-01-01T00:00:00Z", 10, 12 if i < 5 else 10.01)
            release["tender"]["numberOfTenderers"] = 1
            release["buyer"]["id"] = f"UC-{i % 2}"
            releases.append(release)
        store.write(releases)
        store.close()
        conn = psycopg2.connect(settings.database_url)
        run(Engine(conn, RecordMerger(schema, versioned=False), rules_for_tests(), group="g", topic="t",
                   base_url=settings.base_url), messages(settings))
        conn.close()
        assert len(alert_events(settings)) > 6
        with TestClient(create_app(settings)) as client:
            yield client


def follow(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def test_paging_the_feed_returns_every_event_once_in_order(client: TestClient) -> None:
    """Following links.next two at a time gives the cursors 1..head, each once, then an empty page at the head."""
    url, seen = "/api/alerts?limit=2", []
    while True:
        body = client.get(url).json()
        if not body["alerts"]:
            break
        seen += [a["cursor"] for a in body["alerts"]]
        url = follow(body["links"]["next"])
    assert seen == list(range(1, body["head"] + 1)) and body["next_cursor"] == body["head"]


def test_filters_select_by_rule_buyer_supplier_and_ocid(client: TestClient) -> None:
    """rule=R018 gives the six single bids; buyer and ocid narrow them; an unknown rule is a 400."""
    r018 = client.get("/api/alerts?rule=R018").json()["alerts"]
    assert sorted(a["ocid"] for a in r018) == [f"ocds-test-{i}" for i in range(6)]
    assert all(a["kind"] == "alert.raised" and a["record_url"].endswith(f"/records/{a['ocid']}") for a in r018)
    assert [a["evidence"][0]["pointer"] for a in r018] == ["/tender/numberOfTenderers"] * 6
    assert len(client.get("/api/alerts?rule=R018&buyer=UC-1").json()["alerts"]) == 3
    assert [a["ocid"] for a in client.get("/api/alerts?rule=R018&ocid=ocds-test-2").json()["alerts"]] == ["ocds-test-2"]
    assert {a["rule"] for a in client.get("/api/alerts?supplier=L").json()["alerts"]} == {"R024"}
    assert client.get("/api/alerts?rule=R999").status_code == 400


def test_atom_feeds_per_rule_and_buyer_link_the_process_pages(client: TestClient) -> None:
    """The rule feed has one entry per R018 alert, each linking /records/{ocid}; the buyer feed only its buyer's."""
    feed = feedparser.parse(client.get("/feeds/alerts/rule/R018.atom").content)
    assert len(feed.entries) == 6
    assert all("/records/ocds-test-" in e.link and "Una sola oferta" in e.title for e in feed.entries)
    buyer = feedparser.parse(client.get("/feeds/alerts/buyer/UC-0.atom").content)
    assert buyer.entries and all(e.link.split("/records/ocds-test-")[1] in "024" for e in buyer.entries)


def test_a_process_shows_its_flags_and_the_counts_add_up(client: TestClient) -> None:
    """/api/flags/{ocid} lists the process's active flags with evidence; /api/flags counts them by rule."""
    flags = client.get("/api/flags/ocds-test-0").json()["flags"]
    assert "R018" in {f["rule"] for f in flags} and all(f["evidence"] for f in flags)
    counts = client.get("/api/flags").json()
    assert {r["rule"]: r["count"] for r in counts["by_rule"]}["R018"] == 6
    assert sum(b["count"] for b in counts["by_buyer"]) == sum(r["count"] for r in counts["by_rule"])
    assert client.get("/flags").status_code == 200


def test_only_operators_register_webhooks_and_read_their_log(client: TestClient) -> None:
    """No token: 401; the operator's token: 201 with a whsec_ secret; the delivery log needs the token too."""
    hook = {"url": "https://example.org/hook", "rules": ["R018"]}
    assert client.post("/api/webhooks", json=hook).status_code == 401
    made = client.post("/api/webhooks", json=hook, headers={"Authorization": f"Bearer {TOKEN}"})
    assert made.status_code == 201 and made.json()["secret"].startswith("whsec_")
    log = f"/api/webhooks/{made.json()['id']}/deliveries"
    assert client.get(log).status_code == 401
    assert client.get(log, headers={"Authorization": f"Bearer {TOKEN}"}).json() == {"deliveries": []}
    assert client.post("/api/webhooks", json={**hook, "rules": ["nope"]},
                       headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 400
