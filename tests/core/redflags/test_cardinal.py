"""core.redflags.cardinal and population: each Cardinal indicator fires on data built to trigger it, stays quiet on
a near miss, points at the right fields, and agrees with Cardinal's documented examples (docs/examples/R/*.jsonl of
open-contracting/cardinal-rs, reproduced below as the documented inputs and outputs)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
import pytest

from core.redflags import cardinal, population
from core.redflags.config import RulesConfig

CONFIG = RulesConfig()
CARDINAL_ALL = replace(CONFIG, min_population=0)  # Cardinal has no minimum population


def lines(text: str) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in text.strip().splitlines()]


def pointers(flag: Any) -> list[str]:
    return [e.pointer for e in flag.evidence]


# -- R003 --------------------------------------------------------------------------------------------

def period(days: float, method: str | None = "open") -> dict[str, Any]:
    begin = datetime(2024, 3, 1, 10, tzinfo=timezone(timedelta(hours=-6)))
    start, end = begin.isoformat(), (begin + timedelta(days=days)).isoformat()
    tender: dict[str, Any] = {"tenderPeriod": {"startDate": start, "endDate": end}}
    if method:
        tender["procurementMethod"] = method
    return {"ocid": "F", "tender": tender}


def test_r003_fires_below_15_whole_days_and_points_at_the_period() -> None:
    """An open tender of 14 days is flagged with the period's dates as evidence; 15 days is not."""
    flag = cardinal.r003("F", period(14), CONFIG)
    assert flag is not None and flag.detail == {"days": 14, "threshold": 15}
    assert pointers(flag) == ["/tender/tenderPeriod/startDate", "/tender/tenderPeriod/endDate",
                              "/tender/procurementMethod"]
    assert cardinal.r003("F", period(15), CONFIG) is None


def test_r003_counts_whole_days_and_skips_other_methods() -> None:
    """14.9 days count as 14 (truncated, as chrono's num_days); a direct award is not an open procedure."""
    assert cardinal.r003("F", period(14.9), CONFIG) is not None
    assert cardinal.r003("F", period(3, "direct"), CONFIG) is None


def test_r003_agrees_with_cardinals_example() -> None:
    """Cardinal's example (a 1-day period, no procurement method) outputs nothing: the method is not open."""
    example = lines('{"ocid":"F","tender":{"tenderPeriod":{"startDate":"2020-08-03T18:00:00-05:00",'
                    '"endDate":"2020-08-04T18:00:00-05:00"}}}')[0]
    assert cardinal.r003("F", example, CONFIG) is None
    example["tender"]["procurementMethod"] = "open"
    assert cardinal.r003("F", example, CONFIG) is not None


# -- R018 --------------------------------------------------------------------------------------------

def test_r018_fires_on_one_tenderer_in_a_competitive_procedure() -> None:
    """Cardinal's example (open, numberOfTenderers 1) is flagged; two tenderers, or a direct award, are not."""
    example = lines('{"ocid":"F","tender":{"numberOfTenderers":1,"procurementMethod":"open"}}')[0]
    flag = cardinal.r018("F", example, CONFIG)
    assert flag is not None and pointers(flag) == ["/tender/numberOfTenderers", "/tender/procurementMethod"]
    assert cardinal.r018("F", {"tender": {"numberOfTenderers": 2, "procurementMethod": "open"}}, CONFIG) is None
    assert cardinal.r018("F", {"tender": {"numberOfTenderers": 1, "procurementMethod": "direct"}}, CONFIG) is None


# -- R028 --------------------------------------------------------------------------------------------

R028_EXAMPLE = ('{"ocid":"F","bids":{"details":[{"status":"valid","value":{"amount":1,"currency":"USD"},'
                '"tenderers":[{"id":"V"}]},{"status":"disqualified","value":{"amount":1,"currency":"USD"},'
                '"tenderers":[{"id":"D"}]}]}}')


def test_r028_agrees_with_cardinals_example() -> None:
    """Two tenderers bidding 1 USD: the process and both tenderers (D and V) are flagged, evidence on both bids."""
    flag = cardinal.r028("F", lines(R028_EXAMPLE)[0], CONFIG)
    assert flag is not None and flag.suppliers == ("D", "V")
    assert pointers(flag) == ["/bids/details/0/value/amount", "/bids/details/1/value/amount"]


def test_r028_stays_quiet_on_near_misses() -> None:
    """Other currency, another price, the same tenderer twice, or predetermined prices: no flag."""
    for change in ({"currency": "MXN"}, {"amount": 1.01}):
        release = lines(R028_EXAMPLE)[0]
        release["bids"]["details"][1]["value"].update(change)
        assert cardinal.r028("F", release, CONFIG) is None
    same = lines(R028_EXAMPLE)[0]
    same["bids"]["details"][1]["tenderers"] = [{"id": "V"}]
    assert cardinal.r028("F", same, CONFIG) is None
    fixed = lines(R028_EXAMPLE)[0]
    fixed["tender"] = {"procurementMethodDetails": "Catálogo"}
    assert cardinal.r028("F", fixed, replace(CONFIG, no_price_comparison_procurement_methods=("Catálogo",))) is None


