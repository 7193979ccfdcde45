"""NetSuite <-> canonical mapping for project-to-cash and resource-to-finance: invoice bodies
with exact amounts, invoice status from REST records and SuiteQL rows (overdue derived), time
bills, expense reports, reference data, projects, revenue schedules and billing plans; bad
vendor data raises MappingError, never KeyError."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from integrations.canonical.errors import MappingError
from integrations.canonical.schemas import (
    Budget,
    Expense,
    Invoice,
    InvoiceLine,
    Milestone,
    Project,
    RevenueSchedule,
    RevenueScheduleLine,
    TimeEntry,
)
from integrations.connectors.netsuite.mapping import (
    billing_milestone_lines,
    cost_centre_from_department,
    cost_rate_from_employee,
    employee_from_netsuite,
    exchange_rate_from_netsuite,
    expense_report_from_expense,
    invoice_status_from_netsuite,
    invoice_to_netsuite,
    job_from_project,
    revenue_schedule_lines,
    time_bill_from_entry,
)

DAY = dt.date(2026, 11, 20)
CURRENCIES = {"USD": "1", "GBP": "2", "EUR": "4"}


def line(qty: str = "2", price: str = "100.00", amount: str = "200.00", **kw: Any) -> InvoiceLine:
    return InvoiceLine(
        description="Consulting",
        quantity=Decimal(qty),
        unit_price=Decimal(price),
        amount=Decimal(amount),
        **kw,
    )


def invoice(*lines: InvoiceLine, **kw: Any) -> Invoice:
    data: dict[str, Any] = {
        "key": "TL-INV-1",
        "customer_erp_id": "1001",
        "legal_entity_code": "UK01",
        "currency": "GBP",
        "invoice_date": DAY,
        "due_date": DAY + dt.timedelta(days=30),
        "lines": lines or (line(),),
        "memo": "November",
    }
    data.update(kw)
    return Invoice(**data)


# -- invoices ---------------------------------------------------------------------------------
def test_invoice_maps_to_a_netsuite_body() -> None:
    body = invoice_to_netsuite(
        invoice(line(), line("1.5", "99.99", "149.99", tax_code="Z")),
        subsidiary_id="2",
        currency_id="2",
        item_id="1",
        job_id="2001",
        tax_code_ids={"Z": "2"},
    )
    assert body == {
        "externalId": "TL-INV-1",
        "entity": {"id": "1001"},
        "subsidiary": {"id": "2"},
        "currency": {"id": "2"},
        "tranDate": "2026-11-20",
        "dueDate": "2026-12-20",
        "memo": "November",
        "job": {"id": "2001"},
        "item": {
            "items": [
                {
                    "item": {"id": "1"},
                    "description": "Consulting",
                    "quantity": 2.0,
                    "rate": 100.0,
                    "amount": 200.0,
                },
                {
                    "item": {"id": "1"},
                    "description": "Consulting",
                    "quantity": 1.5,
                    "rate": 99.99,
                    "amount": 149.99,
                    "taxCode": {"id": "2"},
                },
            ]
        },
    }
    plain = invoice_to_netsuite(invoice(memo=""), subsidiary_id="2", currency_id="2", item_id="1")
    assert "job" not in plain and "memo" not in plain


@pytest.mark.parametrize(
    ("inv", "kwargs", "field"),
    [
        (invoice(line(amount="199.99")), {}, "lines.0.amount"),
        (invoice(line(tax_code="S")), {}, "lines.0.tax_code"),
        (invoice(line(tax_code="S")), {"tax_code_ids": {"S": "VAT"}}, "lines.0.tax_code"),
        (invoice(key="has space"), {}, "key"),
        (invoice(customer_erp_id="ACME"), {}, "customer_erp_id"),
        (invoice(due_date=DAY - dt.timedelta(days=1)), {}, "due_date"),
        (invoice(), {"item_id": ""}, "item_id"),
        (invoice(), {"job_id": "P-1"}, "job_id"),
        (invoice(lines=()), {}, "lines"),
        (
            invoice(line("1", "1234567890123456.78", "1234567890123456.78")),
            {},
            "lines.0.amount",
        ),
    ],
)
def test_invoice_problems_name_the_field(inv: Invoice, kwargs: dict[str, Any], field: str) -> None:
    args = {"subsidiary_id": "2", "currency_id": "2", "item_id": "1", **kwargs}
    with pytest.raises(MappingError) as caught:
        invoice_to_netsuite(inv, **args)
    assert field in caught.value.fields and caught.value.entity == "invoice"


REST_INVOICE = {
    "links": [],
    "id": "5001",
    "tranId": "INV-10001",
    "status": {"id": "A", "refName": "Open"},
    "total": 1919.99,
    "amountRemaining": 919.99,
    "dueDate": "2026-11-30",
}
SUITEQL_ROW = {
    "id": "5001",
    "tranid": "INV-10001",
    "status": "A",
    "foreigntotal": 1919.99,
    "foreignamountremaining": 919.99,
    "duedate": "11/30/2026",
}


@pytest.mark.parametrize("record", [REST_INVOICE, SUITEQL_ROW])
@pytest.mark.parametrize(
    ("today", "state"),
    [(dt.date(2026, 11, 30), "open"), (dt.date(2026, 12, 1), "overdue")],
)
def test_invoice_status_open_or_overdue_from_either_shape(
    record: dict[str, Any], today: dt.date, state: str
) -> None:
    status = invoice_status_from_netsuite(record, today=today)
    assert status.state == state and status.erp_invoice_id == "5001"
    assert status.number == "INV-10001" and status.total == Decimal("1919.99")
    assert status.amount_remaining == Decimal("919.99")
    assert status.due_date == dt.date(2026, 11, 30)


def test_invoice_status_paid_and_cancelled() -> None:
    paid = {**REST_INVOICE, "status": {"id": "B", "refName": "Paid In Full"}, "amountRemaining": 0}
    assert invoice_status_from_netsuite(paid, today=dt.date(2030, 1, 1)).state == "paid"
    nothing_left = {**SUITEQL_ROW, "foreignamountremaining": "0.00"}
    assert invoice_status_from_netsuite(nothing_left, today=DAY).state == "paid"
    void = {**REST_INVOICE, "status": {"refName": "Voided"}}
    assert invoice_status_from_netsuite(void, today=DAY).state == "cancelled"
    no_due = {k: v for k, v in SUITEQL_ROW.items() if k != "duedate"}
    assert invoice_status_from_netsuite(no_due, today=dt.date(2030, 1, 1)).state == "open"


@pytest.mark.parametrize(
    "change",
    [
        {"total": None},
        {"total": "lots"},
        {"total": 10.001},
        {"amountRemaining": 5000},
        {"amountRemaining": -1},
        {"status": None},
        {"status": {"refName": "Pending Approval"}},
        {"status": {"id": "B", "refName": "Paid In Full"}},  # but 919.99 remains
        {"dueDate": "soon"},
        {"tranId": None},
        {"id": None},
    ],
)
def test_malformed_invoice_records_raise_mapping_error(change: dict[str, Any]) -> None:
    with pytest.raises(MappingError):
        invoice_status_from_netsuite({**REST_INVOICE, **change}, today=DAY)
    with pytest.raises(MappingError):
        invoice_status_from_netsuite("not a record", today=DAY)  # type: ignore[arg-type]


# -- time and expenses --------------------------------------------------------------------------
ENTRY = TimeEntry(
    source_id="kt-991",
    project_key="PRJ-1",
    psa_project_id="k-1",
    person_id="k-7",
    work_date=DAY,
    hours=Decimal("7.25"),
    billable=True,
    approved=False,
    notes="Workshop",
)


def test_time_entry_maps_to_a_time_bill() -> None:
    body = time_bill_from_entry(ENTRY, employee_id="104", job_id="2001", subsidiary_id="2")
    assert body == {
        "externalId": "kt-991",
        "employee": {"id": "104"},
        "customer": {"id": "2001"},
        "subsidiary": {"id": "2"},
        "tranDate": "2026-11-20",
        "hours": 7.25,
        "isBillable": True,
        "supervisorApproval": False,
        "memo": "Workshop",
    }


@pytest.mark.parametrize(
    ("change", "ids", "field"),
    [
        ({"hours": Decimal("0")}, {}, "hours"),
        ({"hours": Decimal("24.5")}, {}, "hours"),
        ({"source_id": "kt/991"}, {}, "source_id"),
        ({}, {"employee_id": "k-7"}, "employee_id"),
        ({}, {"job_id": ""}, "job_id"),
    ],
)
def test_time_entry_problems(change: dict[str, Any], ids: dict[str, str], field: str) -> None:
    entry = ENTRY.model_copy(update=change)
    args = {"employee_id": "104", "job_id": "2001", "subsidiary_id": "2", **ids}
    with pytest.raises(MappingError) as caught:
        time_bill_from_entry(entry, **args)
    assert field in caught.value.fields


def test_expense_maps_to_an_expense_report() -> None:
    expense = Expense(
        source_id="ex-5",
        project_key="PRJ-1",
        psa_project_id="k-1",
        person_id="k-7",
        spent_on=DAY,
        category="Meals",
        amount=Decimal("42.10"),
        currency="GBP",
        billable=False,
        approved=True,
        receipt_attached=False,
    )
    body = expense_report_from_expense(
        expense, employee_id="104", job_id="2001", subsidiary_id="2", currency_id="2"
    )
    (line_,) = body["expense"]["items"]
    assert body["entity"] == {"id": "104"} and body["expenseReportCurrency"] == {"id": "2"}
    assert body["supervisorApproval"] is True and body["externalId"] == "ex-5"
    assert line_ == {
        "expenseDate": "2026-11-20",
        "amount": 42.1,
        "foreignAmount": 42.1,
        "currency": {"id": "2"},
        "customer": {"id": "2001"},
        "isBillable": False,
        "receipt": False,
        "memo": "Meals",
    }
    with_category = expense_report_from_expense(
        expense, employee_id="104", job_id="2001", subsidiary_id="2", currency_id="2",
        category_id="2",
    )  # fmt: skip
    assert with_category["expense"]["items"][0]["category"] == {"id": "2"}
    for bad in ({"amount": Decimal("0")}, {"source_id": "ex 5"}):
        with pytest.raises(MappingError):
            expense_report_from_expense(
                expense.model_copy(update=bad),
                employee_id="104",
                job_id="2001",
                subsidiary_id="2",
                currency_id="2",
            )


# -- reference data -----------------------------------------------------------------------------
EMPLOYEE_ROW = {
    "id": "106",
    "firstname": "Jonas",
    "lastname": "Becker",
    "email": "jonas.becker@example.com",
    "subsidiary": "3",
    "department": "1",
    "laborcost": 78,
    "isinactive": "F",
}
EMPLOYEE_RECORD = {
    "links": [],
    "id": "106",
    "firstName": "Jonas",
    "lastName": "Becker",
    "email": "jonas.becker@example.com",
    "subsidiary": {"links": [], "id": "3", "refName": "Throughline Demo GmbH"},
    "department": {"id": "1", "refName": "Delivery"},
    "laborCost": 78.0,
    "isInactive": False,
}


@pytest.mark.parametrize("record", [EMPLOYEE_ROW, EMPLOYEE_RECORD])
def test_employee_and_cost_rate_from_either_shape(record: dict[str, Any]) -> None:
    person = employee_from_netsuite(record, legal_entities={"3": "DE01"})
    assert (person.source_id, person.first_name, person.last_name) == ("106", "Jonas", "Becker")
    assert person.legal_entity_code == "DE01" and person.cost_centre_code == "1"
    assert person.active is True
    rate = cost_rate_from_employee(record, currency="EUR", effective_from=DAY)
    assert rate is not None and rate.hourly_cost == Decimal("78.00")
    assert rate.employee_source_id == "106" and rate.currency == "EUR"
    assert employee_from_netsuite(record).legal_entity_code is None


@pytest.mark.parametrize(
    "change",
    [{"lastname": None}, {"isinactive": "maybe"}, {"id": None}, {"email": "x" * 300}],
)
def test_malformed_employees_raise_mapping_error(change: dict[str, Any]) -> None:
    with pytest.raises(MappingError):
        employee_from_netsuite({**EMPLOYEE_ROW, **change})


def test_cost_rates_need_an_exact_amount() -> None:
    assert cost_rate_from_employee({**EMPLOYEE_ROW, "laborcost": None}, currency="EUR",
                                   effective_from=DAY) is None  # fmt: skip
    for bad in ("78.123", "a lot", -5):
        with pytest.raises(MappingError):
            cost_rate_from_employee({**EMPLOYEE_ROW, "laborcost": bad}, currency="EUR",
                                    effective_from=DAY)  # fmt: skip


def test_departments_become_cost_centres() -> None:
    centre = cost_centre_from_department({"id": 4, "name": "Legacy", "isInactive": True})
    assert (centre.code, centre.name, centre.active) == ("4", "Legacy", False)
    with pytest.raises(MappingError):
        cost_centre_from_department({"id": "1", "name": ""})
    with pytest.raises(MappingError):
        cost_centre_from_department({"id": "1", "name": "X", "isinactive": 1})


def test_exchange_rate_direction_and_precision() -> None:
    row = {
        "id": "1",
        "basecurrency": "1",
        "transactioncurrency": "2",
        "exchangerate": 1.2712345678,
        "effectivedate": "2026-11-26",
    }
    rate = exchange_rate_from_netsuite(row, currencies=CURRENCIES)
    assert (rate.base, rate.quote) == ("GBP", "USD")  # one GBP is 1.27 USD
    assert rate.rate == Decimal("1.271235") and rate.effective_date == dt.date(2026, 11, 26)
    record = {
        "baseCurrency": {"id": "4"},
        "transactionCurrency": {"id": "1", "refName": "US Dollar"},
        "exchangeRate": "0.925926",
        "effectiveDate": "2026-11-26",
    }
    assert exchange_rate_from_netsuite(record, currencies=CURRENCIES).quote == "EUR"
    for change in (
        {"basecurrency": "3"},
        {"exchangerate": 0},
        {"exchangerate": "x"},
        {"effectivedate": None},
    ):
        with pytest.raises(MappingError):
            exchange_rate_from_netsuite({**row, **change}, currencies=CURRENCIES)


# -- projects, revenue, billing plans ------------------------------------------------------------
PROJECT = Project(
    key="PRJ-9",
    name="Data platform",
    customer_name="Acme",
    legal_entity_code="UK01",
    start_date=DAY,
    budget=Budget(amount=Decimal("1000.00"), currency="GBP"),
    milestones=(
        Milestone(name="Design", due_date=DAY, amount=Decimal("400.00")),
        Milestone(name="Build", due_date=DAY, amount=Decimal("600.00"), billable=False),
    ),
)


def test_project_maps_to_a_job() -> None:
    body = job_from_project(PROJECT, customer_id="1001", subsidiary_id="2", currency_id="2")
    assert body == {
        "externalId": "PRJ-9",
        "entityId": "PRJ-9",
        "companyName": "Data platform",
        "parent": {"id": "1001"},
        "subsidiary": {"id": "2"},
        "currency": {"id": "2"},
        "startDate": "2026-11-20",
    }
    long_name = PROJECT.model_copy(update={"name": "n" * 84})
    with pytest.raises(MappingError) as caught:
        job_from_project(long_name, customer_id="1001", subsidiary_id="2", currency_id="2")
    assert caught.value.fields == ["name"]
    with pytest.raises(MappingError):
        job_from_project(PROJECT, customer_id="Acme", subsidiary_id="2", currency_id="2")


def test_revenue_schedule_lines_are_keyed_by_contract_and_period() -> None:
    schedule = RevenueSchedule(
        contract_key="C-9",
        billing_model="retainer",
        currency="EUR",
        total=Decimal("200.00"),
        lines=(
            RevenueScheduleLine(period_start=dt.date(2026, 11, 1), amount=Decimal("100.00")),
            RevenueScheduleLine(period_start=dt.date(2026, 12, 1), amount=Decimal("100.00")),
        ),
    )
    first, second = revenue_schedule_lines(schedule)
    assert first == {
        "externalId": "C-9-20261101",
        "name": "C-9 2026-11-01",
        "custrecord_tl_contract": "C-9",
        "custrecord_tl_period": "2026-11-01",
        "custrecord_tl_amount": 100.0,
        "custrecord_tl_currency": "EUR",
    }
    assert second["externalId"] == "C-9-20261201"
    wrong_total = schedule.model_copy(update={"total": Decimal("250.00")})
    duplicate = schedule.model_copy(update={"lines": schedule.lines[:1] * 2})
    bad_key = schedule.model_copy(update={"contract_key": "C 9"})
    for bad in (wrong_total, duplicate, bad_key):
        with pytest.raises(MappingError):
            revenue_schedule_lines(bad)


def test_billing_milestones_are_keyed_by_their_place() -> None:
    design, build = billing_milestone_lines(PROJECT)
    assert design == {
        "externalId": "PRJ-9-M1",
        "name": "Design",
        "custrecord_tl_bm_date": "2026-11-20",
        "custrecord_tl_bm_amount": 400.0,
        "custrecord_tl_bm_currency": "GBP",
        "custrecord_tl_bm_billable": True,
    }
    assert build["externalId"] == "PRJ-9-M2" and build["custrecord_tl_bm_billable"] is False
