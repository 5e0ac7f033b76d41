"""``ocds-live``: one console script, a subcommand per job. Each is a thin shell over a library call."""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from collections.abc import Callable, Sequence

from core.exceptions import OcdsLiveError
from core.settings import Settings, load_settings

Handler = Callable[[Settings, argparse.Namespace], int]


def _services(settings: Settings, args: argparse.Namespace) -> int:
    from ocds_live import services

    if args.action == "up":
        for status in services.up(settings):
            print(status)
    elif args.action == "down":
        services.down(settings)
        for status in services.status(settings):
            print(status)
    else:
        statuses = services.status(settings)
        for status in statuses:
            print(status)
        return 0 if all(s.running for s in statuses) else 3
    return 0


def _db(settings: Settings, args: argparse.Namespace) -> int:
    from core.store.connection import connect
    from core.store.migrate import migrate

    conn = connect(settings)
    try:
        applied = migrate(conn)
    finally:
        conn.close()
    print(f"applied {', '.join(applied)}" if applied else "the database is up to date")
    return 0


def _projects(settings: Settings, args: argparse.Namespace) -> int:
    from core.oc4ids import load_oc4ids_schema
    from core.store.connection import connect
    from core.store.projects import apply_file

    conn = connect(settings)
    try:
        done = apply_file(conn, settings, load_oc4ids_schema(settings.oc4ids_dir, settings.cache_dir))
    finally:
        conn.close()
    for pid, outcome in done:
        print(f"{pid}: {outcome}")
    print(f"{len(done)} projects in {settings.projects_file}")
    return 0


def _process(settings: Settings, args: argparse.Namespace) -> int:
    from core.kafka import ensure_topics
    from streams.app import run_worker

    ensure_topics(settings)
    print(f"ocds-live processor: consuming {settings.releases_topic} from {settings.kafka_bootstrap_servers} "
          f"as group {settings.app_id}", flush=True)
    sys.argv = [sys.argv[0], "worker"]
    run_worker(settings, loglevel=args.loglevel)
    return 0


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    from feed_server.app import serve

    serve(settings)
    return 0


def _load(settings: Settings, args: argparse.Namespace) -> int:
    from producers.send import load_paths

    return load_paths(settings, args.paths, publisher=args.publisher, rate=args.rate)


def _simulate(settings: Settings, args: argparse.Namespace) -> int:
    from producers.simulator import simulate, write_jsonl

    events = simulate(seed=args.seed, processes=args.processes, defect_rate=args.defect_rate)
    if args.out:
        with open(args.out, "wb") as out:
            count = write_jsonl(events, out)
        print(f"wrote {count} releases to {args.out}")
        return 0
    from core.kafka import ReleaseProducer, ensure_topics
    from producers.loader import Item
    from producers.send import send_items

    ensure_topics(settings)
    import orjson

    items = (
        Item("simulator", e.release.get("id", "?"), orjson.dumps(e.release), e.release.get("ocid"),
             e.release.get("id"))
        for e in events
    )
    producer = ReleaseProducer(settings, client_id="ocds-live-simulate")
    try:
        summary = send_items(items, producer, publisher="simulator", source="simulate", rate=args.rate)
    finally:
        producer.close()
    print(summary.report())
    return 0


def _replay(settings: Settings, args: argparse.Namespace) -> int:
    from consumers.replay import replay

    print(replay(settings, database_url=args.database_url, group=args.group, force=args.force).report())
    return 0


def _watch(settings: Settings, args: argparse.Namespace) -> int:
    from consumers.watch import Rules, run

    url = args.url or f"{settings.base_url.replace('http', 'ws', 1)}/ws/changes"
    after: int | str = int(args.after) if args.after.isdigit() else args.after
    filters = {k: v for k, v in (("buyer", args.buyer), ("method", args.method)) if v}
    rules = Rules(min_open_days=args.min_open_days, min_invitation_days=args.min_invitation_days,
                  max_raise=args.max_raise, direct_limit=args.direct_limit)
    print(f"ocds-live watch: following {url} (after={after}); one line per alert", file=sys.stderr, flush=True)
    run(url, rules, after, filters, args.limit, text=args.text)
    return 0


