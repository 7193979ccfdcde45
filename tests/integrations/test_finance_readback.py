"""What the finance KPIs read back from the vendor systems, over the stand-ins through the
connectors: the planned margin of the CRM deal, invoice payments from the ERP (receivables),
the revenue the ERP recognised (closed accounting periods), the PSA's approval time of time
entries, and the demo traffic that makes them move."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

import httpx
import pytest

from console.demo_traffic import tick
from dashboards import kpi_queries, kpis
from dashboards.kpi_queries import Filters
from dashboards.models import EarnedRevenueFact, InvoicePaymentFact
from integrations.canonical.errors import MappingError
from integrations.connectors.kantata import mapping as kantata_mapping
from integrations.connectors.netsuite import mapping as netsuite_mapping
from integrations.connectors.salesforce import mapping as salesforce_mapping
from integrations.models import Connection, PostingBatch, SyncRun, Watermark
from integrations.payments import sync_payments
from integrations.polling import poll_closed_won
from integrations.postings import collect_time_entries
from integrations.psa_feed import read_psa_events
from integrations.reference_data import sync_people
from integrations.revenue import STREAM, sync_recognised_revenue
from tests.standin_steps import complete_first_milestone

ACCOUNTS = {"UK01": "0015g00000Tl001AAB", "US01": "0015g00000Tl002AAB"}
REVENUE = "customrecord_tl_revenue_schedule"


def close_deal(sf, entity: str = "UK01", **extra) -> str:
    answer = httpx.post(
        f"{sf.url}/__standin__/salesforce/close-deal",
        json={"account_id": ACCOUNTS[entity], "legal_entity": entity, **extra},
    )
    answer.raise_for_status()
    poll_closed_won(Connection.objects.get(vendor="salesforce"))
    return answer.json()["id"]


def handoff_of(opportunity_id: str) -> SyncRun:
    return SyncRun.objects.get(
        workflow="create_service_engagement", correlation_id=f"deal:{opportunity_id}"
    )


def erps() -> list[Connection]:
    return list(Connection.objects.filter(system="erp", enabled=True).order_by("pk"))


# -- the CRM deal's planned margin ------------------------------------------------------------


def test_the_planned_margin_is_read_from_the_crm_deal(demo):
    deal = close_deal(demo["salesforce"], planned_margin=42.5, amount="30000.00")
    opportunity = handoff_of(deal).context["fetch_deal"]["opportunity"]
    assert opportunity["planned_margin"] == "42.50"
    seeded = handoff_of("0065g00000Tl001AAB").context["fetch_deal"]["opportunity"]
    assert seeded["planned_margin"] == "35.00"  # Northwind's, as seeded in the CRM
    none = close_deal(demo["salesforce"], planned_margin=None)
    assert handoff_of(none).context["fetch_deal"]["opportunity"]["planned_margin"] is None
    bad = httpx.post(
        f"{demo['salesforce'].url}/__standin__/salesforce/close-deal",
        json={"planned_margin": 140},
    )
    assert bad.status_code == 400


def test_a_planned_margin_that_is_not_a_percent_is_refused_by_name():
    record = {
        "Id": "0065g00000Tl001AAB",
        "Name": "Deal",
        "StageName": "Closed Won",
        "IsWon": True,
        "IsClosed": True,
        "Amount": 1000.0,
        "CurrencyIsoCode": "GBP",
        "CloseDate": "2026-11-02",
        "Legal_Entity__c": "UK01",
        "Project_Template__c": "FIXED-3",
        "AccountId": "0015g00000Tl001AAB",
        "Account": {"Name": "Northwind"},
    }
    assert salesforce_mapping.opportunity_from_salesforce(record).planned_margin is None
    with_margin = {**record, "Planned_Margin__c": 35.5}
    assert salesforce_mapping.opportunity_from_salesforce(with_margin).planned_margin == (
        Decimal("35.50")
    )
    for bad in ("a lot", 250, 33.333):
        with pytest.raises(MappingError) as raised:
            salesforce_mapping.opportunity_from_salesforce({**record, "Planned_Margin__c": bad})
        assert "Planned_Margin__c" in str(raised.value.problems)


# -- invoice payments from the ERP ------------------------------------------------------------


def invoice_a_milestone(demo) -> SyncRun:
    """A UK deal handed off, its first milestone completed and invoiced in the ERP."""
    kt = demo["kantata"]
    deal = close_deal(demo["salesforce"], amount="10000.00", template="FIXED-3")
    workspace = handoff_of(deal).context["provision_project"]["psa_project_id"]
    complete_first_milestone(kt, workspace)
    read_psa_events(Connection.objects.get(vendor="kantata"))
    return SyncRun.objects.get(workflow="release_milestone_billing", status="succeeded")


def test_payments_read_from_the_erp_become_receivables(demo):
    ns = demo["netsuite"]
    billing = invoice_a_milestone(demo)
    for erp in erps():
        sync_payments(erp)
    (first,) = InvoicePaymentFact.objects.all()
    # 20 % of 10,000.00 before tax, 20 % UK VAT on top: what the ERP holds
    assert (first.total, first.amount_remaining, first.state) == (
        Decimal("2400.00"),
        Decimal("2400.00"),
        "open",
    )
    assert first.currency == "GBP" and first.legal_entity_code == "UK01"
    assert (
        first.run_id == billing.pk
        and first.invoiced_at == billing.steps.get(name="create_invoice").finished_at
    )
    invoice = ns.state.by_external_id("invoice", first.invoice_key)
    httpx.post(
        f"{ns.url}/__standin__/netsuite/invoice/{invoice['id']}/pay", json={"amount": "600.00"}
    ).raise_for_status()
    for erp in erps():
        sync_payments(erp)
        sync_payments(erp)  # read again: nothing changed, nothing added
    assert InvoicePaymentFact.objects.count() == 2
    second = InvoicePaymentFact.objects.latest("pk")
    assert (second.amount_remaining, second.state) == (Decimal("1800.00"), "open")
    assert second.seen_at >= first.seen_at

    dso = kpi_queries.current(kpis.get("dso"), Filters(legal_entity="UK01"))
    assert dso.value == Decimal("22.50")  # 1,800.00 owed / 2,400.00 invoiced x 30 days

    httpx.post(
        f"{ns.url}/__standin__/netsuite/invoice/{invoice['id']}/pay", json={"amount": "1800.00"}
    ).raise_for_status()
    for erp in erps():
        sync_payments(erp)
    assert InvoicePaymentFact.objects.latest("pk").state == "paid"
    assert kpi_queries.current(kpis.get("dso"), Filters(legal_entity="UK01")).value == (
        Decimal("0.00")
    )


# -- revenue the ERP recognised ---------------------------------------------------------------


def test_recognised_revenue_is_read_back_month_by_month_as_the_erp_closes_them(demo):
    ns = demo["netsuite"]
    # a time-and-materials deal entered late: its 36,000.00 spread over July to November
    deal = close_deal(
        demo["salesforce"], "US01", template="TM-STD", amount="36000.00", close_date="2026-07-20"
    )
    assert handoff_of(deal).status == "succeeded"
    contract = f"TL-CON-{deal}"
    lines = [r for r in ns.state.table(REVENUE).values() if r["custrecord_tl_contract"] == contract]
    assert len(lines) == 5
    erp = Connection.objects.get(name="NetSuite (demo)")

    result = sync_recognised_revenue(erp)  # January to September are closed in the seed
    assert (result.periods, result.lines) == (9, 3)
    facts = EarnedRevenueFact.objects.order_by("period_end")
    assert [(f.period_name, f.amount, f.currency) for f in facts] == [
        ("Jul 2026", Decimal("7200.00"), "USD"),
        ("Aug 2026", Decimal("7200.00"), "USD"),
        ("Sep 2026", Decimal("7200.00"), "USD"),
    ]
    assert {(f.deal_key, f.legal_entity_code, f.region) for f in facts} == {
        (f"deal:{deal}", "US01", "Americas")
    }
    assert Watermark.objects.get(connection=erp, stream=STREAM).value == "2026-09-30"
    assert sync_recognised_revenue(erp).periods == 0  # October is still open

    # finance adjusts October's line in the ERP, then closes the month: read as the ERP has it
    october = next(r for r in lines if r["custrecord_tl_period"] == "2026-10-01")
    october["custrecord_tl_amount"] = 7000.0
    november = next(p for p in ns.state.table("accountingperiod").values() if p["id"] == "11")
    november["closed"] = True  # closed before October: waits for it
    assert sync_recognised_revenue(erp).periods == 0
    httpx.post(
        f"{ns.url}/__standin__/netsuite/accounting-period/10", json={"closed": True}
    ).raise_for_status()
    result = sync_recognised_revenue(erp)
    assert result.periods == 2  # October, then November (the seeded deals' too)
    assert EarnedRevenueFact.objects.get(period_name="Oct 2026").amount == Decimal("7000.00")
    late = EarnedRevenueFact.objects.filter(deal_key=f"deal:{deal}")
    assert late.count() == 5 and late.filter(period_name="Nov 2026").exists()
    assert result.lines == EarnedRevenueFact.objects.exclude(period_end__lte="2026-09-30").count()

    earned = kpi_queries.current(
        kpis.get("earned_revenue"),
        Filters(legal_entity="US01"),
        now=dt.datetime(2026, 11, 20, tzinfo=dt.UTC),
    )
    assert earned.by_currency == {"USD": Decimal("7000.00")}  # October's, on 31 October


def test_accounting_periods_and_revenue_lines_are_checked_when_read():
    with pytest.raises(MappingError):
        netsuite_mapping.accounting_period_from_netsuite(
            {"id": "1", "startdate": "2026-02-01", "enddate": "2026-01-31", "closed": "T"}
        )
    with pytest.raises(MappingError):
        netsuite_mapping.accounting_period_from_netsuite(
            {"id": "1", "startdate": "2026-01-01", "enddate": "2026-01-31", "closed": "maybe"}
        )
    line = {
        "id": "4",
        "externalid": "TL-CON-1-20260101",
        "custrecord_tl_contract": "TL-CON-1",
        "custrecord_tl_period": "2026-01-01",
        "custrecord_tl_amount": 100.5,
        "custrecord_tl_currency": "GBP",
    }
    assert netsuite_mapping.recognised_revenue_from_netsuite(line).amount == Decimal("100.50")
    for bad in ({"custrecord_tl_amount": 1.005}, {"custrecord_tl_currency": "pounds"}):
        with pytest.raises(MappingError):
            netsuite_mapping.recognised_revenue_from_netsuite({**line, **bad})


# -- the PSA's approval time ------------------------------------------------------------------


def test_time_entries_carry_the_psas_approval_time_into_the_posting(demo):
    kt = demo["kantata"]
    psa = Connection.objects.get(vendor="kantata")
    deal = close_deal(demo["salesforce"])
    workspace = handoff_of(deal).context["provision_project"]["psa_project_id"]
    sync_people(Connection.objects.get(name="NetSuite (demo)"), psa)
    httpx.post(
        f"{kt.url}/__standin__/kantata/time-burst",
        json={"workspace_id": workspace, "count": 3, "approved": True, "user_ids": [2]},
    ).raise_for_status()
    collect_time_entries(psa)
    posted = [
        item["entry"]
        for batch in PostingBatch.objects.filter(record_type="timeBill")
        for item in batch.entries
    ]
    assert len(posted) == 3
    for entry in posted:
        record = kt.state.table("time_entries")[entry["source_id"]]
        expected = dt.datetime.fromisoformat(record["updated_at"].replace("Z", "+00:00"))
        assert dt.datetime.fromisoformat(entry["approved_at"]) == expected.astimezone(dt.UTC)


def test_the_approval_time_is_the_entrys_last_change_in_utc():
    entry = {
        "id": "7",
        "workspace_id": "4",
        "user_id": "2",
        "date_performed": "2026-11-20",
        "time_in_minutes": 60,
        "billable": True,
        "approved": True,
        "currency": "USD",
        "cost_rate_in_cents": 7250,
    }
    read = kantata_mapping.time_entry_from_kantata(
        {**entry, "updated_at": "2026-11-20T10:00:00-05:00"}, project_key="deal:1"
    )
    assert read.approved_at == dt.datetime(2026, 11, 20, 15, tzinfo=dt.UTC)
    for unknown in (None, "yesterday", "2026-11-20T10:00:00"):  # no offset: not a time
        assert (
            kantata_mapping.time_entry_from_kantata(
                {**entry, "updated_at": unknown}, project_key="deal:1"
            ).approved_at
            is None
        )


# -- the demo makes them move -----------------------------------------------------------------


class AlwaysAct(random.Random):
    """A generator whose every roll says "do it" (0.0)."""

    def random(self) -> float:
        return 0.0


def test_demo_traffic_pays_invoices_and_closes_last_months_books(demo, settings):
    settings.STANDIN_PORTS = {v: int(s.url.rsplit(":", 1)[1]) for v, s in demo.items()}
    invoice_a_milestone(demo)
    ns = demo["netsuite"]
    today = dt.datetime.now(dt.UTC).date().isoformat()
    due = sorted(
        (p for p in ns.state.table("accountingperiod").values() if not p["closed"]),
        key=lambda p: p["endDate"],
    )
    done = " ".join(tick(AlwaysAct()).actions)
    assert "paid" in done
    (invoice,) = ns.state.table("invoice").values()
    assert Decimal(str(invoice["amountRemaining"])) == 0
    if due and due[0]["endDate"] < today:
        assert f"books of {due[0]['periodName']} closed" in done
        assert ns.state.table("accountingperiod")[due[0]["id"]]["closed"] is True
    # a late deal (AlwaysAct rolls 0.0: every deal is entered late)
    assert "closed on" in done
