"""The real stack for integration tests: Kafka and PostgreSQL must run; missing ones fail, never skip."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import pytest

from core.settings import Settings, load_settings
from core.store.connection import database_url
from core.store.migrate import migrate

REPO = Path(__file__).resolve().parent.parent.parent


def require_services(settings: Settings) -> str:
    """The database URL; fails the test run (not skips) when Kafka or PostgreSQL is missing."""
    from kafka.admin import KafkaAdminClient

    try:
        url = database_url(settings)
        psycopg2.connect(url, connect_timeout=3).close()
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"PostgreSQL is not reachable ({exc}); run `ocds-live services up` first", pytrace=False)
    try:
        admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers, request_timeout_ms=5000)
        admin.list_topics()
        admin.close()
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"Kafka is not reachable at {settings.kafka_bootstrap_servers} ({exc}); "
                    "run `ocds-live services up` first", pytrace=False)
    return url


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@contextlib.contextmanager
def fresh_stack(base: Settings, **overrides: object) -> Iterator[Settings]:
    """Settings for an isolated stack: a new database (migrated) and topics of its own."""
    url = require_services(base)
    tag = uuid.uuid4().hex[:10]
    name = f"ocds_test_{tag}"
    admin = psycopg2.connect(url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    settings = base.model_copy(update={
        "database_url": _with_database(url, name),
        "releases_topic": f"t{tag}.releases",
        "rejected_topic": f"t{tag}.rejected",
        "changes_topic": f"t{tag}.changes",
        "app_id": f"t{tag}",
        **overrides,
    })
    conn = psycopg2.connect(settings.database_url)
    migrate(conn)
    conn.close()
    try:
        yield settings
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def env_for(settings: Settings) -> dict[str, str]:
    """Environment variables that reproduce ``settings`` in a child process."""
    env = dict(os.environ)
    for field, value in settings.model_dump().items():
        if value is None:
            continue
        if field == "database_url":
            env["DATABASE_URL"] = str(value)
        elif field == "kafka_bootstrap_servers":
            env["KAFKA_BOOTSTRAP_SERVERS"] = str(value)
        elif hasattr(value, "get_secret_value"):
            env[f"OCDS_LIVE_{field.upper()}"] = value.get_secret_value()
        else:
            env[f"OCDS_LIVE_{field.upper()}"] = str(value)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cli(settings: Settings, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``ocds-live ARGS`` as a user would, with ``settings``."""
    return subprocess.run([sys.executable, "-m", "ocds_live.cli", *args], env=env_for(settings),
                          capture_output=True, text=True, check=False, cwd=REPO, timeout=timeout)


class Process:
    """A long-running ``ocds-live`` subcommand started for a test; stopped (or killed) after it."""

    def __init__(self, settings: Settings, *args: str, log: Path) -> None:
        self.log = log
        self._fh = log.open("wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "ocds_live.cli", *args], env=env_for(settings),
                                     stdout=self._fh, stderr=subprocess.STDOUT, cwd=REPO,
                                     start_new_session=True)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        """kill -9."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
        self._fh.close()


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {timeout}s")


def base_settings() -> Settings:
    """The environment's settings, with the schema, extensions and OC4IDS from ../shared (tests never download
    them)."""
    from tests.conftest import EXTENSIONS_DIR, SCHEMA_DIR, SHARED

    return load_settings(schema_dir=SCHEMA_DIR, extensions_dir=EXTENSIONS_DIR, extensions_download=False,
                         oc4ids_dir=SHARED / "oc4ids" / "0.9.4", project_build_interval=0.1)
