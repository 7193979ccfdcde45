"""The finance KPIs over known records: DSO (a ratio of receivables to what was invoiced),
earned revenue, project margin and its variance against the plan (each project at its latest
figures), and utilization freshness (approval to the first extract file). Each figure exact,
the same from the incremental rollups as from a rebuild."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from dashboards import kpi_queries, kpis, margins, rollups
from dashboards.kpi_queries import Filters
from dashboards.kpis import BREACH, NO_DATA, OK, WARNING
from dashboards.models import (
    EarnedRevenueFact,
    InvoicePaymentFact,
    KpiRollup,
    ProjectMarginFact,
)
from integrations.choices import RunStatus, Vendor
from integrations.models import ExchangeRate, PostingBatch, SyncRun
from integrations.signals import entries_posted
from reporting.models import Extract, ExtractRun
from tests.factories import make_connection

from .clock import T0

D = dt.timedelta(days=1)
H = dt.timedelta(hours=1)


def kpi(key: str) -> kpis.Kpi:
    return kpis.get(key)


def handoff(crm, deal: str, entity: str, region: str, *, currency: str, margin: str | None):
    """A deal's hand-off run (still running: it adds nothing of its own to the rollups)."""
    opportunity = {"amount": "10000.00", "currency": currency}
    if margin is not None:
        opportunity["planned_margin"] = margin
    return SyncRun.objects.create(
        workflow="create_service_engagement",
        correlation_id=deal,
        business_key=deal,
        trigger="poll",
        status=RunStatus.RUNNING,
        source_connection=crm,
        legal_entity_code=entity,
        region=region,
        context={"fetch_deal": {"opportunity": opportunity}},
    )


def paid(erp, key: str, *, total: str, remaining: str, state: str, raised, seen, **dims):
    """One invoice payment fact, as dashboards.receivables records it."""
    return InvoicePaymentFact.objects.create(
        erp_connection_id=erp.pk,
        invoice_key=key,
        erp_invoice_id=key[-3:],
        run_id=1,
        legal_entity_code=dims.get("entity", "UK01"),
        region=dims.get("region", "EMEA"),
        currency=dims.get("currency", "GBP"),
        total=Decimal(total),
        amount_remaining=Decimal(remaining),
        state=state,
        invoiced_at=raised,
        seen_at=seen,
    )


# -- DSO --------------------------------------------------------------------------------------


@pytest.fixture
def invoices(db, clock):
    """GBP: A 1,200.00 raised on day 0 and paid in full on day 20, B 600.00 raised on day 10
    and paid 200.00 on day 25; C 300.00 raised on day 12 and voided on day 14. USD: D 1,000.00
    raised on day 5, unpaid."""
    erp = make_connection(Vendor.NETSUITE)
    paid(erp, "INV-A", total="1200.00", remaining="1200.00", state="open", raised=T0, seen=T0)
    paid(erp, "INV-B", total="600.00", remaining="600.00", state="open", raised=T0 + 10 * D,
         seen=T0 + 10 * D)  # fmt: skip
    paid(erp, "INV-C", total="300.00", remaining="300.00", state="open", raised=T0 + 12 * D,
         seen=T0 + 12 * D)  # fmt: skip
    paid(erp, "INV-C", total="300.00", remaining="300.00", state="cancelled", raised=T0 + 12 * D,
         seen=T0 + 14 * D)  # fmt: skip
    paid(erp, "INV-A", total="1200.00", remaining="0.00", state="paid", raised=T0,
         seen=T0 + 20 * D)  # fmt: skip
    paid(erp, "INV-B", total="600.00", remaining="400.00", state="open", raised=T0 + 10 * D,
         seen=T0 + 25 * D)  # fmt: skip
    paid(erp, "INV-D", total="1000.00", remaining="1000.00", state="overdue", raised=T0 + 5 * D,
         seen=T0 + 5 * D, currency="USD", entity="US01", region="Americas")  # fmt: skip
    return erp


