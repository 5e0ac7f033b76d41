"""``ocds-live watch``: a watchdog bot that raises red-flag alerts from the change feed.

The rules are pure functions of a compiled release (what ``detail=full`` brings with each change), plus
one small state, kept in memory, for the pattern that spans processes:

- ``single-bidder``: a competitive procedure (open or restricted) awarded with one tenderer;
- ``short-tender-period``: a tender period shorter than the legal minimum of its method (Mexico's LAASSP:
  open tenders 15 days, reducible to 10; invitations to at least three, 5 days);
- ``value-raising-amendment``: a contract worth more than ``1 + max_raise`` times the award it comes from;
- ``split-below-threshold``: direct awards by the same procuring entity to the same supplier, each just
  below the direct-award limit (within ``band`` of it): a purchase split to avoid a tender. The first of
  the group is reported when the second arrives.

Each (process, rule) is reported once. Alerts are JSON lines on standard output, with a message in Spanish
and English and a link to the record. The limits are options: the defaults suit the simulator's stream
(a direct-award limit of 600,000 MXN); real limits depend on the year and the buyer's budget.
"""

from __future__ import annotations

import asyncio
import sys
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import orjson

COMPETITIVE = frozenset({"open", "selective", "limited"})
DAY = 86_400.0


@dataclass(frozen=True)
class Rules:
    """The limits the rules use."""

    min_open_days: float = 10.0
    min_invitation_days: float = 5.0
    max_raise: float = 0.25
    direct_limit: float = 600_000.0
    band: float = 0.10
    min_split: int = 2


@dataclass(frozen=True)
class Alert:
    """One red flag on one contracting process."""

    rule: str
    ocid: str
    message: str
    cursor: int | None = None
    record_url: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)


MESSAGES = {  # the rule names, with the alert's title
    "single-bidder": "Un solo licitante / Single bidder",
    "short-tender-period": "Periodo de licitación corto / Short tender period",
    "value-raising-amendment": "Modificación que eleva el valor / Amendment raising the value",
    "split-below-threshold": "Posible fraccionamiento / Possible split purchase",
}
RULES_NAMES = tuple(MESSAGES)


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _amount(value: Any) -> float | None:
    amount = _obj(value).get("amount")
    return float(amount) if isinstance(amount, int | float) and not isinstance(amount, bool) else None


