"""The leadership view: one set of figures per legal entity and currency, each equal to what its
KPI's own machinery says for that legal entity and period (backlog as of the period's end,
billed over it); a chart and a table of the same figures, the CSV and the API; amounts only for
finance and leadership; a figure the catalogue does not compute yet says what it needs and
shows its figures as soon as the catalogue marks it live; leadership members start there."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import json
import re
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from console.choices import Role, TeamKind
from console.models import User
from dashboards import kpis, leadership, rollups, team_home
from dashboards.kpi_queries import Filters, figure
from dashboards.observations import Dims, Observation
from integrations.models import LegalEntity
from tests.factories import make_team, make_user

pytestmark = pytest.mark.django_db

NOW = timezone.now()
ENTITIES = [("UK01", "Demo UK Ltd", "GBP", "EMEA"), ("DE01", "Demo GmbH", "EUR", "EMEA")]


def money(kpi: str, days_ago: float, cents: int, entity: str, currency: str) -> Observation:
    region = "EMEA" if entity else ""
    dims = Dims(legal_entity_code=entity, region=region, currency=currency)
    return Observation(kpi, NOW - dt.timedelta(days=days_ago), cents, dims)


@pytest.fixture
def figures() -> None:
    """Backlog and billed of two legal entities, and one deal without a legal entity.

    UK01: deals of 10,000 (40 days ago) and 5,000 (3 days ago), 2,000 billed 2 days ago;
    DE01: a deal of 8,000 (60 days ago), 1,000 billed 50 days ago and 3,000 billed 5 days ago;
    no legal entity: a deal of 700 in USD (1 day ago)."""
    for code, name, currency, region in ENTITIES:
        LegalEntity.objects.create(
            code=code, name=name, country=code[:2], currency=currency, region=region
        )
    rollups.record_many(
        [
            money("backlog", 40, 1_000_000, "UK01", "GBP"),
            money("backlog", 3, 500_000, "UK01", "GBP"),
            money("billed_amount", 2, 200_000, "UK01", "GBP"),
            money("backlog", 2, -200_000, "UK01", "GBP"),
            money("backlog", 60, 800_000, "DE01", "EUR"),
            money("billed_amount", 50, 100_000, "DE01", "EUR"),
            money("backlog", 50, -100_000, "DE01", "EUR"),
            money("billed_amount", 5, 300_000, "DE01", "EUR"),
            money("backlog", 5, -300_000, "DE01", "EUR"),
            money("backlog", 1, 70_000, "", "USD"),
        ]
    )


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def finance() -> User:
    return make_user("fin", team=make_team(TeamKind.FINANCE))


@pytest.fixture
def boss() -> User:
    return make_user("boss", team=make_team(TeamKind.LEADERSHIP), role=Role.VIEWER)


def api(client: Client, **params: str) -> dict:
    response = client.get(reverse("dashboards:api-leadership"), params)
    assert response.status_code == 200, response.content
    return response.json()


def value(data: dict, entity: str, currency: str, key: str) -> str | None:
    [row] = [r for r in data["rows"] if (r["legal_entity"], r["currency"]) == (entity, currency)]
    return row["values"][key]["value"]


def test_each_figure_is_its_kpi_for_the_legal_entity_and_period(figures, finance):
    data = api(signed_in(finance))
    assert [(r["legal_entity"], r["currency"]) for r in data["rows"]] == [
        ("DE01", "EUR"),
        ("UK01", "GBP"),
        ("", "USD"),  # records without a legal entity: last
    ]
    # backlog as of the period's end (everything before it counts), billed over the 30 days
    assert value(data, "UK01", "GBP", "backlog") == "13000.00"
    assert value(data, "UK01", "GBP", "billed_amount") == "2000.00"
    assert value(data, "DE01", "EUR", "backlog") == "4000.00"
    assert value(data, "DE01", "EUR", "billed_amount") == "3000.00"  # not the 1,000 of day 50
    assert value(data, "", "USD", "backlog") == "700.00"
    totals = {r["currency"]: r["values"] for r in data["totals"]}
    assert totals["EUR"]["billed_amount"]["value"] == "3000.00"
    assert totals["GBP"]["backlog"]["value"] == "13000.00"

    # one consistent set: every shown figure is the KPI page's figure for that entity
    start, end = dt.datetime.fromisoformat(data["start"]), dt.datetime.fromisoformat(data["end"])
    for row in data["rows"]:
        for key, cell in row["values"].items():
            kpi = kpis.BY_KEY.get(key)
            if kpi is None or not kpi.live:
                assert cell == {"value": None, "status": "needs_data"}
                continue
            _, headline, by_currency, _ = figure(
                kpi, start, end, Filters(legal_entity=row["legal_entity"])
            )
            expected = by_currency.get(row["currency"]) if kpi.is_money else headline
            assert cell["value"] == (None if expected is None else str(expected)), (key, row)

    # a longer period takes in the older invoice
    earlier = api(signed_in(finance), **{"from": (NOW - dt.timedelta(days=90)).date().isoformat()})
    assert value(earlier, "DE01", "EUR", "billed_amount") == "4000.00"
    assert value(earlier, "DE01", "EUR", "backlog") == "4000.00"


def test_figures_not_computed_yet_say_what_they_need(figures, finance):
    data = api(signed_in(finance))
    for figure_ in data["figures"]:
        kpi = kpis.BY_KEY.get(figure_["key"])
        assert figure_["defined"] is (kpi is not None)
        assert figure_["live"] is bool(kpi is not None and kpi.live)
        if not figure_["live"]:
            assert figure_["needs"]
    html = signed_in(finance).get(reverse("dashboards:leadership")).content.decode()
    for figure_ in data["figures"]:
        if not figure_["live"]:
            assert f'data-figure-needs="{figure_["key"]}"' in html
            assert "not available yet — needs " in html


def test_a_figure_shows_as_soon_as_the_catalogue_marks_it_live(
    figures, finance, monkeypatch: pytest.MonkeyPatch
):
    # billed stops being computed: its column says what it needs, and no figures
    billed = kpis.BY_KEY["billed_amount"]
    monkeypatch.setitem(
        kpis.BY_KEY, "billed_amount", dataclasses.replace(billed, needs="a new billing feed")
    )
    data = api(signed_in(finance))
    [column] = [f for f in data["figures"] if f["key"] == "billed_amount"]
    assert (column["live"], column["needs"]) == (False, "a new billing feed")
    assert value(data, "UK01", "GBP", "billed_amount") is None
    html = signed_in(finance).get(reverse("dashboards:leadership")).content.decode()
    assert "not available yet — needs a new billing feed" in html

    # earned revenue becomes live: its figures appear, per legal entity and currency
    earned = kpis.BY_KEY["earned_revenue"]
    monkeypatch.setitem(kpis.BY_KEY, "earned_revenue", dataclasses.replace(earned, needs=""))
    rollups.record_many([money("earned_revenue", 4, 150_000, "UK01", "GBP")])
    data = api(signed_in(finance))
    assert value(data, "UK01", "GBP", "earned_revenue") == "1500.00"
    assert value(data, "DE01", "EUR", "earned_revenue") is None


def test_page_draws_a_chart_per_currency_beside_the_table_and_exports_csv(figures, boss):
    client = signed_in(boss)
    html = client.get(reverse("dashboards:leadership")).content.decode()
    found = re.search(r'<script id="leadership-data" type="application/json">(.*?)</script>', html)
    assert found, "no chart data"
    charts = {c["currency"]: c for c in json.loads(found.group(1))["charts"]}
    assert set(charts) == {"EUR", "GBP", "USD"}
    series = {s["key"]: s["values"] for s in charts["GBP"]["series"]}
    assert charts["GBP"]["labels"] == ["UK01"]
    assert series["backlog"] == ["13000.00"] and series["billed_amount"] == ["2000.00"]
    assert "vendor/chartjs/chart.umd.min.js" in html and 'data-leadership-chart="0"' in html
    row = re.search(r'<tr data-legal-entity="UK01" data-currency="GBP">(.*?)</tr>', html, re.S)
    assert row and "13000.00" in row.group(1) and "2000.00" in row.group(1)

    csv_url = re.search(r'href="([^"]*format=csv[^"]*)" data-csv-export', html).group(1)
    exported = client.get(csv_url.replace("&amp;", "&"))
    assert exported["Content-Disposition"].startswith('attachment; filename="leadership-')
    rows = list(csv.DictReader(io.StringIO(exported.content.decode())))
    uk = next(r for r in rows if r["legal_entity"] == "UK01")
    assert (uk["row"], uk["currency"], uk["backlog"], uk["billed_amount"]) == (
        "legal_entity",
        "GBP",
        "13000.00",
        "2000.00",
    )
    assert {r["currency"] for r in rows if r["row"] == "total"} == {"EUR", "GBP", "USD"}


def test_amounts_are_for_finance_and_leadership_only(figures):
    pmo = make_user("pm", team=make_team(TeamKind.PMO))
    data = api(signed_in(pmo))
    assert data["masked"] is True
    money_keys = [
        f["key"]
        for f in data["figures"]
        if kpis.BY_KEY.get(f["key"]) and kpis.BY_KEY[f["key"]].is_money
    ]
    assert "backlog" in money_keys
    for row in data["rows"] + data["totals"]:
        for key in money_keys:
            assert row["values"][key]["value"] is None
    html = signed_in(pmo).get(reverse("dashboards:leadership")).content.decode()
    assert "13000.00" not in html and "Amounts are shown to finance and leadership only" in html
    exported = signed_in(pmo).get(reverse("dashboards:api-leadership"), {"format": "csv"})
    assert "13000.00" not in exported.content.decode()


def test_bad_periods_are_refused_by_the_api_and_explained_on_the_page(figures, finance):
    client = signed_in(finance)
    refused = client.get(reverse("dashboards:api-leadership"), {"from": "yesterday"})
    assert refused.status_code == 400
    backwards = client.get(
        reverse("dashboards:api-leadership"), {"from": "2026-02-01", "to": "2026-01-01"}
    )
    assert backwards.status_code == 400 and "empty" in backwards.json()["detail"]
    page = client.get(reverse("dashboards:leadership"), {"from": "yesterday"})
    assert page.status_code == 200 and 'role="alert"' in page.content.decode()


def test_leadership_members_start_with_the_leadership_view(figures, boss, finance):
    sections = team_home.team_sections(boss)
    assert sections["leadership_member"] is True
    totals = {line["row"].currency: line for line in sections["leadership_totals"]}
    backlog = dict((c.key, cell.value) for c, cell in totals["GBP"]["cells"])["backlog"]
    assert backlog == Decimal("13000.00")
    home = signed_in(boss).get(reverse("home")).content.decode()
    assert home.index('id="leadership-title"') < home.index('id="my-queues-title"')
    assert reverse("dashboards:leadership") in home
    assert team_home.team_sections(finance)["leadership_member"] is False
    assert 'id="leadership-title"' not in signed_in(finance).get(reverse("home")).content.decode()


def test_the_default_period_is_the_kpi_pages_default():
    start, end = leadership.default_period(NOW)
    assert end - start in (dt.timedelta(days=30), dt.timedelta(days=31))
    assert end > NOW and start.hour == 0 and end.hour == 0
