"""The per-process indicators of OCP's Cardinal (ocdscardinal 0.0.8), computed from one compiled release.

Each function follows the indicator's documentation and code in ``open-contracting/cardinal-rs``
(``docs/cli/indicators/R/*.md``, ``src/indicators/r0*.rs``): the same fields, statuses and exclusions. Amounts
and counts are read only when they are JSON numbers, as Cardinal does. The key of a per-process flag is its ocid.
"""

from __future__ import annotations

from typing import Any

from core.redflags.config import RulesConfig
from core.redflags.types import Evidence, Flag, buyer_id, dicts, number, obj, party_ids, text, when

Bid = tuple[int, dict[str, Any]]


def _flag(rule: str, ocid: str, compiled: dict[str, Any], evidence: list[Evidence], detail: dict[str, Any],
          suppliers: tuple[str, ...] = ()) -> Flag:
    return Flag(rule, ocid, ocid, (ocid,), tuple(evidence), detail, buyer_id(compiled), suppliers)


def bids(compiled: dict[str, Any]) -> list[Bid]:
    """``(index, bid)`` of ``/bids/details`` (the Bids extension)."""
    return dicts(obj(compiled.get("bids")).get("details"))


def submitted_bids(compiled: dict[str, Any]) -> list[Bid]:
    """Bids with a status other than invited or withdrawn (pending, valid and disqualified bids)."""
    return [(i, b) for i, b in bids(compiled)
            if isinstance(b.get("status"), str) and b["status"] not in ("invited", "withdrawn")]


def final_awards(compiled: dict[str, Any]) -> list[tuple[int, dict[str, Any]]] | None:
    """The active awards when every award with a status is final (active, cancelled or unsuccessful) and the
    process has bids; None otherwise (a pending award: results would not be stable)."""
    awards = obj(compiled).get("awards")
    if not isinstance(awards, list) or not isinstance(obj(compiled.get("bids")).get("details"), list):
        return None
    active = []
    for i, award in dicts(awards):
        status = award.get("status")
        if not isinstance(status, str):
            continue
        if status == "active":
            active.append((i, award))
        elif status not in ("cancelled", "unsuccessful"):
            return None
    return active


def compares_prices(compiled: dict[str, Any], config: RulesConfig) -> bool:
    """False when the procedure's prices are predetermined (``no_price_comparison_procurement_methods``)."""
    details = obj(compiled.get("tender")).get("procurementMethodDetails")
    if not isinstance(details, str):
        return not config.price_comparison_procurement_methods  # set only matches through a deny list
    if config.price_comparison_procurement_methods:
        return details in config.price_comparison_procurement_methods
    return details not in config.no_price_comparison_procurement_methods


def r003(ocid: str, compiled: dict[str, Any], config: RulesConfig) -> Flag | None:
    """Short submission period: tenderPeriod end - start, in whole days, below the threshold (open procedures)."""
    tender = obj(compiled.get("tender"))
    method = tender.get("procurementMethod")
    if config.r003_procurement_methods and method not in config.r003_procurement_methods:
        return None
    period = obj(tender.get("tenderPeriod"))
    start, end = when(period.get("startDate")), when(period.get("endDate"))
    if start is None or end is None:
        return None
    seconds = (end - start).total_seconds()
    days = int(seconds / 86_400)  # chrono's num_days: whole days, truncated toward zero
    details = tender.get("procurementMethodDetails")
    threshold = config.r003_procurement_method_details_thresholds.get(details, config.r003_threshold) \
        if isinstance(details, str) else config.r003_threshold
    if days >= threshold:
        return None
    return _flag("R003", ocid, compiled, [
        Evidence("/tender/tenderPeriod/startDate", period["startDate"]),
        Evidence("/tender/tenderPeriod/endDate", period["endDate"]),
        Evidence("/tender/procurementMethod", method),
    ], {"days": days, "threshold": threshold})


