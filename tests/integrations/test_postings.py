"""Resource-to-finance over the stand-ins: reference data links people across PSA and ERP,
approved time is posted to the ERP in batches exactly once, refusals land with the owning
team, and each entry's ERP id goes back to the PSA."""

from __future__ import annotations

import httpx
import pytest

from exceptions.choices import ExceptionCode
from exceptions.models import IntegrationException
from integrations.models import Connection, ExchangeRate, ExternalBinding, PostingBatch, SyncRun
from integrations.polling import poll_closed_won
from integrations.postings import collect_time_entries
from integrations.reference_data import sync_exchange_rates, sync_people


def psa() -> Connection:
    return Connection.objects.get(vendor="kantata")


def erp() -> Connection:
    return Connection.objects.get(name="NetSuite (demo)")


def northwind_workspace(demo) -> str:
    poll_closed_won(Connection.objects.get(vendor="salesforce"))
    run = SyncRun.objects.get(title__startswith="Northwind")
    return run.context["provision_project"]["psa_project_id"]


def burst(demo, workspace: str, count: int, **extra) -> None:
    answer = httpx.post(
        f"{demo['kantata'].url}/__standin__/kantata/time-burst",
        json={"workspace_id": workspace, "count": count, "approved": True, **extra},
    )
    assert answer.is_success, answer.text


def test_reference_data_links_people_and_brings_rates(demo):
    result = sync_people(erp(), psa())
    assert result.matched == 2  # users 2 and 3 are ERP employees, matched by e-mail
    assert ExternalBinding.objects.filter(entity_type="person").count() == 4
    assert sync_exchange_rates(erp()) >= 2
    assert ExchangeRate.objects.filter(base="USD").exists() or ExchangeRate.objects.exists()
    again = sync_people(erp(), psa())
    assert again.matched == 2
    assert ExternalBinding.objects.filter(entity_type="person").count() == 4


def test_approved_time_is_posted_once_in_batches_and_reported_back(demo):
    workspace = northwind_workspace(demo)
    sync_people(erp(), psa())
    burst(demo, workspace, 1200, user_ids=[2])
    result = collect_time_entries(psa())
    assert (result.read, result.batched, result.rejected) == (1200, 1200, 0)
    assert PostingBatch.objects.count() == 3  # 500 + 500 + 200
    assert set(PostingBatch.objects.values_list("status", flat=True)) == {"posted"}
    bills = demo["netsuite"].state.table("timebill")
    assert len(bills) == 1200
    assert all(
        b["employee"] in ("104", {"id": "104"}) or "104" in str(b["employee"])
        for b in bills.values()
    )
    assert PostingBatch.objects.filter(reported=True).count() == 3
    # nothing new: a second collection reads nothing and posts nothing
    again = collect_time_entries(psa())
    assert again.batched == 0
    assert len(demo["netsuite"].state.table("timebill")) == 1200


def test_time_that_cannot_be_posted_lands_with_the_owning_team(demo):
    workspace = northwind_workspace(demo)
    # no reference-data sync: the people are unknown to the ERP
    burst(demo, workspace, 10, user_ids=[2])
    result = collect_time_entries(psa())
    assert result.rejected == 10
    exc = IntegrationException.objects.get(code=ExceptionCode.TIME_ENTRY_NOT_POSTABLE)
    assert exc.queue.team.kind == "finance"
    assert len(exc.vendor_error["details"]["entries"]) == 10
    assert PostingBatch.objects.count() == 0


def _expense(demo, workspace: str, cents: int) -> str:
    answer = httpx.post(
        f"{demo['kantata'].url}/api/v1/expenses.json",
        json={
            "expense": {
                "workspace_id": workspace,
                "date": "2026-11-20",
                "category": "Travel",
                "amount_in_cents": cents,
                "user_id": 2,
                "billable": True,
            }
        },
        headers={"Authorization": "Bearer kantata-demo-token"},
    )
    assert answer.is_success, answer.text
    return next(iter(answer.json()["expenses"]))


