"""Local services: one Apache Kafka KRaft node run with plain ``java``, and PostgreSQL from pgserver.

``up`` starts what is not running and waits until it answers; ``down`` stops exactly what ``up``
started (by the pid it recorded); ``status`` says what runs where. Data and logs live under
``Settings.data_dir`` (git-ignored). With ``DATABASE_URL`` set, PostgreSQL is not managed here.
"""

from __future__ import annotations

import base64
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import psutil

from core.exceptions import PortInUseError, ServiceStartError, ToolMissingError
from core.settings import PROJECT_DIR, Settings
from core.store.connection import embedded_pgdata, embedded_url

logger = logging.getLogger("ocds_live.services")

KAFKA_DIR = PROJECT_DIR / "services" / "kafka"
DOCKER_HINT = "or run the services with docker compose (see README)"


@dataclass
class ServiceStatus:
    name: str
    running: bool
    where: str
    pid: int | None = None

    def __str__(self) -> str:
        state = f"running (pid {self.pid})" if self.running and self.pid else "running" if self.running else "stopped"
        return f"{self.name:<10} {state:<22} {self.where}"


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.split(",")[0].rpartition(":")
    return host or "127.0.0.1", int(port)


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        proc = psutil.Process(pid)
        return bool(proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split("\n", 1)[0].strip())
    except (FileNotFoundError, ValueError):
        return None


