"""Provisioning many deals in few calls: customers, jobs, billing milestones and revenue
schedule lines upserted through the bulk RESTlet of the NetSuite stand-in, over real HTTP
(created, updated, unchanged, per-record errors, references by internal id, running out of
usage units), and the active lines of many jobs found with one SuiteQL `IN (...)` query."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from integrations.canonical.schemas import (
    Budget,
    Milestone,
    Project,
    RevenueSchedule,
    RevenueScheduleLine,
)
from integrations.connectors.errors import ResponseShapeError, ValidationError
from integrations.connectors.netsuite import NetSuiteClient
from integrations.connectors.netsuite import client as client_module
from integrations.connectors.netsuite.mapping import (
    billing_milestone_lines,
    job_from_project,
    revenue_schedule_lines,
)
from integrations.standins.netsuite import QUERY_PATH, RESTLET_PATH, TOKEN_PATH
from integrations.standins.server import RunningStandin

from . import test_netsuite_connector as shared
from .test_netsuite_connector import ClientFactory
from .test_netsuite_standin import assertion, request_token

# the NetSuite fixtures of the connector tests: a stand-in per module, reset for each test
keys, server, standin = shared.keys, shared.server, shared.standin
make_client, client = shared.make_client, shared.client

MILESTONES = "customrecord_tl_billing_milestone"
REVENUE = "customrecord_tl_revenue_schedule"


@pytest.fixture(autouse=True)
def unmetered(standin: RunningStandin) -> Iterator[None]:
    yield
    standin.state.restlet_usage_limit = 0


def restlet_calls(standin: RunningStandin) -> list[dict[str, Any]]:
    return [c for c in standin.state.calls if c["path"] == RESTLET_PATH]


def suiteql_calls(standin: RunningStandin) -> list[dict[str, Any]]:
    return [c for c in standin.state.calls if c["path"] == QUERY_PATH]


def customer(n: int, *, name: str | None = None, subsidiary: str = "2") -> dict[str, Any]:
    return {
        "externalId": f"crm-{n}",
        "companyName": name or f"Customer {n}",
        "subsidiary": {"id": subsidiary},
        "currency": {"id": "2"},
    }


def project(n: int) -> Project:
    return Project(
        key=f"PRJ-{n}",
        name=f"Rollout {n}",
        customer_name=f"Customer {n}",
        legal_entity_code="UK01",
        start_date=dt.date(2026, 11, 1),
        end_date=dt.date(2027, 3, 31),
        budget=Budget(amount=Decimal("30000.00"), currency="GBP"),
        milestones=(
            Milestone(name="Kick-off", due_date=dt.date(2026, 11, 15), amount=Decimal("10000.00")),
            Milestone(name="Go-live", due_date=dt.date(2027, 3, 1), amount=Decimal("20000.00")),
        ),
    )


def schedule(contract: str, months: tuple[int, ...] = (10, 11, 12)) -> RevenueSchedule:
    return RevenueSchedule(
        contract_key=contract,
        billing_model="fixed_fee",
        currency="GBP",
        total=Decimal("100.00") * len(months),
        lines=tuple(
            RevenueScheduleLine(period_start=dt.date(2026, m, 1), amount=Decimal("100.00"))
            for m in months
        ),
    )


def provision(client: NetSuiteClient, deals: range) -> dict[str, Any]:
    """Customers, then their jobs, then the jobs' milestones: three RESTlet calls."""
    customers = client.upsert_batch("customer", [customer(n) for n in deals])
    jobs = client.upsert_batch(
        "job",
        [
            job_from_project(project(n), customer_id=c["id"], subsidiary_id="2", currency_id="2")
            for n, c in zip(deals, customers, strict=True)
        ],
    )
    milestones = client.upsert_batch(
        MILESTONES,
        [
            {**line, "custrecord_tl_bm_job": {"id": job["id"]}, "isInactive": False}
            for n, job in zip(deals, jobs, strict=True)
            for line in billing_milestone_lines(project(n))
        ],
    )
    return {"customers": customers, "jobs": jobs, "milestones": milestones}


