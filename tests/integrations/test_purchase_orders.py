"""Purchase orders for subcontractors over the demo and its stand-ins: a subcontractor's task
assignment in the PSA becomes exactly one purchase order to their firm in the ERP (hours at
their hourly cost, in Decimal), changes update it, an ended assignment closes it, refusals
land with the owning team, and the firm's charges on the project name their order."""

from __future__ import annotations

import time
from decimal import Decimal

import httpx

from console.models import AuditEvent
from exceptions.choices import ExceptionCode, ExceptionStatus
from exceptions.models import IntegrationException
from integrations import bindings
from integrations.assignments import sync_assignments
from integrations.models import Connection, ExternalBinding, SyncRun
from integrations.polling import poll_closed_won
from integrations.postings import collect_expenses

HEADERS = {"Authorization": "Bearer kantata-demo-token"}
PRIYA, MARCUS = 14, 15  # Apex Data Consulting (GBP 55.00 an hour), Blue Ridge (USD 90.00)


def psa() -> Connection:
    return Connection.objects.get(vendor="kantata")


def erp() -> Connection:
    return Connection.objects.get(name="NetSuite (demo)")


def northwind_story(demo) -> tuple[str, str]:
    """(workspace, story) of Northwind's kick-off: a UK01 project in GBP, in the cloud ERP."""
    poll_closed_won(Connection.objects.get(vendor="salesforce"))
    run = SyncRun.objects.get(title__startswith="Northwind")
    workspace = run.context["provision_project"]["psa_project_id"]
    story = next(
        str(s["id"])
        for s in demo["kantata"].state.table("stories").values()
        if str(s.get("workspace_id")) == workspace and s.get("title") == "Kick-off"
    )
    return workspace, story


def kantata(demo, method: str, path: str, body: dict) -> dict:
    answer = httpx.request(
        method, f"{demo['kantata'].url}/api/v1/{path}", json=body, headers=HEADERS
    )
    assert answer.is_success, answer.text
    return answer.json()


def assign(demo, story: str, user: int, minutes: int) -> str:
    body = {"assignment": {"story_id": story, "assignee_id": user, "estimated_minutes": minutes}}
    return next(iter(kantata(demo, "POST", "assignments.json", body)["assignments"]))


def change(demo, assignment: str, **fields) -> None:
    time.sleep(1.05)  # Kantata stamps changes to the second: the watermark must see this one
    kantata(demo, "PUT", f"assignments/{assignment}.json", {"assignment": fields})


def orders(demo) -> list[dict]:
    return list(demo["netsuite"].state.table("purchaseorder").values())


def test_a_subcontractors_assignment_is_ordered_once_updated_and_closed(demo):
    workspace, story = northwind_story(demo)
    assignment = assign(demo, story, PRIYA, 40 * 60)

    result = sync_assignments(psa())
    assert (result.synced, result.refused, result.purchase_orders) == (1, 0, 1)
    (order,) = orders(demo)
    assert order["externalId"] == f"TL-PO-{assignment}" and order["tranId"] == "PO-1001"
    assert (order["entity"], order["subsidiary"], order["currency"]) == ("301", "2", "2")
    (line,) = order["item"]
    assert Decimal(line["quantity"]) == Decimal("40")
    assert Decimal(line["rate"]) == Decimal("55")
    assert Decimal(line["amount"]) == Decimal("2200.00")
    project = bindings.canonical_key(psa(), "project", workspace)
    job = bindings.lookup(erp(), "project", project)
    assert line["customer"] == job and line["isClosed"] is False
    assert not demo["netsuite"].state.table("resourceallocation")  # an order, no allocation
    binding = ExternalBinding.objects.get(connection=erp(), entity_type="purchase_order")
    assert (binding.canonical_key, binding.external_id) == (f"assignment:{assignment}", order["id"])
    audit = AuditEvent.objects.get(action="erp.purchase_order.upserted")
    assert audit.data["idempotency_key"] == f"TL-PO-{assignment}"
    assert audit.data["amount"] == "2200.00" and audit.data["currency"] == "GBP"
    modified = order["lastModifiedDate"]

    again = sync_assignments(psa())  # nothing changed since: nothing written
    assert (again.synced, again.purchase_orders) == (0, 0)
    (same,) = orders(demo)
    assert same["lastModifiedDate"] == modified

    change(demo, assignment, estimated_minutes=50 * 60 + 30)  # 50.5 hours
    assert sync_assignments(psa()).purchase_orders == 1
    (updated,) = orders(demo)
    assert updated["id"] == order["id"] and len(updated["item"]) == 1
    assert Decimal(updated["item"][0]["quantity"]) == Decimal("50.5")
    assert Decimal(updated["total"]) == Decimal("2777.50")  # 50.5 x 55.00

    change(demo, assignment, current=False)  # the engagement ended
    ended = sync_assignments(psa())
    assert (ended.synced, ended.refused) == (0, 0)
    (closed,) = orders(demo)  # kept, its line closed, its amounts as they were
    assert closed["id"] == order["id"] and closed["status"] == "H"
    assert closed["item"][0]["isClosed"] is True and Decimal(closed["total"]) == Decimal("2777.50")
    assert AuditEvent.objects.filter(action="erp.purchase_order.closed").count() == 1
    assert not IntegrationException.objects.filter(entity_ref=workspace).exists()


