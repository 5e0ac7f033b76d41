"""The watchdog's lag while the pipeline runs at full throughput, next to the relay's lag measured in the same run.

    .venv/bin/python bench/watchdog.py [--releases N=20000] [--workers W=1]

Generates N simulated releases, loads them all onto the releases topic of an isolated stack, then starts W
``ocds-live process`` workers (which run at full speed on the backlog, their relay publishing the change log) and
one ``ocds-live watch --service``. Every 250 ms it samples:

- the relay's lag (the baseline: no subscriber of the change topic can be ahead of it): the age of the oldest
  change not yet published, ``now - changes.created_at`` of cursor ``relay_progress.last + 1``;
- the watchdog's lag: the age of the oldest change it has not consumed, ``now - created_at`` of cursor
  ``consumed + 1``, where ``consumed`` is the sum of its stored offsets (the change topic carries the log in cursor
  order; with its partitions read in parallel this is approximate by at most a batch).

A lag is 0 when there is nothing to catch up. Prints p50, p99 and the maximum of each while the workers are busy,
and the watchdog's own part: its lag minus the relay's in the same sample (the commit-time span of changes already
published on the change topic that the watchdog has not evaluated yet; what the watchdog adds to the relay's lag),
with the share of samples above the 5-second target.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import psycopg2

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import Process, base_settings, fresh_stack, generate, percentile  # noqa: E402
from bench.pipeline import load_topic, scalar  # noqa: E402


def lag(cur: object, cursor: int, now: float) -> float:
    """Seconds since the change with ``cursor`` was committed (0 when it does not exist yet)."""
    cur.execute("SELECT extract(epoch FROM created_at) FROM changes WHERE cursor = %s", (cursor,))  # type: ignore[attr-defined]
    row = cur.fetchone()  # type: ignore[attr-defined]
    return max(0.0, now - float(row[0])) if row else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--releases", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ocds-bench-watchdog-") as tmp:
        folder = Path(tmp)
        jsonl = folder / "releases.jsonl"
        count, _ = generate(jsonl, args.releases)
        with fresh_stack(base_settings()) as stack:
            loaded, _ = load_topic(stack, jsonl)
            workers = [Process(stack, "process", log=folder / f"worker-{n}.log") for n in range(args.workers)]
            dog = Process(stack, "watch", "--service", log=folder / "watchdog.log")
            relay_lags: list[float] = []
            dog_lags: list[float] = []
            own_lags: list[float] = []
            conn = psycopg2.connect(stack.database_url)
            conn.autocommit = True
            start = time.time()
            try:
                with conn.cursor() as cur:
                    while True:
                        now = time.time()
                        stored = scalar(cur, "SELECT sum(next_offset) FROM consumer_offsets WHERE consumer_group = %s",
                                        stack.app_id)
                        relayed = scalar(cur, "SELECT last FROM relay_progress WHERE name = 'changes'")
                        consumed = scalar(cur, "SELECT sum(next_offset) FROM consumer_offsets "
                                          "WHERE consumer_group = %s", stack.watchdog_group_id)
                        head = scalar(cur, "SELECT last FROM feed_counter")
                        if stored > 0:
                            relay_lags.append(lag(cur, relayed + 1, now))
                            dog_lags.append(lag(cur, consumed + 1, now))
                            own_lags.append(max(0.0, dog_lags[-1] - relay_lags[-1]))
                        if stored >= loaded and consumed >= head:
                            break
                        if now - start > 1800 or not dog.alive():
                            raise SystemExit("stalled or watchdog died:\n" + dog.output()[-3000:])
                        time.sleep(0.25)
                    busy = time.time() - start
                    alerts = scalar(cur, "SELECT count(*) FROM alert_events")
            finally:
                conn.close()
                dog.stop()
                for w in workers:
                    w.stop()
    print(f"\nwatchdog lag, {count:,} simulated releases, {args.workers} worker(s), {os.cpu_count()} cores, "
          f"{busy:.0f}s until the watchdog caught up; {alerts} alert events")
    print(f"{'':<34} {'p50 s':>7} {'p99 s':>7} {'max s':>7} {'> 5 s':>7}")
    for name, values in (("relay (baseline)", relay_lags), ("watchdog", dog_lags),
                         ("watchdog minus relay (its own)", own_lags)):
        over = sum(v > 5.0 for v in values) / len(values)
        print(f"{name:<34} {percentile(values, 0.5):>7.2f} {percentile(values, 0.99):>7.2f} {max(values):>7.2f} "
              f"{over:>7.1%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
