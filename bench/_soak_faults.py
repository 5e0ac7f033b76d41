"""The soak's faults, its steady producer, and the watch that restarts what died and times recoveries.

Faults: SIGKILL of a stream worker or a feed server (started again 0.5-5 s later), one crash and restart
of the Kafka broker, one immediate shutdown and restart of PostgreSQL, at random moments of the run.

Recovery time of a fault: from the fault until (a) the store has processed every message the producer had
got acknowledged when the faulty part was back (restarted), and (b) for a feed server, it answers again and every
subscriber that was on it has caught up again on some server.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson
from kafka.errors import KafkaError

from bench._soak_stack import Child, Stack, healthy
from bench._soak_subscribers import Subscribers
from core.exceptions import OcdsLiveError
from core.kafka import OutgoingRelease, ReleaseProducer
from producers.simulator import simulate


@dataclass
class Fault:
    kind: str  # worker, feed server, kafka, postgres
    target: str
    at: float  # seconds since the start of the stream
    started: float = 0.0  # monotonic
    acked: dict[int, int] = field(default_factory=dict)  # the producer's acknowledged ends at the fault
    affected: list[str] = field(default_factory=list)  # subscribers on a killed feed server
    recovered: float | None = None  # seconds from the fault


def schedule(duration: float, kills: int, rng: random.Random) -> list[Fault]:
    """``kills`` SIGKILLs (workers and feed servers, at least one of each), one broker and one database
    restart, at random moments between 8% and 85% of the run, at least a few seconds apart."""
    kinds = ["worker", "feed server"] + [rng.choice(["worker", "feed server"]) for _ in range(max(0, kills - 2))]
    faults = [Fault(kind, "", 0.0) for kind in kinds[:kills]]
    faults += [Fault("kafka", "broker", 0.0), Fault("postgres", "database", 0.0)]
    rng.shuffle(faults)
    window = (0.08 * duration, 0.85 * duration)
    slots = sorted(rng.uniform(*window) for _ in faults)
    gap = min(8.0, (window[1] - window[0]) / (2 * len(faults)))
    for n, fault in enumerate(faults):
        fault.at = max(slots[n], faults[n - 1].at + gap if n else 0.0)
    return faults


@dataclass
class Produced:
    published: int = 0  # releases acknowledged by Kafka (each once, however often it was resent)
    defective: Counter[str] = field(default_factory=Counter)
    resent_batches: int = 0
    acked: dict[int, int] = field(default_factory=dict)  # partition -> acknowledged end offset
    done: bool = False


def produce(stack: Stack, rate: float, duration: float, seed: int, processes: int, defect_rate: float,
            out: Produced, t0: float) -> None:
    """The simulator's stream at ``rate`` releases/s for ``duration`` seconds, sent in 0.2 s batches; a batch
    Kafka did not acknowledge (the broker is down) is sent again (it may then be on the topic twice: the
    replay reads the same topic, and a re-delivered release changes nothing)."""
    events = simulate(seed=seed, processes=processes, defect_rate=defect_rate)
    producer = ReleaseProducer(stack.settings, client_id="soak")
    tick, owed = 0.2, 0.0
    next_at = t0
    try:
        while time.monotonic() - t0 < duration:
            owed += rate * tick
            batch = []
            while owed >= 1:
                event = next(events)
                release = event.release
                batch.append(OutgoingRelease(str(release.get("ocid", "")), str(release.get("id", "")),
                                             orjson.dumps(release), "simulator", "soak"))
                if event.defect:
                    out.defective[event.defect] += 1
                owed -= 1
            while batch:
                try:
                    acks = producer.send_all(batch, timeout=20)
                except (OcdsLiveError, KafkaError):  # the same producer reconnects once the broker is back
                    out.resent_batches += 1
                    time.sleep(1)
                    continue
                for meta in acks:
                    out.acked[int(meta.partition)] = max(out.acked.get(int(meta.partition), 0), int(meta.offset) + 1)
                out.published += len(batch)
                batch = []
            next_at += tick
            time.sleep(max(0.0, next_at - time.monotonic()))
    finally:
        producer.close(timeout=30)
        out.done = True


class Watch:
    """Restarts children that exit by themselves (noted), and times the recovery of each fault."""

    def __init__(self, stack: Stack, children: list[Child], subs: Subscribers,
                 processed: Callable[[], dict[int, int] | None]) -> None:
        self.stack, self.children, self.subs, self.processed = stack, children, subs, processed
        self.pending: list[Fault] = []
        self.unplanned: list[str] = []
        self.stopped = threading.Event()
        self.lock = threading.Lock()

    def run(self) -> None:
        while not self.stopped.wait(0.5):
            for child in self.children:
                with self.lock:
                    if child.reap():
                        self.unplanned.append(f"{child.name} exited with {child.unplanned_exits[-1]}")
                        child.start()
            self._recoveries()

    def _recoveries(self) -> None:
        if not self.pending:
            return
        done = self.processed()
        if done is None:  # the store does not answer (PostgreSQL restarts)
            return
        for fault in list(self.pending):
            if any(done.get(p, 0) < end for p, end in fault.acked.items()):
                continue
            if fault.kind == "feed server":
                child = next(c for c in self.children if c.name == fault.target)
                subs = {s.spec.name: s for s in self.subs.subs}
                if not healthy(child, 0.5) or any(subs[n].last_ok < fault.started for n in fault.affected):
                    continue
            fault.recovered = time.monotonic() - fault.started
            self.pending.remove(fault)

    def inject(self, fault: Fault, acked: dict[int, int], rng: random.Random) -> None:
        """Cause ``fault`` and repair it; its recovery is then timed against what the producer had got
        acknowledged (``acked``, live) when the faulty part was back."""
        fault.started = time.monotonic()
        if fault.kind in ("worker", "feed server"):
            prefix = "worker" if fault.kind == "worker" else "feed"
            child = rng.choice([c for c in self.children if c.name.startswith(prefix)])
            fault.target = child.name
            if fault.kind == "feed server":
                fault.affected = [s.spec.name for s in self.subs.subs if s.server == child.url and not s.done]
            with self.lock:
                child.kill()
            time.sleep(rng.uniform(0.5, 5.0))
            with self.lock:
                child.start()
        elif fault.kind == "kafka":
            self.stack.restart_kafka()
        else:
            self.stack.restart_postgres()
        fault.acked = dict(acked)
        self.pending.append(fault)