# -- customers -----------------------------------------------------------------------------------
def test_customers_are_created_then_updated_with_the_same_ids(
    standin: RunningStandin, client: NetSuiteClient
) -> None:
    created = client.upsert_batch("customer", [customer(n) for n in range(3)])
    assert [r["externalId"] for r in created] == ["crm-0", "crm-1", "crm-2"]
    assert [r["status"] for r in created] == ["created"] * 3
    assert all(r["id"].isdigit() for r in created) and len(restlet_calls(standin)) == 1
    assert len(standin.state.table("customer")) == 3

    same = client.upsert_batch("customer", [customer(n) for n in range(3)])
    assert [r["status"] for r in same] == ["unchanged"] * 3
    assert [r["id"] for r in same] == [r["id"] for r in created]

    renamed = [customer(n, name=f"Renamed {n}") if n != 1 else customer(n) for n in range(3)]
    updated = client.upsert_batch("customer", renamed)
    assert [r["status"] for r in updated] == ["updated", "unchanged", "updated"]
    assert [r["id"] for r in updated] == [r["id"] for r in created]
    assert len(standin.state.table("customer")) == 3
    # the record service sees what the RESTlet wrote, by internal id and by external id
    assert client.get_record("customer", created[0]["id"])["companyName"] == "Renamed 0"
    assert client.find_by_external_id("customer", "crm-2")["companyName"] == "Renamed 2"  # type: ignore[index]
    assert client.get_record("customer", created[1]["id"])["companyName"] == "Customer 1"


def test_a_repeated_upsert_replaces_the_tax_registration_instead_of_adding_it(
    standin: RunningStandin, client: NetSuiteClient
) -> None:
    registered = customer(7) | {
        "taxRegistration": {
            "items": [{"nexusCountry": {"id": "GB"}, "taxRegistrationNumber": "GB123456789"}]
        }
    }

    def lines() -> list:
        (record,) = standin.state.table("customer").values()
        return [line["taxRegistrationNumber"] for line in record["taxRegistration"]]

    client.upsert_batch("customer", [registered], replace=("taxRegistration",))
    again = client.upsert_batch("customer", [registered], replace=("taxRegistration",))
    # replaced lines are new lines (new line ids): an update, but still one registration
    assert again[0]["status"] == "updated" and lines() == ["GB123456789"]
    # without replace an update adds the line again, as the record service's PUT does
    client.upsert_batch("customer", [registered])
    assert lines() == ["GB123456789", "GB123456789"]


def test_the_restlet_and_the_record_service_share_one_index(
    standin: RunningStandin, client: NetSuiteClient
) -> None:
    single = client.upsert_by_external_id("customer", "crm-7", customer(7))
    (result,) = client.upsert_batch("customer", [customer(7, name="Seven")])
    assert result == {"externalId": "crm-7", "status": "updated", "id": single}
    (created,) = client.upsert_batch("customer", [customer(8)])
    assert client.upsert_by_external_id("customer", "crm-8", customer(8)) == created["id"]
    assert len(standin.state.table("customer")) == 2


def test_a_bad_record_fails_alone(standin: RunningStandin, client: NetSuiteClient) -> None:
    results = client.upsert_batch(
        "customer",
        [
            customer(1),
            customer(2, subsidiary="99"),  # unknown subsidiary
            {**customer(3), "companyName": ""},
            {**customer(4), "entityId": "CUST-X"},
            {**customer(5), "entityId": "CUST-X"},  # an entityId already taken
            customer(6),
        ],
    )
    assert [r["status"] for r in results] == [
        "created",
        "error",
        "error",
        "created",
        "error",
        "created",
    ]
    assert results[1]["error"] == {
        "code": "INVALID_FLD_VALUE",
        "message": "You have entered an Invalid Field Value 99 for the following field: subsidiary",
    }
    assert results[2]["error"]["code"] == "USER_ERROR"
    assert results[4]["error"]["code"] == "DUP_ENTITY"
    assert "id" not in results[1]
    assert len(standin.state.table("customer")) == 3
    # the failed ones go through once fixed; the others are left alone
    again = client.upsert_batch("customer", [customer(n) for n in range(1, 4)])
    assert [r["status"] for r in again] == ["unchanged", "created", "created"]


