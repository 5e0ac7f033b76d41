"""The walking skeleton end to end: load → Kafka → processor → PostgreSQL → websocket and API."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import ocdsmerge
import orjson
import psycopg2
import pytest
import referencing
import websockets
from referencing.jsonschema import DRAFT4

from core.schema import OcdsSchema
from core.settings import Settings
from tests.support.stack import Process, base_settings, cli, free_port, fresh_stack, wait_http

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, Process, Process]]:
    port = free_port()
    with fresh_stack(base_settings(), port=port) as settings:
        logs = tmp_path_factory.mktemp("logs")
        worker = Process(settings, "process", log=logs / "worker.log")
        server = Process(settings, "serve", log=logs / "server.log")
        try:
            wait_http(f"{settings.base_url}/healthz")
            yield settings, worker, server
        finally:
            worker.stop()
            server.stop()


def _record_package_validator(schema: OcdsSchema) -> jsonschema.Draft4Validator:
    registry: referencing.Registry = referencing.Registry().with_resources(
        (url, referencing.Resource.from_contents(doc, default_specification=DRAFT4))
        for url, doc in schema.registry_by_url.items()
    )
    return jsonschema.Draft4Validator(schema.record_package, registry=registry,
                                      format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER)


async def _receive_change(url: str, ocid: str, timeout: float) -> dict[str, object]:
    async with websockets.connect(url) as ws:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = json.loads(await asyncio.wait_for(ws.recv(), deadline - time.monotonic()))
            if message["type"] == "change" and message["change"]["ocid"] == ocid:
                return dict(message["change"])
    raise AssertionError(f"no change for {ocid} within {timeout}s")


def test_loaded_release_reaches_store_websocket_and_api(
    stack: tuple[Settings, Process, Process], schema: OcdsSchema, real_data: Path, tmp_path: Path
) -> None:
    """A release loaded with `ocds-live load` is stored as ocdsmerge compiles it, pushed, and served."""
    settings, worker, server = stack
    line = (real_data / "mx-jalisco.releases.jsonl").read_bytes().splitlines()[0]
    release = orjson.loads(line)
    ocid = release["ocid"]
    path = tmp_path / "one.jsonl"
    path.write_bytes(line + b"\n")

    async def scenario() -> dict[str, object]:
        ws_url = f"{settings.base_url.replace('http', 'ws', 1)}/ws/changes?after=0"
        receiver = asyncio.create_task(_receive_change(ws_url, ocid, timeout=30))
        await asyncio.sleep(0.5)
        loaded = await asyncio.to_thread(cli, settings, "load", str(path))
        assert loaded.returncode == 0, loaded.stdout + loaded.stderr
        return await receiver

    change = asyncio.run(scenario())
    assert change["release_id"] == release["id"]
    assert change["cursor"] == 1

    expected = ocdsmerge.Merger(schema=schema.release).create_compiled_release([release])
    with psycopg2.connect(settings.database_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT compiled::text FROM records WHERE ocid = %s", (ocid,))
        row = cur.fetchone()
    assert row is not None
    assert orjson.loads(row[0]) == expected

    import httpx

    response = httpx.get(f"{settings.base_url}/api/records/{ocid}", timeout=10)
    assert response.status_code == 200
    package = response.json()
    errors = sorted(e.message for e in _record_package_validator(schema).iter_errors(package))
    assert errors == []
    assert package["records"][0]["compiledRelease"] == expected
