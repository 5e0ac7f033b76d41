"""Mexican red flags, from the federal procurement laws (LAASSP for goods and services, LOPSRM for public works)
and OCP's integrity guidance. Thresholds come from the rules file; docs/redflags.md gives each rule's source.

Amounts are read forgivingly (real Mexican data has amounts as strings); a value that cannot be read never flags.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.redflags.config import MaxAmount, RulesConfig
from core.redflags.types import Evidence, Flag, amount, buyer_id, dicts, obj, party_ids, text, when

DAY = 86_400.0
COUNTED = frozenset({None, "active", "pending"})  # award/contract statuses that count (federal data omits them)


def _status(item: dict[str, Any]) -> str | None:
    status = item.get("status")
    return status.strip().lower() if isinstance(status, str) else None


def _flag(rule: str, ocid: str, compiled: dict[str, Any], evidence: list[Evidence], detail: dict[str, Any],
          suppliers: tuple[str, ...] = ()) -> Flag:
    return Flag(rule, ocid, ocid, (ocid,), tuple(evidence), detail, buyer_id(compiled), suppliers)


def _law(compiled: dict[str, Any], config: RulesConfig) -> str:
    category = obj(compiled.get("tender")).get("mainProcurementCategory")
    return "LOPSRM" if category in config.works_categories else "LAASSP"


def legal_maximum(config: RulesConfig, year: int, law: str, buyer: str | None) -> MaxAmount | None:
    """The row of the table for the year, the law and the buyer's band: ``buyer_bands[buyer]``, else
    ``default_band``, else (0, or a band the year lacks) the largest band, the most permissive: a buying unit of any
    band may not go above it, so what passes it is a breach for all."""
    rows = [r for r in config.max_amounts if r.covers(year) and r.law == law]
    if not rows:
        return None
    band = config.buyer_bands.get(buyer, config.default_band) if buyer is not None else config.default_band
    chosen = [r for r in rows if r.band == band]
    return chosen[0] if chosen else max(rows, key=lambda r: r.band)


def direct_over_maximum(ocid: str, compiled: dict[str, Any], config: RulesConfig) -> Flag | None:
    """A direct award (or an invitation to at least three) worth more than the legal maximum of its year and band."""
    tender = obj(compiled.get("tender"))
    method = tender.get("procurementMethod")
    if method in config.direct_methods:
        kind = "direct"
    elif method in config.invitation_methods:
        kind = "invitation"
    else:
        return None
    law, buyer = _law(compiled, config), buyer_id(compiled)
    for i, award in dicts(compiled.get("awards")):
        value, date = amount(award.get("value")), when(award.get("date")) or when(compiled.get("date"))
        if value is None or date is None or _status(award) not in COUNTED:
            continue
        row = legal_maximum(config, date.year, law, buyer)
        limit = None if row is None else row.direct if kind == "direct" else row.invitation
        if row is not None and limit is not None and value > limit:
            return _flag("MX-DIRECT-OVER-MAX", ocid, compiled, [
                Evidence(f"/awards/{i}/value/amount", obj(award.get("value")).get("amount")),
                Evidence("/tender/procurementMethod", method),
            ], {"law": law, "year": date.year, "band": row.band, "maximum": limit, "kind": kind, "source": row.source,
                "status": row.status, "rationale": tender.get("procurementMethodRationale")},
                party_ids(award.get("suppliers")))
    return None


def amendment_raise(ocid: str, compiled: dict[str, Any], config: RulesConfig) -> Flag | None:
    """A contract worth more than its award by more than the legal share (LAASSP art. 52: 20%; LOPSRM art. 59: 25%)."""
    awards = {text(a.get("id")): (i, a) for i, a in dicts(compiled.get("awards"))}
    share = config.amendment_max_raise_works if _law(compiled, config) == "LOPSRM" else config.amendment_max_raise_goods
    for i, contract in dicts(compiled.get("contracts")):
        found = awards.get(text(contract.get("awardID")))
        if found is None or _status(contract) == "cancelled":
            continue
        j, award = found
        awarded, value = amount(award.get("value")), amount(contract.get("value"))
        if awarded and awarded > 0 and value is not None and value > awarded * (1 + share):
            evidence = [Evidence(f"/contracts/{i}/value/amount", obj(contract.get("value")).get("amount")),
                        Evidence(f"/awards/{j}/value/amount", obj(award.get("value")).get("amount"))]
            if isinstance(contract.get("amendments"), list):
                evidence.append(Evidence(f"/contracts/{i}/amendments", len(contract["amendments"])))
            return _flag("MX-AMENDMENT-RAISE", ocid, compiled, evidence,
                         {"raise": round(value / awarded - 1, 4), "maximum": share, "contract": contract.get("id")},
                         party_ids(contract.get("suppliers")) or party_ids(award.get("suppliers")))
    return None


def _signed(compiled: dict[str, Any]) -> list[tuple[int, dict[str, Any], datetime]]:
    return [(i, c, d) for i, c in dicts(compiled.get("contracts"))
            if (d := when(c.get("dateSigned"))) is not None and _status(c) != "cancelled"]


def signed_before_award(ocid: str, compiled: dict[str, Any], config: RulesConfig) -> Flag | None:
    """A contract signed before the date of the award it comes from."""
    awards = {text(a.get("id")): (i, a) for i, a in dicts(compiled.get("awards"))}
    for i, contract, signed in _signed(compiled):
        found = awards.get(text(contract.get("awardID")))
        awarded = when(found[1].get("date")) if found else None
        if found and awarded and (awarded - signed).total_seconds() > config.signed_before_tolerance_days * DAY:
            return _flag("MX-SIGNED-BEFORE-AWARD", ocid, compiled, [
                Evidence(f"/contracts/{i}/dateSigned", contract["dateSigned"]),
                Evidence(f"/awards/{found[0]}/date", found[1]["date"]),
            ], {"days_before": round((awarded - signed).total_seconds() / DAY, 2)})
    return None


def signed_before_close(ocid: str, compiled: dict[str, Any], config: RulesConfig) -> Flag | None:
    """A contract of a competitive procedure signed before its tender period closed."""
    tender = obj(compiled.get("tender"))
    end_text = obj(tender.get("tenderPeriod")).get("endDate")
    end = when(end_text)
    if end is None or tender.get("procurementMethod") in config.direct_methods:
        return None
    for i, contract, signed in _signed(compiled):
        if (end - signed).total_seconds() > config.signed_before_tolerance_days * DAY:
            return _flag("MX-SIGNED-BEFORE-CLOSE", ocid, compiled, [
                Evidence(f"/contracts/{i}/dateSigned", contract["dateSigned"]),
                Evidence("/tender/tenderPeriod/endDate", end_text),
            ], {"days_before": round((end - signed).total_seconds() / DAY, 2)})
    return None


def dated_items(compiled: dict[str, Any]) -> list[tuple[str, str, str]]:
    """``(item key, pointer, date)`` of the awards (their date) and contracts (dateSigned) that have an id."""
    out = []
    for section, date_field in (("awards", "date"), ("contracts", "dateSigned")):
        for i, item in dicts(compiled.get(section)):
            ident, date = text(item.get("id")), item.get(date_field)
            if ident is not None and isinstance(date, str) and when(date) is not None:
                out.append((f"{section}/{ident}", f"/{section}/{i}/{date_field}", date))
    return out


def late_publication(ocid: str, compiled: dict[str, Any], first_published: dict[str, str],
                     config: RulesConfig) -> Flag | None:
    """An award or a signed contract first published (``first_published``: item key -> the date of the release
    that first carried it) more than ``late_publication_days`` after it happened."""
    for key, pointer, date in dated_items(compiled):
        published = when(first_published.get(key))
        happened = when(date)
        if published is None or happened is None:
            continue
        days = (published - happened).total_seconds() / DAY
        if days > config.late_publication_days:
            return _flag("MX-LATE-PUBLICATION", ocid, compiled, [Evidence(pointer, date)],
                         {"item": key, "first_published": first_published[key], "days_late": round(days, 1),
                          "maximum_days": config.late_publication_days})
    return None


@dataclass(frozen=True, order=True)
class DirectAward:
    """One direct award of a buyer to a supplier: the history the repeated-awards rule keeps."""

    date: str
    buyer: str
    supplier: str
    ocid: str
    award: str
    pointer: str
    amount: float | None


def direct_awards(ocid: str, compiled: dict[str, Any], config: RulesConfig) -> list[DirectAward]:
    """The direct awards (counted statuses, with a readable date) of one process, one per supplier."""
    if obj(compiled.get("tender")).get("procurementMethod") not in config.direct_methods:
        return []
    buyer = buyer_id(compiled)
    if buyer is None:
        return []
    out = []
    for i, award in dicts(compiled.get("awards")):
        date = award.get("date") if when(award.get("date")) else None
        ident = text(award.get("id"))
        if date is None or ident is None or _status(award) not in COUNTED:
            continue
        for supplier in party_ids(award.get("suppliers")):
            out.append(DirectAward(date, buyer, supplier, ocid, ident, f"/awards/{i}", amount(award.get("value"))))
    return out


def repeated_direct_awards(awards: list[DirectAward], config: RulesConfig) -> list[Flag]:
    """Runs of at least ``repeated_min_awards`` direct awards by one buyer to one supplier within any window of
    ``repeated_window_days``: each run (overlapping qualifying windows merged) is one flag, keyed by its first award."""
    flags: list[Flag] = []
    by_pair: dict[tuple[str, str], list[DirectAward]] = {}
    for award in sorted(set(awards), key=lambda a: (when(a.date), a)):
        by_pair.setdefault((award.buyer, award.supplier), []).append(award)
    window, need = config.repeated_window_days * DAY, config.repeated_min_awards
    for (buyer, supplier), items in sorted(by_pair.items()):
        moments = [m.timestamp() for a in items if (m := when(a.date)) is not None]  # every date read before
        runs: list[list[int]] = []
        end = 0
        for i, start in enumerate(moments):
            while end < len(items) and moments[end] - start <= window:
                end += 1
            if end - i >= need:
                members = list(range(i, end))
                if runs and runs[-1][-1] >= i:
                    runs[-1] = sorted(set(runs[-1]) | set(members))
                else:
                    runs.append(members)
        for run in runs:
            chosen = [items[k] for k in run]
            first = chosen[0]
            flags.append(Flag(
                "MX-REPEATED-DIRECT", f"{buyer}|{supplier}|{first.ocid}|{first.award}", f"{buyer}|{supplier}",
                tuple(dict.fromkeys(a.ocid for a in chosen)),
                tuple(Evidence(f"{a.pointer}/date", a.date, a.ocid) for a in chosen),
                {"awards": len(chosen), "window_days": config.repeated_window_days,
                 "total_amount": sum(a.amount for a in chosen if a.amount is not None)},
                buyer, (supplier,)))
    return flags


PER_PROCESS = {"MX-DIRECT-OVER-MAX": direct_over_maximum, "MX-AMENDMENT-RAISE": amendment_raise,
               "MX-SIGNED-BEFORE-AWARD": signed_before_award, "MX-SIGNED-BEFORE-CLOSE": signed_before_close}
