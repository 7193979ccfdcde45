"""A KPI the catalogue defines but cannot compute yet (every KPI is live today; a new one may
start out waiting for its data): the pages and the API must say what it needs."""

from __future__ import annotations

import dataclasses

import pytest

from dashboards import kpis

WAITING = "revenue_posting_accuracy"


@pytest.fixture
def waiting_kpi(monkeypatch: pytest.MonkeyPatch) -> kpis.Kpi:
    """`revenue_posting_accuracy` as if its data were not recorded yet."""
    waiting = dataclasses.replace(
        kpis.get(WAITING), needs="reconciliation runs of PSA billing against the ERP"
    )
    catalogue = tuple(waiting if k.key == WAITING else k for k in kpis.KPIS)
    monkeypatch.setattr(kpis, "KPIS", catalogue)
    monkeypatch.setattr(kpis, "BY_KEY", {k.key: k for k in catalogue})
    monkeypatch.setattr(kpis, "LIVE", tuple(k for k in catalogue if k.live))
    return waiting
