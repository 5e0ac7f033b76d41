"""The soak's own services and processes: Kafka and PostgreSQL under a temporary folder, on free ports.

The soak restarts the broker and the database, so it never uses the shared services: it starts a Kafka
broker (KRaft) and an embedded PostgreSQL (pgserver, on a unix socket in its data folder) of its own with
``ocds_live.services``, and stops them at the end. Kafka's jars are linked from the configured data folder
when it has them (no Maven run), else fetched.

A :class:`Child` is one ``ocds-live`` process (a worker or a feed server) that the soak kills with SIGKILL
and starts again; a :class:`Stack` holds the services, the children and the store's settings.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psycopg2

from bench._common import REPO, env_for, wait_http
from core.settings import Settings
from core.store.connection import embedded_url
from core.store.migrate import migrate
from ocds_live.services import KafkaService, PostgresService

# a SIGKILLed worker leaves its consumer group after 10 s, not Faust's default 60 s (as tests/streams do)
WORKER_ENV = {"BROKER_SESSION_TIMEOUT": "10", "BROKER_REBALANCE_TIMEOUT": "20"}
STORE, TRUTH = "soak", "truth"


def fixed_port() -> int:
    """A free port below Linux's ephemeral range (32768-60999). A service the soak restarts must get its port
    back: while it is down, clients retrying their connection to a port inside that range can take it (a TCP
    connection to oneself, from the same port), and the restart then finds the port in use."""
    rng = random.Random()
    while True:
        port = rng.randrange(20_000, 32_000)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


class Child:
    """One ``ocds-live`` subcommand; its output is appended to ``log`` across restarts."""

    def __init__(self, name: str, settings: Settings, args: list[str], log: Path, env: dict[str, str]) -> None:
        self.name, self.settings, self.args, self.log, self.env = name, settings, args, log, env
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.unplanned_exits: list[int] = []  # exit codes of the times it ended without being killed

    @property
    def url(self) -> str:
        return self.settings.base_url

    def start(self) -> None:
        with self.log.open("ab") as out:
            out.write(f"\n=== start {self.starts + 1} at {time.strftime('%H:%M:%S')}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(  # noqa: S603 - our own command
                [sys.executable, "-m", "ocds_live.cli", *self.args], env=env_for(self.settings, **self.env),
                stdout=out, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True)
        self.starts += 1

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL, as a crash."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def reap(self) -> bool:
        """Whether it ended by itself since it was started (noted as an unplanned exit)."""
        if self.proc is None or self.proc.poll() is None:
            return False
        self.unplanned_exits.append(int(self.proc.returncode))
        self.proc = None
        return True

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc = None


class Stack:
    """Kafka and PostgreSQL of the soak's own under ``root``; the store database and the truth database."""

    def __init__(self, base: Settings, root: Path) -> None:
        self.root = root
        self.logs = root / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.settings = base.model_copy(update={
            "data_dir": root / "local", "database_url": None,
            "kafka_bootstrap_servers": f"127.0.0.1:{fixed_port()}", "kafka_controller_port": fixed_port(),
            "releases_topic": "soak.releases", "rejected_topic": "soak.rejected", "changes_topic": "soak.changes",
            "app_id": "soak", "ws_max_per_client": 10_000, "read_rate_limit": 100_000.0,
        })
        self.kafka = KafkaService(self.settings)
        self.ctl_port = self.settings.kafka_controller_port
        self.postgres = PostgresService(self.settings)
        self.children: list[Child] = []

    def up(self, base: Settings) -> None:
        """Start both services, create and migrate the two databases, create the topics."""
        from core.kafka import ensure_topics

        libs = base.data_dir / "kafka" / "libs"
        if any(libs.glob("kafka_2.13-*.jar")):
            self.kafka.libs.parent.mkdir(parents=True, exist_ok=True)
            self.kafka.libs.symlink_to(libs, target_is_directory=True)
        self.postgres.up()
        self.kafka.up()
        admin = psycopg2.connect(self._url("postgres"))
        admin.autocommit = True
        with admin.cursor() as cur:
            for name in (STORE, TRUTH):
                cur.execute(f'CREATE DATABASE "{name}"')
        admin.close()
        self.settings = self.settings.model_copy(update={"database_url": self._url(STORE)})
        conn = psycopg2.connect(self.settings.database_url)
        migrate(conn)
        conn.close()
        ensure_topics(self.settings)

    def _url(self, database: str) -> str:
        url = embedded_url(self.settings)
        assert url is not None, "the soak's PostgreSQL is not running"
        base, _, query = url.partition("?")
        return f"{base.rsplit('/', 1)[0]}/{database}" + (f"?{query}" if query else "")

    @property
    def truth_url(self) -> str:
        return self._url(TRUTH)

    def worker(self, n: int) -> Child:
        child = Child(f"worker-{n}", self.settings, ["process"], self.logs / f"worker-{n}.log", WORKER_ENV)
        self.children.append(child)
        return child

    def feed_server(self, n: int) -> Child:
        settings = self.settings.model_copy(update={"port": fixed_port()})
        child = Child(f"feed-{n}", settings, ["serve"], self.logs / f"feed-{n}.log", {})
        self.children.append(child)
        return child

    def restart_kafka(self) -> None:
        """SIGKILL the broker (a crash), then start it again on the same data and wait until it answers."""
        pid = self.kafka.pid()
        assert pid is not None, "the soak's Kafka is not running"
        os.killpg(pid, signal.SIGKILL)
        # the broker's main thread is a zombie (not alive for ``pid()``) before its other threads have exited and
        # its sockets are closed: wait until both ports can be bound again
        deadline = time.monotonic() + 60
        while self.kafka.pid() is not None or not all(_bindable(p) for p in (self.kafka.port, self.ctl_port)):
            assert time.monotonic() < deadline, "the killed broker still holds its ports after 60 s"
            time.sleep(0.2)
        self.kafka.up()

    def restart_postgres(self) -> None:
        """PostgreSQL's immediate shutdown (SIGQUIT: no checkpoint, crash recovery at start), then start it."""
        pid = self.postgres.pid()
        assert pid is not None, "the soak's PostgreSQL is not running"
        os.kill(pid, signal.SIGQUIT)
        while self.postgres.pid() is not None:
            time.sleep(0.1)
        # in a new process: pgserver keeps the server it started in this one and would not start it again. Its
        # pg_ctl waits only 10 s, and crash recovery on a loaded machine takes longer (18 s seen in a 30-minute
        # soak): the command's status says nothing, whether the server answers does
        env = env_for(self.settings.model_copy(update={"database_url": None}))
        env.pop("DATABASE_URL", None)
        subprocess.run([sys.executable, "-m", "ocds_live.cli", "services", "up"], env=env, cwd=REPO,  # noqa: S603
                       check=False, capture_output=True, timeout=300)
        deadline = time.monotonic() + 300
        while True:
            try:
                psycopg2.connect(self.settings.database_url, connect_timeout=3).close()
                return
            except psycopg2.OperationalError:
                assert time.monotonic() < deadline, "the soak's PostgreSQL did not come back within 300 s"
                time.sleep(0.5)

    def down(self, keep: bool = False) -> None:
        for child in self.children:
            child.stop()
        with contextlib.suppress(Exception):
            self.kafka.down()
        with contextlib.suppress(Exception):
            self.postgres.down()
        if not keep:
            shutil.rmtree(self.root, ignore_errors=True)


def healthy(child: Child, timeout: float) -> bool:
    """Whether a feed server answers /healthz within ``timeout`` seconds."""
    try:
        wait_http(f"{child.url}/healthz", timeout)
        return True
    except SystemExit:
        return False