def test_dso_is_receivables_at_the_end_over_what_was_invoiced_times_the_days(invoices):
    now = T0 + 29 * D + 15 * H  # the 30 days to the end of this hour take in every invoice
    dso = kpi_queries.current(kpi("dso"), now=now)
    # GBP: 400.00 owed (B) / 2,100.00 invoiced (A, B and the voided C) x 30 days
    # USD: 1,000.00 owed / 1,000.00 invoiced x 30 days
    assert dso.by_currency == {"GBP": Decimal("5.71"), "USD": Decimal("30.00")}
    assert dso.value is None  # two currencies: no single figure
    assert dso.count == 4  # invoices raised in the period
    assert dso.status == OK  # the worse of the two is still below 45 days
    gbp = kpi_queries.current(kpi("dso"), Filters(currency="GBP"), now=now)
    assert gbp.value == Decimal("5.71") and gbp.status == OK
    assert kpi_queries.current(kpi("dso"), Filters(legal_entity="US01"), now=now).value == (
        Decimal("30.00")
    )
    assert kpi_queries.by_legal_entity(kpi("dso"), now=now) == {
        ("UK01", "GBP"): Decimal("5.71"),
        ("US01", "USD"): Decimal("30.00"),
    }
    # later, with nothing invoiced in the window, there is no DSO (not an infinite one)
    assert kpi_queries.current(kpi("dso"), now=now + 60 * D).by_currency == {
        "GBP": None,
        "USD": None,
    }


def test_dso_series_is_the_30_day_dso_at_each_bucket_end(invoices):
    first = T0.replace(hour=0)
    series = kpi_queries.series(kpi("dso"), first, first + 30 * D, "day", Filters(currency="GBP"))
    by_day = {p.bucket: p.value for p in series.points}
    assert by_day[first] == Decimal("30.00")  # A raised and owed: 1,200 / 1,200 x 30
    # day 12: A 1,200 + B 600 + C 300 owed, all invoiced in the window
    assert by_day[first + 12 * D] == Decimal("30.00")
    # day 14: C voided: 1,800 owed of 2,100 invoiced
    assert by_day[first + 14 * D] == Decimal("25.71")
    # day 25: A paid, B paid in part: 400 of 2,100
    assert by_day[first + 25 * D] == Decimal("5.71")
    assert [p.count for p in series.points if p.count] == [1, 1, 1]  # invoices raised per day
    assert series.points[14].status == OK
    # the records behind a bucket are what changed the receivables then
    found, _ = kpi_queries.records(kpi("dso"), first + 20 * D, first + 21 * D)
    assert [(r.kind, r.value, r.currency) for r in found] == [
        ("invoice_payment_fact", Decimal("-1200.00"), "GBP")
    ]


def test_dso_thresholds_in_days():
    dso = kpi("dso")
    assert dso.status(Decimal(44)) == OK
    assert dso.status(Decimal(45)) == WARNING
    assert dso.status(Decimal(60)) == BREACH
    assert dso.ratio(400_00, 2100_00, Decimal(30)) == Decimal("5.71")
    assert dso.ratio(400_00, 0, Decimal(30)) is None


def test_a_payment_read_before_the_invoice_was_raised_counts_when_it_was(db, clock):
    """The ERP's clock has whole seconds: a change it dates just before Throughline's record
    of the invoice never makes the receivables negative."""
    erp = make_connection(Vendor.NETSUITE)
    raised = T0 + dt.timedelta(microseconds=500_000)
    paid(erp, "INV-X", total="100.00", remaining="0.00", state="paid", raised=raised, seen=T0)
    day = KpiRollup.objects.get(kpi="dso.receivables", grain="hour")
    assert (day.bucket, day.count, day.total) == (T0, 2, 0)
    assert rollups.check() == []


# -- earned revenue ---------------------------------------------------------------------------


