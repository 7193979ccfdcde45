"""Resource assignments on NetSuite projects: the stand-in's `resourceAllocation` record
(validation, upsert by external id, PATCH, list, SuiteQL, snapshots) over real HTTP, the
client's `upsert_allocation` and the mapper `allocation_from_assignment`."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import pytest

from integrations.canonical.errors import MappingError
from integrations.canonical.schemas import Assignment
from integrations.connectors.errors import ValidationError
from integrations.connectors.netsuite import NetSuiteClient
from integrations.connectors.netsuite.mapping import (
    allocation_from_assignment,
    netsuite_external_id,
)
from integrations.standins.netsuite import NetSuiteState
from integrations.standins.server import RunningStandin

from . import test_netsuite_connector as shared

# the NetSuite fixtures of the connector tests: a stand-in per module, reset for each test
keys, server, standin = shared.keys, shared.server, shared.standin
make_client, client = shared.make_client, shared.client

START, END = dt.date(2026, 11, 2), dt.date(2027, 1, 29)
ASSIGNMENT = Assignment(
    source_id="assignment:7001",
    psa_project_id="900",
    person_id="41",
    task_id="555",
    allocated_hours=Decimal("37.50"),
    start_date=START,
    end_date=END,
)


def new_job(client: NetSuiteClient, key: str = "PRJ-200") -> str:
    customer = client.upsert_by_external_id(
        "customer", f"crm-{key}", {"companyName": f"Customer {key}", "subsidiary": {"id": "2"}}
    )
    return client.upsert_job(
        key,
        {
            "companyName": f"Project {key}",
            "parent": {"id": customer},
            "startDate": "2026-11-01",
            "projectedEndDate": "2027-03-31",
        },
    )


def allocations(standin: RunningStandin) -> list[dict[str, Any]]:
    return list(standin.state.table("resourceallocation").values())


# -- mapper ---------------------------------------------------------------------------------
def test_an_assignment_with_hours_becomes_an_hours_allocation() -> None:
    body = allocation_from_assignment(ASSIGNMENT, employee_id="104", job_id="1002")
    assert body == {
        "externalId": netsuite_external_id("assignment:7001"),
        "allocationResource": {"id": "104"},
        "project": {"id": "1002"},
        "allocationAmount": 37.5,
        "allocationUnit": {"id": "H"},
        "allocationType": {"id": "1"},
        "startDate": "2026-11-02",
        "endDate": "2027-01-29",
    }


def test_an_assignment_without_hours_is_a_full_time_allocation() -> None:
    member = Assignment(source_id="participation:12", psa_project_id="900", person_id="41")
    body = allocation_from_assignment(member, employee_id="104", job_id="1002")
    assert body["allocationAmount"] == 100.0 and body["allocationUnit"] == {"id": "P"}
    assert "startDate" not in body and "endDate" not in body
    dated = allocation_from_assignment(
        member, employee_id="104", job_id="1002", default_start=START, default_end=END
    )
    assert (dated["startDate"], dated["endDate"]) == ("2026-11-02", "2027-01-29")
    own = allocation_from_assignment(
        ASSIGNMENT, employee_id="104", job_id="1002", default_start=dt.date(2020, 1, 1)
    )
    assert own["startDate"] == "2026-11-02"  # the assignment's own dates win


def test_external_ids_are_made_netsuite_safe_without_collisions() -> None:
    assert netsuite_external_id("asg-7001_a") == "asg-7001_a"
    colon, underscore = netsuite_external_id("assignment:7"), netsuite_external_id("assignment_7")
    assert colon.startswith("assignment_7-") and len(colon) == len("assignment_7-") + 8
    assert underscore == "assignment_7" and colon != underscore
    assert netsuite_external_id("assignment:7") == colon  # deterministic: upserts stay keyed
    assert netsuite_external_id("a.b/c d") != netsuite_external_id("a b/c.d")
    assert all(c.isalnum() or c in "_-" for c in netsuite_external_id("x:ü/€ 1"))


@pytest.mark.parametrize(
    ("change", "ids", "field"),
    [
        ({"allocated_hours": Decimal("0")}, {}, "allocated_hours"),
        ({"start_date": END, "end_date": START}, {}, "end_date"),
        ({}, {"employee_id": "Oliver"}, "employee_id"),
        ({}, {"job_id": ""}, "job_id"),
    ],
)
def test_the_mapper_refuses_what_netsuite_would(
    change: dict[str, Any], ids: dict[str, str], field: str
) -> None:
    assignment = ASSIGNMENT.model_copy(update=change)
    with pytest.raises(MappingError) as caught:
        allocation_from_assignment(assignment, **{"employee_id": "104", "job_id": "1", **ids})
    assert field in json.dumps(caught.value.problems)


# -- client and stand-in ---------------------------------------------------------------------
def test_upsert_allocation_is_idempotent_and_updates_in_place(
    standin: RunningStandin, client: NetSuiteClient
) -> None:
    job = new_job(client)
    body = allocation_from_assignment(ASSIGNMENT, employee_id="104", job_id=job)
    first = client.upsert_allocation(body["externalId"], body)
    again = client.upsert_allocation(body["externalId"], body)
    assert first == again == "1" and len(allocations(standin)) == 1
    record = client.get_record("resourceAllocation", first)
    assert record["externalId"] == body["externalId"]
    assert record["allocationResource"]["id"] == "104"
    assert record["allocationResource"]["refName"] == "Oliver Hughes"
    assert record["project"]["id"] == job and record["allocationAmount"] == 37.5
    assert record["allocationUnit"] == {"id": "H", "refName": "Hours"}
    assert record["allocationType"] == {"id": "1", "refName": "Hard"}
    assert (record["startDate"], record["endDate"]) == ("2026-11-02", "2027-01-29")
    assert "dateCreated" in record and "lastModifiedDate" in record

    more = ASSIGNMENT.model_copy(update={"allocated_hours": Decimal("60.25")})
    changed = allocation_from_assignment(more, employee_id="104", job_id=job)
    assert client.upsert_allocation(changed["externalId"], changed) == first
    assert (
        client.get_record("resourceAllocation", f"eid:{body['externalId']}")["allocationAmount"]
        == 60.25
        and len(allocations(standin)) == 1
    )

    client.update_record("resourceAllocation", first, {"allocationUnit": "P", "notes": "half"})
    patched = client.get_record("resourceAllocation", first)
    assert patched["allocationUnit"]["id"] == "P" and patched["notes"] == "half"
    assert [item["id"] for item in client.list_records("resourceAllocation")] == [first]


def test_a_percent_allocation_and_suiteql(standin: RunningStandin, client: NetSuiteClient) -> None:
    job = new_job(client)
    member = Assignment(source_id="participation:12", psa_project_id="900", person_id="41")
    body = allocation_from_assignment(
        member, employee_id="105", job_id=job, default_start=START, default_end=END
    )
    rid = client.upsert_allocation(body["externalId"], body)
    rows = list(
        client.suiteql(
            "SELECT id, externalid, allocationresource, project, allocationamount, "
            f"allocationunit, startdate FROM resourceallocation WHERE project = '{job}'"
        )
    )
    assert rows == [
        {
            "id": rid,
            "externalid": body["externalId"],
            "allocationresource": "105",
            "project": job,
            "allocationamount": 100.0,
            "allocationunit": "P",
            "startdate": "11/2/2026",
        }
    ]


BASE = {
    "allocationResource": {"id": "104"},
    "startDate": "2026-11-02",
    "endDate": "2026-11-30",
    "allocationAmount": 40,
    "allocationUnit": {"id": "H"},
    "allocationType": {"id": "1"},
}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"allocationResource": {"id": "108"}}, "allocationResource"),  # inactive employee
        ({"allocationResource": {"id": "9999"}}, "allocationResource"),
        ({"project": {"id": "9999"}}, "project"),
        ({"endDate": "2026-11-01"}, "endDate"),
        ({"startDate": "2026-02-30"}, "startDate"),
        ({"allocationAmount": 0}, "allocationAmount"),
        ({"allocationAmount": -5}, "allocationAmount"),
        ({"allocationAmount": "lots"}, "allocationAmount"),
        ({"allocationAmount": 1.005}, "allocationAmount"),
        ({"allocationUnit": {"id": "D"}}, "allocationUnit"),
        ({"allocationType": {"id": "7"}}, "allocationType"),
        ({"startDate": None}, "startDate"),
        ({"allocationType": None}, "allocationType"),
        ({"numberHours": 8}, "numberHours"),
    ],
)
def test_the_stand_in_validates_allocations(
    standin: RunningStandin, client: NetSuiteClient, change: dict[str, Any], field: str
) -> None:
    job = new_job(client)
    body = {**BASE, "project": {"id": job}, **change}
    if change.get("startDate", "") is None or change.get("allocationType", "") is None:
        body = {k: v for k, v in body.items() if v is not None}
    with pytest.raises(ValidationError) as caught:
        client.upsert_allocation("asg-bad", body)
    assert caught.value.field == field and caught.value.status == 400
    assert allocations(standin) == []


def test_a_partial_update_is_checked_against_the_stored_record(
    standin: RunningStandin, client: NetSuiteClient
) -> None:
    job = new_job(client)
    rid = client.upsert_allocation("asg-1", {**BASE, "project": {"id": job}})
    with pytest.raises(ValidationError) as caught:
        client.update_record("resourceAllocation", rid, {"endDate": "2026-10-01"})
    assert caught.value.field == "endDate"
    client.update_record("resourceAllocation", rid, {"startDate": "2026-11-30"})  # same day: ok
    assert standin.state.table("resourceallocation")[rid]["startDate"] == "2026-11-30"


def test_allocations_survive_a_snapshot_and_keep_their_job(
    standin: RunningStandin, client: NetSuiteClient
) -> None:
    job = new_job(client)
    rid = client.upsert_allocation("asg-1", {**BASE, "project": {"id": job}})
    with pytest.raises(ValidationError):
        client.delete_record("job", job)  # a job with allocations has dependents
    snapshot = json.loads(json.dumps(standin.state.snapshot()))  # JSON-safe
    standin.state.reset()
    assert allocations(standin) == []
    standin.state.restore(snapshot)
    assert client.upsert_allocation("asg-1", {**BASE, "project": {"id": job}}) == rid
    assert client.upsert_allocation("asg-2", {**BASE, "project": {"id": job}}) == "2"
    fresh = NetSuiteState(keys_dir="/nonexistent")
    fresh.restore(snapshot)
    assert fresh.by_external_id("resourceallocation", "asg-1")["id"] == rid