# -- jobs, milestones, revenue lines -----------------------------------------------------------
def test_jobs_reference_customers_and_milestones_reference_jobs(
    standin: RunningStandin, client: NetSuiteClient
) -> None:
    done = provision(client, range(1, 4))
    assert len(restlet_calls(standin)) == 3
    assert {r["status"] for rs in done.values() for r in rs} == {"created"}
    jobs, customers = done["jobs"], done["customers"]
    for job, cust in zip(jobs, customers, strict=True):
        record = client.get_record("job", job["id"])
        assert record["parent"]["id"] == cust["id"] and record["entityId"] == job["externalId"]
    milestones = done["milestones"]
    assert [m["externalId"] for m in milestones[:2]] == ["PRJ-1-M1", "PRJ-1-M2"]
    go_live = client.get_record(MILESTONES, milestones[5]["id"])
    assert go_live["custrecord_tl_bm_job"]["id"] == jobs[2]["id"]
    assert go_live["custrecord_tl_bm_amount"] == 20000.0 and go_live["name"] == "Go-live"

    # the whole provisioning again: nothing changes, nothing is saved twice
    again = provision(client, range(1, 4))
    assert {r["status"] for rs in again.values() for r in rs} == {"unchanged"}
    assert [r["id"] for r in again["milestones"]] == [m["id"] for m in milestones]
    assert len(standin.state.table(MILESTONES)) == 6 and len(standin.state.table("job")) == 3

    bad = client.upsert_batch(
        "job",
        [
            job_from_project(project(9), customer_id="31337", subsidiary_id="2", currency_id="2"),
            job_from_project(
                project(10), customer_id=customers[0]["id"], subsidiary_id="1", currency_id="2"
            ),
        ],
    )
    assert [r["status"] for r in bad] == ["error", "error"]
    assert bad[0]["error"]["message"].endswith("31337 for the following field: parent")
    assert bad[1]["error"]["code"] == "USER_ERROR"
    orphan = {
        **billing_milestone_lines(project(1))[0],
        "externalId": "PRJ-X-M1",
        "custrecord_tl_bm_job": {"id": "424242"},
    }
    (refused,) = client.upsert_batch(MILESTONES, [orphan])
    assert refused["error"]["code"] == "INVALID_FLD_VALUE"


def test_revenue_lines_of_many_contracts_in_one_call(
    standin: RunningStandin, client: NetSuiteClient
) -> None:
    lines = [
        {**line, "isInactive": False}
        for contract in ("C-1", "C-2")
        for line in revenue_schedule_lines(schedule(contract))
    ]
    first = client.upsert_batch(REVENUE, lines)
    assert [r["status"] for r in first] == ["created"] * 6 and len(restlet_calls(standin)) == 1
    changed = [
        {**line, "custrecord_tl_amount": 150.0} if i == 4 else line for i, line in enumerate(lines)
    ]
    second = client.upsert_batch(REVENUE, changed)
    assert [r["status"] for r in second] == ["unchanged"] * 4 + ["updated", "unchanged"]
    record = client.get_record(REVENUE, second[4]["id"])
    assert record["custrecord_tl_amount"] == 150.0 and record["custrecord_tl_contract"] == "C-2"
    keys_sent = [c["headers"].get("x-netsuite-idempotency-key") for c in restlet_calls(standin)]
    assert len(set(keys_sent)) == 2  # other values, another request
    client.upsert_batch(REVENUE, changed)
    assert restlet_calls(standin)[-1]["headers"]["x-netsuite-idempotency-key"] == keys_sent[1]