def test_earned_revenue_counts_recognised_lines_on_their_periods_last_day(db, clock):
    erp = make_connection(Vendor.NETSUITE)
    for key, end, amount, currency, entity in (
        ("TL-CON-1-20260901", dt.date(2026, 9, 30), "7200.00", "USD", "US01"),
        ("TL-CON-1-20261001", dt.date(2026, 10, 31), "7200.00", "USD", "US01"),
        ("TL-CON-2-20261001", dt.date(2026, 10, 31), "2500.50", "GBP", "UK01"),
    ):
        EarnedRevenueFact.objects.create(
            erp_connection_id=erp.pk,
            line_key=key,
            erp_line_id="1",
            contract_key=key[:8],
            period_start=end.replace(day=1),
            period_end=end,
            legal_entity_code=entity,
            currency=currency,
            amount=Decimal(amount),
        )
    now = dt.datetime(2026, 11, 20, 12, tzinfo=dt.UTC)  # the 30 days back reach 21 October
    earned = kpi_queries.current(kpi("earned_revenue"), now=now)
    assert earned.by_currency == {"GBP": Decimal("2500.50"), "USD": Decimal("7200.00")}
    assert earned.status == NO_DATA  # two currencies, no thresholds: no single figure
    assert kpi_queries.by_legal_entity(kpi("earned_revenue"), now=now) == {
        ("UK01", "GBP"): Decimal("2500.50"),
        ("US01", "USD"): Decimal("7200.00"),
    }
    october = kpi_queries.series(
        kpi("earned_revenue"),
        dt.datetime(2026, 9, 30, tzinfo=dt.UTC),
        dt.datetime(2026, 11, 1, tzinfo=dt.UTC),
        "day",
        Filters(currency="USD"),
    )
    assert [(p.bucket.date(), p.value) for p in october.points if p.count] == [
        (dt.date(2026, 9, 30), Decimal("7200.00")),
        (dt.date(2026, 10, 31), Decimal("7200.00")),
    ]
    assert rollups.check() == []


# -- project margin and its variance ----------------------------------------------------------


@pytest.fixture
def projects(db, clock):
    """A: planned 35 %, billed 1,000.00 GBP with 600.00 cost on day 1 (40 %), then 200.00 more
    cost on day 3 (20 %). B: planned 30 %, billed 500.00 USD, cost 400.00 on day 2 (20 %). C:
    no planned margin. E: a cost that could not be priced."""
    crm = make_connection(Vendor.SALESFORCE)
    handoff(crm, "deal:A", "UK01", "EMEA", currency="GBP", margin="35.00")
    handoff(crm, "deal:B", "US01", "Americas", currency="USD", margin="30.00")
    handoff(crm, "deal:C", "US01", "Americas", currency="USD", margin=None)
    handoff(crm, "deal:E", "UK01", "EMEA", currency="GBP", margin="30.00")
    day = dt.date(2026, 11, 2)
    clock.at = T0 + D
    margins.add("deal:A", "run:1", billed=[(Decimal("1000.00"), "GBP", day)])
    margins.add("deal:A", "time:1", cost=[(Decimal("600.00"), "GBP", day)])
    clock.at = T0 + 2 * D
    margins.add("deal:B", "run:2", billed=[(Decimal("500.00"), "USD", day)])
    margins.add("deal:B", "time:2", cost=[(Decimal("400.00"), "USD", day)])
    margins.add("deal:C", "run:3", billed=[(Decimal("100.00"), "USD", day)])
    margins.add("deal:E", "run:4", billed=[(Decimal("100.00"), "GBP", day)])
    margins.add("deal:E", "time:4", cost=[(None, "GBP", day)])  # no cost rate
    clock.at = T0 + 3 * D
    margins.add("deal:A", "time:5", cost=[(Decimal("200.00"), "GBP", day)])
    return crm