def r018(ocid: str, compiled: dict[str, Any], config: RulesConfig) -> Flag | None:
    """Single bid received: numberOfTenderers is 1 in an open or selective procedure."""
    tender = obj(compiled.get("tender"))
    method = tender.get("procurementMethod")
    count = tender.get("numberOfTenderers")
    if config.r018_procurement_methods and method not in config.r018_procurement_methods:
        return None
    if isinstance(count, bool) or not isinstance(count, int) or count != 1:  # Cardinal: as_u64() == 1
        return None
    return _flag("R018", ocid, compiled, [Evidence("/tender/numberOfTenderers", count),
                                         Evidence("/tender/procurementMethod", method)], {})


def _tenderer_ids(bid: dict[str, Any]) -> frozenset[str]:
    return frozenset(party_ids(bid.get("tenderers")))


def r028(ocid: str, compiled: dict[str, Any], config: RulesConfig) -> Flag | None:
    """Identical bid prices: submitted bids of different tenderers with the same amount and currency."""
    if not compares_prices(compiled, config):
        return None
    seen: dict[tuple[float, str], tuple[int, frozenset[str]]] = {}
    evidence: list[Evidence] = []
    flagged: set[str] = set()
    for i, bid in submitted_bids(compiled):
        value = obj(bid.get("value"))
        price, currency, ids = number(value.get("amount")), value.get("currency"), _tenderer_ids(bid)
        if price is None or not isinstance(currency, str) or not ids:
            continue
        other = seen.get((price, currency))
        if other is not None and other[1] != ids:
            for j in (other[0], i):
                pointer = f"/bids/details/{j}/value/amount"
                if all(e.pointer != pointer for e in evidence):
                    evidence.append(Evidence(pointer, price))
            flagged |= ids | other[1]
        seen[price, currency] = (i, ids)
    if not evidence:
        return None
    return _flag("R028", ocid, compiled, evidence, {"tenderers": sorted(flagged)}, tuple(sorted(flagged)))


def _active_supplier_ids(compiled: dict[str, Any]) -> set[str]:
    return {s for _, a in dicts(compiled.get("awards")) if a.get("status") == "active"
            for s in party_ids(a.get("suppliers"))}


def r030(ocid: str, compiled: dict[str, Any], config: RulesConfig) -> Flag | None:
    """Late bid won: a valid bid received after the tender period's end, from a supplier of an active award."""
    end = obj(obj(compiled.get("tender")).get("tenderPeriod")).get("endDate")
    if not isinstance(end, str) or not isinstance(compiled.get("awards"), list):
        return None
    winners = _active_supplier_ids(compiled)
    for i, bid in bids(compiled):
        date = bid.get("date")
        # Cardinal compares the RFC 3339 strings; compare instants when both parse, else the strings
        late_at, end_at = when(date), when(end)
        late = (late_at > end_at) if late_at and end_at else isinstance(date, str) and date > end
        if bid.get("status") == "valid" and isinstance(date, str) and late:
            won = sorted(_tenderer_ids(bid) & winners)
            if won:
                return _flag("R030", ocid, compiled, [Evidence(f"/bids/details/{i}/date", date),
                                                      Evidence("/tender/tenderPeriod/endDate", end)],
                             {"tenderers": won}, tuple(won))
    return None


def r035(ocid: str, compiled: dict[str, Any], config: RulesConfig) -> Flag | None:
    """All except winning bid disqualified: one valid tenderer, who is every active award's supplier, and at
    least ``threshold`` other tenderers disqualified."""
    active = final_awards(compiled)
    if active is None:
        return None
    suppliers = {s for _, a in active for s in party_ids(a.get("suppliers"))}
    valid: set[str] = set()
    disqualified: dict[str, int] = {}
    for i, bid in bids(compiled):
        status = bid.get("status")
        if status == "valid":
            valid |= _tenderer_ids(bid)
        elif status == "disqualified":
            disqualified.update({t: i for t in _tenderer_ids(bid)})
    others = {t: i for t, i in disqualified.items() if t not in valid}
    if len(valid) != 1 or valid != suppliers or len(others) < max(config.r035_threshold, 1):
        return None
    evidence = [Evidence(f"/bids/details/{i}/status", "disqualified") for i in sorted(set(others.values()))]
    evidence += [Evidence(f"/awards/{i}/status", "active") for i, _ in active]
    return _flag("R035", ocid, compiled, evidence, {"disqualified_tenderers": len(others), "winner": min(valid)},
                 tuple(sorted(valid)))


