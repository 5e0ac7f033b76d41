"""Record summaries and the records table's columns, over real and odd data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import ocdsmerge
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.schema import OcdsSchema
from core.summary import SEARCH_TEXT_BYTES, parse_amount, process_status, record_columns, summarize

SUMMARY_KEYS = {
    "title", "buyer", "procuring_entity", "suppliers", "method", "method_details", "category", "status",
    "tender_amount", "award_amount", "contract_amount", "currency", "number_of_tenderers", "tender_start",
    "tender_end", "award_date", "contract_signed", "search_text",
}  # fmt: skip
COLUMN_KEYS = {
    "buyer_id", "buyer_name", "supplier_ids", "method", "category", "status", "amount", "currency",
    "tender_end", "date",
}  # fmt: skip


def _check(compiled: Any) -> dict[str, Any]:
    summary = summarize(compiled)
    columns = record_columns(compiled)
    assert set(summary) == SUMMARY_KEYS
    assert set(columns) == COLUMN_KEYS
    json.dumps(summary, allow_nan=False)
    json.dumps(columns, allow_nan=False)
    for key in ("tender_amount", "award_amount", "contract_amount"):
        assert summary[key] is None or isinstance(summary[key], float)
    assert columns["amount"] is None or isinstance(columns["amount"], float)
    assert all(isinstance(i, str) for i in columns["supplier_ids"])
    assert summary["status"] is None or summary["status"].split(".")[0] in (
        "planning",
        "tender",
        "award",
        "contract",
    )
    assert len(summary["search_text"].encode("utf-8")) <= SEARCH_TEXT_BYTES
    return summary


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_summarizes_every_real_release(real_data: Path) -> None:
    """Every release of every real stream summarises without raising, as JSON."""
    files = sorted(real_data.glob("*.releases.jsonl"))
    assert len(files) == 7
    releases = [release for path in files for release in _lines(path)]
    assert len(releases) == 475
    summaries = [_check(release) for release in releases]
    assert sum(s["buyer"]["name"] is not None for s in summaries) > 400
    assert {s["currency"] for s in summaries} >= {"MXN", "USD", "PYG", None}


def test_summarizes_federal_bulk_compiled_releases(real_data: Path) -> None:
    """The 10 compiled releases of the 2018 federal bulk file summarise (their amounts are null)."""
    compiled = _lines(real_data / "records" / "mx-apf" / "bulk-2018-compiled-releases.jsonl")
    assert len(compiled) == 10
    for release in compiled:
        summary = _check(release)
        assert summary["status"] == "contract.unknown"
        assert summary["contract_amount"] is None


def test_summary_of_a_real_process(schema: OcdsSchema, real_data: Path) -> None:
    """Jalisco's merged process gives its buyer, supplier, method, amounts and dates."""
    ocid = "ocds-xs1qbl-SFIN-03-0007-00-2017"
    releases = [r for r in _lines(real_data / "mx-jalisco.releases.jsonl") if r["ocid"] == ocid]
    compiled = ocdsmerge.Merger(schema=schema.release).create_compiled_release(releases)
    summary = summarize(compiled)
    assert summary["buyer"]["id"] == "DEP-GOB-JAL-03-1685"
    assert summary["procuring_entity"]["id"] == "DEP-GOB-JAL-03.4-1653"
    assert summary["suppliers"] == [{"id": "P00716", "name": "COMPUCAD, S.A. DE C.V."}]
    assert (summary["method"], summary["method_details"], summary["category"]) == (
        "open",
        "Licitación Pública",
        "goods",
    )
    assert summary["status"] == "contract.active"
    assert (summary["tender_amount"], summary["award_amount"], summary["contract_amount"]) == (
        290400.0,
        179568.0,
        179568.0,
    )
    assert summary["currency"] == "MXN"
    assert summary["number_of_tenderers"] == 3
    assert (summary["award_date"], summary["contract_signed"]) == (
        "2017-04-26T10:05:28Z",
        "2017-05-16T12:00:00Z",
    )
    assert "COMPUCAD" in summary["search_text"] and "CREATIVE CLOUD" in summary["search_text"]
    assert record_columns(compiled) == {
        "buyer_id": "DEP-GOB-JAL-03-1685",
        "buyer_name": summary["buyer"]["name"],
        "supplier_ids": ["P00716"],
        "method": "open",
        "category": "goods",
        "status": "contract.active",
        "amount": 290400.0,
        "currency": "MXN",
        "tender_end": None,
        "date": "2018-01-18T04:39:56Z",
    }


@pytest.mark.parametrize(
    ("value", "expected"),
    [(10, 10.0), (2.5, 2.5), ("1,234.50", 1234.5), ("$ 10", 10.0), ("diez", None), (None, None), (True, None),
     (float("nan"), None), ("inf", None), ({"amount": 1}, None)],
)  # fmt: skip
def test_parse_amount(value: Any, expected: float | None) -> None:
    """Amounts are read from numbers and numeric strings; anything else is None."""
    assert parse_amount(value) == expected


def test_odd_values_are_summarised_robustly() -> None:
    """Null currency, string amounts, missing parties and wrong types give None, never an error."""
    summary = _check(
        {
            "buyer": "Secretaría",
            "tender": {"value": {"amount": "1,000", "currency": None}, "numberOfTenderers": "3", "status": 7},
            "awards": [
                {"value": {"amount": "500", "currency": None}, "suppliers": [{"name": " ACME  SA "}]},
                "x",
            ],
            "contracts": {"not": "a list"},
            "parties": None,
        }
    )
    assert summary["buyer"] == {"id": None, "name": None}
    assert (summary["tender_amount"], summary["award_amount"], summary["contract_amount"]) == (
        1000.0,
        500.0,
        None,
    )
    assert summary["currency"] is None
    assert summary["number_of_tenderers"] == 3
    assert summary["suppliers"] == [{"id": None, "name": "ACME SA"}]
    assert summary["status"] == "award.unknown"
    odd_values: list[Any] = [None, [], "text", {}, {"tender": []}]
    for odd in odd_values:
        assert _check(odd)["status"] is None


