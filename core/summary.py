"""What filters, dashboards and the ``records`` table need from a compiled release.

Pure and forgiving: real data has ``currency: null``, amounts as strings, missing parties, statuses in the
wrong case and scalars where objects belong. Nothing here raises on odd JSON; what cannot be read is None.

Definitions (stable; the feeds and the store rely on them):

- ``status`` is ``"<stage>.<code>"``. The stage is the latest one present: ``contract`` if there is a
  contract, else ``award`` if there is an award, else ``tender`` if there is a tender, else ``planning``
  if there is a planning section (status ``planning.planned``); None for an empty release. The code is
  the stage's status, lower-cased; with several awards or contracts, the most alive one wins
  (active > pending > complete > terminated > unsuccessful > cancelled > other codes); ``unknown`` when
  no item of that stage has a status.
- Amounts are floats (JSON-serialisable as they are; sums use ``math.fsum``). ``award_amount`` sums the
  awards that are not cancelled or unsuccessful (awards without a status count: federal data omits it),
  ``contract_amount`` the contracts that are not cancelled. A sum is None when no counted item has a
  readable amount. Sums ignore currency; ``currency`` is the one currency of all the counted values
  (tender, awards, contracts) that have an amount, ``"mixed"`` when they have several, None when none.
- ``suppliers`` come from the suppliers of the counted awards and contracts (falling back to the parties
  with role ``supplier``), deduplicated by id (by name when there is no id), sorted by (id, name).
- ``award_date`` and ``contract_signed`` are the earliest award date and contract signature date.
- ``search_text`` holds the titles, descriptions, buyer, procuring entity, suppliers and item
  descriptions, whitespace collapsed, each distinct text once, cut to at most 20,000 UTF-8 bytes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import Any

from core.types import Release

SEARCH_TEXT_BYTES = 20_000
"""The most UTF-8 bytes of ``search_text``."""

_AWARD_ORDER = {"active": 0, "pending": 1, "unsuccessful": 5, "cancelled": 6}
_CONTRACT_ORDER = {"active": 0, "pending": 1, "complete": 2, "terminated": 3, "cancelled": 6}
_NOT_COUNTED_AWARD = frozenset({"cancelled", "unsuccessful"})
_NOT_COUNTED_CONTRACT = frozenset({"cancelled"})


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _id(value: Any) -> str | None:
    """An identifier as a string (publishers send numbers too), else None."""
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def _text(value: Any) -> str | None:
    """A human text with its whitespace collapsed, else None."""
    return (" ".join(value.split()) or None) if isinstance(value, str) else None


def status_code(obj: Any) -> str | None:
    """The ``status`` of an OCDS object, lower-cased (``Active`` is seen in real data), else None."""
    status = obj.get("status") if isinstance(obj, dict) else None
    return (status.strip().lower() or None) if isinstance(status, str) else None


def parse_amount(value: Any) -> float | None:
    """An amount as a float: numbers, or strings such as ``"1,234.50"`` or ``"$ 10"``; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.replace(",", "").replace("$", "").replace(" ", ""))
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _money(obj: dict[str, Any]) -> tuple[float | None, str | None]:
    value = _obj(obj.get("value"))
    currency = value.get("currency")
    code = (currency.strip() or None) if isinstance(currency, str) else None
    return parse_amount(value.get("amount")), code


def _org(value: Any) -> dict[str, str | None]:
    obj = _obj(value)
    return {"id": _id(obj.get("id")), "name": _text(obj.get("name"))}


def _party_with_role(release: dict[str, Any], role: str) -> dict[str, str | None]:
    for party in _dicts(release.get("parties")):
        roles = party.get("roles")
        if isinstance(roles, list) and role in roles:
            return _org(party)
    return {"id": None, "name": None}


def _organization(release: dict[str, Any], value: Any, role: str) -> dict[str, str | None]:
    org = _org(value)
    return org if org["id"] or org["name"] else _party_with_role(release, role)


def _suppliers(
    release: dict[str, Any], awards: list[dict[str, Any]], contracts: list[dict[str, Any]]
) -> list[dict[str, str | None]]:
    found: dict[str, dict[str, str | None]] = {}

    def add(candidates: Iterable[Any]) -> None:
        for candidate in candidates:
            org = _org(candidate)
            key = f"id:{org['id']}" if org["id"] else f"name:{org['name']}" if org["name"] else None
            if key is not None and key not in found:
                found[key] = org

    for award in awards:
        add(_dicts(award.get("suppliers")))
    for contract in contracts:
        add(_dicts(contract.get("suppliers")))
    if not found:
        add(p for p in _dicts(release.get("parties")) if "supplier" in (p.get("roles") or ()))
    return sorted(found.values(), key=lambda org: (org["id"] or "", org["name"] or ""))


def _latest(items: list[dict[str, Any]], order: dict[str, int]) -> str:
    codes = [code for code in map(status_code, items) if code is not None]
    return min(codes, key=lambda code: (order.get(code, 4), code)) if codes else "unknown"


def process_status(release: Release) -> str | None:
    """The process-level status, ``"<stage>.<code>"`` as the module docstring defines it."""
    contracts = _dicts(release.get("contracts"))
    if contracts:
        return f"contract.{_latest(contracts, _CONTRACT_ORDER)}"
    awards = _dicts(release.get("awards"))
    if awards:
        return f"award.{_latest(awards, _AWARD_ORDER)}"
    tender = _obj(release.get("tender"))
    if tender:
        return f"tender.{status_code(tender) or 'unknown'}"
    return "planning.planned" if _obj(release.get("planning")) else None


