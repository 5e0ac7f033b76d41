"""The Mexican legal framework as profile checks: one table of rules, each with its OCDS path and legal source.

Pure: a release (dict) in, findings out. A publisher turns rules on in the publishers file (``rules = ["mx"]``
for all of them, or rule ids) and chooses their severity (``rules_severity``: ``warning`` by default, so a
lenient publisher's release is accepted and the finding kept; ``error`` lets a strict publisher reject).
``docs/profiles.md`` lists the table; :func:`rules_table` gives it as rows.

Spellings are those real Mexican data uses (``../shared/data/real``): "Licitación Pública", "Licitación
Federal", "Invitación a cuando menos tres proveedores", "Adjudicación directa (art. 42)", "Excepción al
reglamento (art. 1)", identifier schemes "MX-RFC", "RFC" and "Registro Federal de Contribuyentes de México".
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from core.checks import date_problem, rate_to_mxn, shorten
from core.checks import pointer as to_pointer
from core.exceptions import ConfigurationError, Finding
from core.types import Release

Hit = tuple[str, str]
"""(JSON Pointer, message) of one breach of a rule."""


@dataclass(frozen=True)
class Facts:
    """What the validator's walk of a release along the schema already found, so rules need not walk again."""

    foreign_amounts: list[tuple[str, str]] | None = None  # (pointer of a Value, its currency) not in MXN


@dataclass(frozen=True)
class ProfileRule:
    """One check of the Mexican profile: what it looks at, what it requires, and which law says so."""

    id: str
    path: str
    condition: str
    source: str
    check: Callable[[Release, Facts], Iterator[Hit]]


@lru_cache(maxsize=4096)
def _plain(text: str) -> str:
    """Lower case, without accents or repeated spaces: how procedure names are compared."""
    decomposed = unicodedata.normalize("NFKD", text)
    return " ".join("".join(c for c in decomposed if not unicodedata.combining(c)).lower().split())


# procedure families: a name's plain prefix -> the procurementMethod codes consistent with it
PROCEDURES: tuple[tuple[str, str, frozenset[str]], ...] = (
    ("licitacion", "licitación pública (LAASSP art. 26 fr. I; LOPSRM art. 27 fr. I)", frozenset({"open"})),
    ("invitacion a cuando menos tres", "invitación a cuando menos tres personas (LAASSP art. 26 fr. II, 43; "
     "LOPSRM art. 27 fr. II, 44)", frozenset({"selective", "limited"})),
    ("adjudicacion directa", "adjudicación directa (LAASSP art. 26 fr. III, 41, 42; LOPSRM art. 27 fr. III, 42, "
     "43)", frozenset({"direct"})),
    ("excepcion", "contrato entre entes públicos, fuera de la ley (LAASSP art. 1 párr. 5; LOPSRM art. 1)",
     frozenset({"direct"})),
    ("convenio de colaboracion", "contrato entre entes públicos, fuera de la ley (LAASSP art. 1 párr. 5)",
     frozenset({"direct"})),
)


@lru_cache(maxsize=4096)
def procedure_of(details: str) -> tuple[str, frozenset[str]] | None:
    """The procedure a ``procurementMethodDetails`` names (its legal name, consistent methods), if any."""
    plain = _plain(details)
    for prefix, name, methods in PROCEDURES:
        if plain.startswith(prefix):
            return name, methods
    return None


def _tender(release: Release) -> dict[str, Any]:
    tender = release.get("tender")
    return tender if isinstance(tender, dict) else {}


def _procedure_name(release: Release, facts: Facts) -> Iterator[Hit]:
    details = _tender(release).get("procurementMethodDetails")
    if isinstance(details, str) and details.strip() and procedure_of(details) is None:
        yield ("/tender/procurementMethodDetails",
               f"{shorten(details, 80)!r} names no procedure of the LAASSP or the LOPSRM (licitación pública, "
               "invitación a cuando menos tres personas, adjudicación directa)")


def _procedure_method(release: Release, facts: Facts) -> Iterator[Hit]:
    tender = _tender(release)
    details, method = tender.get("procurementMethodDetails"), tender.get("procurementMethod")
    if not isinstance(details, str) or not isinstance(method, str):
        return
    found = procedure_of(details)
    if found is not None and method not in found[1]:
        name, methods = found
        yield ("/tender/procurementMethod",
               f"procurementMethod is {method!r}, but procurementMethodDetails names {name}: expected "
               f"{' or '.join(sorted(methods))}")


