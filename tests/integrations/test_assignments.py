"""synchronize-resource-assignment: the PSA's task assignments become resource allocations on
the project in the ERP that does its accounting, once; people the ERP does not know land
with Finance; an ended assignment ends its allocation."""

from __future__ import annotations

import httpx

from exceptions.choices import ExceptionCode
from exceptions.models import IntegrationException
from integrations.assignments import sync_assignments
from integrations.models import Connection, ExternalBinding, SyncRun
from integrations.polling import poll_closed_won
from integrations.reference_data import sync_people

HEADERS = {"Authorization": "Bearer kantata-demo-token"}


def assign(demo, story: str, user: int, minutes: int) -> str:
    answer = httpx.post(
        f"{demo['kantata'].url}/api/v1/assignments.json",
        json={"assignment": {"story_id": story, "assignee_id": user, "estimated_minutes": minutes}},
        headers=HEADERS,
    )
    assert answer.is_success, answer.text
    return next(iter(answer.json()["assignments"]))


def test_assignments_become_erp_allocations_once(demo):
    poll_closed_won(Connection.objects.get(vendor="salesforce"))
    psa = Connection.objects.get(vendor="kantata")
    erp = Connection.objects.get(name="NetSuite (demo)")
    sync_people(erp, psa)
    northwind = SyncRun.objects.get(title__startswith="Northwind")
    workspace = northwind.context["provision_project"]["psa_project_id"]
    story = next(
        str(s["id"])
        for s in demo["kantata"].state.table("stories").values()
        if str(s.get("workspace_id")) == workspace and s.get("title") == "Kick-off"
    )
    assign(demo, story, 2, 40 * 60)  # Oliver, a UK employee: placed
    assign(demo, story, 1, 8 * 60)  # the API user, no employee: refused

    result = sync_assignments(psa)
    assert (result.synced, result.refused) == (1, 1)
    allocations = list(demo["netsuite"].state.table("resourceallocation").values())
    assert len(allocations) == 1
    assert str(allocations[0]["allocationAmount"]) in ("40", "40.0", "40.00")
    refused = IntegrationException.objects.get(code=ExceptionCode.TIME_ENTRY_NOT_POSTABLE)
    assert refused.queue.team.kind == "finance"
    assert sync_assignments(psa).synced == 0  # nothing changed since: nothing written
    assert ExternalBinding.objects.filter(entity_type="assignment").count() == 1
