"""``ocds-live demo``: services, migrations, a processor, the feed server, the watchdog and a simulated stream.

Ctrl-C stops everything the demo started (services it found running are left running).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request

from core.settings import Settings


def _wait_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 (our own localhost URL)
                return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f}s")


def run_demo(settings: Settings, *, rate: float, processes: int) -> int:
    from core.kafka import ReleaseProducer, ensure_topics
    from core.store.connection import connect
    from core.store.migrate import migrate
    from ocds_live import services

    def interrupted(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM too stops everything the demo started

    signal.signal(signal.SIGTERM, interrupted)
    before = {s.name: s.running for s in services.status(settings)}
    for status in services.up(settings):
        print(status, flush=True)
    conn = connect(settings)
    try:
        migrate(conn)
    finally:
        conn.close()
    ensure_topics(settings)

    cli = [sys.executable, "-m", "ocds_live.cli"]
    children = [
        subprocess.Popen([*cli, "process"], start_new_session=True),
        subprocess.Popen([*cli, "serve"], start_new_session=True),
    ]
    try:
        _wait_http(f"{settings.base_url}/healthz", 60)
        children.append(subprocess.Popen([*cli, "watch", "--text"], start_new_session=True))  # alerts, as they come
        # the watchdog service stores and delivers the same alerts: the dashboard, /flags and /api/alerts show them
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        with (settings.data_dir / "watchdog-service.log").open("ab") as log:
            children.append(subprocess.Popen([*cli, "watch", "--service"], stdout=log, stderr=subprocess.STDOUT,
                                             start_new_session=True))
        base = settings.base_url
        print(f"\nocds-live demo is running:\n"
              f"  dashboard   {base}/\n"
              f"  changes     {base.replace('http', 'ws', 1)}/ws/changes\n"
              f"  API         {base}/api/records/<ocid>   {base}/docs\n"
              f"  watchdog    red-flag alerts print below as ALERT lines (ocds-live watch)\n"
              f"  alerts      {base}/flags   {base}/api/alerts   (stored by `ocds-live watch --service`, "
              f"log: {settings.data_dir / 'watchdog-service.log'})\n"
              f"sending simulated Mexican federal releases at {rate:g}/s; Ctrl-C stops everything\n", flush=True)
        import orjson

        from producers.loader import Item
        from producers.send import send_items
        from producers.simulator import simulate

        items = (
            Item("simulator", e.release["id"], orjson.dumps(e.release), e.release["ocid"], e.release["id"])
            for e in simulate(seed=int(time.time()) % 1000, processes=processes)
        )
        producer = ReleaseProducer(settings, client_id="ocds-live-demo")
        try:
            summary = send_items(items, producer, publisher="simulator", source="demo", rate=rate,
                                 progress=False)
        finally:
            producer.close()
        print(summary.report(), flush=True)
        print("the simulation is over; the feed server keeps serving until Ctrl-C", flush=True)
        while all(c.poll() is None for c in children):
            time.sleep(1)
        return 1
    except KeyboardInterrupt:
        print("\nstopping the demo...", flush=True)
        return 0
    finally:
        for child in children:
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
        kafka, postgres = services.all_services(settings)
        if not before.get("kafka"):
            kafka.down()
        if not before.get("postgres"):
            postgres.down()