def test_a_subcontractor_whose_firm_is_not_in_the_erp_lands_with_finance(demo):
    workspace, story = northwind_story(demo)
    ExternalBinding.objects.filter(
        connection=erp(), entity_type="vendor", canonical_key="vendor:apex-data-consulting"
    ).delete()
    assignment = assign(demo, story, PRIYA, 16 * 60)

    result = sync_assignments(psa())
    assert (result.synced, result.refused) == (0, 1)
    assert orders(demo) == []
    refused = IntegrationException.objects.get(code=ExceptionCode.ERP_CONFIGURATION_MISSING)
    assert refused.status == ExceptionStatus.OPEN
    assert refused.queue.team.kind == "finance"
    assert refused.entity_ref == workspace
    assert "not a vendor in the ERP" in refused.explanation
    assert refused.vendor_error["details"]["entries"] == [f"assignment:{assignment}"]


def test_a_subcontractor_without_a_rate_lands_with_the_pmo_and_a_refusal_with_finance(demo):
    workspace, story = northwind_story(demo)
    assign(demo, story, MARCUS, 8 * 60)  # a GBP project; Marcus has a USD rate only

    assert sync_assignments(psa()).refused == 1
    missing = IntegrationException.objects.get(code=ExceptionCode.COST_RATE_MISSING)
    assert missing.queue.team.kind == "pmo" and "hourly cost" in missing.explanation

    # given a GBP rate, the order is raised, but Blue Ridge is a vendor of the US subsidiary
    membership = demo["kantata"].state.table("users")[str(MARCUS)]["account_membership_id"]
    cost_rate = {"account_membership_id": int(membership), "currency": "GBP",
                 "amount_in_subunits": 7000}  # fmt: skip
    kantata(demo, "POST", "cost_rates.json", {"cost_rate": cost_rate})
    other = next(
        str(s["id"])
        for s in demo["kantata"].state.table("stories").values()
        if str(s.get("workspace_id")) == workspace and s.get("title") == "Go-live"
    )
    time.sleep(1.05)
    assign(demo, other, MARCUS, 8 * 60)
    assert sync_assignments(psa()).refused == 1
    refused = IntegrationException.objects.get(code=ExceptionCode.PURCHASE_ORDER_REFUSED_BY_ERP)
    assert refused.queue.team.kind == "finance"
    details = refused.vendor_error["details"]
    assert details["field"] == "subsidiary"
    assert "not assigned to subsidiary" in details["erp_message"]
    assert orders(demo) == []


def test_a_charge_from_the_firm_is_billed_against_its_order(demo):
    workspace, story = northwind_story(demo)
    assign(demo, story, PRIYA, 40 * 60)
    sync_assignments(psa())
    (order,) = orders(demo)

    body = {
        "expense": {
            "workspace_id": workspace,
            "date": "2026-11-20",
            "category": "Subcontractor",
            "amount_in_cents": 220000,
            "user_id": 2,
            "billable": True,
            "vendor_id": 1,  # Apex Data Consulting
        }
    }
    charge = next(iter(kantata(demo, "POST", "expenses.json", body)["expenses"]))
    httpx.post(
        f"{demo['kantata'].url}/__standin__/kantata/approve", json={"expense_ids": [charge]}
    ).raise_for_status()
    assert collect_expenses(psa()).batched == 1
    (bill,) = demo["netsuite"].state.table("vendorbill").values()
    assert bill["entity"] == "301" and bill["custbody_tl_po"] == order["id"]
    assert f"(PO {order['externalId']})" in bill["memo"]
    assert Decimal(bill["total"]) == Decimal("2200.00")
