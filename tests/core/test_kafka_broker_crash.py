"""A long-lived ReleaseProducer across a broker crash (SIGKILL) and restart, against a Kafka of its own."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from pathlib import Path

import pytest

from core.exceptions import OcdsLiveError
from core.kafka import OutgoingRelease, ReleaseProducer, ensure_topics
from tests.support.kafka import read_topic
from tests.support.stack import base_settings, free_port

pytestmark = pytest.mark.integration


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class Sender(threading.Thread):
    """Sends batches without pause, as the ingest endpoint or ``simulate`` would, sending a batch again after
    a failure; remembers which releases were acknowledged, and when."""

    def __init__(self, producer: ReleaseProducer) -> None:
        super().__init__(daemon=True)
        self.producer = producer
        self.acknowledged: list[tuple[float, list[str]]] = []
        self.failures = 0
        self.stop = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            batch = [OutgoingRelease(f"ocds-crash-{i}", str(i), b'{"ocid": "ocds-crash-%d"}' % i, "t", "test")
                     for i in range(n, n + 20)]
            n += 20
            while not self.stop.is_set():
                try:
                    self.producer.send_all(batch, timeout=8)
                except OcdsLiveError:
                    self.failures += 1
                    time.sleep(0.5)
                    continue
                self.acknowledged.append((time.monotonic(), [r.event_id for r in batch]))
                break

    def since(self, moment: float) -> int:
        return sum(len(ids) for at, ids in self.acknowledged if at > moment)


def test_release_producer_publishes_again_after_a_broker_crash_with_sends_in_flight(tmp_path: Path) -> None:
    """Batches in flight when the broker is SIGKILLed expire; once the broker is back, the same
    ReleaseProducer is acknowledged again (kafka-python's own producer stays stuck: the ReleaseProducer
    replaces it), and every acknowledged release is on the topic."""
    from ocds_live.services import KafkaService

    settings = base_settings()
    own = settings.model_copy(update={
        "kafka_bootstrap_servers": f"127.0.0.1:{free_port()}", "kafka_controller_port": free_port(),
        "data_dir": tmp_path / "local", "releases_topic": "crash.releases",
    })
    libs = settings.data_dir / "kafka" / "libs"
    if any(libs.glob("kafka_2.13-*.jar")):  # the jars the shared broker runs from, instead of fetching them again
        (own.data_dir / "kafka").mkdir(parents=True)
        (own.data_dir / "kafka" / "libs").symlink_to(libs, target_is_directory=True)
    kafka = KafkaService(own)
    kafka.up()
    producer: ReleaseProducer | None = None
    sender: Sender | None = None
    try:
        ensure_topics(own)
        producer = ReleaseProducer(own, client_id="test-crash", delivery_timeout_ms=6_000,
                                   request_timeout_ms=5_000, max_block_ms=5_000)
        sender = Sender(producer)
        sender.start()
        deadline = time.monotonic() + 30
        while sender.since(0) < 200:
            assert time.monotonic() < deadline, "nothing was acknowledged before the crash"
            time.sleep(0.1)
        pid = kafka.pid()
        assert pid is not None
        os.killpg(pid, signal.SIGKILL)  # a crash, with the sender's batches in flight
        deadline = time.monotonic() + 60
        while kafka.pid() is not None or not all(_bindable(p) for p in (kafka.port, own.kafka_controller_port)):
            assert time.monotonic() < deadline, "the killed broker still holds its ports after 60 s"
            time.sleep(0.2)
        kafka.up()
        back = time.monotonic()
        deadline = back + 60
        while sender.since(back) < 200:
            assert time.monotonic() < deadline, (
                f"no release acknowledged within 60 s of the broker's restart ({sender.failures} failed sends)")
            time.sleep(0.2)
        sender.stop.set()
        sender.join(30)
        assert sender.failures > 0  # the crash was felt
        assert producer.replaced >= 1
        on_topic = {m.headers["event-id"] for m in read_topic(own, own.releases_topic)}
        acknowledged = {i for _, ids in sender.acknowledged for i in ids}
        assert acknowledged - on_topic == set()
    finally:
        if sender is not None:
            sender.stop.set()
        if producer is not None:
            producer.close(timeout=2)
        kafka.down()
