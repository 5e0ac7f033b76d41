"""Population indicators: a process or a party compared with all others through quartile fences.

Cardinal computes quartiles with statrs (``Data::lower_quartile`` / ``upper_quartile``), the R-8 estimator
(median-unbiased: h = (n + 1/3) tau + 1/3, interpolated between the order statistics around h). The functions
here reproduce it exactly from the k-th smallest values, so a store can answer them with two indexed reads per
quartile (``core.store.alerts``) instead of loading the population: the quartiles, hence the fences, are exact
at every change, never a sketch.

- R024 (price close to winning bid): a process whose ratio (second-lowest valid bid - winning bid) / winning bid
  is at or below Q1 - 1.5 IQR of all processes' ratios (in the same currency).
- R058 (heavily discounted bid): that ratio at or above Q3 + 1.5 IQR, when that fence is above 0.
- R038 (excessive disqualified bids): a buyer's, procuring entity's or tenderer's disqualified / submitted bids at
  or above Q3 + 1.5 IQR of its kind, when that fence is above 0; parties with too few submitted bids are left out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from core.redflags.config import RulesConfig
from core.redflags.types import Evidence, Flag


def quantile(n: int, tau: float, kth: Callable[[int], float]) -> float:
    """The R-8 quantile ``tau`` of ``n`` values, given ``kth(k)``, the k-th smallest (from 0), as statrs computes it."""
    if n <= 0:
        raise ValueError("the quantile of no values")
    h = (n + 1 / 3) * tau + 1 / 3
    hf = int(h)
    if hf <= 0 or tau == 0:
        return kth(0)
    if hf >= n or tau == 1:
        return kth(n - 1)
    a, b = kth(hf - 1), kth(hf)
    return a + (h - hf) * (b - a)


def quartiles(values: Sequence[float]) -> tuple[float, float]:
    """(Q1, Q3) of ``values`` (R-8)."""
    ordered = sorted(values)
    return quantile(len(ordered), 0.25, ordered.__getitem__), quantile(len(ordered), 0.75, ordered.__getitem__)


def lower_fence(q1: float, q3: float) -> float:
    return q1 - 1.5 * (q3 - q1)


def upper_fence(q1: float, q3: float) -> float:
    return q3 + 1.5 * (q3 - q1)


def ratio_flag(rule: str, ocid: str, row: dict[str, Any], fences: dict[str, float]) -> Flag:
    """The R024 or R058 flag of one process, from its stored ratio row (``core.redflags.cardinal.bid_ratio``)."""
    evidence = tuple(Evidence(p, a) for p, a in zip(row["pointers"], row["amounts"], strict=True))
    detail = {"ratio": row["ratio"], "currency": row["currency"], "winner": row["winner"],
              "runner_up": row["runner_up"], **{k: round(v, 6) for k, v in fences.items()}}
    suppliers = (row["winner"], row["runner_up"]) if rule == "R024" else (row["winner"],)
    return Flag(rule, ocid, f"{rule}|{row['currency']}", (ocid,), evidence, detail, row.get("buyer"),
                tuple(sorted(set(suppliers))))


def ratio_fences(n: int, kth: Callable[[int], float], config: RulesConfig) -> dict[str, float] | None:
    """Q1, Q3 and both fences of the bid ratios (fixed fences from the rules file win); None below the minimum."""
    if n == 0 or n < config.min_population:
        return None
    q1, q3 = quantile(n, 0.25, kth), quantile(n, 0.75, kth)
    lower = config.r024_threshold if config.r024_threshold is not None else lower_fence(q1, q3)
    upper = config.r058_threshold if config.r058_threshold is not None else upper_fence(q1, q3)
    return {"q1": q1, "q3": q3, "lower_fence": lower, "upper_fence": upper}


def r038_flags(groups: Sequence[tuple[str, str, int, int]], config: RulesConfig) -> list[Flag]:
    """R038 over ``(kind, id, disqualified, submitted)`` totals of every buyer, procuring entity and tenderer.

    As Cardinal: a party counts when its submitted bids reach the minimum (``minimum_submitted_bids`` for tenderers,
    ``minimum_contracting_processes`` for buyers and procuring entities, compared with the submitted bids too);
    flagged at or above the upper fence of its kind, only when that fence is above 0.
    """
    flags: list[Flag] = []
    for kind in ("buyer", "procuringEntity", "tenderer"):
        minimum = (config.r038_minimum_submitted_bids if kind == "tenderer"
                   else config.r038_minimum_contracting_processes)
        ratios = {ident: (d / n, d, n) for k, ident, d, n in groups if k == kind and n >= minimum and n > 0}
        if not ratios or len(ratios) < config.min_population:
            continue
        q1, q3 = quartiles([r for r, _, _ in ratios.values()])
        fence = config.r038_threshold if config.r038_threshold is not None else upper_fence(q1, q3)
        if fence <= 0:
            continue
        for ident, (ratio, disqualified, submitted) in sorted(ratios.items()):
            if ratio >= fence:
                flags.append(Flag("R038", f"{kind}|{ident}", f"R038|{kind}", (), (), {
                    "kind": kind, "id": ident, "ratio": ratio, "disqualified": disqualified, "submitted": submitted,
                    "q1": q1, "q3": q3, "upper_fence": fence},
                    ident if kind == "buyer" else None, (ident,) if kind == "tenderer" else ()))
    return flags
