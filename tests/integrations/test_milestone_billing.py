"""Project-to-cash over the stand-ins: a milestone completed in Kantata becomes one NetSuite
invoice, its number and status reach Kantata and Salesforce, payment comes back from the
ERP, a closed period lands with Finance, and every consumer of the event works on its own."""

from __future__ import annotations

from decimal import Decimal

import httpx

from console.models import User
from dashboards.models import MilestoneFact
from exceptions import actions
from exceptions.choices import ExceptionCode, ExceptionStatus
from exceptions.models import IntegrationException
from integrations.choices import RunStatus
from integrations.models import Connection, SyncRun
from integrations.payments import sync_payments
from integrations.polling import poll_closed_won
from integrations.psa_feed import read_psa_events


def provision(demo) -> SyncRun:
    poll_closed_won(Connection.objects.get(vendor="salesforce"))
    return SyncRun.objects.get(title__startswith="Northwind")


def kickoff_story(demo, handoff: SyncRun) -> str:
    workspace = handoff.context["provision_project"]["psa_project_id"]
    stories = demo["kantata"].state.table("stories").values()
    return next(
        str(s["id"])
        for s in stories
        if str(s.get("workspace_id")) == workspace and s.get("title") == "Kick-off"
    )


def complete(demo, story_id: str) -> None:
    answer = httpx.post(
        f"{demo['kantata'].url}/__standin__/kantata/complete-milestone",
        json={"story_id": story_id},
    )
    assert answer.is_success, answer.text


def story_reference(demo, story: str) -> dict:
    state = demo["kantata"].state
    return state.table("external_references")[state.references_of("Story", story)["throughline"]]


def psa() -> Connection:
    return Connection.objects.get(vendor="kantata")


def erp() -> Connection:
    return Connection.objects.get(name="NetSuite (demo)")


def invoices(demo) -> list[dict]:
    return list(demo["netsuite"].state.table("invoice").values())


def test_a_completed_milestone_is_invoiced_once_and_reported_back(demo):
    handoff = provision(demo)
    story = kickoff_story(demo, handoff)
    complete(demo, story)
    result = read_psa_events(psa())
    assert result.milestones == 1

    billing = SyncRun.objects.get(workflow="release_milestone_billing")
    assert billing.status == RunStatus.SUCCEEDED, billing.error
    assert billing.business_key == handoff.correlation_id  # on the deal's trace
    assert billing.legal_entity_code == "UK01"
    [invoice] = invoices(demo)
    number = billing.context["create_invoice"]["invoice"]["number"]
    assert invoice["tranId"] == number
    # 20 % of the 120,000.00 GBP deal, before tax
    assert Decimal(billing.context["load_milestone"]["completion"]["amount"]) == Decimal("24000.00")
    reference = story_reference(demo, story)
    assert reference["service_model_ref"] == number
    crm_invoices = list(demo["salesforce"].state.table("Throughline_Invoice__c").values())
    assert [i["Invoice_Number__c"] for i in crm_invoices] == [number]
    assert MilestoneFact.objects.get(story_id=story).deal_key == handoff.correlation_id

    # The same event again, and a second read of the feed: nothing is invoiced twice.
    read_psa_events(psa())
    complete(demo, story)
    read_psa_events(psa())
    assert len(invoices(demo)) == 1
    assert SyncRun.objects.filter(workflow="release_milestone_billing").count() == 1

    # Payment in the ERP comes back to the PSA and the CRM, once.
    paid = httpx.post(
        f"{demo['netsuite'].url}/__standin__/netsuite/invoice/{invoice['id']}/pay",
        json={"amount": str(invoice.get("total") or invoice.get("amountRemaining"))},
    )
    assert paid.is_success, paid.text
    assert sync_payments(erp()) == 1
    assert story_reference(demo, story)["external_status"] == "paid"
    [crm_invoice] = demo["salesforce"].state.table("Throughline_Invoice__c").values()
    assert crm_invoice["Status__c"] == "Paid"
    assert sync_payments(erp()) == 0


def test_an_invoice_in_a_closed_period_lands_with_finance_and_retries_after_reopening(demo):
    handoff = provision(demo)
    periods = demo["netsuite"].state.table("accountingperiod")
    november = next(p for p in periods.values() if p["periodName"] == "Nov 2026")
    november.update(closed=True, arLocked=True, allLocked=True)
    complete(demo, kickoff_story(demo, handoff))
    read_psa_events(psa())
    exc = IntegrationException.objects.get(code=ExceptionCode.CLOSED_ACCOUNTING_PERIOD)
    assert exc.queue.team.kind == "finance"
    assert exc.legal_entity_code == "UK01"
    assert invoices(demo) == []

    november.update(closed=False, arLocked=False, allLocked=False)
    assert actions.retry(exc, User.objects.get(username="finance")).ok
    exc.refresh_from_db()
    assert exc.status == ExceptionStatus.RESOLVED
    assert len(invoices(demo)) == 1


def test_a_non_billable_milestone_is_recorded_but_not_invoiced(demo):
    poll_closed_won(Connection.objects.get(vendor="salesforce"))
    globex = SyncRun.objects.get(title__startswith="Globex")  # TM-STD: non-billable milestones
    workspace = globex.context["provision_project"]["psa_project_id"]
    story = next(
        str(s["id"])
        for s in demo["kantata"].state.table("stories").values()
        if str(s.get("workspace_id")) == workspace and s.get("story_type") == "milestone"
    )
    complete(demo, story)
    read_psa_events(psa())
    assert not SyncRun.objects.filter(workflow="release_milestone_billing").exists()
    assert invoices(demo) == []
    assert MilestoneFact.objects.filter(story_id=story).exists()  # analytics still hears of it