def test_expenses_need_receipts_above_the_threshold_and_post_once(demo):
    from integrations.postings import collect_expenses

    workspace = northwind_workspace(demo)
    sync_people(erp(), psa())
    small, large = _expense(demo, workspace, 3000), _expense(demo, workspace, 50000)
    httpx.post(
        f"{demo['kantata'].url}/__standin__/kantata/approve",
        json={"expense_ids": [small, large]},
    ).raise_for_status()
    result = collect_expenses(psa())
    assert (result.read, result.batched, result.rejected) == (2, 1, 1)
    refused = IntegrationException.objects.get(code=ExceptionCode.TIME_ENTRY_NOT_POSTABLE)
    assert refused.queue.team.kind == "pmo"
    assert "receipt" in refused.explanation
    reports = demo["netsuite"].state.table("expensereport")
    assert len(reports) == 1
    assert collect_expenses(psa()).batched == 0


def test_a_foreign_currency_expense_is_converted_at_the_erp_rate(demo):
    import datetime as dt
    from decimal import Decimal

    from integrations.postings import PolicyRefusal, Project, _ExpenseCollector

    rate = ExchangeRate.objects.create(
        source=erp(),
        base="EUR",
        quote="GBP",
        rate=Decimal("0.861234"),
        effective_date=dt.date(2026, 11, 1),
    )
    project = Project("deal:X", "UK01", erp(), "1001", "2")
    foreign = {
        "id": "9",
        "workspace_id": "14",
        "user_id": "2",
        "date": "2026-11-20",
        "category": "Hotel",
        "amount_in_cents": 1999,
        "currency": "EUR",
        "is_billable": True,
        "approved": True,
        "receipt_id": None,
        "notes": "",
    }
    expense = _ExpenseCollector(psa()).canonical(foreign, project)
    assert expense.currency == "GBP"
    assert expense.amount == Decimal("17.22")  # 19.99 x 0.861234, half-up to the cent
    assert "19.99 EUR" in expense.notes
    rate.delete()
    with pytest.raises(PolicyRefusal) as refused:
        _ExpenseCollector(psa()).canonical(foreign, project)
    assert refused.value.code == "exchange_rate_missing"


def test_a_subcontractors_charge_becomes_one_vendor_bill_on_the_project(demo):
    from integrations.postings import collect_expenses

    workspace = northwind_workspace(demo)
    sync_people(erp(), psa())
    answer = httpx.post(
        f"{demo['kantata'].url}/api/v1/expenses.json",
        json={
            "expense": {
                "workspace_id": workspace,
                "date": "2026-11-20",
                "category": "Subcontractor",
                "amount_in_cents": 420000,
                "user_id": 2,
                "billable": True,
                "vendor_id": 1,  # Apex Data Consulting
            }
        },
        headers={"Authorization": "Bearer kantata-demo-token"},
    )
    assert answer.is_success, answer.text
    charge = next(iter(answer.json()["expenses"]))
    httpx.post(
        f"{demo['kantata'].url}/__standin__/kantata/approve", json={"expense_ids": [charge]}
    ).raise_for_status()
    result = collect_expenses(psa())
    assert (result.batched, result.rejected) == (1, 0)
    bills = list(demo["netsuite"].state.table("vendorbill").values())
    assert len(bills) == 1
    assert "301" in str(bills[0].get("entity"))
    assert not demo["netsuite"].state.table("expensereport")  # not an employee's expense
    assert collect_expenses(psa()).batched == 0


def test_time_approved_in_the_watermarks_second_is_not_lost(demo):
    """Kantata's updated_after is strict and counts whole seconds: an entry changed in the
    second the watermark stands at, after the previous read, is still read (once)."""
    from integrations.models import Watermark
    from integrations.postings import TIME_STREAM

    workspace = northwind_workspace(demo)
    sync_people(erp(), psa())
    burst(demo, workspace, 3, user_ids=[2])
    assert collect_time_entries(psa()).batched == 3
    entries = demo["kantata"].state.table("time_entries")
    edge = max(e["updated_at"] for e in entries.values())
    burst(demo, workspace, 1, user_ids=[2])
    late = max(entries, key=int)
    # approved in the very second the watermark stands at (after the first read)
    answer = httpx.post(
        f"{demo['kantata'].url}/__standin__/records/time_entries/{late}",
        json={"updated_at": edge},
    )
    assert answer.is_success, answer.text
    again = collect_time_entries(psa())
    assert (again.read, again.batched) == (1, 1)
    assert len(demo["netsuite"].state.table("timebill")) == 4
    mark = Watermark.objects.get(connection=psa(), stream=TIME_STREAM)
    assert late in mark.value
    assert collect_time_entries(psa()).batched == 0  # and never twice
