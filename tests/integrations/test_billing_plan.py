"""update-billing-plan over the stand-ins: an approved amendment re-plans the project in the
PSA and the billing plan and revenue schedule in the ERP, once; Throughline's own budget
change coming back through the PSA feed is dropped, a budget edited in the PSA is a
system-of-record violation."""

from __future__ import annotations

from decimal import Decimal

import httpx

from exceptions.choices import ExceptionCode
from exceptions.models import IntegrationException
from integrations.models import Connection, SyncRun
from integrations.polling import poll_amendments, poll_closed_won
from integrations.psa_feed import read_psa_events

AMENDMENT = "a015g00000Tl001AAB"  # Northwind: 135,000.00 GBP, plan 30/50/20


def crm() -> Connection:
    return Connection.objects.get(vendor="salesforce")


def test_an_approved_amendment_replans_psa_and_erp_once(demo):
    poll_closed_won(crm())
    handoff = SyncRun.objects.get(title__startswith="Northwind")
    workspace = handoff.context["provision_project"]["psa_project_id"]
    read_psa_events(Connection.objects.get(vendor="kantata"))  # the hand-off's own events
    approved = httpx.post(
        f"{demo['salesforce'].url}/__standin__/salesforce/approve-amendment",
        json={"id": AMENDMENT},
    )
    assert approved.is_success, approved.text

    assert poll_amendments(crm()).started == 1
    run = SyncRun.objects.get(workflow="update_billing_plan")
    assert run.status == "succeeded", run.error
    assert run.business_key == handoff.correlation_id
    ws = demo["kantata"].state.table("workspaces")[workspace]
    assert Decimal(str(ws.get("price_in_cents"))) == Decimal(13500000)
    milestones = [
        s
        for s in demo["kantata"].state.table("stories").values()
        if str(s.get("workspace_id")) == workspace
        and s.get("story_type") == "milestone"
        and not s.get("archived")
    ]
    assert len(milestones) >= 3
    assert poll_amendments(crm()).started == 0  # once

    # Throughline's own budget change comes back through the PSA feed: dropped.
    read_psa_events(Connection.objects.get(vendor="kantata"))
    assert not IntegrationException.objects.filter(
        code=ExceptionCode.SYSTEM_OF_RECORD_VIOLATION
    ).exists()


def test_a_budget_edited_in_the_psa_is_not_passed_on(demo):
    poll_closed_won(crm())
    handoff = SyncRun.objects.get(title__startswith="Northwind")
    workspace = handoff.context["provision_project"]["psa_project_id"]
    kantata = Connection.objects.get(vendor="kantata")
    read_psa_events(kantata)
    # a project manager (user 2, not Throughline's API user) edits the budget in Kantata
    answer = httpx.put(
        f"{demo['kantata'].url}/api/v1/workspaces/{workspace}.json",
        json={"workspace": {"price": "99000.00"}},
        headers={"Authorization": "Bearer kantata-demo-token", "X-Standin-User": "2"},
    )
    assert answer.status_code < 500
    state = demo["kantata"].state
    with state.lock:
        events = state.collections.get("subscribed_events", {})
    # edits through the API are made as the token's user; mark this one as user 2's edit
    for event in list(events.values())[-3:]:
        if str(event.get("subject_id")) == str(workspace):
            event["user_id"] = 2
    result = read_psa_events(kantata)
    assert result.reviewed >= 1
    violation = IntegrationException.objects.get(code=ExceptionCode.SYSTEM_OF_RECORD_VIOLATION)
    assert violation.queue.team.kind == "pmo"
