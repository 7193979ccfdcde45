"""A finance member opens the KPIs from the menu, picks a KPI and sees its trend drawn by the
Chart.js served from static/ (no CDN), next to the table of the same figures."""

from __future__ import annotations

from typing import Any

import pytest

from console.demo import DEMO_PASSWORD
from integrations.models import Connection
from integrations.polling import poll_closed_won

from .watching import watch

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_kpi_detail_draws_its_chart(page: Any, live_server: Any, login: Any, demo) -> None:
    poll_closed_won(Connection.objects.get(vendor="salesforce"))
    errors, external = watch(page, live_server)

    login(page, live_server, "finance", DEMO_PASSWORD)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="KPIs").click()
    page.wait_for_url(f"{live_server.url}/dashboards/kpis/")
    page.get_by_role("link", name="Project provisioning success rate").first.click()
    page.get_by_role("heading", name="Project provisioning success rate", level=1).wait_for()

    page.wait_for_function(
        "() => window.Chart && window.Chart.getChart(document.getElementById('kpi-chart'))"
    )
    datasets = page.evaluate(
        "() => window.Chart.getChart(document.getElementById('kpi-chart')).data.datasets"
        ".map(d => d.label)"
    )
    assert datasets[0] == "%" and any(label.startswith("breach") for label in datasets)
    assert page.get_by_role("link", name="Export as CSV").is_visible()
    assert errors == []
    assert [url for url in external if not url.startswith("data:")] == []