# -- governance, lost answers, shapes ----------------------------------------------------------
def test_running_out_of_usage_units_halves_the_upsert_batch(
    standin: RunningStandin, make_client: ClientFactory
) -> None:
    """10 units for the lookup, 20 per save: a 510-unit budget saves 25 records per call. What
    a stopped call saved answers "unchanged" when the smaller batch repeats it."""
    client = make_client()
    lines = [
        {**line, "isInactive": False}
        for n in range(20)
        for line in revenue_schedule_lines(schedule(f"C-{n}"))
    ]  # 60 lines
    standin.state.restlet_usage_limit = 510
    results = client.upsert_batch(REVENUE, lines)
    assert [r["externalId"] for r in results] == [line["externalId"] for line in lines]
    assert {r["status"] for r in results} == {"created", "unchanged"}
    assert len(standin.state.table(REVENUE)) == 60
    statuses = [c["status"] for c in restlet_calls(standin)]
    assert statuses == [400, 400, 200]  # 500 -> 250 -> 125 per call; 25 + 25 + 10 saved
    bigger = [{**line, "custrecord_tl_amount": 120.0} for line in lines]
    updated = client.upsert_batch(REVENUE, bigger)
    assert [c["status"] for c in restlet_calls(standin)][3:] == [400, 400, 200]
    assert {r["status"] for r in updated} <= {"updated", "unchanged"}
    assert [r["id"] for r in updated] == [r["id"] for r in results]
    stored = standin.state.table(REVENUE)
    assert {r["custrecord_tl_amount"] for r in stored.values()} == {"120.00"}
    standin.state.restlet_usage_limit = 25  # not even one save fits
    with pytest.raises(ValidationError) as caught:
        client.upsert_batch(REVENUE, [{**lines[0], "custrecord_tl_amount": 1.0}])
    assert caught.value.vendor_code == "SSS_USAGE_LIMIT_EXCEEDED"
    # an unchanged record costs no save, so it fits in any budget
    assert client.upsert_batch(REVENUE, [bigger[0]])[0]["status"] == "unchanged"


def test_a_lost_upsert_answer_is_repeated_and_saves_nothing_twice(
    standin: RunningStandin, client: NetSuiteClient
) -> None:
    httpx.post(
        standin.url + "/__standin__/netsuite/lose-responses",
        json={"path": "restlet", "method": "POST", "times": 1},
    )
    results = client.upsert_batch("customer", [customer(n) for n in range(3)])
    assert [r["status"] for r in results] == ["unchanged"] * 3  # committed before the loss
    assert len(standin.state.table("customer")) == 3
    assert [c["status"] for c in restlet_calls(standin)] == [503, 200]


def test_upsert_answers_are_checked(standin: RunningStandin, client: NetSuiteClient) -> None:
    for body in (
        {"results": [{"externalId": "crm-1", "status": "exists", "id": "1"}]},
        {"results": [{"externalId": "crm-1", "status": "updated"}]},
        {"results": [{"externalId": "crm-1", "status": "error", "error": {"code": "X"}}]},
    ):
        standin.state.add_fault(path="restlet", status=200, times=1, body=body)
        with pytest.raises(ResponseShapeError):
            client.upsert_batch("customer", [customer(1)])
    standin.state.add_fault(
        path="restlet",
        status=200,
        times=1,
        body={"results": [{"externalId": "te-1", "status": "updated", "id": "1"}]},
    )
    with pytest.raises(ResponseShapeError):  # a create never answers "updated"
        client.post_batch("timeBill", [{"externalId": "te-1"}])
    for record_type in ("timeBill", "expenseReport", "invoice", "Customer"):
        with pytest.raises(ValueError):
            client.upsert_batch(record_type, [customer(1)])
    with pytest.raises(ValueError):
        client.upsert_batch("customer", [{**customer(1), "externalId": "has space"}])
    with pytest.raises(ValueError):
        client.post_batch("customer", [customer(1)])
    sent = len(restlet_calls(standin))
    assert client.upsert_batch("customer", []) == [] and len(restlet_calls(standin)) == sent


def test_the_restlet_refuses_unknown_actions_and_types(
    standin: RunningStandin, keys: dict[str, Any]
) -> None:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(keys["private"].encode(), password=None)
    token = request_token(standin.url, assertion(key, standin.url + TOKEN_PATH)).json()
    params = {"script": "customscript_tl_bulk_post", "deploy": "customdeploy_tl_bulk_post"}

    def call(body: Any) -> httpx.Response:
        return httpx.post(
            standin.url + RESTLET_PATH,
            params=params,
            json=body,
            headers={"Authorization": f"Bearer {token['access_token']}"},
        )

    for body in (
        {"recordType": "customer", "action": "delete", "records": [customer(1)]},
        {"recordType": "customer", "action": None, "records": [customer(1)]},
        {"recordType": "customer", "action": ["upsert"], "records": [customer(1)]},
        {"recordType": "timeBill", "action": "upsert", "records": [{"externalId": "te-1"}]},
        {"recordType": "customer", "records": [customer(1)]},  # create is for transactions
        {"recordType": "customer", "action": "upsert", "records": []},
        {"recordType": "customer", "action": "upsert", "replace": "x", "records": [customer(1)]},
        {"recordType": "timeBill", "replace": ["item"], "records": [{"externalId": "te-1"}]},
    ):
        answer = call(body)
        assert answer.status_code == 400, body
        assert answer.json()["error"]["code"] == "TL_BAD_REQUEST"
    assert "create" in call({"recordType": "x", "action": "bogus", "records": [{}]}).text
    assert not standin.state.table("customer")
    ok = call({"recordType": "CUSTOMER", "action": "upsert", "records": [customer(1), 7]})
    assert ok.status_code == 200
    assert [r["status"] for r in ok.json()["results"]] == ["created", "error"]
    assert ok.json()["results"][1]["error"]["code"] == "TL_BAD_RECORD"


