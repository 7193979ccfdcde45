"""KPIs over known records: each figure exact (Decimal, UTC buckets), the same from the
incremental rollups as from a rebuild; series filtered by period, grain, legal entity,
region and connection; a bucket's records add up to it; the JSON and CSV API."""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone

from console.choices import TeamKind
from dashboards import kpi_queries, kpis, rollups
from dashboards.kpi_queries import Filters, QueryError
from dashboards.kpis import BREACH, NO_DATA, OK, UNRATED, WARNING, Thresholds
from dashboards.models import KpiRollup, MilestoneFact
from integrations.choices import RunStatus, StepStatus, Vendor
from integrations.models import BusinessTimestamp, PostingBatch, SyncRun, SyncStep
from integrations.signals import entries_posted, runs_succeeded
from tests.factories import make_connection, make_exception, make_queue, make_team, make_user

from .clock import T0

NOW = T0 + dt.timedelta(days=3)
DAY1 = T0.replace(hour=0)
H = dt.timedelta(hours=1)


def kpi(key: str) -> kpis.Kpi:
    return kpis.get(key)


def value(key: str, **filters) -> Decimal | None:
    return kpi_queries.current(kpi(key), Filters(**filters), now=NOW).value


def handoff(crm, name, entity, region, *, amount, currency, won, provisioned, quote=None):
    run = SyncRun.objects.create(
        workflow="create_service_engagement",
        correlation_id=f"deal:{name}",
        business_key=f"deal:{name}",
        trigger="poll",
        status=RunStatus.RUNNING,
        source_connection=crm,
        legal_entity_code=entity,
        region=region,
        context={"fetch_deal": {"opportunity": {"amount": amount, "currency": currency}}},
    )
    stamps = [("closed_won", won), ("project_provisioned", provisioned)]
    if quote is not None:
        stamps.append(("quote", quote))
    for stamp, at in stamps:
        BusinessTimestamp.objects.create(business_key=run.business_key, name=stamp, at=at)
    return run


def billing(clock, psa, name, *, created, invoiced, amount):
    clock.at = created  # the run is created when the milestone event is consumed
    run = SyncRun.objects.create(
        workflow="release_milestone_billing",
        correlation_id=f"milestone:{psa.pk}:{name}",
        business_key="deal:A",
        trigger="webhook",
        status=RunStatus.RUNNING,
        source_connection=psa,
        legal_entity_code="UK01",
        region="EMEA",
        context={"load_milestone": {"completion": {"amount": amount, "currency": "GBP"}}},
    )
    SyncStep.objects.create(
        run=run,
        name="create_invoice",
        position=2,
        status=StepStatus.SUCCEEDED,
        finished_at=invoiced,
    )
    return run


def succeed(*runs: SyncRun, at: dt.datetime) -> None:
    """What the engine does when a batch of runs succeeds."""
    SyncRun.objects.filter(pk__in=[r.pk for r in runs]).update(
        status=RunStatus.SUCCEEDED, finished_at=at
    )
    for run in runs:
        run.status, run.finished_at = RunStatus.SUCCEEDED, at
    runs_succeeded.send(sender=SyncRun, runs=list(runs))


