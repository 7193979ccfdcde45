"""Project-to-cash against the NetSuite stand-in over real HTTP: invoices upserted by external
id with tax and totals, closed accounting periods, payments polled through SuiteQL, projects,
revenue schedules and billing plans, and the ERP's reference data for the PSA."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import httpx
import pytest

from integrations.canonical.schemas import (
    Budget,
    Invoice,
    InvoiceLine,
    Milestone,
    Project,
    RevenueSchedule,
    RevenueScheduleLine,
)
from integrations.connectors.errors import (
    NotFoundError,
    ResponseShapeError,
    ValidationError,
)
from integrations.connectors.netsuite import NetSuiteClient
from integrations.connectors.netsuite.mapping import (
    billing_milestone_lines,
    cost_centre_from_department,
    cost_rate_from_employee,
    currency_ids,
    employee_from_netsuite,
    exchange_rate_from_netsuite,
    invoice_status_from_netsuite,
    invoice_to_netsuite,
    job_from_project,
    revenue_schedule_lines,
)
from integrations.standins.server import RunningStandin

from . import test_netsuite_connector as shared

# the NetSuite fixtures of the connector tests: a stand-in per module, reset for each test
keys, server, standin = shared.keys, shared.server, shared.standin
make_client, client = shared.make_client, shared.client

TODAY = dt.datetime.now(dt.UTC).date()
OPEN_DAY = max(TODAY, dt.date(2026, 11, 2))  # Oct-Dec 2026 are open, as is everything later
CLOSED_DAY = dt.date(2026, 9, 15)
PAY = "/__standin__/netsuite/invoice/{}/pay"


def new_customer(client: NetSuiteClient, key: str = "crm-acme", subsidiary: str = "2") -> str:
    return client.upsert_by_external_id(
        "customer", key, {"companyName": f"Customer {key}", "subsidiary": {"id": subsidiary}}
    )


def invoice_body(customer: str, *, day: dt.date = OPEN_DAY, **extra: Any) -> dict[str, Any]:
    body = {
        "entity": {"id": customer},
        "tranDate": day.isoformat(),
        "dueDate": (day + dt.timedelta(days=30)).isoformat(),
        "memo": "November consulting",
        "item": {
            "items": [
                {"item": {"id": "1"}, "description": "Consulting", "quantity": 10, "rate": 150.0},
                {"item": {"id": "3"}, "description": "Travel", "amount": 99.99},
            ]
        },
    }
    body.update(extra)
    return body


def pay(standin: RunningStandin, invoice_id: str, amount: str) -> httpx.Response:
    return httpx.post(standin.url + PAY.format(invoice_id), json={"amount": amount})


# -- invoices ----------------------------------------------------------------------------------
def test_an_upserted_invoice_is_numbered_taxed_and_totalled(
    standin: RunningStandin, client: NetSuiteClient
) -> None:
    customer = new_customer(client)
    rid = client.upsert_invoice("tl-inv-1", invoice_body(customer))
    invoice = client.get_invoice(rid)
    assert invoice["tranId"] == "INV-10001" and invoice["externalId"] == "tl-inv-1"
    assert invoice["status"] == {"id": "A", "refName": "Open"}
    # GB subsidiary: 20 % on 1,500.00 + 99.99 = 1,599.99 -> tax 300.00 + 20.00 (19.998 half up)
    assert (invoice["subtotal"], invoice["taxTotal"], invoice["total"]) == (1599.99, 320.0, 1919.99)
    assert invoice["amountRemaining"] == 1919.99 and invoice["amountPaid"] == 0
    assert invoice["currency"]["id"] == "2" and invoice["subsidiary"]["id"] == "2"
    assert invoice["postingPeriod"]["refName"].endswith(str(OPEN_DAY.year))
    lines = invoice["item"]["items"]
    assert [line["line"] for line in lines] == [1, 2]
    assert lines[0]["amount"] == 1500.0 and lines[0]["item"]["refName"] == "Professional Services"
    assert lines[1]["tax1Amt"] == 20.0 and lines[1]["taxRate1"] == 20.0


def test_a_repeated_upsert_keeps_one_invoice_with_the_same_lines(
    standin: RunningStandin, client: NetSuiteClient
) -> None:
    customer = new_customer(client)
    first = client.upsert_invoice("tl-inv-2", invoice_body(customer))
    second = client.upsert_invoice("tl-inv-2", invoice_body(customer, memo="Re-run"))
    assert first == second and len(standin.state.table("invoice")) == 1
    invoice = client.get_invoice("eid:tl-inv-2")
    assert len(invoice["item"]["items"]) == 2 and invoice["memo"] == "Re-run"
    assert invoice["tranId"] == "INV-10001"  # the number does not move on an update
    # the hazard upsert_invoice avoids: a plain upsert of an existing invoice adds its lines
    client.upsert_by_external_id("invoice", "tl-inv-2", invoice_body(customer))
    assert len(client.get_invoice(first)["item"]["items"]) == 4


def test_tax_follows_the_subsidiary_and_line_tax_codes(
    standin: RunningStandin, client: NetSuiteClient
) -> None:
    us = new_customer(client, "crm-us", subsidiary="1")
    us_invoice = client.get_invoice(client.upsert_invoice("tl-us-1", invoice_body(us)))
    assert us_invoice["taxTotal"] == 0 and us_invoice["currency"]["id"] == "1"
    uk = new_customer(client, "crm-uk")
    zero_rated = invoice_body(uk)
    zero_rated["item"]["items"][0]["taxCode"] = {"id": "2"}  # Z-GB, 0 %
    invoice = client.get_invoice(client.upsert_invoice("tl-uk-z", zero_rated))
    assert invoice["taxTotal"] == 20.0  # only the travel line is taxed


def test_the_gmbh_cannot_invoice_until_it_has_a_tax_registration(
    standin: RunningStandin, client: NetSuiteClient
) -> None:
    customer = new_customer(client, "crm-de", subsidiary="3")
    with pytest.raises(ValidationError) as caught:
        client.upsert_invoice("tl-de-1", invoice_body(customer))
    assert caught.value.field == "subsidiary" and "tax registration" in caught.value.message
    assert standin.state.table("invoice") == {}
    client.update_record(
        "subsidiary",
        "3",
        {"taxRegistration": {"items": [{"nexusCountry": "DE", "taxRegistrationNumber": "DE1"}]}},
    )
    invoice = client.get_invoice(client.upsert_invoice("tl-de-1", invoice_body(customer)))
    assert invoice["taxTotal"] == 304.0  # 19 % per line: 285.00 + 19.00 (18.9981 half up)
    assert invoice["currency"]["id"] == "4"


def test_an_invoice_in_a_closed_period_is_refused_until_the_period_reopens(
    standin: RunningStandin, client: NetSuiteClient
) -> None:
    customer = new_customer(client)
    body = invoice_body(customer, day=CLOSED_DAY)
    with pytest.raises(ValidationError) as caught:
        client.upsert_invoice("tl-sep-1", body)
    error = caught.value
    assert error.status == 400 and error.vendor_code == "USER_ERROR"
    assert error.field == "tranDate"
    assert "not within the date range of your accounting period" in error.message
    assert "Sep 2026 is closed" in error.message
    reopened = httpx.post(
        standin.url + "/__standin__/netsuite/accounting-period/9", json={"closed": False}
    )
    assert reopened.status_code == 200 and reopened.json()["closed"] is False
    rid = client.upsert_invoice("tl-sep-1", body)
    httpx.post(standin.url + "/__standin__/netsuite/accounting-period/9", json={"closed": True})
    with pytest.raises(ValidationError, match="closed"):  # no edits once the period closes
        client.upsert_invoice("tl-sep-1", {**body, "memo": "late change"})
    assert client.get_invoice(rid)["memo"] == "November consulting"
    with pytest.raises(ValidationError):  # before the first period: closed too
        client.upsert_invoice("tl-2025", invoice_body(customer, day=dt.date(2025, 12, 1)))


def test_invoice_validation_names_the_field(
    standin: RunningStandin, client: NetSuiteClient
) -> None:
    customer = new_customer(client)
    other = new_customer(client, "crm-us", subsidiary="1")
    job = client.upsert_job("PRJ-X", {"companyName": "Other's project", "parent": {"id": other}})
    cases = [
        ({"entity": {"id": "999"}}, "entity"),
        ({"subsidiary": {"id": "1"}}, "subsidiary"),
        ({"job": {"id": job}}, "job"),
        ({"item": {"items": []}}, "item"),
        ({"item": {"items": [{"item": {"id": "1"}}]}}, "item.items[0].amount"),
        ({"item": {"items": [{"item": {"id": "42"}, "amount": 1}]}}, "item.items[0].item"),
        ({"status": "B"}, "status"),
        ({"total": 1}, "total"),
    ]
    for change, field in cases:
        with pytest.raises(ValidationError) as caught:
            client.upsert_invoice("tl-bad", invoice_body(customer, **change))
        assert caught.value.field == field, change
    assert standin.state.table("invoice") == {}


# -- payments and polling --------------------------------------------------------------------------
def test_payments_change_the_status_and_are_seen_by_polling(
    standin: RunningStandin, client: NetSuiteClient
) -> None:
    customer = new_customer(client)
    due_soon = invoice_body(customer, day=OPEN_DAY, dueDate=OPEN_DAY.isoformat())
    rid = client.upsert_invoice("tl-pay-1", due_soon)
    other = client.upsert_invoice("tl-pay-2", invoice_body(customer))
    standin.state.table("invoice")[other]["lastModifiedDate"] = "2026-10-01T00:00:00Z"
    since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)

    partial = pay(standin, rid, "1000.00")
    assert partial.status_code == 201, partial.text
    assert partial.json()["invoice"]["amountRemaining"] == "919.99"
    rows = client.invoices_changed_since(since)
    assert [r["id"] for r in rows] == [rid]
    row = rows[0]
    assert row["status"] == "A" and row["foreignamountremaining"] == 919.99
    assert row["foreigntotal"] == 1919.99 and row["duedate"] == OPEN_DAY.isoformat()
    assert row["tranid"] == "INV-10001" and len(row["lastmodifieddate"]) == 19
    status = invoice_status_from_netsuite(row, today=OPEN_DAY)
    assert (status.state, status.amount_remaining) == ("open", Decimal("919.99"))
    late = invoice_status_from_netsuite(row, today=OPEN_DAY + dt.timedelta(days=1))
    assert late.state == "overdue"

    full = pay(standin, rid, "919.99")
    assert full.json()["invoice"]["status"] == "Paid In Full"
    record = client.get_invoice(rid)
    assert record["status"]["refName"] == "Paid In Full" and record["amountRemaining"] == 0
    paid = invoice_status_from_netsuite(record, today=OPEN_DAY + dt.timedelta(days=90))
    assert (paid.state, paid.number, paid.total) == ("paid", "INV-10001", Decimal("1919.99"))
    payments = list(standin.state.table("customerpayment").values())
    assert [p["payment"] for p in payments] == ["1000.00", "919.99"]
    assert {p["apply"][0]["doc"] for p in payments} == {rid}
    all_rows = client.suiteql(
        "SELECT id, type, foreigntotal FROM transaction WHERE type = 'CustPymt' ORDER BY id"
    )
    assert [r["foreigntotal"] for r in all_rows] == [1000.0, 919.99]


def test_payments_that_do_not_fit_are_refused(
    standin: RunningStandin, client: NetSuiteClient
) -> None:
    rid = client.upsert_invoice("tl-pay-3", invoice_body(new_customer(client)))
    assert pay(standin, rid, "5000.00").status_code == 400  # more than remains
    assert pay(standin, rid, "-1").status_code == 400
    assert pay(standin, rid, "1.234").status_code == 400
    assert pay(standin, "424242", "1.00").status_code == 404
    closed = httpx.post(
        standin.url + PAY.format(rid), json={"amount": "1.00", "date": "2026-03-01"}
    )
    assert closed.status_code == 400
    by_eid = httpx.post(standin.url + PAY.format("eid:tl-pay-3"), json={"amount": "10.00"})
    assert by_eid.status_code == 201
    customer = standin.state.table("invoice")[rid]["entity"]
    cheaper = invoice_body(customer, item={"items": [{"item": {"id": "1"}, "amount": 1}]})
    with pytest.raises(ValidationError, match="already paid"):  # total below what was paid
        client.upsert_invoice("tl-pay-3", cheaper)
    with pytest.raises(ValidationError, match="dependent records"):
        client.delete_record("invoice", rid)  # a paid invoice cannot be deleted
    unpaid = client.upsert_invoice("tl-pay-4", invoice_body(customer))
    assert client.delete_record("invoice", unpaid) is True
    assert client.find_by_external_id("invoice", "tl-pay-4") is None


def test_the_control_page_lists_periods_and_open_invoices(
    standin: RunningStandin, client: NetSuiteClient
) -> None:
    rid = client.upsert_invoice("tl-page", invoice_body(new_customer(client)))
    page = httpx.get(standin.url + "/__standin__/netsuite/").text
    assert "Sep 2026" in page and "Reopen" in page and "INV-10001" in page
    form = httpx.post(standin.url + PAY.format(rid), data={"amount": "1919.99"})
    assert form.status_code == 303
    assert standin.state.table("invoice")[rid]["status"] == "B"


def test_a_mapped_canonical_invoice_round_trips(
    standin: RunningStandin, client: NetSuiteClient
) -> None:
    customer = new_customer(client)
    job = client.upsert_job("PRJ-7", {"companyName": "Rollout", "parent": {"id": customer}})
    invoice = Invoice(
        key="TL-INV-7",
        customer_erp_id=customer,
        legal_entity_code="UK01",
        currency="GBP",
        invoice_date=OPEN_DAY,
        due_date=OPEN_DAY + dt.timedelta(days=30),
        lines=(
            InvoiceLine(
                description="Milestone 1",
                quantity=Decimal("1"),
                unit_price=Decimal("12345.67"),
                amount=Decimal("12345.67"),
            ),
        ),
        project_key="PRJ-7",
        memo="Milestone billing",
    )
    body = invoice_to_netsuite(invoice, subsidiary_id="2", currency_id="2", item_id="2", job_id=job)
    rid = client.upsert_invoice(invoice.key, body)
    record = client.get_invoice(rid)
    assert record["job"]["id"] == job and record["total"] == 14814.80
    status = invoice_status_from_netsuite(record, today=OPEN_DAY)
    assert status.total == Decimal("14814.80") and status.state == "open"


# -- projects, revenue schedules, billing plans -------------------------------------------------
PROJECT = Project(
    key="PRJ-100",
    name="ERP rollout",
    customer_name="Acme",
    legal_entity_code="UK01",
    start_date=dt.date(2026, 11, 1),
    end_date=dt.date(2027, 3, 31),
    budget=Budget(amount=Decimal("30000.00"), currency="GBP"),
    milestones=(
        Milestone(name="Kick-off", due_date=dt.date(2026, 11, 15), amount=Decimal("10000.00")),
        Milestone(name="Go-live", due_date=dt.date(2027, 3, 1), amount=Decimal("20000.00")),
    ),
)


def test_upsert_job_from_a_project_is_idempotent(
    standin: RunningStandin, client: NetSuiteClient
) -> None:
    customer = new_customer(client)
    body = job_from_project(PROJECT, customer_id=customer, subsidiary_id="2", currency_id="2")
    first = client.upsert_job(PROJECT.key, body)
    again = client.upsert_job(PROJECT.key, body)
    assert first == again and len(standin.state.table("job")) == 1
    job = client.get_record("job", first)
    assert job["parent"]["id"] == customer and job["entityId"] == "PRJ-100"
    assert job["projectedEndDate"] == "2027-03-31" and int(first) > int(customer)
    with pytest.raises(ValidationError) as caught:
        client.upsert_job("PRJ-101", {**body, "parent": {"id": "31337"}})
    assert caught.value.field == "parent"
    with pytest.raises(ValidationError) as caught:
        client.upsert_job("PRJ-102", {**body, "subsidiary": {"id": "1"}})
    assert caught.value.field == "subsidiary"


def test_revenue_schedule_upserts_and_retires_old_lines(
    standin: RunningStandin, client: NetSuiteClient
) -> None:
    schedule = RevenueSchedule(
        contract_key="C-100",
        billing_model="fixed_fee",
        currency="GBP",
        total=Decimal("300.00"),
        lines=tuple(
            RevenueScheduleLine(period_start=dt.date(2026, m, 1), amount=Decimal("100.00"))
            for m in (10, 11, 12)
        ),
    )
    lines = revenue_schedule_lines(schedule)
    ids = client.upsert_revenue_schedule("C-100", lines)
    assert client.upsert_revenue_schedule("C-100", lines) == ids and len(ids) == 3
    shorter = RevenueSchedule(
        contract_key="C-100",
        billing_model="fixed_fee",
        currency="GBP",
        total=Decimal("300.00"),
        lines=(
            RevenueScheduleLine(period_start=dt.date(2026, 10, 1), amount=Decimal("150.00")),
            RevenueScheduleLine(period_start=dt.date(2026, 11, 1), amount=Decimal("150.00")),
        ),
    )
    kept = client.upsert_revenue_schedule("C-100", revenue_schedule_lines(shorter))
    assert kept == ids[:2]
    records = standin.state.table("customrecord_tl_revenue_schedule")
    assert [records[i]["isInactive"] for i in ids] == [False, False, True]
    assert records[ids[0]]["custrecord_tl_amount"] == "150.00"
    assert client.upsert_revenue_schedule("C-100", lines) == ids  # the third comes back
    assert records[ids[2]]["isInactive"] is False
    with pytest.raises(ValueError):
        client.upsert_revenue_schedule("C-999", lines)


def test_billing_plan_upserts_milestones_of_a_job(
    standin: RunningStandin, client: NetSuiteClient
) -> None:
    customer = new_customer(client)
    job = client.upsert_job(
        PROJECT.key,
        job_from_project(PROJECT, customer_id=customer, subsidiary_id="2", currency_id="2"),
    )
    milestones = billing_milestone_lines(PROJECT)
    ids = client.upsert_billing_plan(job, milestones)
    assert client.upsert_billing_plan(job, milestones) == ids
    record = client.get_record("customrecord_tl_billing_milestone", ids[1])
    assert record["custrecord_tl_bm_job"]["id"] == job
    assert record["custrecord_tl_bm_amount"] == 20000.0 and record["name"] == "Go-live"
    assert record["custrecord_tl_bm_billable"] is True
    assert client.upsert_billing_plan(job, milestones[:1]) == ids[:1]
    rows = list(
        client.suiteql("SELECT id, isinactive FROM customrecord_tl_billing_milestone ORDER BY id")
    )
    assert [r["isinactive"] for r in rows] == ["F", "T"]
    with pytest.raises(ValidationError):
        client.upsert_billing_plan("424242", milestones)
    with pytest.raises(ValueError):
        client.upsert_billing_plan("not-an-id", milestones)


# -- reference data ------------------------------------------------------------------------------
def test_employees_and_cost_rates_for_the_psa(
    standin: RunningStandin, client: NetSuiteClient
) -> None:
    rows = client.list_employees()
    assert [r["id"] for r in rows] == [str(n) for n in range(101, 109)]
    by_sub = {r["subsidiary"] for r in rows}
    assert by_sub == {"1", "2", "3"}
    entities = {"1": "US01", "2": "UK01", "3": "DE01"}
    people = [employee_from_netsuite(r, legal_entities=entities) for r in rows]
    ava = people[0]
    assert (ava.source_id, ava.first_name, ava.last_name) == ("101", "Ava", "Thompson")
    assert ava.legal_entity_code == "US01" and ava.cost_centre_code == "1" and ava.active
    assert people[-1].active is False
    rate = cost_rate_from_employee(rows[6], currency="EUR", effective_from=TODAY)
    assert rate is not None and rate.hourly_cost == Decimal("92.50")
    assert cost_rate_from_employee(rows[7], currency="GBP", effective_from=TODAY) is None
    record = client.get_record("employee", "104")  # the REST record maps the same way
    assert employee_from_netsuite(record, legal_entities=entities) == people[3]


def test_departments_become_cost_centres(standin: RunningStandin, client: NetSuiteClient) -> None:
    centres = [cost_centre_from_department(r) for r in client.list_departments()]
    assert [(c.code, c.name, c.active) for c in centres] == [
        ("1", "Delivery", True),
        ("2", "Consulting", True),
        ("3", "Finance", True),
        ("4", "Legacy Operations", False),
    ]


def test_currency_rates_in_effect_on_a_day(standin: RunningStandin, client: NetSuiteClient) -> None:
    currencies = currency_ids(client.suiteql("SELECT id, symbol FROM currency"))
    today = {
        (r.base, r.quote): r.rate
        for r in (
            exchange_rate_from_netsuite(row, currencies=currencies)
            for row in client.currency_rates(TODAY)
        )
    }
    assert len(today) == 6 and today[("GBP", "USD")] == Decimal("1.27")
    assert today[("USD", "EUR")] == Decimal("0.925926")
    earlier = client.currency_rates(TODAY - dt.timedelta(days=10))
    rates = [exchange_rate_from_netsuite(r, currencies=currencies) for r in earlier]
    assert {r.effective_date for r in rates} == {TODAY - dt.timedelta(days=30)}
    assert client.currency_rates(TODAY - dt.timedelta(days=31)) == []


def test_reference_rows_without_ids_are_response_shape_errors(
    standin: RunningStandin, client: NetSuiteClient
) -> None:
    standin.state.add_fault(
        path="/query/v1/suiteql",
        status=200,
        times=1,
        body={"items": [{"name": "no id"}], "hasMore": False},
    )
    with pytest.raises(ResponseShapeError):
        client.list_departments()
    with pytest.raises(NotFoundError):
        client.get_invoice("424242")