def _when(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def single_bidder(compiled: dict[str, Any]) -> dict[str, Any] | None:
    tender = _obj(compiled.get("tender"))
    if tender.get("procurementMethod") not in COMPETITIVE or not _dicts(compiled.get("awards")):
        return None
    count = tender.get("numberOfTenderers")
    if count is None:
        count = len(_dicts(tender.get("tenderers"))) or None
    return {"numberOfTenderers": count, "method": tender.get("procurementMethod")} if count == 1 else None


def short_tender_period(compiled: dict[str, Any], rules: Rules) -> dict[str, Any] | None:
    tender = _obj(compiled.get("tender"))
    method = tender.get("procurementMethod")
    if method not in COMPETITIVE:
        return None
    period = _obj(tender.get("tenderPeriod"))
    start, end = _when(period.get("startDate")), _when(period.get("endDate"))
    if start is None or end is None or start.tzinfo is None or end.tzinfo is None:
        return None
    days = (end - start).total_seconds() / DAY
    minimum = rules.min_open_days if method == "open" else rules.min_invitation_days
    return {"days": round(days, 2), "method": method, "minimum_days": minimum} if 0 <= days < minimum else None


def value_raising_amendment(compiled: dict[str, Any], rules: Rules) -> dict[str, Any] | None:
    awards = {a.get("id"): _amount(a.get("value")) for a in _dicts(compiled.get("awards"))}
    for contract in _dicts(compiled.get("contracts")):
        awarded, value = awards.get(contract.get("awardID")), _amount(contract.get("value"))
        if awarded and value is not None and value > awarded * (1 + rules.max_raise):
            return {"contract": contract.get("id"), "award_amount": awarded, "contract_amount": value,
                    "raise": round(value / awarded - 1, 4)}
    return None


def split_candidates(compiled: dict[str, Any], rules: Rules) -> list[tuple[str, str, float]]:
    """(procuring entity or buyer id, supplier id, amount) of the process's direct awards just below the limit."""
    tender = _obj(compiled.get("tender"))
    if tender.get("procurementMethod") != "direct":
        return []
    entity = _obj(tender.get("procuringEntity")).get("id") or _obj(compiled.get("buyer")).get("id")
    if not isinstance(entity, str):
        return []
    found = []
    for award in _dicts(compiled.get("awards")):
        amount = _amount(award.get("value"))
        if amount is not None and rules.direct_limit * (1 - rules.band) <= amount < rules.direct_limit:
            found += [(entity, s["id"], amount) for s in _dicts(award.get("suppliers")) if isinstance(s.get("id"), str)]
    return found


def _record_url(url: str | None, ocid: str, other: str) -> str | None:
    """The link to ``other``'s record, made from ``url``, the link to ``ocid``'s (``.../api/records/<ocid>``)."""
    if url is None or other == ocid:
        return url
    return url[: -len(ocid)] + other if url.endswith(ocid) else None


class Watchdog:
    """Checks each new state of a process against the rules; reports each (process, rule) once."""

    def __init__(self, rules: Rules | None = None) -> None:
        self.rules = rules or Rules()
        self.reported: set[tuple[str, str]] = set()
        self._splits: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)  # (entity, supplier) -> ocids

    def check(self, ocid: str, compiled: dict[str, Any], cursor: int | None = None,
              record_url: str | None = None) -> list[Alert]:
        """The new alerts that this state of the process raises (on it, or on earlier processes of a split)."""
        found: list[tuple[str, str, dict[str, Any]]] = []
        checks: list[tuple[str, Callable[[], dict[str, Any] | None]]] = [
            ("single-bidder", lambda: single_bidder(compiled)),
            ("short-tender-period", lambda: short_tender_period(compiled, self.rules)),
            ("value-raising-amendment", lambda: value_raising_amendment(compiled, self.rules)),
        ]
        for rule, check in checks:
            if (ocid, rule) not in self.reported and (evidence := check()) is not None:
                found.append((rule, ocid, evidence))
        for entity, supplier, amount in split_candidates(compiled, self.rules):
            group = self._splits[entity, supplier]
            group[ocid] = amount
            if len(group) >= self.rules.min_split:
                evidence = {"procuring_entity": entity, "supplier": supplier, "processes": dict(group),
                            "direct_award_limit": self.rules.direct_limit}
                found += [("split-below-threshold", member, evidence) for member in group
                          if (member, "split-below-threshold") not in self.reported]
        alerts = []
        for rule, where, evidence in found:
            self.reported.add((where, rule))
            alerts.append(Alert(rule, where, MESSAGES[rule], cursor, _record_url(record_url, ocid, where), evidence))
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


async def watch(url: str, rules: Rules, *, after: int | str = "start", filters: dict[str, Any] | None = None,
                out: Callable[[bytes], Any] = sys.stdout.buffer.write,
                flush: Callable[[], Any] = sys.stdout.buffer.flush, limit: int | None = None,
                line: Callable[[Alert], bytes] = alert_line) -> int:
    """Follow the feed at ``url`` and write each alert as a ``line`` (JSON by default); returns the alerts
    written (after ``limit`` changes when given, else never)."""
    from consumers.client import ChangeClient

    dog, alerts, seen = Watchdog(rules), 0, 0
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


def run(url: str, rules: Rules, after: int | str, filters: dict[str, Any], limit: int | None = None,
        text: bool = False) -> int:
    return asyncio.run(watch(url, rules, after=after, filters=filters, limit=limit,
                             line=alert_text if text else alert_line))