@pytest.fixture
def known(db, clock):
    """Three deals handed off (C after a failed first pass), two milestones invoiced (E after
    an exception), an amendment, a posting batch and a milestone fact."""
    crm = make_connection(Vendor.SALESFORCE)
    psa = make_connection(Vendor.KANTATA)
    queue = make_queue()
    a = handoff(
        crm,
        "A",
        "UK01",
        "EMEA",
        amount="10000.00",
        currency="GBP",
        quote=T0,
        won=T0 + 2 * H,
        provisioned=T0 + 10 * H,
    )
    b = handoff(
        crm,
        "B",
        "US01",
        "Americas",
        amount="5000.50",
        currency="USD",
        quote=T0,
        won=T0 + H,
        provisioned=T0 + 20 * H,
    )
    c = handoff(
        crm,
        "C",
        "US01",
        "Americas",
        amount="3000.00",
        currency="USD",
        won=T0 + H,
        provisioned=T0 + 29 * H,
    )
    succeed(a, b, at=T0 + 20 * H + dt.timedelta(minutes=5))
    clock.at = T0 + 3 * H  # the exception opens now (first_seen is auto_now_add)
    make_exception(queue, run=c, legal_entity_code="US01", region="Americas")
    succeed(c, at=T0 + 30 * H)

    d = billing(clock, psa, "D", created=T0 + 40 * H, invoiced=T0 + 42 * H, amount="2500.00")
    e = billing(clock, psa, "E", created=T0 + 40 * H, invoiced=T0 + 49 * H, amount="1000.00")
    clock.at = T0 + 41 * H  # the exception opens now (first_seen is auto_now_add)
    make_exception(queue, run=e, legal_entity_code="UK01", region="EMEA")
    succeed(d, at=T0 + 43 * H)
    succeed(e, at=T0 + 50 * H)

    f = SyncRun.objects.create(
        workflow="update_billing_plan",
        correlation_id="amendment:F",
        business_key="deal:A",
        trigger="poll",
        status=RunStatus.RUNNING,
        source_connection=crm,
        legal_entity_code="UK01",
        region="EMEA",
        context={
            "load_amendment": {
                "amendment": {"new_total_value": "12000.00", "currency": "GBP"},
                "opportunity": {"amount": "10000.00", "currency": "GBP"},
            }
        },
    )
    succeed(f, at=T0 + 60 * H)

    clock.at = T0 + 61 * H
    batch = PostingBatch.objects.create(
        psa=psa,
        erp=make_connection(Vendor.NETSUITE),
        record_type="timeBill",
        key="time:test",
        entries=[
            {"entry": {"source_id": "1", "project_key": "deal:A"}, "erp_id": "900"},
            {"entry": {"source_id": "2", "project_key": "deal:A"}, "erp_id": "901"},
            {"entry": {"source_id": "3", "project_key": "deal:A"}},  # refused
        ],
        status=PostingBatch.Status.PARTIAL,
        posted_at=T0 + 61 * H + dt.timedelta(minutes=10),
    )
    entries_posted.send(sender=PostingBatch, batch=batch, entry_ids=["1", "2"])

    clock.at = T0 + 45 * H
    MilestoneFact.objects.create(psa_connection_id=psa.pk, story_id="77", deal_key="deal:A")
    clock.at = NOW
    return {"crm": crm, "psa": psa, "runs": (a, b, c, d, e, f), "batch": batch}


def test_kpi_values_over_known_records(known):
    assert value("quote_to_project") == Decimal("15.00")  # (10 h + 20 h) / 2; C has no quote
    assert value("won_to_project") == Decimal("18.33")  # (8 + 19 + 28) / 3 hours
    assert value("provisioning_success_rate") == Decimal("66.67")  # C failed its first pass
    assert value("billing_exception_rate") == Decimal("50.00")  # E needed a person
    assert value("time_to_invoice") == Decimal("5.50")  # (2 h + 9 h) / 2
    assert value("invoice_cycle_time") == Decimal("6.50")  # (3 h + 10 h) / 2
    assert value("time_entry_latency") == Decimal("10.00")  # minutes, two entries posted
    assert kpi_queries.current(kpi("time_entry_latency"), now=NOW).count == 2
    assert value("exceptions_opened") == 2
    assert value("milestones_completed") == 1

    billed = kpi_queries.current(kpi("billed_amount"), now=NOW)
    assert billed.by_currency == {"GBP": Decimal("3500.00")}
    assert billed.value == Decimal("3500.00")  # one currency: a headline value
    backlog = kpi_queries.current(kpi("backlog"), now=NOW)
    # GBP: 10,000 handed off + 2,000 amended - 2,500 - 1,000 billed; USD: 5,000.50 + 3,000
    assert backlog.by_currency == {"GBP": Decimal("8500.00"), "USD": Decimal("8000.50")}
    assert backlog.value is None  # two currencies: no single figure
    assert backlog.status == NO_DATA
    assert value("backlog", legal_entity="US01") == Decimal("8000.50")
    assert kpi_queries.by_legal_entity(kpi("backlog"), now=NOW) == {
        ("UK01", "GBP"): Decimal("8500.00"),
        ("US01", "USD"): Decimal("8000.50"),
    }

    # by dimension
    assert value("provisioning_success_rate", legal_entity="US01") == Decimal("50.00")
    assert value("provisioning_success_rate", region="EMEA") == Decimal("100.00")
    assert value("provisioning_success_rate", connection=known["psa"].pk) is None
    assert value("time_entry_latency", connection=known["psa"].pk) == Decimal("10.00")

    # statuses against the default thresholds
    assert kpi_queries.current(kpi("provisioning_success_rate"), now=NOW).status == BREACH
    assert kpi_queries.current(kpi("billing_exception_rate"), now=NOW).status == BREACH
    assert kpi_queries.current(kpi("time_entry_latency"), now=NOW).status == OK
    assert kpi_queries.current(kpi("won_to_project"), now=NOW).status == BREACH
    assert kpi_queries.current(kpi("exceptions_opened"), now=NOW).status == UNRATED

    # the incremental rollups were exact: a rebuild changes nothing
    assert rollups.check() == []


