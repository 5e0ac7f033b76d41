"""The short soak (bench/soak.py): about two minutes of stream with each kind of fault, and nothing lost."""

from __future__ import annotations

import pytest

from bench.soak import Params, run_soak, table
from tests.support.stack import base_settings

pytestmark = pytest.mark.integration


@pytest.mark.timeout(600)
def test_short_soak_loses_repeats_and_reorders_nothing() -> None:
    """Two workers and two feed servers under a steady stream with defective releases, 50 subscribers resuming
    on either feed server; a worker and a feed server SIGKILLed, the broker and PostgreSQL restarted: the store
    equals a clean replay, and every subscriber got its changes exactly once, in order."""
    result = run_soak(Params(duration=60, rate=30, subscribers=46, pollers=4, kills=2, seed=3), base_settings(),
                      say=lambda _: None)
    report = table(result)
    assert result.produced.published > 0 and result.store.accepted > 0, report
    assert result.store.rejected > 0, report  # the defective releases were rejected, not lost
    assert {f.kind for f in result.faults} == {"worker", "feed server", "kafka", "postgres"}, report
    assert all(f.recovered is not None for f in result.faults), report
    assert result.store.failures == 0, report
    assert sum(s.lost + s.duplicated + s.disordered + s.wrong + s.refusals for s in result.subscribers) == 0, report
    assert len(result.subscribers) == 50 and sum(s.received for s in result.subscribers) > 0, report
    assert result.failures == 0, report
