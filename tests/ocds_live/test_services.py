"""Local services: up is idempotent, status tells, down leaves no process behind."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest

from core.exceptions import PortInUseError
from core.settings import load_settings
from ocds_live import services
from tests.support.stack import free_port

pytestmark = pytest.mark.integration


def _processes_under(folder: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if any(str(folder) in part for part in proc.info["cmdline"] or []):
                found.append(proc)
        except psutil.Error:
            continue
    return found


def test_up_twice_then_down_leaves_no_process(tmp_path: Path) -> None:
    """`services up` twice starts one Kafka and one PostgreSQL; `down` stops both and leaves nothing."""
    kafka_port, controller_port = free_port(), free_port()
    settings = load_settings(data_dir=tmp_path / "local", kafka_controller_port=controller_port,
                             kafka_bootstrap_servers=f"127.0.0.1:{kafka_port}", database_url=None)
    try:
        first = services.up(settings)
        assert all(s.running for s in first)
        pids = {s.name: s.pid for s in first}
        second = services.up(settings)
        assert {s.name: s.pid for s in second} == pids
        assert len(_processes_under(tmp_path)) >= 2
    finally:
        services.down(settings)
    assert not any(s.running for s in services.status(settings))
    assert _processes_under(tmp_path) == []


def test_up_names_the_port_that_is_taken(tmp_path: Path) -> None:
    """When Kafka's port is taken, `up` says which port and by what, and starts nothing."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        settings = load_settings(data_dir=tmp_path / "local", kafka_controller_port=free_port(),
                                 kafka_bootstrap_servers=f"127.0.0.1:{port}")
        kafka = services.KafkaService(settings)
        with pytest.raises(PortInUseError, match=f"127.0.0.1:{port}"):
            kafka.up()
    assert kafka.pid() is None