def test_incremental_path_matches_the_rebuild_row_for_row(known):
    before = rollups.stored()
    KpiRollup.objects.all().delete()
    rollups.rebuild()
    assert rollups.stored() == before
    # integers in base units: seconds, cents, 0/1
    day = KpiRollup.objects.get(kpi="quote_to_project", grain="day", legal_entity_code="UK01")
    assert (day.count, day.total, day.minimum, day.maximum) == (1, 36000, 36000, 36000)


def test_a_window_outside_the_records_has_no_value(known):
    later = NOW + dt.timedelta(days=60)
    assert kpi_queries.current(kpi("quote_to_project"), now=later).value is None
    assert kpi_queries.current(kpi("quote_to_project"), now=later).status == NO_DATA
    # a balance carries over: the backlog is still there
    assert kpi_queries.current(kpi("backlog"), Filters(currency="GBP"), now=later).value == (
        Decimal("8500.00")
    )


def test_series_by_day_and_by_hour_with_filters(known):
    won = kpi("won_to_project")
    days = kpi_queries.series(won, T0, T0 + dt.timedelta(days=3), "day")
    assert [p.bucket for p in days.points] == [
        T0.replace(hour=0) + dt.timedelta(days=i) for i in range(4)
    ]
    assert [(p.count, p.value) for p in days.points] == [
        (1, Decimal("8.00")),  # A, provisioned at 19:00 on 2 November
        (2, Decimal("23.50")),  # B (19 h) at 05:00 and C (28 h) at 14:00 on the 3rd
        (0, None),
        (0, None),
    ]
    assert days.points[1].minimum == Decimal("19.00")
    assert days.points[1].maximum == Decimal("28.00")
    assert days.points[1].status == BREACH

    uk = kpi_queries.series(
        won, DAY1, DAY1 + dt.timedelta(days=2), "day", Filters(legal_entity="UK01")
    )
    assert [(p.count, p.value) for p in uk.points] == [(1, Decimal("8.00")), (0, None)]
    americas = kpi_queries.series(
        won, DAY1, DAY1 + dt.timedelta(days=2), "day", Filters(region="Americas")
    )
    assert [p.count for p in americas.points] == [0, 2]
    other = kpi_queries.series(
        won, DAY1, DAY1 + dt.timedelta(days=2), "day", Filters(connection=known["psa"].pk)
    )
    assert [p.count for p in other.points] == [0, 0]

    hours = kpi_queries.series(won, T0 + 9 * H, T0 + 12 * H, "hour")
    assert [(p.bucket, p.count) for p in hours.points] == [
        (T0 + 9 * H, 0),
        (T0 + 10 * H, 1),  # A's project provisioned at 19:00
        (T0 + 11 * H, 0),
    ]
    # periods are rounded out to whole buckets
    rounded = kpi_queries.series(
        won, T0 + 10 * H + dt.timedelta(minutes=30), T0 + 10 * H + dt.timedelta(minutes=31), "hour"
    )
    assert [(p.bucket, p.count) for p in rounded.points] == [(T0 + 10 * H, 1)]


def test_a_balance_series_is_a_running_total_per_currency(known):
    backlog = kpi("backlog")
    series = kpi_queries.series(
        backlog,
        T0 + dt.timedelta(days=1),
        T0 + dt.timedelta(days=3),
        "day",
        Filters(currency="GBP"),
    )
    # A's 10,000 on the 3rd; on the 4th -2,500 and -1,000 billed, +2,000 amended
    assert [(p.bucket.day, p.value) for p in series.points] == [
        (3, Decimal("10000.00")),
        (4, Decimal("8500.00")),
        (5, Decimal("8500.00")),
    ]
    third = DAY1 + dt.timedelta(days=1)
    both = kpi_queries.series(backlog, third, third + dt.timedelta(days=1), "day")
    assert {(p.currency, p.value) for p in both.points} == {
        ("GBP", Decimal("10000.00")),
        ("USD", Decimal("8000.50")),  # B and C
    }
    later = kpi_queries.series(backlog, DAY1 + dt.timedelta(days=4), NOW + dt.timedelta(days=5))
    assert {p.value for p in later.points if p.currency == "GBP"} == {Decimal("8500.00")}


