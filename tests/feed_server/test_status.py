"""``GET /api/status`` behind the operator token, and the status gauges of /metrics."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from core.kafka import ensure_topics
from core.status import Delay, Lag, Status
from feed_server.app import create_app
from feed_server.status import gauges
from tests.support import pipeline
from tests.support.stack import base_settings, fresh_stack

OPERATOR = "operator-token-for-tests"


def test_gauges_carry_every_figure() -> None:
    """Each figure of a status is a labelled ocds_status_* gauge; no status at all is up 0."""
    status = Status(taken_at=100.0, topics={"r": {0: 5}}, lags=[Lag("g", "r", 0, 3, 5, "store")],
                    counts={"releases": 4}, head=7, published=6, produced_to_commit=Delay(0.2, 0.9, 4),
                    generation=2, projects_waiting=3)
    text = gauges(status, now=103.0).decode()
    for line in ('ocds_status_up 1.0', 'ocds_status_age_seconds 3.0',
                 'ocds_status_topic_end_offset{partition="0",topic="r"} 5.0',
                 'ocds_status_consumer_lag{group="g",partition="0",source="store",topic="r"} 2.0',
                 'ocds_status_store_rows{table="releases"} 4.0', 'ocds_status_changes_head 7.0',
                 'ocds_status_changes_published 6.0', 'ocds_status_store_generation 2.0',
                 'ocds_status_projects_waiting 3.0',
                 'ocds_status_freshness_seconds{quantile="0.99",since="produced_at"} 0.9',
                 'ocds_status_freshness_samples{since="release_date"} 0.0'):
        assert line in text.splitlines(), line
    assert "ocds_status_up 0.0" in gauges(None).decode()


@pytest.mark.integration
def test_status_needs_the_operator_token_and_feeds_metrics() -> None:
    """Without or with a wrong operator token /api/status is 401; with it, the status; /metrics has its gauges."""
    with fresh_stack(base_settings()) as settings:
        ensure_topics(settings)
        pipeline.send(settings, pipeline.outgoing(pipeline.simulated(seed=2, count=5, processes=2)))
        with TestClient(create_app(settings)) as client:
            assert client.get("/api/status").status_code == 403  # no operator token configured
        operated = settings.model_copy(update={"operator_token": SecretStr(OPERATOR)})
        with TestClient(create_app(operated)) as client:
            assert client.get("/api/status").status_code == 401
            wrong = client.get("/api/status", headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401 and "operator token" in wrong.json()["error"]
            started = time.monotonic()
            answer = client.get("/api/status", headers={"Authorization": f"Bearer {OPERATOR}"})
            assert answer.status_code == 200
            body = answer.json()
            assert sum(p["end_offset"] for p in body["topics"][settings.releases_topic]) == 5
            assert body["counts"] == {"releases": 0, "records": 0, "changes": 0, "rejected": 0}
            metrics = client.get("/metrics").text
            assert time.monotonic() - started < 15
            assert 'ocds_status_store_rows{table="releases"} 0.0' in metrics
            assert "ocds_status_up 1.0" in metrics
            assert OPERATOR not in metrics
