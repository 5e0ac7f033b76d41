"""Operators' subcommands of ``ocds-live``: ``status``, ``publishers …`` and ``rejected retry``.

Thin shells over core.status, core.publishers_file and consumers.retry. A token is read from standard
input (never from the command line, where other users see it in the process list) and a token made here
is printed once, on standard output, and never logged.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from core.exceptions import ConfigurationError
from core.settings import Settings


def _read_token(prompt: str) -> str:
    token = getpass.getpass(prompt) if sys.stdin.isatty() else sys.stdin.readline().strip()
    if not token:
        raise ConfigurationError("no token given on standard input")
    return token


def _quiet_kafka() -> None:
    """kafka-python logs each failed connection attempt; the command reports the failure once, itself."""
    logging.getLogger("kafka").setLevel(logging.CRITICAL)


def _status(settings: Settings, args: argparse.Namespace) -> int:
    from core.status import gather, render

    _quiet_kafka()
    while True:
        status = gather(settings, window=args.window)
        if args.json:
            print(orjson.dumps(status.as_dict(), option=orjson.OPT_INDENT_2).decode(), flush=True)
        else:
            if args.watch and sys.stdout.isatty():
                print("\033[H\033[2J", end="")
            print(render(status), flush=True)
        if not args.watch:
            return 1 if status.problems else 0
        time.sleep(args.watch)


def _publishers(settings: Settings, args: argparse.Namespace) -> int:
    from core import publishers_file as pf
    from core.publishers import hash_token

    path: Path = settings.publishers_file
    if args.action == "list":
        print("name\tprefixes\tpolicy\trate\ttoken\tdescription")
        for entry in pf.list_entries(path):
            print(entry.line())
    elif args.action == "hash-token":
        print(hash_token(_read_token("token to hash: ")))
    elif args.action == "add":
        token = _read_token("the publisher's token: ") if args.token_stdin else None
        made = pf.add_publisher(path, args.name, args.prefix, policy=args.policy, rate_limit=args.rate_limit,
                                description=args.description, token=token)
        _announce(args.name, path, None if token else made)
    else:
        token = _read_token("the new token: ") if args.token_stdin else None
        made = pf.rotate_token(path, args.name, token)
        _announce(args.name, path, None if token else made)
    return 0


def _announce(name: str, path: Path, token: str | None) -> None:
    print(f"{path}: publisher {name!r} saved (token kept as its SHA-256 only); feed servers read it again within "
          "a second; restart `ocds-live process` to apply a new publisher or policy to the stream", file=sys.stderr)
    if token:
        print("its bearer token, shown once (store it now; it cannot be read back):", file=sys.stderr)
        print(token, flush=True)


def _rejected(settings: Settings, args: argparse.Namespace) -> int:
    from consumers.retry import parse_since, retry

    _quiet_kafka()
    since = parse_since(args.since) if args.since else None
    report = retry(settings, publisher=args.publisher, since=since, rule=args.rule, timeout=args.timeout)
    print(report.render(limit=args.show))
    return 0 if not report.counts()["pending"] else 4


def add_operator_commands(sub: Any, add_setting_options: Callable[..., None]) -> None:
    """Add ``status``, ``publishers`` and ``rejected`` to the subcommands ``sub`` (``add_setting_options``:
    the CLI's helper adding the options that override settings)."""
    p = sub.add_parser("status", help="topics, consumer lag, store counts, the change log's head, freshness")
    p.add_argument("--watch", type=float, nargs="?", const=5.0, default=None, metavar="SECONDS",
                   help="refresh every SECONDS (default 5) until Ctrl-C")
    p.add_argument("--window", type=float, default=300.0, metavar="SECONDS",
                   help="freshness is measured over releases stored in this many seconds (default 300)")
    p.add_argument("--json", action="store_true", help="print JSON (the same document as GET /api/status)")
    add_setting_options(p, "database_url", "bootstrap_servers")
    p.set_defaults(handler=_status)

    p = sub.add_parser("publishers", help="list, add, or change the publishers of the publishers file")
    actions = p.add_subparsers(dest="action", required=True)
    a = actions.add_parser("list", help="the publishers, their prefixes, policy, rate and whether a token is set")
    add_setting_options(a, "publishers_file")
    a = actions.add_parser("hash-token", help="print the SHA-256 of a token read from standard input")
    a = actions.add_parser("add", help="register a publisher; prints its new token once")
    a.add_argument("name", help="the publisher's name (the Kafka 'publisher' header carries it)")
    a.add_argument("--prefix", action="append", required=True,
                   help="an ocid prefix it may publish (repeat for several; '*' for any)")
    a.add_argument("--policy", choices=["strict", "lenient"], default="strict",
                   help="strict rejects releases with schema findings; lenient keeps them as warnings (default strict)")
    a.add_argument("--rate-limit", type=float, default=None, help="releases per second over HTTP ingest, at most")
    a.add_argument("--description", default="", help="who this publisher is")
    a.add_argument("--token-stdin", action="store_true", help="read its token from standard input instead of "
                   "making a new one")
    add_setting_options(a, "publishers_file")
    a = actions.add_parser("rotate-token", help="give a publisher a new token; prints it once")
    a.add_argument("name", help="the publisher's name")
    a.add_argument("--token-stdin", action="store_true", help="read the new token from standard input instead of "
                   "making one")
    add_setting_options(a, "publishers_file")
    p.set_defaults(handler=_publishers)

    p = sub.add_parser("rejected", help="dead letters: send them through the pipeline again after a fix")
    actions = p.add_subparsers(dest="action", required=True)
    a = actions.add_parser("retry", help="re-send rejected releases once each and report what became of them")
    a.add_argument("--publisher", help="only the dead letters of this publisher")
    a.add_argument("--since", help="only those rejected since this ISO 8601 time or age (30m, 2h, 7d)")
    a.add_argument("--rule", help="only those rejected by this rule (e.g. publisher, schema, prefix)")
    a.add_argument("--timeout", type=float, default=120.0,
                   help="seconds to wait for the stream processor's verdicts (default 120)")
    a.add_argument("--show", type=int, default=50, help="releases listed in the report, at most (default 50)")
    add_setting_options(a, "database_url", "bootstrap_servers")
    p.set_defaults(handler=_rejected)