def r036(ocid: str, compiled: dict[str, Any], config: RulesConfig) -> Flag | None:
    """Lowest bid disqualified: an active award, and the lowest submitted bid (first currency seen) disqualified."""
    if not any(a.get("status") == "active" for _, a in dicts(compiled.get("awards"))):
        return None
    lowest: tuple[float, int, str] | None = None
    currency: str | None = None
    for i, bid in submitted_bids(compiled):
        value = obj(bid.get("value"))
        price, code = number(value.get("amount")), value.get("currency")
        if price is None or not isinstance(code, str):
            continue
        currency = currency or code
        if code == currency and (lowest is None or price < lowest[0]):
            lowest = (price, i, str(bid["status"]))
    if lowest is None or lowest[2] != "disqualified":
        return None
    return _flag("R036", ocid, compiled, [Evidence(f"/bids/details/{lowest[1]}/value/amount", lowest[0]),
                                          Evidence(f"/bids/details/{lowest[1]}/status", "disqualified")],
                 {"currency": currency})


def bid_ratio(compiled: dict[str, Any], config: RulesConfig) -> dict[str, Any] | None:
    """The input of R024 and R058: (second-lowest valid bid - winning bid) / winning bid, with its parts.

    As Cardinal: one active award (all awards final) to one supplier; valid bids with one tenderer and an amount;
    the winner's lowest bid against the lowest bid of the others; excluded when the lowest bid did not win.
    """
    if not compares_prices(compiled, config):
        return None
    active = final_awards(compiled)
    if active is None or len(active) != 1:
        return None
    suppliers = dicts(active[0][1].get("suppliers"))
    winner = text(suppliers[0][1].get("id")) if len(suppliers) == 1 else None
    if winner is None:
        return None
    best: dict[bool, tuple[float, int, str]] = {}
    currency: str | None = None
    for i, bid in bids(compiled):
        value, tenderers = obj(bid.get("value")), dicts(bid.get("tenderers"))
        price, code = number(value.get("amount")), value.get("currency")
        if bid.get("status") != "valid" or price is None or not isinstance(code, str) or len(tenderers) != 1:
            continue
        tenderer = text(tenderers[0][1].get("id"))
        if tenderer is None:
            continue
        currency = currency or code
        if code != currency:
            continue
        won = tenderer == winner
        if won not in best or price < best[won][0]:
            best[won] = (price, i, tenderer)
    if True not in best or False not in best or best[False][0] < best[True][0] or best[True][0] == 0:
        return None
    (win, wi, _), (lose, li, runner) = best[True], best[False]
    return {"ratio": (lose - win) / win, "currency": currency, "winner": winner, "runner_up": runner,
            "pointers": [f"/bids/details/{wi}/value/amount", f"/bids/details/{li}/value/amount"],
            "amounts": [win, lose]}


def bid_counts(compiled: dict[str, Any]) -> list[tuple[str, str, int, int]]:
    """The input of R038: ``(group, id, disqualified, submitted)`` for the buyer, the procuring entity (bids of the
    process) and each tenderer (its own bids)."""
    submitted = submitted_bids(compiled)
    if not submitted:
        return []
    disqualified = sum(1 for _, b in submitted if b.get("status") == "disqualified")
    out: list[tuple[str, str, int, int]] = []
    if (buyer := buyer_id(compiled)) is not None:
        out.append(("buyer", buyer, disqualified, len(submitted)))
    entity = text(obj(obj(compiled.get("tender")).get("procuringEntity")).get("id"))
    if entity is not None:
        out.append(("procuringEntity", entity, disqualified, len(submitted)))
    per: dict[str, list[int]] = {}
    for _, bid in submitted:
        for tenderer in party_ids(bid.get("tenderers")):
            counts = per.setdefault(tenderer, [0, 0])
            counts[0] += bid.get("status") == "disqualified"
            counts[1] += 1
    out += [("tenderer", t, d, n) for t, (d, n) in sorted(per.items())]
    return out


PER_PROCESS = {"R003": r003, "R018": r018, "R028": r028, "R030": r030, "R035": r035, "R036": r036}