def test_series_refuses_what_it_cannot_answer(known, waiting_kpi):
    with pytest.raises(QueryError, match="grain"):
        kpi_queries.series(kpi("won_to_project"), T0, NOW, "week")
    with pytest.raises(QueryError, match="before"):
        kpi_queries.series(kpi("won_to_project"), NOW, T0, "day")
    with pytest.raises(QueryError, match="at most"):
        kpi_queries.series(kpi("won_to_project"), T0 - dt.timedelta(days=400), NOW, "hour")
    with pytest.raises(QueryError, match="needs"):
        kpi_queries.series(kpi("revenue_posting_accuracy"), T0, NOW, "day")


def test_the_records_of_a_bucket_add_up_to_its_figure(known):
    rate = kpi("provisioning_success_rate")
    end = DAY1 + dt.timedelta(days=2)
    found, more = kpi_queries.records(rate, DAY1, end)
    points = kpi_queries.series(rate, DAY1, end, "day").points
    assert not more
    assert [p.count for p in points] == [1, 2]  # C's first exception; A and B succeeded
    assert len(found) == 3
    assert {r.kind for r in found} == {"run", "exception"}
    assert sum(r.value for r in found) == Decimal("200.00")  # two successes of 100 %
    exception = next(r for r in found if r.kind == "exception")
    assert exception.url == f"/exceptions/{exception.id}/"
    assert exception.at == T0 + 3 * H

    latency, _ = kpi_queries.records(kpi("time_entry_latency"), T0 + 61 * H, T0 + 62 * H)
    assert [(r.kind, r.count, r.value) for r in latency] == [("posting_batch", 2, Decimal("10.00"))]
    first, more = kpi_queries.records(kpi("won_to_project"), T0, NOW, limit=1)
    assert more and len(first) == 1 and first[0].at == T0 + 29 * H  # newest first


def test_thresholds_bands():
    lower = Thresholds(warning=Decimal(24), breach=Decimal(72))
    assert [lower.status(Decimal(v), "lower") for v in (0, 24, 71, 72)] == [
        OK,
        WARNING,
        WARNING,
        BREACH,
    ]
    higher = Thresholds(warning=Decimal(95), breach=Decimal(85))
    assert [higher.status(Decimal(v), "higher") for v in (100, 95, 86, 85)] == [
        OK,
        WARNING,
        WARNING,
        BREACH,
    ]
    assert higher.status(None, "higher") == NO_DATA
    assert lower.bands("lower", "hours") == {
        "ok": "below 24 hours",
        "warning": "24 to below 72 hours",
        "breach": "72 hours or more",
    }


def test_every_kpi_is_defined_and_the_missing_ones_say_what_they_need():
    keys = {k.key for k in kpis.KPIS}
    assert {
        "quote_to_project",
        "provisioning_success_rate",
        "time_entry_latency",
        "billing_exception_rate",
        "time_to_invoice",
        "invoice_cycle_time",
        "dso",
        "backlog",
        "revenue_posting_accuracy",
        "utilization_freshness",
        "project_margin_variance",
    } <= keys
    for k in kpis.KPIS:
        assert k.name and k.definition and k.formula and k.unit and k.computed_from, k.key
        assert k.direction in ("lower", "higher", "none")
    for key in (
        "dso",
        "earned_revenue",
        "project_margin_variance",
        "utilization_freshness",
        "revenue_posting_accuracy",
    ):
        assert kpi(key).live and not kpi(key).needs, key


# -- the API --------------------------------------------------------------------------------


@pytest.fixture
def finance_client(known) -> Client:
    client = Client()
    client.force_login(make_user("fin", team=make_team(TeamKind.FINANCE)))
    return client