def _check_port_free(host: str, port: int, service: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            return
        except OSError:
            pass
    holder = ""
    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
                proc = psutil.Process(conn.pid)
                holder = f" by pid {conn.pid} ({' '.join(proc.cmdline()[:3])[:80]})"
                break
    except (psutil.Error, OSError):
        pass
    raise PortInUseError(
        f"{service} needs {host}:{port}, but it is taken{holder}; stop that process or choose "
        f"another port (KAFKA_BOOTSTRAP_SERVERS / OCDS_LIVE_KAFKA_CONTROLLER_PORT)"
    )


class KafkaService:
    """One Kafka 4.1 broker+controller (KRaft) from Maven Central jars."""

    name = "kafka"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.home = settings.data_dir / "kafka"
        self.libs = self.home / "libs"
        self.pid_file = self.home / "kafka.pid"
        self.log_file = self.home / "kafka.log"
        self.host, self.port = _host_port(settings.kafka_bootstrap_servers)

    def fetch_jars(self) -> None:
        """Gather the broker's jars with Maven, once."""
        if any(self.libs.glob("kafka_2.13-*.jar")):
            return
        mvn = shutil.which("mvn")
        if mvn is None:
            raise ToolMissingError(f"Maven (mvn) is needed to fetch Kafka's jars and is not installed; {DOCKER_HINT}")
        logger.info("fetching Kafka's jars with Maven into %s", self.libs)
        cmd = [mvn, "-q", "-B", "-f", str(KAFKA_DIR / "pom.xml"), "dependency:copy-dependencies",
               "-DincludeScope=runtime", f"-DoutputDirectory={self.libs}"]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            output = result.stdout[-2000:] + result.stderr[-2000:]
            raise ServiceStartError(f"mvn could not fetch Kafka's jars:\n{output}")

    def _java(self) -> str:
        java = shutil.which("java")
        if java is None:
            raise ToolMissingError(f"Java 17 is needed to run Kafka and is not installed; {DOCKER_HINT}")
        return java

    def _write_config(self) -> Path:
        config = self.home / "server.properties"
        ctl = self.settings.kafka_controller_port
        base = (KAFKA_DIR / "server.properties").read_text()
        base = base.replace("1@127.0.0.1:9093", f"1@{self.host}:{ctl}")
        extra = (
            f"listeners=PLAINTEXT://{self.host}:{self.port},CONTROLLER://{self.host}:{ctl}\n"
            f"advertised.listeners=PLAINTEXT://{self.host}:{self.port}\n"
            f"log.dirs={self.home / 'data'}\n"
            f"num.partitions={self.settings.partitions}\n"
        )
        config.write_text(base + extra)
        return config

    def pid(self) -> int | None:
        pid = _read_pid(self.pid_file)
        return pid if _alive(pid) else None

    def status(self) -> ServiceStatus:
        pid = self.pid()
        return ServiceStatus(self.name, pid is not None, f"{self.host}:{self.port}", pid)

    def up(self, timeout: float = 90.0) -> ServiceStatus:
        if self.pid() is not None:
            self.wait_ready(timeout)
            return self.status()
        java = self._java()
        self.fetch_jars()
        _check_port_free(self.host, self.port, "kafka")
        _check_port_free(self.host, self.settings.kafka_controller_port, "kafka's controller")
        self.home.mkdir(parents=True, exist_ok=True)
        config = self._write_config()
        classpath = f"{self.libs}/*"
        log4j = f"-Dlog4j2.configurationFile={KAFKA_DIR / 'log4j2.properties'}"
        if not (self.home / "data" / "meta.properties").exists():
            fmt = subprocess.run(
                [java, log4j, "-cp", classpath, "kafka.tools.StorageTool", "format",
                 f"--cluster-id={_kafka_uuid()}",  # one id in 64 starts with "-": not as a separate argument
                 "-c", str(config), "--ignore-formatted"],
                capture_output=True, text=True, check=False,
            )
            if fmt.returncode != 0:
                raise ServiceStartError(f"kafka storage format failed: {fmt.stdout}{fmt.stderr}")
        with self.log_file.open("ab") as log:
            proc = subprocess.Popen(
                [java, "-Xms256m", "-Xmx768m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
                 "-Djava.awt.headless=true", f"-Dkafka.logs.dir={self.home}", log4j,
                 "-cp", classpath, "kafka.Kafka", str(config)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )
        self.pid_file.write_text(str(proc.pid))
        self.wait_ready(timeout, proc)
        return self.status()

    def wait_ready(self, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
        deadline = time.monotonic() + timeout
        quiet = logging.getLogger("kafka")
        level = quiet.level
        quiet.setLevel(logging.CRITICAL)  # connection refused is expected while the broker starts
        try:
            self._wait_ready(deadline, proc)
        finally:
            quiet.setLevel(level)

    def _wait_ready(self, deadline: float, proc: subprocess.Popen[bytes] | None) -> None:
        from kafka.admin import KafkaAdminClient  # local import: kafka-python is slow to import

        last: Exception | None = None
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise ServiceStartError(f"kafka exited with {proc.returncode}; its log:\n{self._log_tail()}")
            try:
                admin = KafkaAdminClient(bootstrap_servers=self.settings.kafka_bootstrap_servers,
                                         request_timeout_ms=3000)
                try:
                    admin.list_topics()
                    return
                finally:
                    admin.close()
            except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"
                last = exc
                time.sleep(0.5)
        raise ServiceStartError(f"kafka did not answer in time ({last}); its log:\n{self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-20:])
        except FileNotFoundError:
            return "(no log)"

    def down(self, timeout: float = 30.0) -> None:
        pid = self.pid()
        if pid is not None:
            _terminate(pid, timeout)
        self.pid_file.unlink(missing_ok=True)


def _kafka_uuid() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def _wait_gone(pid: int, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for ``pid`` to exit; whether it did."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.2)
    return not _alive(pid)


def _terminate(pid: int, timeout: float) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
    if not _wait_gone(pid, timeout):
        logger.warning("pid %d did not stop within %.0fs; killing it", pid, timeout)
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
        while _alive(pid):
            time.sleep(0.1)


class PostgresService:
    """PostgreSQL 16 from the pgserver wheel, unless DATABASE_URL points elsewhere."""

    name = "postgres"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pgdata = embedded_pgdata(settings)

    @property
    def external(self) -> bool:
        return self.settings.database_url is not None

    def pid(self) -> int | None:
        if self.external:
            return None
        pid = _read_pid(self.pgdata / "postmaster.pid")
        return pid if _alive(pid) else None

    def status(self) -> ServiceStatus:
        if self.external:
            return ServiceStatus(self.name, self._reachable(), "DATABASE_URL (not managed here)")
        pid = self.pid()
        return ServiceStatus(self.name, pid is not None, embedded_url(self.settings) or str(self.pgdata), pid)

    def _reachable(self) -> bool:
        import psycopg2

        try:
            psycopg2.connect(self.settings.database_url, connect_timeout=3).close()
            return True
        except psycopg2.Error:
            return False

    def up(self) -> ServiceStatus:
        if self.external:
            if not self._reachable():
                raise ServiceStartError("DATABASE_URL is set but PostgreSQL there does not answer; start it")
            return self.status()
        if self.pid() is None:
            from pgserver import postgres_server

            self.pgdata.mkdir(parents=True, exist_ok=True)
            postgres_server.get_server(self.pgdata, cleanup_mode=None)
        return self.status()

    def down(self, timeout: float = 30.0) -> None:
        if self.external:
            return
        pid = self.pid()
        if pid is not None:
            try:
                os.kill(pid, signal.SIGINT)  # PostgreSQL's "fast" shutdown
            except ProcessLookupError:
                return
            if not _wait_gone(pid, timeout):
                _terminate(pid, 5)


def all_services(settings: Settings) -> tuple[KafkaService, PostgresService]:
    return KafkaService(settings), PostgresService(settings)


def up(settings: Settings) -> list[ServiceStatus]:
    kafka, postgres = all_services(settings)
    return [postgres.up(), kafka.up()]


def down(settings: Settings) -> None:
    kafka, postgres = all_services(settings)
    kafka.down()
    postgres.down()


def status(settings: Settings) -> list[ServiceStatus]:
    return [svc.status() for svc in all_services(settings)]
