"""KPI pages and team home views over a realistic demo flow (closed-won deals polled from the
CRM stand-in): tiles and their filters, the detail page's chart data equal to the API series,
its table and CSV link, the records behind a bucket, KPIs that need data, money masked for
users without finance rights, and what finance, PMO and IT members start with at home."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from urllib.parse import parse_qs, urlparse

import pytest
from django.test import Client
from django.urls import reverse
from django.utils.html import escape

from console.models import User
from dashboards import kpi_views, kpis
from exceptions.models import IntegrationException
from integrations.models import Connection, SyncRun
from integrations.polling import poll_closed_won

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def flow(demo):
    """Four closed-won deals polled: two provisioned (UK01, US01), two failing (DE01, US01)."""
    poll_closed_won(Connection.objects.get(vendor="salesforce"))
    return demo


def client_for(username: str) -> Client:
    client = Client()
    client.force_login(User.objects.get(username=username))
    return client


def tile(html: str, key: str) -> str:
    match = re.search(rf'<li class="tile kpi-tile [^"]*" data-kpi="{key}">(.*?)</li>', html, re.S)
    assert match, f"no tile for {key}"
    return match.group(0)


def tile_value(html: str, key: str) -> str:
    found = re.search(r"data-kpi-value>([^<]*)<", tile(html, key))
    return found.group(1).strip() if found else ""


def chart_data(html: str) -> dict:
    found = re.search(r'<script id="kpi-series" type="application/json">(.*?)</script>', html, re.S)
    assert found, "no chart data on the page"
    return json.loads(found.group(1))


def test_overview_shows_each_kpi_with_its_status_and_filters_narrow_it(flow, waiting_kpi):
    client = client_for("finance")
    html = client.get(reverse("dashboards:kpis")).content.decode()
    # 2 of the 4 deals were provisioned at the first pass: 50 %, a breach
    assert tile_value(html, "provisioning_success_rate") == "50.00"
    assert "kpi-breach" in tile(html, "provisioning_success_rate")
    assert tile_value(html, "exceptions_opened") == "2"
    assert "<polyline" not in tile(html, "revenue_posting_accuracy")
    # by legal entity, region and connection, with the API's parameter names
    by_uk = client.get(reverse("dashboards:kpis"), {"legal_entity": "UK01"}).content.decode()
    assert tile_value(by_uk, "provisioning_success_rate") == "100.00"
    assert tile_value(by_uk, "exceptions_opened") == "0"
    by_de = client.get(reverse("dashboards:kpis"), {"legal_entity": "DE01"}).content.decode()
    assert tile_value(by_de, "provisioning_success_rate") == "0.00"
    americas = client.get(reverse("dashboards:kpis"), {"region": "Americas"}).content.decode()
    assert tile_value(americas, "provisioning_success_rate") == "50.00"
    other = Connection.objects.get(vendor="kantata").pk
    none = client.get(reverse("dashboards:kpis"), {"connection": other}).content.decode()
    assert tile_value(none, "provisioning_success_rate") == "—"
    for period in ("7d", "30d", "90d"):
        page = client.get(reverse("dashboards:kpis"), {"period": period}).content.decode()
        assert tile_value(page, "provisioning_success_rate") == "50.00"
    # a tile links to its detail page with the same filters
    assert f"{reverse('dashboards:kpi', args=['backlog'])}?legal_entity=UK01" in by_uk


def test_bad_filters_are_explained_not_an_error(flow):
    client = client_for("finance")
    response = client.get(reverse("dashboards:kpis"), {"connection": "x", "from": "yesterday"})
    assert response.status_code == 200
    assert "The defaults are shown instead" in response.content.decode()


def test_detail_chart_data_is_the_api_series_and_the_table_and_csv_match(flow):
    client = client_for("finance")
    url = reverse("dashboards:kpi", args=["provisioning_success_rate"])
    html = client.get(url, {"period": "7d", "region": "EMEA"}).content.decode()
    kpi = kpis.get("provisioning_success_rate")
    assert escape(kpi.definition) in html
    assert escape(kpi.formula) in html
    assert "vendor/chartjs/chart.umd.min.js" in html and "js/kpi_chart.js" in html
    data = chart_data(html)
    csv_link = re.search(r'href="([^"]+)" data-csv-export', html).group(1).replace("&amp;", "&")
    params = {k: v[0] for k, v in parse_qs(urlparse(csv_link).query).items()}
    assert urlparse(csv_link).path == reverse("dashboards:api-kpi-series", args=[kpi.key])
    assert params.pop("format") == "csv"
    assert params["region"] == "EMEA"
    api = client.get(urlparse(csv_link).path, params).json()
    assert {k: data[k] for k in api} == api
    assert data["chart"] == "line" and data["thresholds"]["breach"] == str(kpi.thresholds.breach)
    assert len(data["points"]) in (7, 8)  # 7 days back, from the start of that day
    today = [p for p in data["points"] if p["count"]]
    assert [(p["count"], p["value"]) for p in today] == [(2, "50.00")]
    # the readable table holds the same buckets, and the CSV the same rows
    assert html.count("data-records-link") == 1
    csv_body = client.get(csv_link).content.decode().splitlines()
    assert csv_body[0].startswith("bucket,currency,count,value")
    assert len(csv_body) == 1 + len(data["points"])
    assert any(",2,50.00," in line for line in csv_body)


def test_records_page_lists_the_rows_behind_a_bucket(flow):
    client = client_for("finance")
    detail = client.get(
        reverse("dashboards:kpi", args=["provisioning_success_rate"]), {"period": "7d"}
    ).content.decode()
    link = re.search(r'href="([^"]+)" data-records-link', detail).group(1).replace("&amp;", "&")
    page = client.get(link).content.decode()
    # a deal counts at its first outcome: the run's success, or its first exception
    assert page.count("data-record=") == 4
    for run in SyncRun.objects.filter(status="succeeded"):
        assert f'data-record="run:{run.pk}"' in page
        assert reverse("integrations:run", args=[run.pk]) in page
    for exc in IntegrationException.objects.all():
        assert f'data-record="exception:{exc.pk}"' in page
        assert reverse("exceptions:detail", args=[exc.pk]) in page
    # narrowed by the filters the detail page passes on
    narrowed = client.get(link + "&legal_entity=UK01").content.decode()
    assert narrowed.count("data-record=") == 1


def test_needs_data_kpis_say_what_they_need(flow, waiting_kpi):
    client = client_for("finance")
    kpi = next(k for k in kpis.KPIS if not k.live)
    overview = client.get(reverse("dashboards:kpis")).content.decode()
    assert "Needs data" in tile(overview, kpi.key)
    detail = client.get(reverse("dashboards:kpi", args=[kpi.key])).content.decode()
    assert f"it needs {kpi.needs}" in detail
    assert "kpi-series" not in detail and "data-csv-export" not in detail
    records = client.get(reverse("dashboards:kpi-records", args=[kpi.key]))
    assert (
        records.status_code == 200 and "There are no records behind it" in records.content.decode()
    )
    assert client.get(reverse("dashboards:kpi", args=["no_such_kpi"])).status_code == 404


def test_money_is_masked_for_users_without_finance_rights(flow):
    finance = client_for("finance").get(reverse("dashboards:kpis")).content.decode()
    assert "120000.00 GBP" in tile(finance, "backlog")
    assert "250000.00 USD" in tile(finance, "backlog")
    pmo = client_for("pmo")
    masked = pmo.get(reverse("dashboards:kpis")).content.decode()
    assert "Hidden" in tile(masked, "backlog") and "120000" not in tile(masked, "backlog")
    detail = pmo.get(reverse("dashboards:kpi", args=["backlog"])).content.decode()
    assert "120000" not in detail and "250000" not in detail
    assert "kpi-series" not in detail  # no chart of amounts
    assert "shown to finance and leadership only" in detail
    shown = client_for("finance").get(reverse("dashboards:kpi", args=["backlog"]))
    assert Decimal(chart_data(shown.content.decode())["points"][-1]["value"]) in (
        Decimal("120000.00"),
        Decimal("250000.00"),
    )
    records = pmo.get(reverse("dashboards:kpi-records", args=["backlog"]), {"period": "7d"})
    body = records.content.decode()
    assert body.count("data-record=") == 2 and "120000" not in body


def test_team_home_sections(flow):
    finance = client_for("finance").get(reverse("home")).content.decode()
    assert "Invoice exceptions by legal entity" in finance
    de01 = IntegrationException.objects.get(legal_entity_code="DE01")
    assert f"{de01.queue.get_absolute_url()}?legal_entity_code=DE01" in finance
    assert "Provisioning failures by region" not in finance
    assert reverse("dashboards:kpi", args=["billing_exception_rate"]) in finance

    pmo = client_for("pmo").get(reverse("home")).content.decode()
    assert "Provisioning failures by region" in pmo
    us01 = IntegrationException.objects.get(legal_entity_code="US01")
    assert f"{us01.queue.get_absolute_url()}?region=Americas" in pmo
    assert "Invoice exceptions by legal entity" not in pmo
    assert reverse("dashboards:kpi", args=["provisioning_success_rate"]) in pmo

    it = client_for("it").get(reverse("home")).content.decode()
    assert "Connector health" in it  # kept from the health change
    assert reverse("dashboards:kpi", args=["exceptions_opened"]) in it
    assert "Invoice exceptions by legal entity" not in it


def test_team_breakdown_counts_active_exceptions_only(flow):
    exc = IntegrationException.objects.get(legal_entity_code="DE01")
    exc.status = "resolved"
    exc.save(update_fields=["status"])
    finance = client_for("finance").get(reverse("home")).content.decode()
    assert "No active exceptions in the finance queues." in finance


def test_sparkline_points():
    assert kpi_views.sparkline([None, Decimal(1)]) == ""
    assert kpi_views.sparkline([Decimal(0), None, Decimal(2)]) == "0.0,26.0 120.0,2.0"