def test_margin_variance_averages_each_projects_latest_figures(projects):
    now = T0 + 4 * D
    variance = kpi_queries.current(kpi("project_margin_variance"), now=now)
    assert variance.value == Decimal("-12.50")  # A 20 - 35 = -15, B 20 - 30 = -10
    assert variance.count == 2  # projects measured (C has no plan, E an unpriced cost)
    assert variance.status == BREACH  # -10 points or less
    margin = kpi_queries.current(kpi("project_margin"), now=now)
    assert margin.value == Decimal("46.67")  # A 20 %, B 20 %, C 100 % (no cost yet)
    assert kpi_queries.by_legal_entity(kpi("project_margin_variance"), now=now) == {
        ("UK01", ""): Decimal("-15.00"),
        ("US01", ""): Decimal("-10.00"),
    }
    # day by day: A alone at +5, then A (+5) and B (-10), then A's new figures replace its old
    series = kpi_queries.series(kpi("project_margin_variance"), T0, now, "day")
    assert [p.value for p in series.points] == [
        None,
        Decimal("5.00"),
        Decimal("-2.50"),
        Decimal("-12.50"),
        Decimal("-12.50"),
    ]
    assert series.points[2].status == OK and series.points[3].status == BREACH
    # A's cost on day 3: its earlier figure taken back, its new one counted
    found, _ = kpi_queries.records(kpi("project_margin_variance"), T0 + 3 * D, T0 + 4 * D)
    assert sorted((r.count, r.value) for r in found) == [
        (-1, Decimal("5.00")),
        (1, Decimal("-15.00")),
    ]
    assert rollups.check() == []


def test_margin_facts_are_cumulative_priced_in_the_deals_currency_and_never_repeat(projects):
    last = ProjectMarginFact.objects.filter(deal_key="deal:A").order_by("-pk").first()
    assert (last.billed, last.cost, last.planned_margin) == (
        Decimal("1000.00"),
        Decimal("800.00"),
        Decimal("35.00"),
    )
    assert margins.add("deal:A", "time:5", cost=[(Decimal("1.00"), "GBP", None)]) == 0
    assert margins.add("deal:unknown", "run:9", billed=[(Decimal("1.00"), "GBP", None)]) == 0
    # a USD cost on the GBP project: converted at the ERP's rate effective on its day
    erp = make_connection(Vendor.NETSUITE)
    ExchangeRate.objects.create(
        base="USD",
        quote="GBP",
        rate=Decimal("0.8"),
        effective_date=dt.date(2026, 11, 1),
        source=erp,
    )
    assert margins.add(
        "deal:A", "charge:1", cost=[(Decimal("100.00"), "USD", dt.date(2026, 11, 2))]
    )
    assert ProjectMarginFact.objects.filter(deal_key="deal:A").latest("pk").cost == Decimal(
        "880.00"
    )
    # a EUR cost without a rate: the project is left out from then on
    margins.add("deal:A", "charge:2", cost=[(Decimal("10.00"), "EUR", dt.date(2026, 11, 2))])
    assert ProjectMarginFact.objects.filter(deal_key="deal:A").latest("pk").unpriced == 1
    assert kpi_queries.current(kpi("project_margin_variance"), now=T0 + 4 * D).value == (
        Decimal("-10.00")
    )
    assert rollups.check() == []


def test_costs_of_a_posting_batch_are_time_at_cost_rates_and_vendor_bills(projects):
    psa = make_connection(Vendor.KANTATA)
    erp = make_connection(Vendor.NETSUITE)

    def entry(source, hours, rate, deal="deal:B"):
        return {
            "source_id": source,
            "project_key": deal,
            "hours": hours,
            "cost_rate": rate,
            "currency": "USD",
            "work_date": "2026-11-03",
        }

    time = PostingBatch.objects.create(
        psa=psa,
        erp=erp,
        record_type="timeBill",
        key="time:cost",
        entries=[
            {"entry": entry("1", "1.50", "80.00"), "erp_id": "9"},
            {"entry": entry("2", "2.00", "80.00")},  # refused by the ERP: no cost
            {"entry": entry("3", "1.00", "75.33"), "erp_id": "10"},
        ],
        status=PostingBatch.Status.PARTIAL,
        posted_at=T0 + 3 * D,
    )
    assert margins.record_costs(time) == 1
    bills = PostingBatch.objects.create(
        psa=psa,
        erp=erp,
        record_type="vendorBill",
        key="charge:cost",
        entries=[
            {
                "entry": {
                    "source_id": "7",
                    "project_key": "deal:B",
                    "amount": "50.00",
                    "currency": "USD",
                    "incurred_on": "2026-11-03",
                },
                "erp_id": "11",
            }
        ],
        status=PostingBatch.Status.POSTED,
        posted_at=T0 + 3 * D,
    )
    assert margins.record_costs(bills) == 1
    latest = ProjectMarginFact.objects.filter(deal_key="deal:B").latest("pk")
    assert latest.cost == Decimal("400.00") + Decimal("120.00") + Decimal("75.33") + Decimal("50")
    assert margins.record_costs(time) == 0  # the same batch again adds nothing