# -- R030 --------------------------------------------------------------------------------------------

R030_EXAMPLE = ('{"ocid":"F","bids":{"details":[{"status":"valid","date":"2000-04-01T00:00:00Z",'
                '"tenderers":[{"id":"W"}]}]},"tender":{"tenderPeriod":{"endDate":"2000-03-15T00:00:00Z"}},'
                '"awards":[{"status":"active","suppliers":[{"id":"W"}]}]}')


def test_r030_agrees_with_cardinals_example_and_points_at_the_dates() -> None:
    """W's valid bid of April 1 won after the March 15 deadline: flagged, with the bid date and the deadline."""
    flag = cardinal.r030("F", lines(R030_EXAMPLE)[0], CONFIG)
    assert flag is not None and pointers(flag) == ["/bids/details/0/date", "/tender/tenderPeriod/endDate"]


def test_r030_stays_quiet_on_a_bid_in_time_or_a_losing_late_bid() -> None:
    """A bid on the deadline itself, or a late bid from someone who did not win, is no flag."""
    on_time = lines(R030_EXAMPLE)[0]
    on_time["bids"]["details"][0]["date"] = "2000-03-15T00:00:00Z"
    assert cardinal.r030("F", on_time, CONFIG) is None
    lost = lines(R030_EXAMPLE)[0]
    lost["awards"][0]["suppliers"] = [{"id": "X"}]
    assert cardinal.r030("F", lost, CONFIG) is None


# -- R035 --------------------------------------------------------------------------------------------

R035_EXAMPLE = ('{"ocid":"F","bids":{"details":[{"status":"disqualified","tenderers":[{"id":"D"}]},'
                '{"status":"valid","tenderers":[{"id":"V"}]}]},"awards":[{"status":"active","suppliers":[{"id":"V"}]}]}')


def test_r035_agrees_with_cardinals_example() -> None:
    """D disqualified, V the only valid tenderer and the winner: flagged (1 tenderer disqualified)."""
    flag = cardinal.r035("F", lines(R035_EXAMPLE)[0], CONFIG)
    assert flag is not None and flag.detail["disqualified_tenderers"] == 1
    assert pointers(flag) == ["/bids/details/0/status", "/awards/0/status"]


def test_r035_stays_quiet_with_a_pending_award_or_a_second_valid_tenderer() -> None:
    """A pending award makes results unstable (excluded); a second valid tenderer means real competition."""
    pending = lines(R035_EXAMPLE)[0]
    pending["awards"].append({"status": "pending", "suppliers": [{"id": "V"}]})
    assert cardinal.r035("F", pending, CONFIG) is None
    second = lines(R035_EXAMPLE)[0]
    second["bids"]["details"].append({"status": "valid", "tenderers": [{"id": "X"}]})
    assert cardinal.r035("F", second, CONFIG) is None
    assert cardinal.r035("F", lines(R035_EXAMPLE)[0], replace(CONFIG, r035_threshold=2)) is None


# -- R036 --------------------------------------------------------------------------------------------

R036_EXAMPLE = ('{"ocid":"F","bids":{"details":[{"status":"disqualified","value":{"amount":1,"currency":"USD"}},'
                '{"status":"valid","value":{"amount":2,"currency":"USD"}}]},"awards":[{"status":"active"}]}')


def test_r036_agrees_with_cardinals_example() -> None:
    """The lowest bid (1 USD) was disqualified and an award is active: flagged, pointing at that bid."""
    flag = cardinal.r036("F", lines(R036_EXAMPLE)[0], CONFIG)
    assert flag is not None and pointers(flag) == ["/bids/details/0/value/amount", "/bids/details/0/status"]


def test_r036_stays_quiet_when_the_lowest_bid_is_valid_or_nothing_is_awarded() -> None:
    """Disqualifying a higher bid is no flag; neither is a process without an active award."""
    higher = lines(R036_EXAMPLE)[0]
    higher["bids"]["details"][0]["value"]["amount"] = 3
    assert cardinal.r036("F", higher, CONFIG) is None
    unawarded = lines(R036_EXAMPLE)[0]
    unawarded["awards"][0]["status"] = "pending"
    assert cardinal.r036("F", unawarded, CONFIG) is None


# -- R024 / R058 (population) ------------------------------------------------------------------------

def bidding(ocid: str, win: float, lose: float) -> dict[str, Any]:
    return {"ocid": ocid, "bids": {"details": [
        {"status": "valid", "tenderers": [{"id": "W"}], "value": {"amount": win, "currency": "USD"}},
        {"status": "valid", "tenderers": [{"id": "L"}], "value": {"amount": lose, "currency": "USD"}}]},
        "awards": [{"status": "active", "suppliers": [{"id": "W"}]}]}