# -- the active lines of many jobs -----------------------------------------------------------
def test_inactive_lines_finds_the_active_lines_of_many_jobs_with_in(
    standin: RunningStandin, client: NetSuiteClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    done = provision(client, range(1, 4))
    job_ids = [j["id"] for j in done["jobs"]]
    before = len(suiteql_calls(standin))
    rows = client.inactive_lines(MILESTONES, "custrecord_tl_bm_job", job_ids[:2])
    assert len(suiteql_calls(standin)) == before + 1
    assert [r["externalid"] for r in rows] == ["PRJ-1-M1", "PRJ-1-M2", "PRJ-2-M1", "PRJ-2-M2"]
    assert rows[0] == {
        "id": done["milestones"][0]["id"],
        "externalid": "PRJ-1-M1",
        "custrecord_tl_bm_job": job_ids[0],
    }
    # an inactive line is no longer listed
    client.update_record(MILESTONES, done["milestones"][1]["id"], {"isInactive": True})
    rows = client.inactive_lines(MILESTONES, "custrecord_tl_bm_job", job_ids)
    assert len(rows) == 5 and "PRJ-1-M2" not in {r["externalid"] for r in rows}
    # one query per chunk of values; repeated values are asked once
    monkeypatch.setattr(client_module, "MAX_IN_VALUES", 2)
    before = len(suiteql_calls(standin))
    rows = client.inactive_lines(MILESTONES, "custrecord_tl_bm_job", [*job_ids, job_ids[0]])
    assert len(rows) == 5 and len(suiteql_calls(standin)) == before + 2
    assert client.inactive_lines(MILESTONES, "custrecord_tl_bm_job", []) == []
    assert client.inactive_lines(MILESTONES, "custrecord_tl_bm_job", ["424242", "x'y"]) == []
    for args in (
        (MILESTONES, "custrecord_tl_bm_job = '1' OR 1", ["1"]),
        ("customrecord; DROP", "name", ["1"]),
        (MILESTONES, "name", "PRJ-1"),
        (MILESTONES, "name", [1]),
    ):
        with pytest.raises(ValueError):
            client.inactive_lines(*args)  # type: ignore[arg-type]


def test_inactive_lines_of_revenue_contracts_and_the_suiteql_in_subset(
    standin: RunningStandin, client: NetSuiteClient
) -> None:
    lines = [
        line
        for contract in ("C-1", "C-2", "C-3")
        for line in revenue_schedule_lines(schedule(contract))
    ]
    client.upsert_batch(REVENUE, lines)
    rows = client.inactive_lines(REVENUE, "custrecord_tl_contract", ["C-1", "C-3"])
    assert {r["custrecord_tl_contract"] for r in rows} == {"C-1", "C-3"} and len(rows) == 6
    not_in = list(
        client.suiteql(
            f"SELECT id FROM {REVENUE} WHERE custrecord_tl_contract NOT IN ('C-1', 'C-3')"
        )
    )
    assert len(not_in) == 3
    numbers = list(client.suiteql("SELECT id FROM employee WHERE id IN (101, 104, 999)"))
    assert [r["id"] for r in numbers] == ["101", "104"]
    for bad in (
        "SELECT id FROM employee WHERE id IN ()",
        "SELECT id FROM employee WHERE id IN (subsidiary)",
        "SELECT id FROM employee WHERE id NOT = 1",
        "SELECT id FROM employee WHERE id IN (101",
    ):
        with pytest.raises(ValidationError):
            list(client.suiteql(bad))
