"""The catalogue of rules (code, titles, kind, source) and the evaluation of one process's own rules."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.redflags import cardinal, mexico
from core.redflags.config import RulesConfig
from core.redflags.types import Flag

CARDINAL = "OCP Cardinal (open-contracting/cardinal-rs), docs/cli/indicators/R/"


@dataclass(frozen=True)
class Rule:
    code: str
    spanish: str
    english: str
    kind: str  # "process" (one compiled release), "history" (several processes), "population" (quartile fences),
    # "project" (one OC4IDS project)
    source: str


RULES: dict[str, Rule] = {r.code: r for r in (
    Rule("R003", "Plazo corto para presentar ofertas", "Short submission period", "process", CARDINAL + "003.md"),
    Rule("R018", "Una sola oferta recibida", "Single bid received", "process", CARDINAL + "018.md"),
    Rule("R028", "Ofertas con precios idénticos", "Identical bid prices", "process", CARDINAL + "028.md"),
    Rule("R030", "Ganó una oferta tardía", "Late bid won", "process", CARDINAL + "030.md"),
    Rule("R035", "Todas las ofertas descalificadas salvo la ganadora", "All except winning bid disqualified",
         "process", CARDINAL + "035.md"),
    Rule("R036", "Oferta más baja descalificada", "Lowest bid disqualified", "process", CARDINAL + "036.md"),
    Rule("R024", "Precio cercano a la oferta ganadora", "Price close to winning bid", "population",
         CARDINAL + "024.md"),
    Rule("R058", "Oferta con descuento excesivo", "Heavily discounted bid", "population", CARDINAL + "058.md"),
    Rule("R038", "Exceso de ofertas descalificadas", "Excessive disqualified bids", "population",
         CARDINAL + "038.md"),
    Rule("MX-DIRECT-OVER-MAX", "Adjudicación directa o invitación sobre el monto máximo",
         "Direct award or invitation above the legal maximum", "process",
         "LAASSP art. 42 and LOPSRM art. 43; maximum amounts in the annex of each year's PEF decree"),
    Rule("MX-REPEATED-DIRECT", "Adjudicaciones directas repetidas al mismo proveedor",
         "Repeated direct awards to one supplier", "history",
         "LAASSP art. 42 (no splitting of operations to stay below the maximums); OCP red-flag guidance"),
    Rule("MX-AMENDMENT-RAISE", "Modificación que eleva el monto del contrato", "Amendment raising the contract value",
         "process", "LAASSP art. 52 (20%); LOPSRM art. 59 (25%)"),
    Rule("MX-SIGNED-BEFORE-AWARD", "Contrato firmado antes de la adjudicación", "Contract signed before the award",
         "process", "OCP red-flag guidance (dates out of order)"),
    Rule("MX-SIGNED-BEFORE-CLOSE", "Contrato firmado antes del cierre de la licitación",
         "Contract signed before the tender closed", "process", "OCP red-flag guidance (dates out of order)"),
    Rule("PROJECT-COST-OVERRUN", "Sobrecosto del proyecto de infraestructura", "Infrastructure project cost overrun",
         "project", "CoST Infrastructure Data Standard and OC4IDS (budget vs contract and final values); "
         "threshold: LOPSRM art. 59 (25%)"),
    Rule("MX-LATE-PUBLICATION", "Publicación tardía", "Late publication", "process",
         "LGTAIP art. 62 (transparency obligations updated at least every three months); OCP guidance"),
)}

PER_PROCESS = {**cardinal.PER_PROCESS, **mexico.PER_PROCESS}
PROCESS_RULES = (*PER_PROCESS, "MX-LATE-PUBLICATION")


def process_flags(ocid: str, compiled: dict[str, Any], config: RulesConfig,
                  first_published: dict[str, str] | None = None) -> list[Flag]:
    """The flags of one process's own rules (``first_published``: see :func:`mexico.late_publication`)."""
    flags = [flag for check in PER_PROCESS.values() if (flag := check(ocid, compiled, config)) is not None]
    if first_published is not None:
        late = mexico.late_publication(ocid, compiled, first_published, config)
        if late is not None:
            flags.append(late)
    return flags


def title(code: str) -> str:
    rule = RULES.get(code)
    return f"{rule.spanish} / {rule.english}" if rule else code