def _item(status: str, amount: float, currency: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"status": status, "value": {"amount": amount, "currency": currency}, **(extra or {})}


def test_amounts_count_live_awards_and_contracts_and_name_mixed_currencies() -> None:
    """Cancelled and unsuccessful awards and cancelled contracts are not counted; two currencies are mixed."""
    compiled = {
        "tender": {"value": {"amount": 100, "currency": "MXN"}},
        "awards": [
            _item("active", 10, "MXN", {"suppliers": [{"id": "S2"}]}),
            _item("pending", 5.5, "MXN", {"suppliers": [{"id": "S1"}]}),
            _item("cancelled", 1000, "MXN", {"suppliers": [{"id": "S3"}]}),
            _item("unsuccessful", 1000, "MXN"),
        ],
        "contracts": [_item("active", 10, "USD"), _item("cancelled", 99999, "EUR")],
    }
    summary = summarize(compiled)
    assert (summary["award_amount"], summary["contract_amount"]) == (15.5, 10.0)
    assert summary["currency"] == "mixed"
    assert [s["id"] for s in summary["suppliers"]] == ["S1", "S2"]
    assert record_columns(compiled)["amount"] == 100.0


def test_suppliers_are_deduplicated_and_sorted() -> None:
    """Suppliers named in several awards and contracts appear once, sorted by id."""
    compiled = {
        "awards": [{"suppliers": [{"id": "B", "name": "Beta"}, {"id": "A", "name": "Alfa"}]}],
        "contracts": [{"suppliers": [{"id": "A", "name": "Alfa SA"}, {"id": 7, "name": "Siete"}]}],
    }
    assert summarize(compiled)["suppliers"] == [
        {"id": "7", "name": "Siete"},
        {"id": "A", "name": "Alfa"},
        {"id": "B", "name": "Beta"},
    ]


def test_suppliers_fall_back_to_parties() -> None:
    """Without suppliers on awards or contracts, parties with role supplier are used."""
    compiled = {"parties": [{"id": "P1", "name": "Proveedor", "roles": ["supplier"]}, {"id": "X", "roles": ["buyer"]}]}
    assert summarize(compiled)["suppliers"] == [{"id": "P1", "name": "Proveedor"}]
    assert summarize(compiled)["buyer"] == {"id": "X", "name": None}


@pytest.mark.parametrize(
    ("compiled", "status"),
    [
        ({}, None),
        ({"planning": {"budget": {}}}, "planning.planned"),
        ({"planning": {"x": 1}, "tender": {"status": "active"}}, "tender.active"),
        ({"tender": {"id": "1"}}, "tender.unknown"),
        ({"tender": {"status": "complete"}, "awards": [{"status": "cancelled"}, {"status": "active"}]},
         "award.active"),
        ({"awards": [{"status": "unsuccessful"}, {"status": "cancelled"}]}, "award.unsuccessful"),
        ({"awards": [{"status": "active"}], "contracts": [{"status": "terminated"}, {"status": "Active"}]},
         "contract.active"),
        ({"contracts": [{"status": "terminated"}, {"status": "cancelled"}]}, "contract.terminated"),
        ({"contracts": [{"id": "1"}]}, "contract.unknown"),
    ],
)  # fmt: skip
def test_process_status_is_the_latest_stage(compiled: dict[str, Any], status: str | None) -> None:
    """The process status is the latest stage present and its most alive status."""
    assert process_status(compiled) == status


def test_search_text_is_capped_on_a_character_boundary() -> None:
    """A huge record's search text stops at 20,000 UTF-8 bytes without splitting a character."""
    compiled = {
        "tender": {
            "title": "Licitación",
            "items": [{"description": f"artículo ñ {i} " * 20} for i in range(500)],
        }
    }
    text = summarize(compiled)["search_text"]
    assert text.startswith("Licitación artículo ñ 0")
    assert SEARCH_TEXT_BYTES - 4 < len(text.encode("utf-8")) <= SEARCH_TEXT_BYTES


def test_search_text_collapses_whitespace_and_repeats() -> None:
    """Each distinct text appears once, whitespace collapsed."""
    compiled = {
        "tender": {"title": "Papel", "description": "Papel", "items": [{"description": "  hojas \n carta "}]},
        "buyer": {"name": "SEFIN"},
    }
    assert summarize(compiled)["search_text"] == "Papel SEFIN hojas carta"


def test_summary_without_search_text() -> None:
    """``with_search_text=False`` leaves the text out (change events do not carry it)."""
    assert "search_text" not in summarize({"tender": {"title": "x"}}, with_search_text=False)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=10,
)
releases = st.dictionaries(
    st.sampled_from(["tender", "awards", "contracts", "planning", "parties", "buyer", "date"]),
    json_values
    | st.lists(st.dictionaries(st.sampled_from(["id", "status", "value", "suppliers", "title", "items"]), json_values)),
)


@settings(max_examples=200, deadline=None)
@given(compiled=releases)
def test_summarize_never_raises(compiled: dict[str, Any]) -> None:
    """Any JSON-ish release summarises to JSON without NaN or infinity."""
    _check(compiled)
