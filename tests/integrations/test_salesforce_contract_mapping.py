"""Salesforce billing models, contract amendments and invoice statuses to and from canonical
shapes: exact money (milestone amounts add up to the cent, nothing rounded on the wire),
named failures, and nothing half-mapped."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from integrations.canonical.errors import MappingError
from integrations.canonical.schemas import InvoiceStatus
from integrations.connectors.salesforce.mapping import (
    amendment_from_salesforce,
    billing_model_from_salesforce,
    invoice_status_to_salesforce,
    opportunity_from_salesforce,
    wire_amount,
)

from .test_salesforce_mapping import record as opportunity_record

START = date(2027, 1, 4)
PLAN = [
    {"name": "Design", "percent": 30, "offset_days": 30},
    {"name": "Build", "percent": 50, "offset_days": 75},
    {"name": "Go-live", "percent": 20, "offset_days": 120},
]


def amendment(**changes: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "attributes": {"type": "Contract_Amendment__c"},
        "Id": "a015g00000Tl001AAB",
        "Name": "AMD-00001",
        "Opportunity__c": "0065g00000Tl001AAB",
        "New_Total_Value__c": 135000.0,
        "Effective_Date__c": "2026-12-10",
        "Status__c": "Approved",
        "Reason__c": "Scope extension: second legal entity",
        "Milestone_Plan__c": json.dumps(PLAN),
        "CurrencyIsoCode": "GBP",
        "SystemModstamp": "2026-11-26T10:00:00.000+0000",
    }
    for key, value in changes.items():
        if value is ...:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def problems_of(exc: pytest.ExceptionInfo[MappingError]) -> dict[str, str]:
    return {p["field"]: p.get("vendor_field", "") for p in exc.value.problems}


# -- billing model -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "model"),
    [
        ("Fixed Fee", "fixed_fee"),
        ("Time and Materials", "time_and_materials"),
        ("Retainer", "retainer"),
        (" Retainer ", "retainer"),
    ],
)
def test_billing_models_map_to_canonical_names(value: str, model: str) -> None:
    assert billing_model_from_salesforce({"Billing_Model__c": value}) == model


@pytest.mark.parametrize("value", [None, "", "fixed fee", "Success Fee", 3, ...])
def test_an_unknown_billing_model_is_a_mapping_error(value: Any) -> None:
    data = {} if value is ... else {"Billing_Model__c": value}
    with pytest.raises(MappingError) as exc:
        billing_model_from_salesforce(data)
    assert problems_of(exc) == {"billing_model": "Billing_Model__c"}
    with pytest.raises(MappingError):
        billing_model_from_salesforce("Fixed Fee")  # type: ignore[arg-type]


def test_the_opportunity_mapping_ignores_the_billing_model_field() -> None:
    with_model = opportunity_from_salesforce(opportunity_record(Billing_Model__c="Retainer"))
    assert with_model == opportunity_from_salesforce(opportunity_record())


# -- contract amendments -------------------------------------------------------------------


def test_an_approved_amendment_maps_with_milestones_from_the_start_date() -> None:
    mapped = amendment_from_salesforce(amendment(), currency="gbp", start=START)

    assert mapped.source_id == "a015g00000Tl001AAB"
    assert mapped.opportunity_source_id == "0065g00000Tl001AAB"
    assert mapped.effective_date == date(2026, 12, 10)
    assert str(mapped.new_total_value) == "135000.00" and mapped.currency == "GBP"
    assert mapped.reason == "Scope extension: second legal entity"
    assert [(m.name, m.due_date, str(m.amount), m.billable) for m in mapped.milestones] == [
        ("Design", date(2027, 2, 3), "40500.00", True),
        ("Build", date(2027, 3, 20), "67500.00", True),
        ("Go-live", date(2027, 5, 4), "27000.00", True),
    ]


def test_milestone_amounts_add_up_to_the_new_total_to_the_cent() -> None:
    plan = [{"name": f"Phase {i}", "percent": "33.33", "offset_days": i} for i in range(2)]
    plan.append({"name": "Phase 2", "percent": 33.34, "offset_days": 2.0})
    mapped = amendment_from_salesforce(
        amendment(New_Total_Value__c="1000.01", Milestone_Plan__c=json.dumps(plan)),
        currency="GBP",
        start=START,
    )
    amounts = [m.amount for m in mapped.milestones]
    assert amounts == [Decimal("333.30"), Decimal("333.30"), Decimal("333.41")]
    assert sum(amounts) == mapped.new_total_value == Decimal("1000.01")
    assert mapped.milestones[2].due_date == date(2027, 1, 6)


@pytest.mark.parametrize("plan", [None, "", "   ", "[]"])
def test_no_plan_means_no_milestones(plan: Any) -> None:
    mapped = amendment_from_salesforce(
        amendment(Milestone_Plan__c=plan), currency="GBP", start=START
    )
    assert mapped.milestones == ()


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        ("{not json", "not valid JSON"),
        (json.dumps({"name": "Design"}), "JSON list"),
        (json.dumps(["Design"]), "not an object"),
        (json.dumps([{"percent": 100, "offset_days": 1}]), "needs a name"),
        (json.dumps([{"name": "A", "percent": True, "offset_days": 1}]), "needs a percent"),
        (json.dumps([{"name": "A", "percent": "lots", "offset_days": 1}]), "not a number"),
        (json.dumps([{"name": "A", "percent": 0, "offset_days": 1}, PLAN[0]]), "above 0"),
        (json.dumps([{"name": "A", "percent": 100, "offset_days": -1}]), "offset_days"),
        (json.dumps([{"name": "A", "percent": 100, "offset_days": 1.5}]), "offset_days"),
        (json.dumps([{"name": "A", "percent": 100}]), "offset_days"),
        (json.dumps(PLAN[:2]), "add up to 80"),
        (json.dumps([{"name": "A", "percent": 100, "offset_days": 1}] * 101), "more than 100"),
        (json.dumps([{"name": "A", "percent": "NaN", "offset_days": 1}]), "above 0"),
    ],
)
def test_a_bad_milestone_plan_is_named(plan: str, message: str) -> None:
    with pytest.raises(MappingError) as exc:
        amendment_from_salesforce(amendment(Milestone_Plan__c=plan), currency="GBP", start=START)
    [problem] = exc.value.problems
    assert problem["vendor_field"] == "Milestone_Plan__c" and message in problem["problem"]


def test_only_approved_amendments_in_the_contract_currency_map() -> None:
    with pytest.raises(MappingError) as draft:
        amendment_from_salesforce(amendment(Status__c="Draft"), currency="GBP", start=START)
    assert problems_of(draft) == {"status": "Status__c"}
    with pytest.raises(MappingError) as other:
        amendment_from_salesforce(amendment(), currency="USD", start=START)
    assert problems_of(other) == {"currency": "CurrencyIsoCode"}
    # without CurrencyIsoCode (a single-currency org) the caller's currency is taken
    assert (
        amendment_from_salesforce(
            amendment(CurrencyIsoCode=...), currency="USD", start=START
        ).currency
        == "USD"
    )
    with pytest.raises(MappingError) as bad_code:
        amendment_from_salesforce(amendment(CurrencyIsoCode=...), currency="US", start=START)
    assert "currency" in problems_of(bad_code)


def test_every_problem_of_an_amendment_is_reported_at_once() -> None:
    broken = amendment(
        New_Total_Value__c="a lot", Effective_Date__c="next week", Reason__c=7, Id=None
    )
    with pytest.raises(MappingError) as exc:
        amendment_from_salesforce(broken, currency="GBP", start=START)
    assert problems_of(exc) == {
        "new_total_value": "New_Total_Value__c",
        "effective_date": "Effective_Date__c",
        "reason": "Reason__c",
    }
    with pytest.raises(MappingError) as unbounded:
        amendment_from_salesforce(amendment(Id=None), currency="GBP", start=START)
    assert problems_of(unbounded) == {"source_id": "Id"}
    with pytest.raises(MappingError):
        amendment_from_salesforce(
            amendment(New_Total_Value__c=100.005), currency="GBP", start=START
        )
    with pytest.raises(MappingError):
        amendment_from_salesforce(["not", "a", "record"], currency="GBP", start=START)  # type: ignore[arg-type]


def test_a_long_reason_is_shortened_not_refused() -> None:
    mapped = amendment_from_salesforce(amendment(Reason__c="x" * 400), currency="GBP", start=START)
    assert len(mapped.reason) == 255


# -- invoice status back to the CRM --------------------------------------------------------


def status(state: str = "open", **changes: Any) -> InvoiceStatus:
    data: dict[str, Any] = {
        "erp_invoice_id": "4711",
        "number": "INV-UK01-000042",
        "total": Decimal("36000.10"),
        "amount_remaining": Decimal("36000.10"),
        "state": state,
        "due_date": date(2026, 12, 31),
    }
    data.update(changes)
    return InvoiceStatus(**data)


def test_an_open_invoice_maps_to_throughline_invoice_fields() -> None:
    fields = invoice_status_to_salesforce(status(), opportunity_id="0065g00000Tl001AAB")
    assert fields == {
        "Name": "INV-UK01-000042",
        "Opportunity__c": "0065g00000Tl001AAB",
        "Invoice_Number__c": "INV-UK01-000042",
        "Amount__c": 36000.1,
        "Status__c": "Open",
        "Due_Date__c": "2026-12-31",
        "Paid_Date__c": None,
    }
    assert json.dumps(fields["Amount__c"]) == "36000.1"


def test_paid_and_overdue_invoices() -> None:
    paid = invoice_status_to_salesforce(
        status("paid", amount_remaining=Decimal(0)),
        opportunity_id="0065g00000Tl001",
        currency="GBP",
        paid_on=date(2026, 12, 20),
    )
    assert (paid["Status__c"], paid["Paid_Date__c"], paid["CurrencyIsoCode"]) == (
        "Paid",
        "2026-12-20",
        "GBP",
    )
    unknown_day = invoice_status_to_salesforce(status("paid"), opportunity_id="0065g00000Tl001")
    assert "Paid_Date__c" not in unknown_day  # left as Salesforce has it
    overdue = invoice_status_to_salesforce(
        status("overdue", due_date=None, number=" "), opportunity_id="0065g00000Tl001"
    )
    assert (overdue["Status__c"], overdue["Due_Date__c"], overdue["Name"]) == (
        "Overdue",
        None,
        "4711",
    )


def test_unmappable_invoice_statuses_name_the_problem() -> None:
    with pytest.raises(MappingError) as cancelled:
        invoice_status_to_salesforce(status("cancelled"), opportunity_id="0065g00000Tl001AAB")
    assert problems_of(cancelled) == {"state": "Status__c"}
    with pytest.raises(MappingError) as several:
        invoice_status_to_salesforce(
            status(total=Decimal("1234567890123456.78")), opportunity_id="nope", currency="gbp"
        )
    assert problems_of(several) == {
        "opportunity_id": "Opportunity__c",
        "currency": "CurrencyIsoCode",
        "total": "Amount__c",
    }
    with pytest.raises(MappingError):
        invoice_status_to_salesforce({"state": "open"}, opportunity_id="0065g00000Tl001")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "amount", ["0.00", "0.01", "36000.10", "120000.00", "9999999999999.99", "123456789012.34"]
)
def test_wire_amounts_are_the_exact_decimal(amount: str) -> None:
    number = wire_amount(Decimal(amount))
    assert Decimal(json.dumps(number)) == Decimal(amount)


def test_wire_amount_refuses_what_a_json_number_cannot_carry_exactly() -> None:
    with pytest.raises(ValueError):
        wire_amount(Decimal("12345678901234567.89"))
    with pytest.raises(ValueError):
        wire_amount(Decimal("NaN"))
    with pytest.raises(ValueError):
        wire_amount(1.5)  # type: ignore[arg-type]
