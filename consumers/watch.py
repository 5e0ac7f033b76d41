"""``ocds-live watch``: a websocket client bot printing red-flag alerts from the change feed, in memory.

It evaluates the rules of ``core.redflags`` (docs/redflags.md; thresholds from ``OCDS_LIVE_REDFLAGS_FILE``) on the
compiled release each change brings (``detail=full``): every per-process rule, and repeated direct awards from the
direct awards it has seen. Each (rule, key) is printed once per run, as a JSON line (or a line for people with
``--text``) with the rule's title in Spanish and English and a link to the record.

It keeps its state in memory: restarted, it starts again from the cursor it is given. Late publication and the
population rules need history across restarts and live in the watchdog service (``ocds-live watch --service``),
which stores alerts once and delivers them.
"""

from __future__ import annotations

import asyncio
import sys
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from core.redflags import mexico
from core.redflags.config import RulesConfig
from core.redflags.mexico import DirectAward
from core.redflags.rules import process_flags, title


@dataclass(frozen=True)
class Alert:
    """One red flag, as printed."""

    rule: str
    key: str
    ocid: str
    message: str
    cursor: int | None = None
    record_url: str | None = None
    evidence: list[dict[str, Any]] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)


def _record_url(url: str | None, ocid: str, other: str) -> str | None:
    """The link to ``other``'s record, made from ``url``, the link to ``ocid``'s (``.../api/records/<ocid>``)."""
    if url is None or other == ocid:
        return url
    return url[: -len(ocid)] + other if url.endswith(ocid) else None


class Watchdog:
    """Checks each new state of a process against the rules; reports each (rule, key) once."""

    def __init__(self, config: RulesConfig | None = None) -> None:
        self.config = config or RulesConfig()
        self.reported: set[tuple[str, str]] = set()
        self._awards: dict[tuple[str, str], dict[str, list[DirectAward]]] = defaultdict(dict)  # pair -> ocid -> awards

    def check(self, ocid: str, compiled: dict[str, Any], cursor: int | None = None,
              record_url: str | None = None) -> list[Alert]:
        """The new alerts that this state of the process raises (on it, or on a run of direct awards it joins)."""
        flags = process_flags(ocid, compiled, self.config)
        pairs = set()
        for pair, by_ocid in self._awards.items():
            if by_ocid.pop(ocid, None) is not None:
                pairs.add(pair)
        for award in mexico.direct_awards(ocid, compiled, self.config):
            self._awards[award.buyer, award.supplier].setdefault(ocid, []).append(award)
            pairs.add((award.buyer, award.supplier))
        related = [a for pair in pairs for awards in self._awards[pair].values() for a in awards]
        flags += mexico.repeated_direct_awards(related, self.config)
        alerts = []
        for flag in flags:
            if (flag.rule, flag.key) in self.reported:
                continue
            self.reported.add((flag.rule, flag.key))
            where = flag.ocids[-1] if flag.ocids else ocid
            alerts.append(Alert(flag.rule, flag.key, where, title(flag.rule), cursor,
                                _record_url(record_url, ocid, where), [e.as_dict() for e in flag.evidence],
                                flag.detail))
        return alerts

    def check_event(self, event: dict[str, Any]) -> list[Alert]:
        """The alerts of one change event received with ``detail=full``."""
        compiled = event.get("compiledRelease")
        if not isinstance(compiled, dict) or not isinstance(event.get("ocid"), str):
            return []
        return self.check(event["ocid"], compiled, event.get("cursor"), event.get("record_url"))


def alert_line(alert: Alert) -> bytes:
    """The alert as one JSON line."""
    return orjson.dumps(asdict(alert)) + b"\n"


def alert_text(alert: Alert) -> bytes:
    """The alert as one line for people: rule, process, title, link."""
    link = alert.record_url.replace("/api/records/", "/records/", 1) if alert.record_url else alert.ocid  # the page
    return f"ALERT {alert.rule:<24} {alert.ocid}  {alert.message}  {link}\n".encode()


async def watch(url: str, config: RulesConfig, *, after: int | str = "start", filters: dict[str, Any] | None = None,
                out: Callable[[bytes], Any] = sys.stdout.buffer.write,
                flush: Callable[[], Any] = sys.stdout.buffer.flush, limit: int | None = None,
                line: Callable[[Alert], bytes] = alert_line) -> int:
    """Follow the feed at ``url`` and write each alert as a ``line`` (JSON by default); returns the alerts
    written (after ``limit`` changes when given, else never)."""
    from consumers.client import ChangeClient

    dog, alerts, seen = Watchdog(config), 0, 0
    async with ChangeClient(url, filters=filters, after=after, detail="full", batch=50) as client:
        async for event in client:
            for alert in dog.check_event(event):
                out(line(alert))
                alerts += 1
            flush()
            seen += 1
            if limit is not None and seen >= limit:
                break
    return alerts


def run(url: str, config: RulesConfig, after: int | str, filters: dict[str, Any], limit: int | None = None,
        text: bool = False) -> int:
    return asyncio.run(watch(url, config, after=after, filters=filters, limit=limit,
                             line=alert_text if text else alert_line))
