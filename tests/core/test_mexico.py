"""The Mexican legal framework as profile rules: each fires on data built to break it and stays quiet on
conforming real data; the docs list every rule with its legal source."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from core.exceptions import ConfigurationError
from core.mexico import RULES, check_rules, procedure_of, rfc_problem, rules_table, select_rules
from tests.conftest import REPO

Release = dict[str, Any]


def _lines(path: Path) -> list[Release]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _embedded(real_data: Path, folder: str) -> list[Release]:
    out = []
    for path in sorted((real_data / "records" / folder).glob("*.json")):
        for record in json.loads(path.read_text(encoding="utf-8"))["records"]:
            out += [r for r in record.get("releases", []) if "id" in r] or [record["compiledRelease"]]
    return out


def _hits(release: Release, rule_id: str) -> list[tuple[str, str]]:
    (rule,) = select_rules([rule_id])
    return [(f.pointer, f.message) for f in check_rules(release, [rule])]


def _base() -> Release:
    return {"ocid": "ocds-07smqs-1", "id": "1", "date": "2020-01-01T00:00:00Z", "tag": ["tender"],
            "tender": {"id": "t", "procurementMethod": "open", "procurementMethodDetails": "Licitación Pública",
                       "value": {"amount": 100, "currency": "MXN"}},
            "parties": [{"id": "S", "name": "Proveedor", "roles": ["supplier"],
                         "identifier": {"scheme": "MX-RFC", "id": "GAB0709244G5"}},
                        {"id": "B", "name": "SAT", "roles": ["buyer"],
                         "identifier": {"scheme": "MX-CPA", "id": "06E00"},
                         "additionalIdentifiers": [{"scheme": "Clave en Compranet", "id": "048D00001"}]}]}


def test_built_release_conforms_to_every_rule() -> None:
    """The base release of these tests breaks no rule (so each test below changes one thing)."""
    assert check_rules(_base(), RULES) == []


def test_procedure_name_outside_the_laws_fires_and_real_names_pass(real_data: Path) -> None:
    """MX-PROC-NAME: a procedure the LAASSP/LOPSRM does not name fires; every name real Mexican data uses passes."""
    release = _base()
    release["tender"]["procurementMethodDetails"] = "Concurso por puntos"
    hits = _hits(release, "MX-PROC-NAME")
    assert [where for where, _ in hits] == ["/tender/procurementMethodDetails"]
    assert "Concurso por puntos" in hits[0][1]
    real = [r for path in sorted(real_data.glob("mx-*.releases.jsonl")) for r in _lines(path)]
    assert sum(1 for r in real if (r.get("tender") or {}).get("procurementMethodDetails")) > 80
    assert [r["id"] for r in real if _hits(r, "MX-PROC-NAME")] == []


@pytest.mark.parametrize(("details", "method", "fires"), [
    ("Adjudicación directa (art. 42)", "open", True),
    ("Adjudicación directa (art. 42)", "direct", False),
    ("Invitación a cuando menos tres proveedores", "selective", False),
    ("Invitación a cuando menos tres personas", "direct", True),
    ("LICITACION PUBLICA NACIONAL", "open", False),
    ("Licitación Pública", "limited", True),
    ("Excepción al reglamento (art. 1)", "direct", False),
])
def test_procedure_and_method_must_agree(details: str, method: str, fires: bool) -> None:
    """MX-PROC-METHOD: the method must be the one the named procedure implies (accents and case ignored)."""
    release = _base()
    release["tender"].update(procurementMethodDetails=details, procurementMethod=method)
    hits = _hits(release, "MX-PROC-METHOD")
    assert bool(hits) is fires
    if fires:
        assert hits[0][0] == "/tender/procurementMethod" and repr(method) in hits[0][1]


def test_procedure_method_is_quiet_on_conforming_real_data(real_data: Path) -> None:
    """MX-PROC-METHOD stays quiet on Jalisco, Nuevo León and INAI's EDCA releases."""
    real = (_lines(real_data / "mx-jalisco.releases.jsonl") + _lines(real_data / "mx-nuevoleon.releases.jsonl")
            + _embedded(real_data, "mx-inai-edca"))
    assert sum(1 for r in real if procedure_of((r.get("tender") or {}).get("procurementMethodDetails") or "")) > 10
    assert [r["id"] for r in real if _hits(r, "MX-PROC-METHOD")] == []


