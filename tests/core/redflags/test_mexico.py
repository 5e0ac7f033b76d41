"""core.redflags.mexico and config: each Mexican rule fires on data built to trigger it, stays quiet on a near miss,
and its evidence points at the right fields; the rules file is read strictly."""

from __future__ import annotations

import itertools
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from consumers.redflags_batch import compile_all
from core.exceptions import ConfigurationError
from core.merge import RecordMerger
from core.redflags import mexico
from core.redflags.config import MaxAmount, RulesConfig, load_config, parse_config
from core.redflags.rules import RULES, process_flags
from core.schema import OcdsSchema
from producers.simulator import simulate

REPO = Path(__file__).resolve().parents[3]
TABLE = (MaxAmount(2024, "LAASSP", 1, 300_000, 1_000_000, "test row"),
         MaxAmount(2024, "LAASSP", 2, 500_000, 2_000_000, "test row"))
CONFIG = replace(RulesConfig(), max_amounts=TABLE)


def direct(amount: Any, method: str = "direct", date: str = "2024-05-01T00:00:00-06:00",
           buyer: str = "UC-1", supplier: str = "S-1", ocid: str = "ocds-1") -> dict[str, Any]:
    return {"ocid": ocid, "buyer": {"id": buyer}, "tender": {"procurementMethod": method},
            "awards": [{"id": "a1", "date": date, "value": {"amount": amount, "currency": "MXN"},
                        "suppliers": [{"id": supplier}]}]}


def test_direct_award_above_the_largest_band_is_flagged_with_its_amount() -> None:
    """An unbanded buyer is held to the largest band's maximum (500,000): 500,001 fires, 500,000 does not."""
    flag = mexico.direct_over_maximum("ocds-1", direct(500_001), CONFIG)
    assert flag is not None
    assert [e.pointer for e in flag.evidence] == ["/awards/0/value/amount", "/tender/procurementMethod"]
    assert flag.detail["maximum"] == 500_000 and flag.detail["band"] == 2 and flag.suppliers == ("S-1",)
    assert mexico.direct_over_maximum("ocds-1", direct(500_000), CONFIG) is None


def test_direct_award_uses_the_buyers_band_the_year_and_the_invitation_column() -> None:
    """A band-1 buyer is flagged above 300,000; invitations use their own maximum; other years have no table."""
    banded = replace(CONFIG, buyer_bands={"UC-1": 1})
    assert mexico.direct_over_maximum("ocds-1", direct("300,001.00"), banded) is not None
    assert mexico.direct_over_maximum("ocds-1", direct(1_500_000, "selective"), banded) is not None
    assert mexico.direct_over_maximum("ocds-1", direct(900_000, "selective"), banded) is None
    assert mexico.direct_over_maximum("ocds-1", direct(9e9, date="2019-01-01T00:00:00Z"), CONFIG) is None
    assert mexico.direct_over_maximum("ocds-1", direct(9e9, method="open"), CONFIG) is None


SHIPPED = load_config(REPO / "config" / "redflags.toml")


def test_the_shipped_table_covers_2017_on_for_both_laws_and_every_row_says_its_status() -> None:
    """Every year from 2017 has a row per law and band (12 bands), each with its status and source; maximums grow
    with the band, and invitations allow more than direct awards."""
    for year in range(2017, 2027):
        for law in ("LAASSP", "LOPSRM"):
            rows = sorted((r for r in SHIPPED.max_amounts if r.covers(year) and r.law == law), key=lambda r: r.band)
            assert [r.band for r in rows] == list(range(1, 13))
            assert all(r.status in ("verified", "unverified") and r.source for r in rows)
            assert all(a.direct < b.direct and a.invitation < b.invitation for a, b in itertools.pairwise(rows))
            assert all(r.direct < r.invitation for r in rows)