def _demo(settings: Settings, args: argparse.Namespace) -> int:
    from ocds_live.demo import run_demo

    return run_demo(settings, rate=args.rate, processes=args.processes)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ocds-live", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("services", help="local Kafka + PostgreSQL (embedded defaults)")
    p.add_argument("action", choices=["up", "down", "status"])
    p.set_defaults(handler=_services)

    p = sub.add_parser("db", help="the store's schema")
    p.add_argument("action", choices=["migrate"])
    p.set_defaults(handler=_db)

    p = sub.add_parser("projects", help="supply the project-level fields of OCDS_LIVE_PROJECTS_FILE (OC4IDS)")
    p.add_argument("action", choices=["apply"])
    p.set_defaults(handler=_projects)

    p = sub.add_parser("process", help="run a stream-processing worker (start several for throughput)")
    p.add_argument("--loglevel", default="warning")
    p.set_defaults(handler=_process)

    p = sub.add_parser("serve", help="the feed server: websocket, API, pages")
    p.set_defaults(handler=_serve)

    p = sub.add_parser("load", help="bulk-load releases into Kafka ('-' for stdin)")
    p.add_argument("paths", nargs="+")
    p.add_argument("--publisher", default="bulk", help="a publisher from the publishers file")
    p.add_argument("--rate", type=float, default=None, help="releases per second, at most")
    p.set_defaults(handler=_load)

    p = sub.add_parser("simulate", help="a realistic stream of Mexican federal procurement")
    p.add_argument("--rate", type=float, default=None, help="releases per second, at most")
    p.add_argument("--processes", type=int, default=1000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--defect-rate", type=float, default=0.0, help="share of releases broken on purpose")
    p.add_argument("--out", help="write JSON Lines for `load` instead of sending")
    p.set_defaults(handler=_simulate)

    p = sub.add_parser("replay", help="rebuild the store from the release topic")
    p.add_argument("--database-url", help="the store to rebuild (default: DATABASE_URL); it must hold no records")
    p.add_argument("--group", help="a new consumer group (default: <app_id>-replay-<random>)")
    p.add_argument("--force", action="store_true", help="replay into a store that already holds records")
    p.set_defaults(handler=_replay)

    p = sub.add_parser("watch", help="the watchdog bot: red-flag alerts from the change feed, as JSON lines")
    p.add_argument("--url", help="the feed's websocket URL (default: this feed server's /ws/changes)")
    p.add_argument("--after", default="now", help="a cursor, 'start' or 'now' (default)")
    p.add_argument("--buyer", help="watch one buyer id only")
    p.add_argument("--method", help="watch one procurement method only")
    p.add_argument("--min-open-days", type=float, default=10.0, help="shorter open tender periods are flagged")
    p.add_argument("--min-invitation-days", type=float, default=5.0, help="shorter invitation periods are flagged")
    p.add_argument("--max-raise", type=float, default=0.25, help="contracts above award x (1 + this) are flagged")
    p.add_argument("--direct-limit", type=float, default=600_000.0,
                   help="the direct-award limit (MXN) that split purchases stay just below")
    p.add_argument("--limit", type=int, default=None, help="stop after this many changes (default: never)")
    p.add_argument("--text", action="store_true", help="one readable line per alert instead of JSON")
    p.set_defaults(handler=_watch)

    p = sub.add_parser("demo", help="everything together on the embedded defaults")
    p.add_argument("--rate", type=float, default=20.0)
    p.add_argument("--processes", type=int, default=5000)
    p.set_defaults(handler=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")  # pgserver's platformdirs, harmless
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings()
        result: int = args.handler(settings, args)
        return result
    except OcdsLiveError as exc:
        print(f"ocds-live {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
