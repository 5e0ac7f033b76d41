"""consumers.redflags_batch (``ocds-live watch --count``): the rules over release files, as Cardinal runs them."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import orjson

from consumers.redflags_batch import count_files
from core.merge import RecordMerger
from core.redflags.config import RulesConfig
from core.schema import OcdsSchema
from tests.consumers.test_watchdog import bidding


def test_count_merges_each_process_and_counts_every_rule(schema: OcdsSchema, tmp_path: Path) -> None:
    """Cardinal's R058 example split over two releases per process, plus a single bid and a contract published
    200 days after signing: one flag each for R058, R018 and late publication; no other rule fires."""
    releases = []
    for ocid, (win, lose) in {"ocds-F": (1, 100), **{f"ocds-{i}": (1, 2) for i in range(4)}}.items():
        tender = {"ocid": ocid, "id": "0", "date": "2024-01-01T00:00:00Z", "tag": ["tender"],
                  "tender": {"id": "t", "procurementMethod": "open", "numberOfTenderers": 2}}
        releases += [tender, bidding(ocid, "2024-02-01T00:00:00Z", win, lose)]
    single = bidding("ocds-S", "2024-02-01T00:00:00Z", 5, 6)
    single["tender"]["numberOfTenderers"] = 1
    late = {"ocid": "ocds-L", "id": "1", "date": "2024-08-01T00:00:00Z", "tag": ["contract"],
            "contracts": [{"id": "c", "dateSigned": "2024-01-13T00:00:00Z"}]}
    path = tmp_path / "releases.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(r) for r in [*releases, single, late]))
    table = count_files([str(path)], RecordMerger(schema, versioned=False), replace(RulesConfig(), min_population=5))
    counts = {line.split()[0]: int(line.split()[1]) for line in table.splitlines()[2:]}
    assert table.splitlines()[0] == "12 releases, 7 processes (0 releases did not merge)"
    assert {rule: n for rule, n in counts.items() if n} == {"R058": 1, "R018": 1, "MX-LATE-PUBLICATION": 1}
