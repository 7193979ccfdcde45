"""Time and expenses in batches through the bulk RESTlet of the NetSuite stand-in, over real
HTTP: per-record results in input order, idempotency by externalId, chunks of 500, running
out of usage units, lost answers, the shared concurrency limit, and a 20,000-entry month-end
burst."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from integrations.canonical.schemas import Expense, TimeEntry
from integrations.connectors.errors import NotFoundError, RateLimitedError, ResponseShapeError
from integrations.connectors.netsuite import NetSuiteClient
from integrations.connectors.netsuite.mapping import (
    expense_report_from_expense,
    time_bill_from_entry,
)
from integrations.standins.netsuite import RESTLET_PATH, TOKEN_PATH
from integrations.standins.server import RunningStandin

from . import test_netsuite_connector as shared
from .test_netsuite_connector import ClientFactory
from .test_netsuite_standin import assertion, request_token

# the NetSuite fixtures of the connector tests: a stand-in per module, reset for each test
keys, server, standin = shared.keys, shared.server, shared.standin
make_client, client = shared.make_client, shared.client

DAY = max(dt.datetime.now(dt.UTC).date(), dt.date(2026, 11, 2))
CLOSED_DAY = dt.date(2026, 9, 30)


@pytest.fixture(autouse=True)
def unmetered(standin: RunningStandin) -> Iterator[None]:
    yield
    standin.state.restlet_usage_limit = 0


@pytest.fixture
def job(client: NetSuiteClient) -> str:
    customer = client.upsert_by_external_id(
        "customer", "crm-acme", {"companyName": "Acme", "subsidiary": {"id": "2"}}
    )
    return client.upsert_job("PRJ-1", {"companyName": "Rollout", "parent": {"id": customer}})


def entry(n: int, *, person: str = "104", day: dt.date = DAY, hours: str = "7.5") -> TimeEntry:
    return TimeEntry(
        source_id=f"te-{n}",
        project_key="PRJ-1",
        psa_project_id="k-1",
        person_id=f"k-{person}",
        work_date=day,
        hours=Decimal(hours),
        billable=True,
        approved=True,
        notes=f"entry {n}",
    )


def bill(e: TimeEntry, job: str, employee: str = "104") -> dict[str, Any]:
    return time_bill_from_entry(e, employee_id=employee, job_id=job, subsidiary_id="2")


def restlet_calls(standin: RunningStandin) -> list[dict[str, Any]]:
    return [c for c in standin.state.calls if c["path"] == RESTLET_PATH]


def test_a_batch_answers_each_record_in_order_and_errors_stay_with_their_record(
    standin: RunningStandin, client: NetSuiteClient, job: str
) -> None:
    records = [
        bill(entry(1), job),
        bill(entry(2), job, employee="999"),  # unknown employee
        bill(entry(3), "424242"),  # unknown job
        bill(entry(4, day=CLOSED_DAY), job),  # closed period
        bill(entry(5), job, employee="108"),  # inactive employee
        bill(entry(6), job, employee="106"),  # a GmbH employee on the UK subsidiary
        bill(entry(7, person="105"), job, employee="105"),
    ]
    results = client.post_batch("timeBill", records)
    assert [r["externalId"] for r in results] == [f"te-{n}" for n in range(1, 8)]
    assert [r["status"] for r in results] == ["created"] + ["error"] * 5 + ["created"]
    errors = [r["error"] for r in results[1:6]]
    assert errors[0] == {
        "code": "INVALID_FLD_VALUE",
        "message": "You have entered an Invalid Field Value 999 for the following field: employee",
    }
    assert errors[1]["message"].endswith("424242 for the following field: customer")
    assert errors[2]["code"] == "USER_ERROR" and "Sep 2026 is closed" in errors[2]["message"]
    assert errors[3]["code"] == errors[4]["code"] == "INVALID_FLD_VALUE"
    stored = standin.state.table("timebill")[results[0]["id"]]
    assert stored["hours"] == "7.50" and stored["customer"] == job
    assert stored["isBillable"] is True and stored["supervisorApproval"] is True
    assert len(standin.state.table("timebill")) == 2 and len(restlet_calls(standin)) == 1
    # "Customer:Project": time may also be booked to the customer itself
    customer = standin.state.table("job")[job]["parent"]
    (on_customer,) = client.post_batch("timeBill", [bill(entry(8), customer)])
    assert on_customer["status"] == "created"
    record = client.get_record("timebill", on_customer["id"])
    assert record["customer"]["refName"].endswith("Acme")


def test_a_repeated_batch_answers_exists_with_the_same_ids(
    standin: RunningStandin, client: NetSuiteClient, job: str
) -> None:
    records = [bill(entry(n), job) for n in range(3)]
    first = client.post_batch("timeBill", records)
    again = client.post_batch("timeBill", [*records, bill(entry(3), job)])
    assert [r["status"] for r in again] == ["exists"] * 3 + ["created"]
    assert [r["id"] for r in again[:3]] == [r["id"] for r in first]
    assert len(standin.state.table("timebill")) == 4
    # a single record through the record service is the same record for the RESTlet
    single = client.create_record("timeBill", bill(entry(9), job))
    assert client.post_batch("timeBill", [bill(entry(9), job)])[0] == {
        "externalId": "te-9",
        "status": "exists",
        "id": single,
    }
    assert client.get_record("timebill", single)["hours"] == 7.5


def test_more_than_500_records_go_in_chunks_with_results_in_input_order(
    standin: RunningStandin, client: NetSuiteClient, job: str
) -> None:
    records = [bill(entry(n), job) for n in range(1100)]
    results = client.post_batch("timeBill", records)
    assert [r["externalId"] for r in results] == [r["externalId"] for r in records]
    assert {r["status"] for r in results} == {"created"}
    assert len(restlet_calls(standin)) == 3  # 500 + 500 + 100
    assert all(c["headers"]["authorization"].startswith("Bearer ") for c in restlet_calls(standin))


def test_running_out_of_usage_units_halves_the_batch_and_finishes(
    standin: RunningStandin, make_client: ClientFactory, job: str
) -> None:
    """5,000 units, 20 per saved transaction: a real script saves ~249 per call. The records
    saved before the script stopped answer "exists" when the smaller batch repeats them."""
    answer = httpx.post(
        standin.url + "/__standin__/netsuite/settings", json={"restlet_usage_limit": 5000}
    )
    assert answer.json()["restlet_usage_limit"] == 5000
    client = make_client()
    records = [bill(entry(n), job) for n in range(600)]
    results = client.post_batch("timeBill", records)
    assert [r["externalId"] for r in results] == [r["externalId"] for r in records]
    assert {r["status"] for r in results} == {"created", "exists"}
    assert len(standin.state.table("timebill")) == 600
    statuses = [c["status"] for c in restlet_calls(standin)]
    assert statuses[0] == 400 and statuses.count(200) >= 3
    standin.state.restlet_usage_limit = 25  # not even one record fits
    with pytest.raises(Exception) as caught:
        client.post_batch("timeBill", [bill(entry(1000), job)])
    assert getattr(caught.value, "vendor_code", None) == "SSS_USAGE_LIMIT_EXCEEDED"


def test_a_lost_answer_is_repeated_and_creates_nothing_twice(
    standin: RunningStandin, make_client: ClientFactory, job: str
) -> None:
    sleeps: list[float] = []
    client = make_client(sleep=sleeps.append)
    httpx.post(
        standin.url + "/__standin__/netsuite/lose-responses",
        json={"path": "restlet", "method": "POST", "times": 1},
    )
    results = client.post_batch("timeBill", [bill(entry(n), job) for n in range(3)])
    assert [r["status"] for r in results] == ["exists"] * 3  # committed before the loss
    assert len(standin.state.table("timebill")) == 3
    assert [c["status"] for c in restlet_calls(standin)] == [503, 200]
    keys_sent = {c["headers"].get("x-netsuite-idempotency-key") for c in restlet_calls(standin)}
    assert len(keys_sent) == 1 and None not in keys_sent  # same batch, same key


def test_the_restlet_shares_the_concurrency_limit(
    standin: RunningStandin, make_client: ClientFactory, job: str
) -> None:
    client = make_client(max_attempts=2)
    standin.state.concurrency_limit = 0
    with pytest.raises(RateLimitedError) as caught:
        client.post_batch("timeBill", [bill(entry(1), job)])
    assert caught.value.vendor_code == "SSS_REQUEST_LIMIT_EXCEEDED"
    assert [c["status"] for c in restlet_calls(standin)] == [400, 400]


def test_restlet_errors_are_classified(
    standin: RunningStandin, make_client: ClientFactory, job: str
) -> None:
    with pytest.raises(NotFoundError) as caught:
        make_client(bulk_script="customscript_missing").post_batch(
            "timeBill", [bill(entry(1), job)]
        )
    assert caught.value.vendor_code == "SSS_INVALID_SCRIPTLET_ID"
    client = make_client()
    bodies = [
        {"results": []},
        {"results": [{"externalId": "te-other", "status": "created", "id": "1"}]},
        {"results": [{"externalId": "te-1", "status": "created"}]},
        {"results": [{"externalId": "te-1", "status": "maybe", "id": "1"}]},
        {"results": [{"externalId": "te-1", "status": "error", "error": "bad"}]},
        ["not", "an", "object"],
    ]
    for body in bodies:
        standin.state.add_fault(path="restlet", status=200, times=1, body=body)
        with pytest.raises(ResponseShapeError):
            client.post_batch("timeBill", [bill(entry(1), job)])
    with pytest.raises(ValueError):
        client.post_batch("journalEntry", [])
    with pytest.raises(ValueError):
        client.post_batch("timeBill", [{"externalId": "has space"}])


def test_the_restlet_refuses_malformed_calls(
    standin: RunningStandin, keys: dict[str, Any], job: str
) -> None:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(keys["private"].encode(), password=None)
    url = standin.url + TOKEN_PATH
    no_restlets = request_token(standin.url, assertion(key, url, scope="rest_webservices"))
    full = request_token(standin.url, assertion(key, url))
    params = {"script": "customscript_tl_bulk_post", "deploy": "customdeploy_tl_bulk_post"}

    def call(token: str, body: Any, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}", **kw.pop("headers", {})}
        return httpx.post(standin.url + RESTLET_PATH, params=params, json=body, headers=headers)

    good = {"recordType": "timeBill", "records": [{"externalId": "x-1"}]}
    refused = call(no_restlets.json()["access_token"], good)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "INVALID_LOGIN_ATTEMPT"
    token = full.json()["access_token"]
    for body in (
        {"recordType": "journalEntry", "records": [{}]},
        {"recordType": "timeBill", "records": []},
        {"recordType": "timeBill", "records": [{}] * 501},
        [1, 2],
    ):
        answer = call(token, body)
        assert answer.status_code == 400 and answer.json()["error"]["code"] == "TL_BAD_REQUEST"
    text = httpx.post(
        standin.url + RESTLET_PATH,
        params=params,
        content=b"x",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "text/csv"},
    )
    assert text.status_code == 415
    odd = call(token, {"recordType": "timebill", "records": [7, {"externalId": 5}]}).json()
    assert [r["status"] for r in odd["results"]] == ["error", "error"]
    assert odd["results"][0]["error"]["code"] == "TL_BAD_RECORD"


def test_expense_reports_in_a_batch(
    standin: RunningStandin, client: NetSuiteClient, job: str
) -> None:
    def expense(n: int, amount: str = "120.50") -> Expense:
        return Expense(
            source_id=f"ex-{n}",
            project_key="PRJ-1",
            psa_project_id="k-1",
            person_id="k-105",
            spent_on=DAY,
            category="Travel",
            amount=Decimal(amount),
            currency="GBP",
            billable=True,
            approved=True,
            receipt_attached=True,
            notes="Train to client",
        )

    def report(e: Expense, employee: str = "105", job_id: str = job) -> dict[str, Any]:
        return expense_report_from_expense(
            e,
            employee_id=employee,
            job_id=job_id,
            subsidiary_id="2",
            currency_id="2",
            category_id="1",
        )

    results = client.post_batch(
        "expenseReport",
        [report(expense(1)), report(expense(2), employee="999"), report(expense(3), job_id="7")],
    )
    assert [r["status"] for r in results] == ["created", "error", "error"]
    assert results[2]["error"]["message"].endswith("for the following field: customer")
    stored = client.get_record("expensereport", results[0]["id"], expand=True)
    assert stored["total"] == 120.5 and stored["tranId"] == "EXP-1001"
    assert stored["status"]["refName"] == "Pending Accounting Approval"
    (line,) = stored["expense"]["items"]
    assert line["category"]["refName"] == "Travel" and line["customer"]["id"] == job
    assert line["receipt"] is True and line["memo"] == "Travel - Train to client"
    assert int(results[0]["id"]) > 5000  # transactions share one id sequence
    rows = list(client.suiteql("SELECT id, type, status FROM transaction WHERE type = 'ExpRept'"))
    assert rows == [{"id": results[0]["id"], "type": "ExpRept", "status": "C"}]


def test_a_month_end_burst_of_20000_entries(
    standin: RunningStandin, client: NetSuiteClient, job: str
) -> None:
    """The hot path: 40 RESTlet calls of 500. The stand-in looks externalIds up in its index,
    so the last call costs what the first did; a repeat of the whole burst is all "exists"."""
    entries = [
        entry(n, person="104" if n % 2 else "105", day=DAY + dt.timedelta(days=n % 20))
        for n in range(20_000)
    ]
    records = [bill(e, job, employee="104" if n % 2 else "105") for n, e in enumerate(entries)]
    started = time.perf_counter()
    results = client.post_batch("timeBill", records)
    elapsed = time.perf_counter() - started
    assert len(results) == 20_000 and {r["status"] for r in results} == {"created"}
    assert len(standin.state.table("timebill")) == 20_000
    assert len(restlet_calls(standin)) == 40
    assert elapsed < 15, f"20,000 entries took {elapsed:.1f} s"
    again = client.post_batch("timeBill", [*records[:1000], bill(entry(20_000), job)])
    assert [r["status"] for r in again].count("exists") == 1000
    rows = list(client.suiteql("SELECT id FROM timebill WHERE employee = '105'"))
    assert len(rows) == 10_000
