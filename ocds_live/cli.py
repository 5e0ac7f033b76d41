"""``ocds-live``: one console script, a subcommand per job. Each is a thin shell over a library call."""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from core.exceptions import OcdsLiveError
from core.settings import Settings, load_settings

Handler = Callable[[Settings, argparse.Namespace], int]

# The settings people reach for, as options: (option, Settings field, help). An option left out keeps
# the environment's value (DATABASE_URL, KAFKA_BOOTSTRAP_SERVERS, OCDS_LIVE_*), else the default.
SETTING_OPTIONS: dict[str, tuple[str, str, str]] = {
    "database_url": ("--database-url", "database_url",
                     "PostgreSQL DSN (default: $DATABASE_URL, else the embedded PostgreSQL under the data dir)"),
    "bootstrap_servers": ("--bootstrap-servers", "kafka_bootstrap_servers",
                          "Kafka brokers, host:port[,host:port] (default: $KAFKA_BOOTSTRAP_SERVERS or 127.0.0.1:9092)"),
    "publishers_file": ("--publishers-file", "publishers_file",
                        "the publishers file (default: $OCDS_LIVE_PUBLISHERS_FILE or config/publishers.toml)"),
    "schema_dir": ("--schema-dir", "schema_dir",
                   "folder with the OCDS 1.1.5 schema (default: $OCDS_LIVE_SCHEMA_DIR, else downloaded once)"),
    "data_dir": ("--data-dir", "data_dir",
                 "local services' data and logs (default: $OCDS_LIVE_DATA_DIR or ./.local)"),
}


def add_setting_options(parser: argparse.ArgumentParser, *names: str, **helps: str) -> None:
    """Add the options of SETTING_OPTIONS named ``names``; ``helps`` replaces a name's help text."""
    for name in names:
        flag, _, text = SETTING_OPTIONS[name]
        parser.add_argument(flag, dest=f"setting_{name}", default=None, metavar=name.split("_")[-1].upper(),
                            help=helps.get(name, text))


def settings_from(args: argparse.Namespace) -> Settings:
    """The one Settings object: the environment, overridden by the options given on the command line."""
    overrides = {field: getattr(args, f"setting_{name}") for name, (_, field, _) in SETTING_OPTIONS.items()
                 if getattr(args, f"setting_{name}", None) is not None}
    return load_settings(**overrides)


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
    from core.profiles import Profiles
    from core.store.connection import connect
    from core.store.projects import apply_file

    profiles = Profiles.from_settings(settings)
    conn = connect(settings)
    try:
        done = apply_file(conn, settings, load_oc4ids_schema(settings.oc4ids_dir, settings.cache_dir), profiles)
    finally:
        conn.close()
    for pid, outcome in done:
        print(f"{pid}: {outcome}")
    print(f"{len(done)} projects in {settings.projects_file}")
    return 0


def _process(settings: Settings, args: argparse.Namespace) -> int:
    from core.kafka import ensure_topics
    from core.kafka_state import wait_for_coordinator
    from streams.app import run_worker

    ensure_topics(settings)
    wait_for_coordinator(settings, settings.app_id)
    print(f"ocds-live processor: consuming {settings.releases_topic} from {settings.kafka_bootstrap_servers} "
          f"as group {settings.app_id}", flush=True)
    sys.argv = [sys.argv[0], "worker"]
    run_worker(settings, loglevel=args.loglevel)
    return 0


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    from feed_server.app import serve

    where = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    serve(settings.model_copy(update=where) if where else settings, workers=args.workers, websocket=args.websocket)
    return 0


def _load(settings: Settings, args: argparse.Namespace) -> int:
    from producers.send import load_paths

    return load_paths(settings, args.paths, publisher=args.publisher, rate=args.rate)


