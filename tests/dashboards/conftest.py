"""Fixtures of the dashboards tests: a KPI the catalogue defines but cannot compute yet (every
KPI is live today; a new one may start out waiting for its data: the pages and the API must
say what it needs), a Finance queue whose alerts go by e-mail and webhook, and a clock the
test sets."""

from __future__ import annotations

import dataclasses

import pytest
from django.utils import timezone

from console.choices import TeamKind
from dashboards import kpis
from exceptions.models import Queue
from tests.factories import make_queue, make_team

from .clock import T0, Clock
from .threshold_setup import WEBHOOK

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


@pytest.fixture
def finance_queue() -> Queue:
    """Finance's queue, its alerts sent to finance-team@example.com and WEBHOOK."""
    queue = make_queue(make_team(TeamKind.FINANCE))
    queue.alert_emails = "finance-team@example.com"
    queue.alert_webhook_url = WEBHOOK
    queue.save()
    return queue


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """timezone.now() stands at T0 until the test moves `clock.at`."""
    clock = Clock(T0)
    monkeypatch.setattr(timezone, "now", clock)
    return clock
