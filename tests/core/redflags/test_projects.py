"""core.redflags.projects: the project cost overrun fires on an OC4IDS project built to trigger it, stays quiet on a
near miss, and its evidence points at the budget and the amounts it added up."""

from __future__ import annotations

from typing import Any

from core.redflags.config import RulesConfig
from core.redflags.projects import RULE, cost_overrun

CONFIG = RulesConfig()  # project_cost_overrun_share = 0.25


def project(budget: Any, *values: tuple[str, Any], currency: str = "MXN") -> dict[str, Any]:
    """An OC4IDS project with a budget and one contracting process per ``(summary field, amount)``."""
    return {"id": "oc4ids-x-1", "publicAuthority": {"id": "UC-9", "name": "Obras"},
            "budget": {"amount": {"amount": budget, "currency": "MXN"}},
            "contractingProcesses": [{"id": f"ocds-{i}", "summary": {name: {"amount": amount, "currency": currency}}}
                                     for i, (name, amount) in enumerate(values)]}


def test_contracts_above_the_budget_by_more_than_the_share_fire_with_each_amount_as_evidence() -> None:
    """Budget 100, contracts 60 + 66 = 126 (> 125) fires; the evidence is the budget and both contract values."""
    flag = cost_overrun("oc4ids-x-1", project(100, ("contractValue", 60), ("contractValue", 66)), CONFIG)
    assert flag is not None and flag.rule == RULE and flag.key == "oc4ids-x-1" and flag.buyer == "UC-9"
    assert [(e.pointer, e.value) for e in flag.evidence] == [
        ("/budget/amount/amount", 100), ("/contractingProcesses/0/summary/contractValue/amount", 60),
        ("/contractingProcesses/1/summary/contractValue/amount", 66)]
    assert flag.detail == {"project": "oc4ids-x-1", "budget": 100.0, "cost": 126.0, "currency": "MXN",
                           "overrun": 0.26, "maximum": 0.25}


def test_a_near_miss_an_other_currency_or_no_budget_stays_quiet() -> None:
    """125 on a budget of 100 is within the share; amounts in USD are not added to an MXN budget; no budget, no
    flag."""
    assert cost_overrun("p", project(100, ("contractValue", 60), ("contractValue", 65)), CONFIG) is None
    assert cost_overrun("p", project(100, ("contractValue", 900), currency="USD"), CONFIG) is None
    assert cost_overrun("p", project(None, ("contractValue", 900)), CONFIG) is None


def test_final_values_count_before_contract_values_and_completion_before_both() -> None:
    """A finished process counts its finalValue; the project's completion.finalValue, when given, is the cost."""
    both = project(100, ("contractValue", 100))
    both["contractingProcesses"][0]["summary"]["finalValue"] = {"amount": 130, "currency": "MXN"}
    flag = cost_overrun("p", both, CONFIG)
    assert flag is not None and flag.evidence[1].pointer == "/contractingProcesses/0/summary/finalValue/amount"
    done = project(100, ("contractValue", 500))
    done["completion"] = {"finalValue": {"amount": "110.00", "currency": "MXN"}}
    assert cost_overrun("p", done, CONFIG) is None
    done["completion"]["finalValue"]["amount"] = 140
    flag = cost_overrun("p", done, CONFIG)
    assert flag is not None and [e.pointer for e in flag.evidence] == [
        "/budget/amount/amount", "/completion/finalValue/amount"]