def _simulate(settings: Settings, args: argparse.Namespace) -> int:
    from producers.simulator import PROJECT_SHARE, simulate, write_jsonl

    events = simulate(seed=args.seed, processes=args.processes, defect_rate=args.defect_rate,
                      project_share=PROJECT_SHARE if args.project_share is None else args.project_share)
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

    bar = None

    def progress(done: int, total: int) -> None:  # a bar with the ETA, on a terminal
        nonlocal bar
        if bar is None:
            from tqdm import tqdm

            bar = tqdm(total=total, unit=" messages", file=sys.stderr, disable=not sys.stderr.isatty())
        bar.total = total  # with --switch it grows as the live store goes on
        bar.update(done - bar.n)

    try:
        if args.switch:
            from consumers.switchover import rebuild_and_switch

            summary: Any = rebuild_and_switch(settings, group=args.group, progress=progress)
        else:
            summary = replay(settings, group=args.group, force=args.force, progress=progress, workers=args.workers)
    finally:
        if bar is not None:
            bar.close()
    print(summary.report())
    return 0


def _watch(settings: Settings, args: argparse.Namespace) -> int:
    if args.count:
        from consumers.redflags_batch import main

        return main(args.count, settings)
    if args.service:
        from consumers.watchdog_service import run_service

        print(f"ocds-live watch: consumer group {settings.watchdog_group_id} on {settings.changes_topic}; alerts in "
              f"the store ({settings.base_url}/api/alerts), webhooks delivered", file=sys.stderr, flush=True)
        run_service(settings)
        return 0
    from consumers.watch import run
    from core.redflags.config import load_config

    url = args.url or f"{settings.base_url.replace('http', 'ws', 1)}/ws/changes"
    after: int | str = int(args.after) if args.after.isdigit() else args.after
    filters = {k: v for k, v in (("buyer", args.buyer), ("method", args.method)) if v}
    config = load_config(settings.redflags_file)
    print(f"ocds-live watch: following {url} (after={after}); one line per alert", file=sys.stderr, flush=True)
    run(url, config, after, filters, args.limit, text=args.text)
    return 0


def _demo(settings: Settings, args: argparse.Namespace) -> int:
    from ocds_live.demo import run_demo

    return run_demo(settings, rate=args.rate, processes=args.processes)


