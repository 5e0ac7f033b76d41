"""HTTP ingest: publishers' releases reach Kafka once, acknowledged; refusals send nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient

from core.kafka import ensure_topics
from core.settings import Settings
from feed_server.app import create_app
from tests.support.kafka import read_topic
from tests.support.stack import base_settings, fresh_stack

pytestmark = pytest.mark.integration

TOKEN = "token-of-test-publisher"
PUBLISHERS = """
[[publisher]]
name = "testpub"
prefixes = ["ocds-07smqs"]
policy = "strict"
rate_limit = 50
token_sha256 = "{digest}"
"""


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    import hashlib

    folder = tmp_path_factory.mktemp("config")
    path = folder / "publishers.toml"
    path.write_text(PUBLISHERS.format(digest=hashlib.sha256(TOKEN.encode()).hexdigest()))
    with fresh_stack(base_settings(), publishers_file=path, max_release_bytes=64 * 1024) as settings:
        ensure_topics(settings)
        yield settings


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


def _release(n: int, ocid: str = "ocds-07smqs-100") -> dict[str, object]:
    return {"ocid": ocid, "id": f"{ocid}-{n}", "date": "2024-01-01T00:00:00Z", "tag": ["tender"],
            "initiationType": "tender"}


def _auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_accepted_releases_are_on_the_topic_once_with_key_and_headers(client: TestClient, settings: Settings) -> None:
    """A release package is answered 202 with event ids, and each release is on the topic once, keyed by ocid."""
    package = {"uri": "x", "releases": [_release(1), _release(2, "ocds-07smqs-200")]}
    response = client.post("/api/releases", content=json.dumps(package), headers=_auth())
    assert response.status_code == 202, response.text
    ids = response.json()["event_ids"]
    assert len(ids) == 2
    messages = [m for m in read_topic(settings, settings.releases_topic) if m.headers["event-id"] in ids]
    assert len(messages) == 2
    by_key = {m.key: m for m in messages}
    assert set(by_key) == {b"ocds-07smqs-100", b"ocds-07smqs-200"}
    first = by_key[b"ocds-07smqs-100"]
    assert orjson.loads(first.value) == _release(1)
    assert first.headers["publisher"] == "testpub"
    assert first.headers["source"] == "http"
    assert first.headers["produced-at"].isdigit()


def test_missing_or_wrong_token_is_401(client: TestClient) -> None:
    """No token and a wrong token are both refused with 401 and a message saying what to send."""
    missing = client.post("/api/releases", content=json.dumps(_release(1)))
    wrong = client.post("/api/releases", content=json.dumps(_release(1)), headers=_auth("nope"))
    assert missing.status_code == 401
    assert "Bearer" in missing.json()["error"]
    assert wrong.status_code == 401
    assert "matches no publisher" in wrong.json()["error"]


def test_ocid_outside_prefixes_is_403_naming_it(client: TestClient, settings: Settings) -> None:
    """A batch with one foreign ocid is refused whole with 403 naming that ocid; nothing is sent."""
    before = len(read_topic(settings, settings.releases_topic, 1000))
    body = [_release(10), _release(11, "ocds-zzzzzz-1")]
    response = client.post("/api/releases", content=json.dumps(body), headers=_auth())
    assert response.status_code == 403
    assert "/1/ocid" in response.json()["error"]
    assert "ocds-zzzzzz-1" in response.json()["error"]
    assert len(read_topic(settings, settings.releases_topic, 1000)) == before


def test_oversize_body_is_413(client: TestClient) -> None:
    """A body over the configured size is refused with 413 and the limit."""
    big = _release(1)
    big["description"] = "x" * 70_000
    response = client.post("/api/releases", content=json.dumps(big), headers=_auth())
    assert response.status_code == 413
    assert "65536" in response.json()["error"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"{not json", "not JSON"),
        (b"[1, 2]", "/0: a release must be a JSON object"),
        (json.dumps([{"ocid": "ocds-07smqs-1", "date": "2024-01-01T00:00:00Z"}]).encode(), "/0/id"),
        (json.dumps({"releases": "nope"}).encode(), "/releases"),
        (b"[]", "no releases"),
    ],
)
def test_bad_bodies_are_400_saying_what_and_where(client: TestClient, body: bytes, expected: str) -> None:
    """Non-JSON and non-release bodies get 400 with what was wrong and where."""
    response = client.post("/api/releases", content=body, headers=_auth())
    assert response.status_code == 400
    assert expected in response.json()["error"]


def test_over_the_rate_is_429_with_retry_after(client: TestClient) -> None:
    """More releases than the publisher's rate in one go is refused with 429 and Retry-After."""
    body = [_release(100 + i) for i in range(50)]
    first = client.post("/api/releases", content=json.dumps(body), headers=_auth())
    second = client.post("/api/releases", content=json.dumps(body), headers=_auth())
    assert first.status_code == 202
    assert second.status_code == 429
    assert int(second.headers["Retry-After"]) >= 1


