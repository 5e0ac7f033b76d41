"""Simulated Mexican federal procurement (prefix ``ocds-07smqs``): whole lifecycles, interleaved by date.

Pure and deterministic for a seed: every process is planned from its own ``random.Random`` seeded with
``(seed, number)``, so it can be re-planned whenever its next release is due. Only a heap of
``(time, number, step, start)`` tuples (one per running process) and a bounded cache of recent plans
are held, so memory stays small however many processes are asked for. Simulated time counts
working seconds (11-hour days, 5 days a week) from ``start``; dates carry the ``-06:00`` offset.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import IO, Any

import orjson

from producers import simulator_data as data
from producers.simulator_data import Org, Universe

PREFIX = "ocds-07smqs"
TZ = timezone(timedelta(hours=-6))
DEFAULT_START = datetime(2024, 1, 8, 8, 0, tzinfo=TZ)  # a Monday, 08:00
DAY = 11 * 3600  # one working day, in simulated seconds
MEAN_GAP = 45  # working seconds between process starts: ~220,000 processes a year, like the APF
DIRECT_AWARD_LIMIT = 600_000.0  # MXN: the simulated maximum for a direct award by amount (art. 42 LAASSP)
SPLIT_BLOCK = 64  # processes per block; a block holds at most one group split below the limit
METHOD_DETAILS = {"direct": "Adjudicación directa", "limited": "Invitación a cuando menos tres personas",
                  "open": "Licitación Pública"}
METHOD_CODES = {"direct": "AA", "limited": "IA", "open": "LA"}
PROJECT_SHARE = 0.3  # share of processes that build one of the infrastructure projects below
PROCESSES_PER_PROJECT = 300  # in long streams, about how many processes a simulated project gathers
INFRASTRUCTURE = (
    # (ramo, unidad responsable, name): the investment projects of SHCP's Cartera de Programas y Proyectos de
    # Inversión whose contracting processes name them in planning.budget.projectID (simulated keys in the
    # Cartera's format: two-digit year, ramo, unidad responsable, number, as 1809JZL0004)
    ("09", "JZL", "Construcción del libramiento ferroviario de Celaya"),
    ("09", "JZL", "Modernización de la carretera Mitla-Entronque Tehuantepec II"),
    ("09", "J3L", "Tren Interurbano México-Toluca, tramo poniente"),
    ("09", "KCZ", "Ampliación del puerto de Veracruz en la zona norte"),
    ("09", "JZL", "Nuevo Aeropuerto Internacional de la Ciudad de México, obras complementarias"),
    ("12", "NBV", "Hospital General Regional de Alta Especialidad en Tlajomulco"),
    ("12", "GYR", "Unidad de Medicina Familiar de 10 consultorios en Tijuana"),
    ("12", "NBB", "Sustitución del Hospital General de Zona en Tapachula"),
    ("16", "B00", "Presa de almacenamiento Santa María, Sinaloa"),
    ("16", "B00", "Acueducto El Zapotillo-León"),
    ("16", "B00", "Planta de tratamiento de aguas residuales Atotonilco, línea 2"),
    ("18", "TOQ", "Central de ciclo combinado Salamanca"),
    ("18", "TOQ", "Línea de transmisión Yautepec-Ixtepec"),
    ("18", "T4L", "Rehabilitación de la refinería de Salina Cruz"),
    ("11", "L6I", "Rehabilitación de escuelas del programa Escuelas al CIEN"),
    ("11", "A2M", "Ampliación de la Ciudad Universitaria, Unidad Xochimilco"),
    ("07", "DHG", "Cuarteles de la Guardia Nacional, primera etapa"),
    ("15", "QCW", "Vivienda y urbanización del programa de mejoramiento urbano"),
    ("21", "W3N", "Tren Maya, tramo Escárcega-Calkiní"),
    ("10", "K2N", "Puerto fronterizo Mesa de Otay II"),
)
RED_FLAGS = ("single-bidder", "short-tender-period", "value-raising-amendment", "split-below-threshold")
DEFECTS = ("missing-id", "bad-date", "wrong-type", "unknown-prefix", "bad-currency", "dangling-party")
TAGS = {"tenderExtension": "tenderUpdate", "tenderUnsuccessful": "tenderUpdate"}
Json = dict[str, Any]


@dataclass(frozen=True)
class SimulatedRelease:
    """One simulated release, what was broken on purpose (if anything) and the red flags planted."""

    release: dict[str, Any]
    defect: str | None = None
    red_flags: tuple[str, ...] = ()


@lru_cache(maxsize=8)
def _universe(seed: int) -> Universe:
    return data.build_universe(random.Random(f"ocds-live:{seed}:universe"))


@dataclass(slots=True)
class _Plan:
    number: int
    ocid: str
    method: str
    unit: int
    category: str
    items: list[tuple[int, float, float]]  # (catalogue index, quantity, unit price)
    tender_value: float
    bidders: list[Org]
    awards: list[tuple[Org, list[int], float]]  # (supplier, item positions, value)
    flags: tuple[str, ...]
    events: list[tuple[int, str]] = field(default_factory=list)  # (time, stage), strictly increasing times
    tender_end: int = 0
    extension: int = 0
    contract_start: int = 0
    contract_end: int = 0
    amended_value: float = 0.0
    rationale: str = ""
    project: tuple[str, str] | None = None  # (Cartera key, name) of the infrastructure project it builds

    @property
    def key(self) -> str:
        """The number in the ocid, which also names the process's awards, contracts and documents."""
        return self.ocid[len(PREFIX) + 1:]