# -- utilization freshness --------------------------------------------------------------------


def test_freshness_counts_each_entry_once_at_the_first_extract_file_holding_it(db, clock):
    crm = make_connection(Vendor.SALESFORCE)
    psa = make_connection(Vendor.KANTATA)
    erp = make_connection(Vendor.NETSUITE)
    handoff(crm, "deal:A", "UK01", "EMEA", currency="GBP", margin="30.00")

    def batch(key, posted, *approved):
        clock.at = posted
        made = PostingBatch.objects.create(
            psa=psa,
            erp=erp,
            record_type="timeBill",
            key=key,
            entries=[
                {
                    "entry": {
                        "source_id": f"{key}-{i}",
                        "project_key": "deal:A",
                        **({"approved_at": at.isoformat()} if at else {}),
                    },
                    "erp_id": str(i),
                }
                for i, at in enumerate(approved)
            ]
            + [{"entry": {"source_id": f"{key}-x", "project_key": "deal:A"}}],  # refused
            status=PostingBatch.Status.PARTIAL,
            posted_at=posted,
        )
        entries_posted.send(sender=PostingBatch, batch=made, entry_ids=["posted"])  # as posting
        return made

    batch("b1", T0 + H, T0, T0 - 2 * H)  # approved 0 and 2 hours before 09:00
    batch("b2", T0 + 5 * H, T0 + 4 * H, None)  # one entry posted before approvals were read
    daily = Extract.objects.create(name="daily-time", dataset="time_entries")
    other = Extract.objects.create(name="time-parquet", dataset="time_entries", format="parquet")
    customers = Extract.objects.create(name="customers", dataset="customers")

    def run(extract, finished, start, end):
        clock.at = finished
        return ExtractRun.objects.create(
            extract=extract,
            status=ExtractRun.Status.SUCCEEDED,
            started_at=finished,
            finished_at=finished,
            rows=1,
            watermark_from=start,
            watermark_to=end,
        )

    run(daily, T0 + 3 * H, None, T0 + H)  # b1 written at 12:00: 3 h and 5 h after approval
    run(customers, T0 + 4 * H, None, T0 + 4 * H)  # another dataset: no time entries
    run(other, T0 + 8 * H, None, T0 + 5 * H)  # b1 again (not counted) and b2 first: 4 h
    run(daily, T0 + 9 * H, T0 + H, T0 + 5 * H)  # b1's time again (a tie) and b2: both seen
    freshness = kpi_queries.current(kpi("utilization_freshness"), now=T0 + 10 * H)
    assert freshness.count == 3
    assert freshness.value == Decimal("4.00")  # (3 + 5 + 4) / 3 hours
    assert freshness.status == OK
    found, _ = kpi_queries.records(kpi("utilization_freshness"), T0, T0 + 10 * H)
    assert sorted((r.kind, r.count, r.value) for r in found) == [
        ("extract_run", 1, Decimal("3.00")),
        ("extract_run", 1, Decimal("4.00")),
        ("extract_run", 1, Decimal("5.00")),
    ]
    before = rollups.stored()
    KpiRollup.objects.all().delete()
    rollups.rebuild()
    assert rollups.stored() == before