def test_unreachable_kafka_is_503_with_retry_after(settings: Settings, tmp_path: Path) -> None:
    """With no broker at the configured address, ingest answers 503 with Retry-After."""
    from tests.support.stack import free_port

    offline = settings.model_copy(update={"kafka_bootstrap_servers": f"127.0.0.1:{free_port()}"})
    with TestClient(create_app(offline)) as client:
        response = client.post("/api/releases", content=json.dumps(_release(1)), headers=_auth())
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert "nothing was accepted" in response.json()["error"]


def test_broker_stopped_then_back_topic_holds_only_acknowledged(settings: Settings, tmp_path: Path) -> None:
    """With the broker stopped ingest answers 503; once it is back (a client retrying as Retry-After says, while
    the producer reconnects) the topic holds only what got 202."""
    from ocds_live.services import KafkaService
    from tests.support.stack import free_port

    own = settings.model_copy(update={
        "kafka_bootstrap_servers": f"127.0.0.1:{free_port()}", "kafka_controller_port": free_port(),
        "data_dir": tmp_path / "local",
    })
    kafka = KafkaService(own)
    kafka.up()
    try:
        ensure_topics(own)
        with TestClient(create_app(own)) as client:
            before = client.post("/api/releases", content=json.dumps(_release(1)), headers=_auth())
            kafka.down()
            during = client.post("/api/releases", content=json.dumps(_release(2)), headers=_auth())
            kafka.up()
            refused: list[str] = []
            for _ in range(6):
                after = client.post("/api/releases", content=json.dumps(_release(3)), headers=_auth())
                if after.status_code != 503:
                    break
                refused.append(after.headers["Retry-After"])
        assert (before.status_code, during.status_code, after.status_code) == (202, 503, 202), refused
        acknowledged = set(before.json()["event_ids"] + after.json()["event_ids"])
        on_topic = [m.headers["event-id"] for m in read_topic(own, own.releases_topic)]
        assert sorted(on_topic) == sorted(acknowledged)
    finally:
        kafka.down()


def test_package_extensions_go_with_each_release_and_unavailable_ones_are_named(
        client: TestClient, settings: Settings) -> None:
    """A package's extensions travel in each release's extensions header; the answer names those that
    cannot be resolved (the releases are still accepted: the processor applies the publisher's policy)."""
    known = "https://raw.githubusercontent.com/open-contracting/ocds_contract_suppliers_extension/master/extension.json"
    unknown = "https://example.org/ocds_unknown_extension/master/extension.json"
    package = {"uri": "x", "extensions": [known, unknown], "releases": [_release(40), _release(41)]}
    response = client.post("/api/releases", content=json.dumps(package), headers=_auth())
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["extensions"]["declared"] == [known, unknown]
    assert list(body["extensions"]["unavailable"]) == [unknown]
    messages = [m for m in read_topic(settings, settings.releases_topic) if m.headers["event-id"] in body["event_ids"]]
    assert len(messages) == 2 and all(json.loads(m.headers["extensions"]) == [known, unknown] for m in messages)
    bad = client.post("/api/releases", content=json.dumps({**package, "extensions": "x"}), headers=_auth())
    assert bad.status_code == 400 and "/extensions" in bad.json()["error"]