@pytest.mark.parametrize(("value", "problem"), [
    ("GAB0709244G", "has 11 characters"),
    ("GAB0713244G5", "not a real date"),
    ("GAB0702304G5", "not a real date"),
    ("GABX709244G5", "is not 3 letters"),
    ("ROGJ800101", "has 10 characters"),
    ("95F5D7F5DD77D73E3232026B4732232A", "has 32 characters"),
])
def test_malformed_rfc_fires_at_its_pointer(value: str, problem: str) -> None:
    """MX-RFC: wrong length, an impossible date or letters in the wrong places fire at the identifier's id."""
    release = _base()
    release["parties"][0]["identifier"]["id"] = value
    hits = _hits(release, "MX-RFC")
    assert [where for where, _ in hits] == ["/parties/0/identifier/id"]
    assert problem in hits[0][1]


def test_well_formed_rfcs_pass_for_legal_and_natural_persons(real_data: Path) -> None:
    """MX-RFC: 12-character (legal) and 13-character (natural person) RFCs pass, as on APF's real releases."""
    assert rfc_problem("GAB0709244G5") is None and rfc_problem("ROGJ800101HA3") is None
    assert rfc_problem("XAXX010101000") is None  # the SAT's generic RFC for the public
    apf = _embedded(real_data, "mx-apf")
    assert any(p.get("identifier", {}).get("scheme", "").startswith("Registro Federal") for r in apf
               for p in r["parties"])
    assert [r["id"] for r in apf if _hits(r, "MX-RFC")] == []


@pytest.mark.parametrize(("scheme", "value"), [("MX-CPA", "06E0"), ("MX-CPA", "6E000"), ("MX-CPA", "061"),
                                               ("Clave en Compranet", "48D00001"),
                                               ("Identificador único en Compranet", "INA450815GV1-48D0001")])
def test_malformed_buying_unit_identifier_fires(scheme: str, value: str) -> None:
    """MX-UC: budget keys and CompraNet buying-unit keys of the wrong shape fire at their id."""
    release = _base()
    release["parties"][1]["additionalIdentifiers"][0] = {"scheme": scheme, "id": value}
    assert [where for where, _ in _hits(release, "MX-UC")] == ["/parties/1/additionalIdentifiers/0/id"]


def test_buying_unit_identifiers_of_real_federal_data_pass(real_data: Path) -> None:
    """MX-UC stays quiet on the APF packages and the 2018 federal bulk file's compiled releases."""
    bulk = _lines(real_data / "records" / "mx-apf" / "bulk-2018-compiled-releases.jsonl")
    checked = _embedded(real_data, "mx-apf") + bulk
    assert sum(1 for r in bulk for p in r["parties"] if p.get("identifier", {}).get("scheme") == "MX-CPA") >= 10
    assert [r["ocid"] for r in checked if _hits(r, "MX-UC")] == []


def test_foreign_currency_needs_an_exchange_rate_to_mxn(real_data: Path) -> None:
    """MX-CUR: an amount in USD without an exchange rate to MXN fires; with one, or in MXN, it does not."""
    release = _base()
    release["tender"]["value"]["currency"] = "USD"
    assert [where for where, _ in _hits(release, "MX-CUR")] == ["/tender/value/currency"]
    with_rate = copy.deepcopy(release)
    with_rate["tender"]["value"]["exchangeRates"] = [{"rate": 17.2, "currency": "MXN"}]
    assert _hits(with_rate, "MX-CUR") == []
    real = _lines(real_data / "mx-jalisco.releases.jsonl") + _embedded(real_data, "mx-apf")
    assert [r["id"] for r in real if _hits(r, "MX-CUR")] == []


def test_rule_sets_and_unknown_rules() -> None:
    """'mx' selects every rule; an unknown rule name is a configuration error that lists the known ones."""
    assert select_rules(["mx"]) == RULES
    assert [r.id for r in select_rules(["mx-rfc", "MX-RFC"])] == ["MX-RFC"]
    with pytest.raises(ConfigurationError, match="unknown profile rule 'MX-NOPE'.*MX-RFC"):
        select_rules(["MX-NOPE"])


def test_docs_list_every_rule_with_its_path_and_legal_source() -> None:
    """docs/profiles.md's rules table has a row per rule: id, OCDS path and legal source."""
    docs = (REPO / "docs" / "profiles.md").read_text(encoding="utf-8")
    for rule_id, path, _, source in rules_table():
        row = next((line for line in docs.splitlines() if line.startswith(f"| {rule_id} |")), None)
        assert row is not None, f"{rule_id} is missing from docs/profiles.md"
        assert path in row and source in row