def test_api_lists_every_kpi_with_its_definition_and_current_value(finance_client, waiting_kpi):
    listed = finance_client.get("/api/v1/kpis/").json()
    by_key = {k["key"]: k for k in listed}
    assert set(by_key) == {k.key for k in kpis.KPIS}
    rate = by_key["provisioning_success_rate"]
    assert rate["formula"] and rate["definition"] and rate["direction"] == "higher"
    assert rate["thresholds"]["warning"] == "95" and rate["thresholds"]["breach"] == "85"
    assert rate["current"]["status"] in (OK, WARNING, BREACH, NO_DATA)
    assert rate["series_url"].endswith("/api/v1/kpis/provisioning_success_rate/series/")
    waiting = by_key["revenue_posting_accuracy"]
    assert waiting["live"] is False and waiting["current"]["status"] == "needs_data"
    assert waiting["series_url"] is None
    assert by_key["dso"]["live"] is True and by_key["dso"]["series_url"]

    one = finance_client.get("/api/v1/kpis/backlog/?legal_entity=US01").json()
    assert one["current"]["by_currency"] == {"USD": "8000.50"}
    assert finance_client.get("/api/v1/kpis/nope/").status_code == 404
    assert Client().get("/api/v1/kpis/").status_code in (401, 403)


def test_api_series_as_json_and_csv(finance_client, waiting_kpi):
    url = "/api/v1/kpis/won_to_project/series/"
    query = f"?from={T0:%Y-%m-%d}&to={(T0 + dt.timedelta(days=2)):%Y-%m-%d}&grain=day"
    data = finance_client.get(url + query).json()
    assert data["grain"] == "day" and data["unit"] == "hours"
    assert [(p["count"], p["value"]) for p in data["points"]] == [(1, "8.00"), (2, "23.50")]

    filtered = finance_client.get(url + query + "&legal_entity=US01&region=Americas").json()
    assert [(p["count"], p["value"]) for p in filtered["points"]] == [(0, None), (2, "23.50")]
    assert filtered["filters"]["legal_entity"] == "US01"

    exported = finance_client.get(url + query + "&format=csv")
    assert exported.status_code == 200
    assert exported["Content-Type"].startswith("text/csv")
    assert "attachment" in exported["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(exported.content.decode())))
    assert rows[0] == ["bucket", "currency", "count", "value", "minimum", "maximum", "status"]
    assert rows[1][:4] == ["2026-11-02T00:00:00Z", "", "1", "8.00"]
    assert rows[2][2:4] == ["2", "23.50"]

    assert finance_client.get(url + "?grain=week").status_code == 400
    assert finance_client.get(url + "?from=yesterday").status_code == 400
    assert finance_client.get("/api/v1/kpis/revenue_posting_accuracy/series/").status_code == 400


def test_api_records_of_a_bucket(finance_client):
    url = "/api/v1/kpis/provisioning_success_rate/records/"
    data = finance_client.get(f"{url}?from=2026-11-03&grain=day").json()  # one day's bucket
    assert len(data["records"]) == 2 and not data["truncated"]
    assert {r["kind"] for r in data["records"]} == {"run"}
    assert data["start"] == "2026-11-03T00:00:00Z" and data["end"] == "2026-11-04T00:00:00Z"
    data = finance_client.get(f"{url}?from=2026-11-02&to=2026-11-04&grain=day").json()
    assert {r["kind"] for r in data["records"]} == {"run", "exception"}
    assert finance_client.get(f"{url}?from=2026-11-02&limit=x").status_code == 400


def test_money_kpis_are_masked_without_finance_or_leadership_rights(known):
    pmo = Client()
    pmo.force_login(make_user("pm", team=make_team(TeamKind.PMO)))
    backlog = pmo.get("/api/v1/kpis/backlog/").json()["current"]
    assert backlog["masked"] is True and backlog["by_currency"] == {} and backlog["value"] is None
    series = pmo.get("/api/v1/kpis/billed_amount/series/").json()
    assert series["masked"] is True and all(p["value"] is None for p in series["points"])
    assert pmo.get("/api/v1/kpis/won_to_project/").json()["current"]["masked"] is False

    leader = Client()
    leader.force_login(make_user("lead", team=make_team(TeamKind.LEADERSHIP, "Leadership")))
    seen = leader.get("/api/v1/kpis/backlog/").json()["current"]
    assert seen["masked"] is False and seen["by_currency"]["GBP"] == "8500.00"


def test_current_defaults_to_now(waiting_kpi):
    assert kpi_queries.current(kpi("revenue_posting_accuracy")).status == "needs_data"
    assert kpi_queries.current(kpi("revenue_posting_accuracy")).end >= timezone.now() - H