def _total(items: list[dict[str, Any]], currencies: set[str]) -> float | None:
    amounts = []
    for item in items:
        amount, currency = _money(item)
        if amount is not None:
            amounts.append(amount)
            if currency is not None:
                currencies.add(currency)
    return math.fsum(amounts) if amounts else None


def _earliest(values: Iterable[Any]) -> str | None:
    dates = [value for value in values if isinstance(value, str) and value]
    return min(dates) if dates else None


def _tenderers(tender: dict[str, Any]) -> int | None:
    number = tender.get("numberOfTenderers")
    if isinstance(number, int) and not isinstance(number, bool):
        return number
    if isinstance(number, str) and number.strip().isdigit():
        return int(number)
    tenderers = tender.get("tenderers")
    return len(tenderers) if isinstance(tenderers, list) and tenderers else None


def _texts(release: dict[str, Any], summary: dict[str, Any]) -> Iterator[Any]:
    tender = _obj(release.get("tender"))
    yield summary["title"]
    yield tender.get("description")
    yield _obj(release.get("planning")).get("rationale")
    yield summary["buyer"]["name"]
    yield summary["procuring_entity"]["name"]
    for supplier in summary["suppliers"]:
        yield supplier["name"]
    yield tender.get("title")
    stages = [tender, *_dicts(release.get("awards")), *_dicts(release.get("contracts"))]
    for stage in stages[1:]:
        yield stage.get("title")
        yield stage.get("description")
    for stage in stages:
        for item in _dicts(stage.get("items")):
            yield item.get("description")


def search_text(release: Release, summary: dict[str, Any]) -> str:
    """The text for a Spanish full-text index: each distinct text once, at most 20,000 UTF-8 bytes."""
    seen: dict[str, None] = {}
    size = 0
    for value in _texts(_obj(release), summary):
        text = _text(value)
        if text and text not in seen:
            seen[text] = None
            size += len(text) + 1
            if size > SEARCH_TEXT_BYTES:  # characters >= bytes / 4: stop early, cut exactly below
                break
    encoded = " ".join(seen).encode("utf-8")
    if len(encoded) <= SEARCH_TEXT_BYTES:
        return encoded.decode("utf-8")
    return encoded[:SEARCH_TEXT_BYTES].decode("utf-8", errors="ignore")


def summarize(compiled: Release, *, with_search_text: bool = True) -> dict[str, Any]:
    """What filters and dashboards need from a compiled release (``search_text`` only if asked)."""
    release = _obj(compiled)
    tender = _obj(release.get("tender"))
    awards = _dicts(release.get("awards"))
    contracts = _dicts(release.get("contracts"))
    counted_awards = [a for a in awards if status_code(a) not in _NOT_COUNTED_AWARD]
    counted_contracts = [c for c in contracts if status_code(c) not in _NOT_COUNTED_CONTRACT]

    currencies: set[str] = set()
    tender_amount, tender_currency = _money(tender)
    if tender_amount is not None and tender_currency is not None:
        currencies.add(tender_currency)
    award_amount = _total(counted_awards, currencies)
    contract_amount = _total(counted_contracts, currencies)

    title = _text(tender.get("title"))
    for item in (*contracts, *awards):
        title = title or _text(item.get("title"))
    tender_period = _obj(tender.get("tenderPeriod"))
    summary: dict[str, Any] = {
        "title": title,
        "buyer": _organization(release, release.get("buyer"), "buyer"),
        "procuring_entity": _organization(release, tender.get("procuringEntity"), "procuringEntity"),
        "suppliers": _suppliers(release, counted_awards, counted_contracts),
        "method": _id(tender.get("procurementMethod")),
        "method_details": _text(tender.get("procurementMethodDetails")),
        "category": _id(tender.get("mainProcurementCategory")),
        "status": process_status(release),
        "tender_amount": tender_amount,
        "award_amount": award_amount,
        "contract_amount": contract_amount,
        "currency": None if not currencies else currencies.pop() if len(currencies) == 1 else "mixed",
        "number_of_tenderers": _tenderers(tender),
        "tender_start": _id(tender_period.get("startDate")),
        "tender_end": _id(tender_period.get("endDate")),
        "award_date": _earliest(award.get("date") for award in awards),
        "contract_signed": _earliest(contract.get("dateSigned") for contract in contracts),
    }
    if with_search_text:
        summary["search_text"] = search_text(release, summary)
    return summary


def record_columns(compiled: Release, summary: dict[str, Any] | None = None) -> dict[str, Any]:
    """The flat values of the ``records`` table's columns (pass ``summary`` if already computed).

    ``amount`` is the largest of the contract, award and tender amounts that exist (a float, or None),
    so a filter such as "amount above a million" catches a process whichever stage crossed it.
    """
    summary = summary if summary is not None else summarize(compiled, with_search_text=False)
    amounts = [
        summary[k] for k in ("contract_amount", "award_amount", "tender_amount") if summary[k] is not None
    ]
    return {
        "buyer_id": summary["buyer"]["id"],
        "buyer_name": summary["buyer"]["name"],
        "supplier_ids": [s["id"] for s in summary["suppliers"] if s["id"] is not None],
        "method": summary["method"],
        "category": summary["category"],
        "status": summary["status"],
        "amount": max(amounts) if amounts else None,
        "currency": summary["currency"],
        "tender_end": summary["tender_end"],
        "date": _id(_obj(compiled).get("date")),
    }