def ratio_flags(rule: str, releases: list[dict[str, Any]], config: RulesConfig) -> dict[str, float]:
    rows = {r["ocid"]: row for r in releases if (row := cardinal.bid_ratio(r, config)) is not None}
    ordered = sorted(row["ratio"] for row in rows.values())
    fences = population.ratio_fences(len(ordered), ordered.__getitem__, config)
    assert fences is not None
    if rule == "R024":
        return {o: r["ratio"] for o, r in rows.items() if r["ratio"] <= fences["lower_fence"]}
    return {o: r["ratio"] for o, r in rows.items() if fences["upper_fence"] > 0 and r["ratio"] >= fences["upper_fence"]}


def test_r024_agrees_with_cardinals_example() -> None:
    """Cardinal's R024 example: F (1 vs 2) among four processes at 1 vs 100 is flagged with ratio 1.0, alone."""
    releases = [bidding("F", 1, 2)] + [bidding(str(i), 1, 100) for i in range(1, 5)]
    assert ratio_flags("R024", releases, CARDINAL_ALL) == {"F": 1.0}


def test_r058_agrees_with_cardinals_example() -> None:
    """Cardinal's R058 example: F (1 vs 100) among four processes at 1 vs 2 is flagged with ratio 99.0, alone."""
    releases = [bidding("F", 1, 100)] + [bidding(str(i), 1, 2) for i in range(1, 5)]
    assert ratio_flags("R058", releases, CARDINAL_ALL) == {"F": 99.0}


def test_bid_ratio_excludes_a_winner_that_was_not_the_lowest_bid() -> None:
    """Price-only award criteria are assumed: a winner above the lowest other bid gives no ratio (near miss)."""
    assert cardinal.bid_ratio(bidding("F", 10, 9), CONFIG) is None
    row = cardinal.bid_ratio(bidding("F", 10, 11), CONFIG)
    assert row is not None and row["pointers"] == ["/bids/details/0/value/amount", "/bids/details/1/value/amount"]


def test_quantile_is_statrs_r8() -> None:
    """The quantiles equal statrs' own test values (test_quantile_short in statrs' order_statistics)."""
    data = sorted([-1.0, 5.0, 0.0, -3.0, 10.0, -0.5, 4.0, 0.2, 1.0, 6.0])

    def q(tau: float) -> float:
        return population.quantile(len(data), tau, data.__getitem__)

    assert q(0.0) == -3.0 and q(1.0) == 10.0 and q(0.7) == 137.0 / 30.0
    assert q(0.5) == pytest.approx(3 / 5) and q(0.2) == pytest.approx(-4 / 5)
    assert q(0.52) == pytest.approx(287 / 375) and q(0.325) == pytest.approx(-37 / 240)
    assert q(0.01) == -3.0 and q(0.99) == 10.0


# -- R038 (population) -------------------------------------------------------------------------------

R038_EXAMPLE = """
{"ocid":"0","bids":{"details":[{"status":"valid","tenderers":[{"id":"W"}]},{"status":"disqualified","tenderers":[{"id":"D"}]}]},"buyer":{"id":"B"}}
{"ocid":"1","bids":{"details":[{"status":"valid","tenderers":[{"id":"W"}]}]},"buyer":{"id":"1"}}
{"ocid":"2","bids":{"details":[{"status":"valid","tenderers":[{"id":"W"}]}]},"buyer":{"id":"2"}}
{"ocid":"3","bids":{"details":[{"status":"valid","tenderers":[{"id":"W"}]}]},"buyer":{"id":"3"}}
{"ocid":"4","bids":{"details":[{"status":"valid","tenderers":[{"id":"W"}]}]},"buyer":{"id":"4"}}
"""


def totals(releases: list[dict[str, Any]]) -> list[tuple[str, str, int, int]]:
    sums: dict[tuple[str, str], list[int]] = {}
    for release in releases:
        for kind, ident, d, n in cardinal.bid_counts(release):
            pair = sums.setdefault((kind, ident), [0, 0])
            pair[0] += d
            pair[1] += n
    return [(k, i, d, n) for (k, i), (d, n) in sums.items()]


def test_r038_agrees_with_cardinals_example() -> None:
    """Cardinal's R038 example flags buyer B with ratio 0.5 and nothing else (tenderer W's fence is 0: skipped)."""
    flags = population.r038_flags(totals(lines(R038_EXAMPLE)), CARDINAL_ALL)
    assert [(f.key, f.detail["ratio"]) for f in flags] == [("buyer|B", 0.5)]


def test_r038_stays_quiet_below_the_minimum_of_submitted_bids() -> None:
    """With three submitted bids needed per buyer, B (two bids) is left out and nothing is flagged."""
    assert population.r038_flags(totals(lines(R038_EXAMPLE)),
                                 replace(CARDINAL_ALL, r038_minimum_contracting_processes=3)) == []