RFC_SCHEMES = frozenset({"mx-rfc", "rfc", "registro federal de contribuyentes de mexico"})
_RFC = re.compile(r"\A([A-ZÑ&]{3,4})(\d{2})(\d{2})(\d{2})([A-Z0-9]{2}[0-9A])\Z")


@lru_cache(maxsize=65_536)
def rfc_problem(value: str) -> str | None:
    """Why ``value`` is not a well-formed RFC, or None: 12 characters (legal persons) or 13 (natural persons),
    a real date YYMMDD, and a three-character homoclave."""
    text = value.strip().upper()
    if len(text) not in (12, 13):
        return f"has {len(text)} characters; an RFC has 12 (legal persons) or 13 (natural persons)"
    match = _RFC.match(text)
    if match is None or len(match[1]) != len(text) - 9:
        letters = "3 letters" if len(text) == 12 else "4 letters"
        return f"is not {letters}, a date YYMMDD and a 3-character homoclave"
    year = int(match[2])
    full = f"{2000 + year if year < 30 else 1900 + year:04}-{match[3]}-{match[4]}T00:00:00Z"
    if date_problem(full) is not None:
        return f"has the date part {match[2]}{match[3]}{match[4]}, which is not a real date"
    return None


def _identifiers(release: Release) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every identifier of every party: ``identifier`` and ``additionalIdentifiers``, with their pointers."""
    parties = release.get("parties")
    for i, party in enumerate(parties if isinstance(parties, list) else []):
        if not isinstance(party, dict):
            continue
        if isinstance(party.get("identifier"), dict):
            yield f"/parties/{i}/identifier", party["identifier"]
        extra = party.get("additionalIdentifiers")
        for j, identifier in enumerate(extra if isinstance(extra, list) else []):
            if isinstance(identifier, dict):
                yield f"/parties/{i}/additionalIdentifiers/{j}", identifier


def _scheme(identifier: dict[str, Any]) -> str:
    scheme = identifier.get("scheme")
    return _plain(scheme) if isinstance(scheme, str) else ""


def _rfc(release: Release, facts: Facts) -> Iterator[Hit]:
    for where, identifier in _identifiers(release):
        value = identifier.get("id")
        if _scheme(identifier) in RFC_SCHEMES and value is not None:
            problem = rfc_problem(str(value))
            if problem is not None:
                yield f"{where}/id", f"the RFC {shorten(str(value), 40)!r} {problem}"


_CPA = re.compile(r"\A\d{2}(?:[0-9A-Z]{3})?\Z")  # ramo (2 digits), + unidad responsable (3 characters)
_UC = re.compile(r"\A\d{3}[0-9A-Z]{2}\d{4}\Z")  # CompraNet buying unit: 9 characters, e.g. 048D00001
BUYING_UNIT_SCHEMES = {
    "mx-cpa": (_CPA, "a budget key (MX-CPA) is a 2-digit ramo (06), or a ramo and a 3-character unidad "
                     "responsable (06E00)"),
    "clave en compranet": (_UC, "a CompraNet buying-unit key has 9 characters, e.g. 048D00001"),
    "mx-uc": (_UC, "a CompraNet buying-unit key has 9 characters, e.g. 048D00001"),
}


def _buying_unit(release: Release, facts: Facts) -> Iterator[Hit]:
    for where, identifier in _identifiers(release):
        value, scheme = identifier.get("id"), _scheme(identifier)
        if value is None:
            continue
        text = str(value).strip().upper()
        if scheme == "identificador unico en compranet":  # the unit's RFC, a hyphen, and its CompraNet key
            text = text.rsplit("-", 1)[-1]
            scheme = "clave en compranet"
        rule = BUYING_UNIT_SCHEMES.get(scheme)
        if rule is not None and not rule[0].match(text):
            yield f"{where}/id", f"{shorten(str(value), 40)!r} is not a federal buying-unit identifier: {rule[1]}"


def _foreign_amounts(node: Any, path: list[str | int], out: list[tuple[str, str]]) -> None:
    """Append (pointer, currency) of every amount in ``node`` in a currency other than MXN without an exchange
    rate to MXN. A plain recursive scan (a release is at most ``max_depth`` deep): the path is built only for
    what it finds."""
    if type(node) is dict:
        currency = node.get("currency")
        if (type(currency) is str and currency != "MXN" and node.get("amount") is not None
                and not rate_to_mxn(node.get("exchangeRates"))):
            out.append((to_pointer(tuple(path)), currency))
        for key, value in node.items():
            if type(value) is dict or type(value) is list:
                path.append(key)
                _foreign_amounts(value, path, out)
                path.pop()
    elif type(node) is list:
        for index, value in enumerate(node):
            if type(value) is dict or type(value) is list:
                path.append(index)
                _foreign_amounts(value, path, out)
                path.pop()


def _currency(release: Release, facts: Facts) -> Iterator[Hit]:
    found = facts.foreign_amounts
    if found is None:
        found = []
        _foreign_amounts(release, [], found)
    for where, currency in found:
        yield (f"{where}/currency", f"the amount at {where or '/'} is in {shorten(currency, 10)} without an "
               "exchange rate to MXN (exchangeRates, the exchangeRate extension)")


RULES: tuple[ProfileRule, ...] = (
    ProfileRule("MX-PROC-NAME", "tender/procurementMethodDetails",
                "names a procedure of the LAASSP or the LOPSRM, or an exception of their article 1",
                "LAASSP art. 26; LOPSRM art. 27", _procedure_name),
    ProfileRule("MX-PROC-METHOD", "tender/procurementMethod",
                "licitación → open; invitación a cuando menos tres → selective or limited; adjudicación directa "
                "or article-1 exception → direct",
                "LAASSP art. 26, 41–43; LOPSRM art. 27, 42–44", _procedure_method),
    ProfileRule("MX-RFC", "parties/identifier/id (scheme MX-RFC or RFC)",
                "12 characters (legal persons: 3 letters) or 13 (natural persons: 4 letters), a real date YYMMDD, "
                "a 3-character homoclave",
                "Código Fiscal de la Federación art. 27; SAT, Registro Federal de Contribuyentes", _rfc),
    ProfileRule("MX-UC", "parties/identifier/id (scheme MX-CPA, Clave en Compranet, MX-UC)",
                "MX-CPA: 2-digit ramo, or ramo + 3-character unidad responsable; CompraNet: 9-character "
                "buying-unit key",
                "SHCP, Catálogo de ramos y unidades responsables; Acuerdo CompraNet (DOF 28-06-2011)", _buying_unit),
    ProfileRule("MX-CUR", "…/value (any amount)",
                "amounts in MXN, or with an exchange rate to MXN",
                "Ley Monetaria de los Estados Unidos Mexicanos art. 8", _currency),
)
RULE_SETS: dict[str, tuple[str, ...]] = {"mx": tuple(rule.id for rule in RULES)}
_BY_ID = {rule.id: rule for rule in RULES}


def select_rules(names: Iterable[str]) -> tuple[ProfileRule, ...]:
    """The rules a publisher turns on, by id or by set name (``mx``); an unknown name is a configuration error."""
    chosen: dict[str, ProfileRule] = {}
    for name in names:
        ids = RULE_SETS.get(name.lower(), (name.upper(),))
        for rule_id in ids:
            if rule_id not in _BY_ID:
                known = ", ".join(sorted([*RULE_SETS, *_BY_ID]))
                raise ConfigurationError(f"unknown profile rule {name!r}: use one of {known}")
            chosen[rule_id] = _BY_ID[rule_id]
    return tuple(chosen.values())


def check_rules(release: Release, rules: Iterable[ProfileRule], severity: str = "warning",
                facts: Facts | None = None) -> list[Finding]:
    """The findings of ``rules`` on one release (rule = the rule's id)."""
    known = facts or Facts()
    return [
        Finding(where, rule.id, message, severity=severity)
        for rule in rules for where, message in rule.check(release, known)
    ]


def rules_table() -> list[tuple[str, str, str, str]]:
    """(rule id, OCDS path, condition, legal source) of every rule, for the docs."""
    return [(rule.id, rule.path, rule.condition, rule.source) for rule in RULES]