def build_parser() -> argparse.ArgumentParser:
    from ocds_live.cli_operators import add_operator_commands

    parser = argparse.ArgumentParser(prog="ocds-live", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("services", help="local Kafka + PostgreSQL (embedded defaults)")
    p.add_argument("action", choices=["up", "down", "status"], help="start, stop, or show the local services")
    add_setting_options(p, "data_dir", "bootstrap_servers")
    p.set_defaults(handler=_services)

    p = sub.add_parser("db", help="the store's schema")
    p.add_argument("action", choices=["migrate"], help="apply the schema migrations not applied yet")
    add_setting_options(p, "database_url")
    p.set_defaults(handler=_db)

    p = sub.add_parser("projects", help="supply the project-level fields of OCDS_LIVE_PROJECTS_FILE (OC4IDS)")
    p.add_argument("action", choices=["apply"],
                   help="apply: check each project of the file against OC4IDS and store it (idempotent)")
    p.set_defaults(handler=_projects)

    p = sub.add_parser("process", help="run a stream-processing worker (start several for throughput)")
    p.add_argument("--loglevel", default="warning", choices=["debug", "info", "warning", "error"],
                   help="the worker's log level (default: warning)")
    add_setting_options(p, "database_url", "bootstrap_servers", "publishers_file", "schema_dir")
    p.set_defaults(handler=_process)

    p = sub.add_parser("serve", help="the feed server: websocket, API, pages")
    p.add_argument("--host", help="address to listen on (default: OCDS_LIVE_HOST, else 127.0.0.1)")
    p.add_argument("--port", type=int, help="port to listen on (default: OCDS_LIVE_PORT, else 8000)")
    p.add_argument("--workers", type=int, default=1,
                   help="server processes sharing the port (SO_REUSEPORT), each with its own change hub: "
                        "one per core for the most subscribers (default 1)")
    p.add_argument("--websocket", choices=("fanout", "asgi"), default="fanout",
                   help="fanout (default): /ws/changes on the websockets library, each message framed once for "
                        "all its subscribers; asgi: through the ASGI app, one send per subscriber (the slower "
                        "path, kept as bench/feeds.py's baseline)")
    p.set_defaults(handler=_serve)

    p = sub.add_parser("load", help="bulk-load releases into Kafka ('-' for stdin)")
    p.add_argument("paths", nargs="+", help="release packages, record packages, JSON Lines, .gz files, or '-'")
    p.add_argument("--publisher", default="bulk", help="a publisher from the publishers file (default: bulk)")
    p.add_argument("--rate", type=float, default=None, help="releases per second, at most (default: no limit)")
    add_setting_options(p, "bootstrap_servers")
    p.set_defaults(handler=_load)

    p = sub.add_parser("simulate", help="a realistic stream of Mexican federal procurement")
    p.add_argument("--rate", type=float, default=None, help="releases per second, at most (default: no limit)")
    p.add_argument("--processes", type=int, default=1000, help="contracting processes to simulate (default: 1000)")
    p.add_argument("--seed", type=int, default=1, help="the random seed: the same seed gives the same stream")
    p.add_argument("--defect-rate", type=float, default=0.0, help="share of releases broken on purpose (0-1)")
    p.add_argument("--project-share", type=float, default=None,
                   help="share of processes that build one of 20 infrastructure projects (0-1, default: 0.3)")
    p.add_argument("--out", help="write JSON Lines for `load` instead of sending")
    add_setting_options(p, "bootstrap_servers")
    p.set_defaults(handler=_simulate)

    p = sub.add_parser("replay", help="rebuild the store from the release topic")
    add_setting_options(p, "database_url", "bootstrap_servers", "publishers_file", "schema_dir",
                        database_url="the PostgreSQL store to rebuild; it must hold no records (default: "
                        "$DATABASE_URL, else the embedded one)")
    p.add_argument("--group", help="a new consumer group (default: <app_id>-replay-<random>)")
    p.add_argument("--force", action="store_true", help="replay into a store that already holds records")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes (default: one per partition of the topic, up to the machine's cores)")
    p.add_argument("--switch", action="store_true", help="rebuild the live store beside it (a schema of its own) "
                   "while the platform keeps serving, then switch over in one transaction; subscribers' cursors of "
                   "the old change log get an explicit error (docs/operating.md, 'Rebuilding without going dark')")
    p.set_defaults(handler=_replay)

    p = sub.add_parser("watch", help="the watchdog: red-flag alerts (a websocket bot; --service: stored and delivered)")
    p.add_argument("--service", action="store_true", help="run as the watchdog service: a consumer group on the change "
                   "topic, alerts stored and delivered (config/redflags.toml; the options below do not apply)")
    p.add_argument("--count", nargs="+", metavar="PATH", help="count the red flags over release files, in batch")
    p.add_argument("--url", help="the feed's websocket URL (default: this feed server's /ws/changes)")
    p.add_argument("--after", default="now", help="a cursor, 'start' or 'now' (default)")
    p.add_argument("--buyer", help="watch one buyer id only")
    p.add_argument("--method", help="watch one procurement method only")
    p.add_argument("--limit", type=int, default=None, help="stop after this many changes (default: never)")
    p.add_argument("--text", action="store_true", help="one readable line per alert instead of JSON")
    p.set_defaults(handler=_watch)

    p = sub.add_parser("demo", help="everything together on the embedded defaults")
    p.add_argument("--rate", type=float, default=20.0, help="simulated releases per second (default: 20)")
    p.add_argument("--processes", type=int, default=5000, help="contracting processes to simulate (default: 5000)")
    add_setting_options(p, "data_dir")
    p.set_defaults(handler=_demo)

    add_operator_commands(sub, add_setting_options)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")  # pgserver's platformdirs, harmless
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from core.kafka_state import route_library_logs

    route_library_logs()  # retried lookups and slow-step diagnostics of the Kafka clients are not problems
    try:
        settings = settings_from(args)
        result: int = args.handler(settings, args)
        return result
    except OcdsLiveError as exc:
        print(f"ocds-live {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