def _lognormal(rng: random.Random, median: float, sigma: float) -> float:
    return median * rng.lognormvariate(0.0, sigma)


def _pick(rng: random.Random, pool: list[Org], k: int, first: Org | None = None) -> list[Org]:
    chosen: list[Org] = [first] if first else []
    while len(chosen) < k:
        org = pool[int(len(pool) * rng.random() ** 2)]  # a few suppliers win much of the business
        if org not in chosen:
            chosen.append(org)
    return chosen


@lru_cache(maxsize=256)
def _split_block(seed: int, block: int, processes: int) -> tuple[range, int, Org, int] | None:
    """The members of block ``block``'s group of direct awards split below the limit, if it has one."""
    rng = random.Random(f"ocds-live:{seed}:split:{block}")
    if rng.random() >= 0.3:
        return None
    size = rng.randint(3, 5)
    first = block * SPLIT_BLOCK + rng.randrange(SPLIT_BLOCK - size)
    if first + size > processes:
        return None
    u = _universe(seed)
    splittable = [c for c in u.catalogue["general"] if data.CATALOGUE[c][7] < 300_000]
    unit, supplier = rng.randrange(len(u.units)), _pick(rng, u.suppliers["general"], 1)[0]
    return range(first, first + size), unit, supplier, rng.choice(splittable)