def test_the_shipped_table_fires_above_the_buyers_band_and_stays_quiet_at_its_maximum() -> None:
    """With the shipped table: an unbanded buyer is held to the largest band; a buyer given band 1 (in
    ``buyer_bands``, or by ``default_band``) to band 1; works use LOPSRM; the alert names the row's status."""
    top = mexico.legal_maximum(SHIPPED, 2020, "LAASSP", "UC-1")
    assert top is not None and top.band == 12
    release = direct(top.direct + 0.01, date="2020-03-01T00:00:00-06:00")
    flag = mexico.direct_over_maximum("ocds-1", release, SHIPPED)
    assert flag is not None and flag.detail["maximum"] == top.direct and flag.detail["status"] == "unverified"
    assert flag.detail["year"] == 2020 and flag.evidence[0].pointer == "/awards/0/value/amount"
    assert mexico.direct_over_maximum("ocds-1", direct(top.direct, date="2020-03-01T00:00:00-06:00"), SHIPPED) is None
    small = mexico.legal_maximum(SHIPPED, 2020, "LAASSP", None)
    band1 = [r for r in SHIPPED.max_amounts if r.covers(2020) and r.law == "LAASSP" and r.band == 1][0]
    for config in (replace(SHIPPED, buyer_bands={"UC-1": 1}), replace(SHIPPED, default_band=1)):
        assert mexico.direct_over_maximum("ocds-1", direct(band1.direct + 1, date="2020-03-01T00:00:00Z"),
                                          config) is not None
        assert mexico.direct_over_maximum("ocds-1", direct(band1.direct, date="2020-03-01T00:00:00Z"), config) is None
    assert small == top  # no buyer: the default band (0: the largest)
    works = direct(top.direct + 1, date="2020-03-01T00:00:00Z")
    works["tender"]["mainProcurementCategory"] = "works"
    assert mexico.direct_over_maximum("ocds-1", works, SHIPPED) is None  # LOPSRM's maximum is higher
    works_top = mexico.legal_maximum(SHIPPED, 2020, "LOPSRM", "UC-1")
    assert works_top is not None and works_top.direct > top.direct


def test_the_simulator_makes_direct_awards_above_the_shipped_maximum(schema: OcdsSchema) -> None:
    """Some simulated direct awards exceed the shipped table's largest band, so the demo shows the rule; most do
    not."""
    compiled, _, _ = compile_all((r.release for r in simulate(seed=3, processes=600)),
                                 RecordMerger(schema, versioned=False))
    fired = [o for o, c in compiled.items() if mexico.direct_over_maximum(o, c, SHIPPED) is not None]
    directs = [o for o, c in compiled.items() if c.get("tender", {}).get("procurementMethod") == "direct"]
    assert 0 < len(fired) < len(directs) / 2


def contract(award: float, value: float, signed: str = "2024-05-10T00:00:00Z", awarded: str = "2024-05-01T00:00:00Z",
             close: str | None = None, category: str = "goods") -> dict[str, Any]:
    tender: dict[str, Any] = {"procurementMethod": "open", "mainProcurementCategory": category}
    if close:
        tender["tenderPeriod"] = {"endDate": close}
    return {"ocid": "ocds-2", "buyer": {"id": "UC-1"}, "tender": tender,
            "awards": [{"id": "a1", "date": awarded, "value": {"amount": award}}],
            "contracts": [{"id": "c1", "awardID": "a1", "dateSigned": signed, "value": {"amount": value},
                           "amendments": [{"id": "m1"}]}]}


def test_amendment_raise_uses_20_percent_for_goods_and_25_for_works() -> None:
    """121 over an award of 100 is flagged for goods; 120 is not; works allow up to 125."""
    flag = mexico.amendment_raise("ocds-2", contract(100, 121), CONFIG)
    assert flag is not None and [e.pointer for e in flag.evidence] == [
        "/contracts/0/value/amount", "/awards/0/value/amount", "/contracts/0/amendments"]
    assert mexico.amendment_raise("ocds-2", contract(100, 120), CONFIG) is None
    assert mexico.amendment_raise("ocds-2", contract(100, 124, category="works"), CONFIG) is None
    assert mexico.amendment_raise("ocds-2", contract(100, 126, category="works"), CONFIG) is not None


