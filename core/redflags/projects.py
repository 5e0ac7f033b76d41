"""The project cost overrun of an infrastructure project (OC4IDS): what its contracting processes cost, or its
final value at completion, above its budget by more than the share of the rules file.

The evidence points into the OC4IDS project record (``/projects/{id}``), not into a compiled release: the budget
(``/budget/amount/amount``) and either ``/completion/finalValue/amount`` or each contracting process's
``/contractingProcesses/{i}/summary/finalValue/amount`` (when the contract is finished) or ``.../contractValue/amount``.
Amounts in another currency than the budget's are left out (no conversion); a project without a readable budget or
cost never flags.
"""

from __future__ import annotations

from typing import Any

from core.redflags.config import RulesConfig
from core.redflags.types import Evidence, Flag, amount, dicts, obj

RULE = "PROJECT-COST-OVERRUN"


def _same_currency(value: Any, currency: str | None) -> bool:
    other = obj(value).get("currency")
    return currency is None or other is None or other == currency


def project_cost(project: dict[str, Any], currency: str | None) -> tuple[float, list[Evidence]] | None:
    """The project's cost: its completion's final value, else the sum over its contracting processes of each
    one's final value (else its contract value), in ``currency``; with the evidence of each amount used."""
    final = obj(obj(project.get("completion")).get("finalValue"))
    if (value := amount(final)) is not None and _same_currency(final, currency):
        return value, [Evidence("/completion/finalValue/amount", final.get("amount"))]
    total, evidence = 0.0, []
    for i, process in dicts(project.get("contractingProcesses")):
        summary = obj(process.get("summary"))
        for name in ("finalValue", "contractValue"):
            field = obj(summary.get(name))
            if (value := amount(field)) is not None and _same_currency(field, currency):
                total += value
                evidence.append(Evidence(f"/contractingProcesses/{i}/summary/{name}/amount", field.get("amount")))
                break
    return (total, evidence) if evidence else None


def cost_overrun(pid: str, project: dict[str, Any], config: RulesConfig) -> Flag | None:
    """The project's cost above ``budget × (1 + project_cost_overrun_share)``."""
    budget = obj(obj(project.get("budget")).get("amount"))
    planned = amount(budget)
    if planned is None or planned <= 0:
        return None
    currency = budget.get("currency") if isinstance(budget.get("currency"), str) else None
    found = project_cost(project, currency)
    if found is None or found[0] <= planned * (1 + config.project_cost_overrun_share):
        return None
    cost, evidence = found
    authority = obj(project.get("publicAuthority")).get("id")
    return Flag(RULE, pid, pid, (pid,), (Evidence("/budget/amount/amount", budget.get("amount")), *evidence),
                {"project": pid, "budget": planned, "cost": round(cost, 2), "currency": currency,
                 "overrun": round(cost / planned - 1, 4), "maximum": config.project_cost_overrun_share},
                authority if isinstance(authority, str) else None)