def _split_group(seed: int, number: int, processes: int) -> tuple[int, Org, int] | None:
    """(unit, supplier, catalogue index) shared by a group of direct awards split below the limit."""
    group = _split_block(seed, number // SPLIT_BLOCK, processes)
    return group[1:] if group and number in group[0] else None


def infrastructure_project(index: int, year: int) -> tuple[str, str]:
    """The ``index``-th simulated investment project: its Cartera key (registered in ``year``) and name."""
    ramo, unit, name = INFRASTRUCTURE[index % len(INFRASTRUCTURE)]
    stage = index // len(INFRASTRUCTURE)
    return f"{year % 100:02d}{ramo}{unit}{index + 1:04d}", name + (f", etapa {stage + 1}" if stage else "")


def _project(seed: int, number: int, share: float, projects: int, year: int) -> tuple[str, str] | None:
    """The project process ``number`` builds, if any (its own generator: the rest of its plan is unchanged)."""
    if not projects or not share:
        return None
    rng = random.Random(f"ocds-live:{seed}:project:{number}")
    return infrastructure_project(rng.randrange(projects), year) if rng.random() < share else None


@lru_cache(maxsize=4096)
def _plan(seed: int, number: int, start: int, processes: int, long_rate: float, long_releases: int,
          projects: tuple[float, int, int] = (0.0, 0, 0)) -> _Plan:
    """Plan process ``number`` from its own random generator: who, what, how much, when."""
    u = _universe(seed)
    rng = random.Random(f"ocds-live:{seed}:{number}")
    split = _split_group(seed, number, processes)
    flags: list[str] = []
    r = rng.random()
    method = "direct" if split or r < 0.74 else "limited" if r < 0.865 else "open"
    unit = split[0] if split else rng.randrange(len(u.units))
    sector = u.units[unit][1].sector
    pool = u.catalogue[sector] if rng.random() < 0.6 and u.catalogue[sector] else u.catalogue["general"]
    main = split[2] if split else rng.choice(pool)
    category = data.CATALOGUE[main][5]
    same = [c for c in pool if data.CATALOGUE[c][5] == category and c != main]
    extra = 0 if split or category == "works" or not same else rng.choice((0, 0, 1, 1, 2, 3, 4))
    chosen = [main, *rng.sample(same, k=min(extra, len(same)))]
    median = {"direct": 150_000.0, "limited": 1_100_000.0, "open": 7_000_000.0}[method]
    total = _lognormal(rng, median * (2.5 if category == "works" else 1.0), 1.1 if method == "direct" else 1.3)
    if split:
        total = DIRECT_AWARD_LIMIT * rng.uniform(0.905, 0.99)
        flags.append("split-below-threshold")
    elif method == "direct" and 0.9 * DIRECT_AWARD_LIMIT <= total < DIRECT_AWARD_LIMIT:
        total *= 0.85  # keep the band just below the limit for the planted pattern
    weights = [rng.random() + 0.2 for _ in chosen]
    items = []
    for c, w in zip(chosen, weights, strict=True):
        share = total * w / sum(weights)
        quantity = float(max(1, round(share / (data.CATALOGUE[c][7] * rng.uniform(0.7, 1.3)))))
        items.append((c, quantity, round(share / quantity, 2)))
    value = round(sum(q * p for _, q, p in items), 2)
    long = rng.random() < long_rate
    outcome = rng.random()
    cancel, desierta = {"direct": (0.01, 0.0), "limited": (0.03, 0.09), "open": (0.04, 0.08)}[method]
    outcome_name = "award" if long or outcome >= cancel + desierta else "cancel" if outcome < cancel else "void"
    suppliers = u.suppliers[sector] if rng.random() < 0.7 else u.suppliers["general"]
    if method == "direct":
        bidders = [split[1]] if split else _pick(rng, suppliers, 1)
    elif outcome_name == "award" and rng.random() < 0.10:
        bidders = _pick(rng, suppliers, 1)
        flags.append("single-bidder")
    else:
        bidders = _pick(rng, suppliers, rng.randint(2, 4) if method == "limited" else rng.randint(2, 8))
    n_awards = min(len(items), len(bidders), 2 if rng.random() < 0.25 else 1)
    awards = [(bidders[j], [i for i in range(len(items)) if i % n_awards == j], 0.0) for j in range(n_awards)]
    awards = [(s, pos, round(sum(items[i][1] * items[i][2] for i in pos), 2)) for s, pos, _ in awards]
    plan = _Plan(number, f"{PREFIX}-{seed * 100_000_000 + number + 1}", method, unit, category, items,
                 round(value * rng.uniform(1.0, 1.15), 2), bidders, awards, ())
    if method == "direct":
        plan.rationale = ("Artículo 42 de la LAASSP (monto de actuación)" if value < DIRECT_AWARD_LIMIT else
                          f"Artículo 41 fracción {rng.choice(('I', 'III', 'V', 'VIII', 'XX'))} de la LAASSP")
    else:
        plan.rationale = "Artículos 26 y 43 de la LAASSP" if method == "limited" else "Artículos 26 y 28 de la LAASSP"
    events = plan.events
    t = start
    if not split and rng.random() < {"direct": 0.25, "limited": 0.5, "open": 0.7}[method]:
        events.append((t, "planning"))
        t += int(DAY * rng.uniform(5, 40))
    events.append((t, "tender"))
    if method != "direct" and rng.random() < 0.06:
        flags.append("short-tender-period")
        period = rng.uniform(0.3, 1.5) * DAY
    else:
        period = DAY * rng.uniform(*{"direct": (1, 3), "limited": (5, 10), "open": (10, 25)}[method])
    plan.tender_end = t + int(period)
    if method != "direct" and "short-tender-period" not in flags and rng.random() < 0.18:
        events.append((t + int(period * rng.uniform(0.2, 0.6)), "tenderExtension"))
        plan.extension = DAY * rng.randint(2, 5)
        plan.tender_end += plan.extension
    if outcome_name == "cancel":
        events.append((t + int(period * rng.uniform(0.3, 0.9)), "tenderCancellation"))
    elif outcome_name == "void":
        events.append((plan.tender_end + int(DAY * rng.uniform(1, 5)), "tenderUnsuccessful"))
    else:
        t = plan.tender_end + int(DAY * (rng.uniform(0.2, 2) if method == "direct" else rng.uniform(1, 8)))
        events.append((t, "award"))
        t += int(DAY * rng.uniform(1, 12))
        events.append((t, "contract"))
        plan.contract_start = t + int(DAY * rng.uniform(0, 5))
        span = {"goods": (20, 120), "services": (60, 250), "works": (80, 300)}[category]
        duration = DAY * rng.uniform(*((500, 750) if long else span))
        plan.contract_end = plan.contract_start + int(duration)
        raise_value = rng.random() < 0.025
        if raise_value or rng.random() < 0.08:
            factor = rng.uniform(1.3, 1.9) if raise_value else rng.uniform(1.0, 1.15)
            plan.amended_value = round(awards[0][2] * factor, 2)
            events.append((plan.contract_start + int(duration * rng.uniform(0.2, 0.45)), "contractAmendment"))
            if raise_value:
                flags.append("value-raising-amendment")
        payments = long_releases if long else (0 if rng.random() < 0.08 else rng.randint(1, 4))
        for j in range(payments):
            events.append((plan.contract_start + int(duration * (j + rng.uniform(0.5, 1.0)) / payments),
                           "implementation"))
    events.sort(key=lambda e: e[0])
    for k in range(1, len(events)):
        if events[k][0] <= events[k - 1][0]:
            events[k] = (events[k - 1][0] + 60, events[k][1])
    plan.flags = tuple(flags)
    plan.project = _project(seed, number, *projects)
    return plan


@lru_cache(maxsize=1 << 16)
def _iso(origin: datetime, t: int) -> str:
    day, second = divmod(t, DAY)
    week, weekday = divmod(day, 5)
    return (origin + timedelta(days=week * 7 + weekday, seconds=second)).isoformat()


def _doc(plan: _Plan, code: str, kind: str, title: str, date: str) -> Json:
    return {"id": f"{plan.key}-{code}", "documentType": kind, "title": title, "format": "application/pdf",
            "url": f"https://compranet.hacienda.gob.mx/esop/documentos/{plan.key}/{code}.pdf",
            "datePublished": date, "language": "es"}


def _items(plan: _Plan, positions: Iterable[int]) -> list[Json]:
    items = []
    for i in positions:
        c, quantity, price = plan.items[i]
        cucop, description, unspsc, unit_id, unit_name = data.CATALOGUE[c][:5]
        items.append({
            "id": str(i + 1), "description": description, "quantity": quantity,
            "classification": {"scheme": "CUCOP", "id": cucop, "description": description},
            "additionalClassifications": [{"scheme": "UNSPSC", "id": unspsc},
                                          {"scheme": "MX-COG", "id": cucop[:3],
                                           "description": data.PARTIDAS[cucop[:3]]}],
            "unit": {"scheme": "UNCEFACT", "id": unit_id, "name": unit_name,
                     "value": {"amount": price, "currency": "MXN"}},
        })
    return items


def _mxn(amount: float) -> Json:
    return {"amount": amount, "currency": "MXN"}


def _tender(plan: _Plan, k: int, iso: Any, rid: Any, agency: Org, unit: Org) -> Json:
    events, t = plan.events, plan.events[k][0]
    seen = [s for _, s in events[: k + 1]]
    first = {s: e for e, s in reversed(events[: k + 1])}
    code, description = METHOD_CODES[plan.method], data.CATALOGUE[plan.items[0][0]][1]
    title = description + (" y otros" if len(plan.items) > 1 else "")
    status = ("cancelled" if "tenderCancellation" in seen else "unsuccessful" if "tenderUnsuccessful" in seen
              else "complete" if "award" in seen else "active" if "tender" in seen else "planning")
    tender: Json = {
        "id": f"{code}-{unit.unit_key}-E{plan.key}", "title": title, "status": status,
        "description": f"{METHOD_DETAILS[plan.method]} para {description.lower()}: {agency.name}",
        "procuringEntity": unit.ref(), "items": _items(plan, range(len(plan.items))),
        "value": _mxn(plan.tender_value), "procurementMethod": plan.method,
        "procurementMethodDetails": METHOD_DETAILS[plan.method], "procurementMethodRationale": plan.rationale,
        "mainProcurementCategory": plan.category,
    }
    if status == "planning":
        return tender
    start = first["tender"]
    end = plan.tender_end - (0 if "tenderExtension" in seen else plan.extension)
    tender.update({
        "awardCriteria": "priceOnly" if plan.method != "open" or plan.number % 3 else "ratedCriteria",
        "submissionMethod": ["electronicSubmission"],
        "submissionMethodDetails": "Proposiciones por medios electrónicos a través de CompraNet",
        "tenderPeriod": {"startDate": iso(start), "endDate": iso(end)},
        "eligibilityCriteria": "Proposición solvente que cumple los requisitos legales, técnicos y económicos",
        "hasEnquiries": plan.method != "direct",
    })
    docs = [_doc(plan, "T1", "tenderNotice", "Convocatoria" if plan.method != "direct" else
                 "Solicitud de cotización", iso(start)),
            _doc(plan, "T2", "technicalSpecifications", "Anexo técnico", iso(start))]
    if plan.method != "direct":
        enquiry_end = start + (end - start) * 2 // 5
        tender["enquiryPeriod"] = {"startDate": iso(start), "endDate": iso(enquiry_end)}
        docs.append(_doc(plan, "T3", "evaluationCriteria", "Criterios de evaluación", iso(start)))
        closed = "tenderCancellation" in seen or "tenderUnsuccessful" in seen
        tender["milestones"] = [
            {"id": str(n + 1), "title": name, "type": kind, "dueDate": iso(due),
             "status": "met" if due <= t else "notMet" if closed else "scheduled"}
            for n, (name, kind, due) in enumerate((
                ("Junta de aclaraciones", "engagement", enquiry_end),
                ("Presentación y apertura de proposiciones", "assessment", end),
                ("Fallo", "approval", end + 3 * DAY)))]
    if "tenderExtension" in seen:
        n = seen.index("tenderExtension")
        tender["amendments"] = [{
            "id": "1", "date": iso(first["tenderExtension"]), "releaseID": rid(n), "amendsReleaseID": rid(n - 1),
            "rationale": "Ampliación del plazo para presentar proposiciones acordada en la junta de aclaraciones",
            "description": "Se modifica la fecha del acto de presentación y apertura de proposiciones"}]
        docs.append(_doc(plan, "T4", "clarifications", "Acta de la junta de aclaraciones",
                         iso(first["tenderExtension"])))
    if "tenderCancellation" in seen:
        docs.append(_doc(plan, "T5", "cancellationDetails", "Acta de cancelación del procedimiento",
                         iso(first["tenderCancellation"])))
    if "tenderUnsuccessful" in seen:
        docs.append(_doc(plan, "T6", "evaluationReports", "Acta de fallo: procedimiento desierto",
                         iso(first["tenderUnsuccessful"])))
    if "award" in seen:
        tender["awardPeriod"] = {"startDate": iso(end), "endDate": iso(first["award"])}
        tender["numberOfTenderers"] = len(plan.bidders)
        tender["tenderers"] = [org.ref() for org in plan.bidders]
    tender["documents"] = docs
    return tender


def _release(plan: _Plan, k: int, origin: datetime, u: Universe) -> Json:
    """The release of ``plan``'s ``k``-th event: everything known about the process at that moment."""
    events = plan.events
    t, stage = events[k]
    seen = [s for _, s in events[: k + 1]]
    first = {s: e for e, s in reversed(events[: k + 1])}

    def iso(x: int) -> str:
        return _iso(origin, x)

    def rid(n: int) -> str:
        return f"{plan.ocid}-{n + 1:04d}-{TAGS.get(events[n][1], events[n][1])}"

    agency_index, unit = u.units[plan.unit]
    agency = u.agencies[agency_index]
    contracted = "contract" in seen
    parties = [agency.party(["buyer", "payer"] if contracted else ["buyer"]), unit.party(["procuringEntity"])]
    release: Json = {"ocid": plan.ocid, "id": rid(k), "date": iso(t), "tag": [TAGS.get(stage, stage)],
                     "initiationType": "tender", "language": "es", "parties": parties, "buyer": agency.ref()}
    if events[0][1] == "planning":
        release["planning"] = {
            "rationale": f"Programa Anual de Adquisiciones, Arrendamientos y Servicios de {agency.name}",
            "budget": {"id": f"{plan.key}-B", "description": data.PARTIDAS[data.CATALOGUE[plan.items[0][0]][0][:3]],
                       "amount": _mxn(plan.tender_value)},
            "documents": [_doc(plan, "P1", "procurementPlan", "Programa anual de adquisiciones", iso(events[0][0])),
                          _doc(plan, "P2", "marketStudies", "Investigación de mercado", iso(events[0][0]))]}
    if plan.project is not None:
        budget = release.setdefault("planning", {}).setdefault("budget", {"id": f"{plan.key}-B"})
        budget["projectID"], budget["project"] = plan.project
    release["tender"] = _tender(plan, k, iso, rid, agency, unit)
    if "award" not in seen:
        return release
    winners = {org.id for org, _, _ in plan.awards}
    for org in plan.bidders:
        roles = ["tenderer", "supplier", "payee"] if org.id in winners and contracted else (
            ["tenderer", "supplier"] if org.id in winners else ["tenderer"])
        parties.append(org.party(roles))
    award_title = "Dictamen de adjudicación directa" if plan.method == "direct" else "Acta de fallo"
    period = {"startDate": iso(plan.contract_start), "endDate": iso(plan.contract_end)}
    release["awards"] = [{
        "id": f"{plan.key}-A{j + 1}", "title": data.CATALOGUE[plan.items[pos[0]][0]][1], "status": "active",
        "description": f"Adjudicación a {org.name}", "date": iso(first["award"]), "value": _mxn(value),
        "suppliers": [org.ref()], "items": _items(plan, pos), "contractPeriod": period,
        "documents": [_doc(plan, f"A{j + 1}", "awardNotice", award_title, iso(first["award"]))],
    } for j, (org, pos, value) in enumerate(plan.awards)]
    if not contracted:
        return release
    payments = seen.count("implementation")
    total_payments = [s for _, s in events].count("implementation")
    finished = 0 < payments == total_payments  # the last payment: the contract is over
    contracts = []
    for j, (org, pos, value) in enumerate(plan.awards):
        amended = j == 0 and "contractAmendment" in seen
        current = plan.amended_value if amended else value
        signed = iso(first["contract"])
        contract: Json = {
            "id": f"{plan.key}-C{j + 1}", "awardID": f"{plan.key}-A{j + 1}",
            "title": data.CATALOGUE[plan.items[pos[0]][0]][1], "status": "terminated" if finished else "active",
            "description": f"Contrato {METHOD_CODES[plan.method]}-{plan.key}-C{j + 1} con {org.name}",
            "period": period, "value": _mxn(current), "items": _items(plan, pos), "dateSigned": signed,
            "documents": [_doc(plan, f"C{j + 1}", "contractSigned", "Contrato", signed),
                          _doc(plan, f"G{j + 1}", "contractGuarantees", "Garantía de cumplimiento", signed)],
        }
        if amended:
            n = seen.index("contractAmendment")
            contract["amendments"] = [{
                "id": "1", "date": iso(first["contractAmendment"]), "releaseID": rid(n), "amendsReleaseID": rid(n - 1),
                "rationale": "Convenio modificatorio: incremento en las cantidades requeridas (art. 52 LAASSP)",
                "description": f"Monto original {value:,.2f} MXN; monto modificado {current:,.2f} MXN"}]
            contract["documents"].append(_doc(plan, "M1", "contractAnnexe", "Convenio modificatorio",
                                              iso(first["contractAmendment"])))
        if finished:
            contract["documents"].append(_doc(plan, f"E{j + 1}", "completionCertificate",
                                              "Acta de entrega-recepción", iso(t)))
        if stage == "implementation" and (payments - 1) % len(plan.awards) == j:
            share = len(range(j, total_payments, len(plan.awards)))
            contract["implementation"] = {"transactions": [{
                "id": f"{plan.key}-P{payments:04d}", "date": iso(t), "value": _mxn(round(current / share, 2)),
                "payer": agency.ref(), "payee": org.ref(),
                "source": "https://www.transparenciapresupuestaria.gob.mx/",
                "uri": f"https://sfp.hacienda.gob.mx/cfdi/{plan.key}/{payments}"}]}
        contracts.append(contract)
    release["contracts"] = contracts
    return release


def _break(release: Json, defect: str) -> None:
    """Break ``release`` on purpose so that validation or the structure checks must reject it."""
    if defect == "missing-id":
        del release["id"]
    elif defect == "bad-date":
        release["date"] = release["date"][:5] + "13-45" + release["date"][10:]
    elif defect == "wrong-type":
        value = release["tender"]["value"]
        value["amount"] = f"{value['amount']:.2f}"
    elif defect == "unknown-prefix":
        release["ocid"] = "ocds-zzzzzz" + release["ocid"][len(PREFIX):]
    elif defect == "bad-currency":
        release["tender"]["value"]["currency"] = "MNX"
    else:  # dangling-party: the buyer is not among the parties
        release["buyer"] = {"id": "MX-RFC-XXX000101XX0", "name": release["buyer"]["name"]}


def simulate(*, seed: int, processes: int, start: datetime | None = None, defect_rate: float = 0.0,
             long_process_rate: float = 0.0, long_process_releases: int = 300, project_share: float = PROJECT_SHARE,
             projects: int | None = None) -> Iterator[SimulatedRelease]:
    """Releases of `processes` contracting processes, interleaved in simulated-date order (ascending release.date).

    ``long_process_rate`` of the processes get ``long_process_releases`` implementation releases each;
    ``project_share`` of them build one of ``projects`` infrastructure projects (``planning.budget.projectID``
    is its key in SHCP's investment portfolio; the others name no project). By default 20 projects, and more in
    long streams, so that a project gathers about ``PROCESSES_PER_PROJECT`` processes (NAICM has 292).
    """
    if projects is None:
        projects = max(len(INFRASTRUCTURE), round(processes * project_share / PROCESSES_PER_PROJECT))
    if seed < 0 or processes < 0 or projects < 0 or not all(
            0.0 <= rate <= 1.0 for rate in (defect_rate, long_process_rate, project_share)):
        raise ValueError("seed, processes and projects must be >= 0, rates between 0 and 1")
    origin = DEFAULT_START if start is None else (
        start.astimezone(TZ) if start.tzinfo else start.replace(tzinfo=TZ))
    return _stream(seed, processes, origin, defect_rate, long_process_rate, max(1, long_process_releases),
                   (project_share, projects, origin.year))


def _stream(seed: int, processes: int, origin: datetime, defect_rate: float, long_rate: float,
            long_releases: int, projects: tuple[float, int, int]) -> Iterator[SimulatedRelease]:
    universe = _universe(seed)
    arrivals = random.Random(f"ocds-live:{seed}:arrivals")
    defects = random.Random(f"ocds-live:{seed}:defects")
    heap: list[tuple[int, int, int, int]] = []  # (time, process number, step, process start)
    number = next_start = 0
    while True:
        while number < processes and (not heap or next_start <= heap[0][0]):
            heapq.heappush(heap, (next_start, number, 0, next_start))
            number += 1
            next_start += int(arrivals.expovariate(1 / MEAN_GAP))
        if not heap:
            return
        _, n, k, process_start = heapq.heappop(heap)
        plan = _plan(seed, n, process_start, processes, long_rate, long_releases, projects)
        if k + 1 < len(plan.events):
            heapq.heappush(heap, (plan.events[k + 1][0], n, k + 1, process_start))
        release = _release(plan, k, origin, universe)
        defect = None
        if defect_rate and defects.random() < defect_rate:
            defect = defects.choice(DEFECTS)
            _break(release, defect)
        yield SimulatedRelease(release, defect, plan.flags)


def write_jsonl(events: Iterable[SimulatedRelease], out: IO[bytes]) -> int:
    """Write one release per line (defective ones included); return how many."""
    count = 0
    for event in events:
        out.write(orjson.dumps(event.release) + b"\n")
        count += 1
    return count
