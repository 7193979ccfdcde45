"""Dashboard journeys in a real browser: a finance admin opens a KPI, follows "Edit thresholds",
changes the team's threshold and finds it in the thresholds list with its new band; a
leadership member opens the leadership view from the menu and sees its chart drawn by the
Chart.js served from static/ (no CDN) beside the table of the same figures."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from console.choices import Role, TeamKind
from dashboards import rollups, thresholds
from dashboards.models import KpiThreshold
from dashboards.observations import Dims, Observation
from integrations.models import LegalEntity
from tests.factories import make_queue, make_team, make_user

from .watching import watch

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "pw-for-tests-1"


def test_finance_admin_edits_a_kpi_threshold(page: Any, live_server: Any, login: Any) -> None:
    finance = make_team(TeamKind.FINANCE)
    make_queue(finance)
    make_user("fin-admin", team=finance, role=Role.ADMIN, password=PASSWORD)
    threshold = thresholds.save_threshold(
        KpiThreshold(
            kpi="billing_exception_rate",
            warning=Decimal(2),
            breach=Decimal(5),
            team=finance,
        ),
        actor=None,
    )
    at = timezone.now() - dt.timedelta(hours=2)
    dims = Dims(legal_entity_code="DE01", region="EMEA")
    rollups.record_many(
        [Observation("billing_exception_rate", at, 1, dims)]
        + [Observation("billing_exception_rate", at, 0, dims)] * 9
    )
    errors, external = watch(page, live_server)

    login(page, live_server, "fin-admin", PASSWORD)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="KPIs").click()
    page.wait_for_url(f"{live_server.url}/dashboards/kpis/")
    page.get_by_role("link", name="Billing exception rate").first.click()
    page.get_by_role("heading", name="Billing exception rate", level=1).wait_for()
    section = page.locator("section", has=page.get_by_role("heading", name="Team thresholds"))
    assert section.get_by_text("Breach", exact=True).first.is_visible()  # 10 % against 5 %

    section.get_by_role("link", name="Edit thresholds").click()
    page.wait_for_url(f"{live_server.url}/dashboards/thresholds/?kpi=billing_exception_rate")
    page.get_by_role("link", name="Edit the threshold on billing_exception_rate").click()
    page.get_by_role("heading", name="Edit the threshold on billing_exception_rate").wait_for()
    page.get_by_label("Breach").fill("12")
    page.get_by_role("button", name="Save threshold").click()

    page.wait_for_url(f"{live_server.url}/dashboards/thresholds/?kpi=billing_exception_rate")
    assert page.get_by_text("Threshold on billing_exception_rate saved.").is_visible()
    row = page.locator(f'tr[data-threshold="{threshold.pk}"]')
    assert "12 % or more" in row.inner_text()
    assert "Warning" in row.inner_text()  # 10 % now sits in the warning band
    threshold.refresh_from_db()
    assert threshold.breach == Decimal(12)
    assert errors == []
    assert [url for url in external if not url.startswith("data:")] == []


def test_leadership_view_draws_its_chart(page: Any, live_server: Any, login: Any) -> None:
    make_user("boss", team=make_team(TeamKind.LEADERSHIP), role=Role.VIEWER, password=PASSWORD)
    LegalEntity.objects.create(
        code="UK01", name="Demo UK Ltd", country="GB", currency="GBP", region="EMEA"
    )
    at = timezone.now() - dt.timedelta(days=2)
    uk = Dims(legal_entity_code="UK01", region="EMEA", currency="GBP")
    rollups.record_many(
        [
            Observation("backlog", at, 1_000_000, uk),
            Observation("billed_amount", at, 250_000, uk),
            Observation("backlog", at, -250_000, uk),
        ]
    )
    errors, external = watch(page, live_server)

    login(page, live_server, "boss", PASSWORD)
    # leadership members start there: their home page opens with it
    page.get_by_role("heading", name="Leadership view").wait_for()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Leadership").click()
    page.wait_for_url(f"{live_server.url}/dashboards/leadership/")
    page.get_by_role("heading", name="Leadership view", level=1).wait_for()

    chart = (
        "window.Chart && window.Chart.getChart(document.querySelector('[data-leadership-chart]'))"
    )
    page.wait_for_function(f"() => {chart}")
    labels = page.evaluate(f"() => ({chart}).data.labels")
    datasets = page.evaluate(f"() => ({chart}).data.datasets.map(d => [d.label, d.data])")
    assert labels == ["UK01"]
    assert ["Backlog (contracted, not yet billed)", [7500]] in datasets
    assert ["Billed", [2500]] in datasets
    row = page.locator('tr[data-legal-entity="UK01"][data-currency="GBP"]')
    assert "7500.00" in row.inner_text() and "2500.00" in row.inner_text()
    assert page.get_by_role("link", name="Export as CSV").is_visible()
    assert errors == []
    assert [url for url in external if not url.startswith("data:")] == []