def test_contract_signed_before_its_award_or_the_tender_close() -> None:
    """Signed a day before the award (or the close) fires with both dates; signed the same instant does not."""
    early = contract(100, 100, signed="2024-04-30T00:00:00Z")
    flag = mexico.signed_before_award("ocds-2", early, CONFIG)
    assert flag is not None and [e.pointer for e in flag.evidence] == ["/contracts/0/dateSigned", "/awards/0/date"]
    assert mexico.signed_before_award("ocds-2", contract(100, 100, signed="2024-05-01T00:00:00Z"), CONFIG) is None
    closing = contract(100, 100, close="2024-05-11T00:00:00Z")
    flag = mexico.signed_before_close("ocds-2", closing, CONFIG)
    assert flag is not None and [e.pointer for e in flag.evidence] == [
        "/contracts/0/dateSigned", "/tender/tenderPeriod/endDate"]
    assert mexico.signed_before_close("ocds-2", contract(100, 100, close="2024-05-10T00:00:00Z"), CONFIG) is None


def test_late_publication_compares_first_publication_with_the_event() -> None:
    """A contract first published 91 days after it was signed fires; 90 days does not; unknown items never fire."""
    release = contract(100, 100, signed="2024-01-01T00:00:00Z")
    flag = mexico.late_publication("ocds-2", release, {"contracts/c1": "2024-04-01T00:00:00Z"}, CONFIG)
    assert flag is not None and [e.pointer for e in flag.evidence] == ["/contracts/0/dateSigned"]
    assert mexico.late_publication("ocds-2", release, {"contracts/c1": "2024-03-31T00:00:00Z"}, CONFIG) is None
    assert mexico.late_publication("ocds-2", release, {}, CONFIG) is None


def test_repeated_direct_awards_within_the_window_form_one_run() -> None:
    """Three direct awards to one supplier within 90 days are one flag keyed by the first; spread over 91+ days,
    or to different suppliers, they are not."""
    dates = ["2024-01-01T00:00:00Z", "2024-02-01T00:00:00Z", "2024-03-31T00:00:00Z"]
    awards = [a for i, d in enumerate(dates)
              for a in mexico.direct_awards(f"ocds-{i}", direct(1, date=d, ocid=f"ocds-{i}"), CONFIG)]
    flags = mexico.repeated_direct_awards(awards, CONFIG)
    assert [f.key for f in flags] == ["UC-1|S-1|ocds-0|a1"] and flags[0].ocids == ("ocds-0", "ocds-1", "ocds-2")
    assert [(e.ocid, e.pointer) for e in flags[0].evidence] == [(f"ocds-{i}", "/awards/0/date") for i in range(3)]
    late = awards[:2] + mexico.direct_awards("ocds-9", direct(1, date="2024-04-01T00:00:01Z", ocid="ocds-9"), CONFIG)
    assert mexico.repeated_direct_awards(late, CONFIG) == []
    other = awards[:2] + mexico.direct_awards("ocds-8", direct(1, date=dates[2], supplier="S-2", ocid="ocds-8"), CONFIG)
    assert mexico.repeated_direct_awards(other, CONFIG) == []


def test_the_shipped_rules_file_parses_and_names_every_rule_in_the_docs() -> None:
    """config/redflags.toml reads into the defaults, and docs/redflags.md lists every rule code with its source."""
    config = load_config(REPO / "config" / "redflags.toml")
    assert replace(config, max_amounts=()) == RulesConfig() and len(config.max_amounts) == 24
    docs = (REPO / "docs" / "redflags.md").read_text(encoding="utf-8")
    assert all(f"`{code}`" in docs for code in RULES)


def test_the_rules_file_refuses_unknown_keys_and_wrong_types() -> None:
    """A typo or a string where a number belongs fails with the key's name."""
    with pytest.raises(ConfigurationError, match="rules.r003_treshold"):
        parse_config(tomllib.loads("[rules]\nr003_treshold = 3"))
    with pytest.raises(ConfigurationError, match="rules.r003_threshold"):
        parse_config(tomllib.loads("[rules]\nr003_threshold = 'x'"))


def test_process_flags_runs_every_per_process_rule() -> None:
    """One release breaking several rules gets one flag per rule, each keyed by its ocid."""
    release = contract(100, 130, signed="2024-04-01T00:00:00Z", close="2024-05-11T00:00:00Z")
    codes = {f.rule for f in process_flags("ocds-2", release, CONFIG, {"contracts/c1": "2024-12-01T00:00:00Z"})}
    assert codes == {"MX-AMENDMENT-RAISE", "MX-SIGNED-BEFORE-AWARD", "MX-SIGNED-BEFORE-CLOSE", "MX-LATE-PUBLICATION"}
