"""Salesforce Opportunity/Account records to canonical shapes and back: what the CRM workflow
relies on when a won deal arrives (exact money, named failures, UTC watermarks)."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from integrations.canonical.errors import MappingError
from integrations.connectors.salesforce.mapping import (
    customer_from_salesforce,
    opportunity_from_salesforce,
    opportunity_writeback,
    parse_salesforce_datetime,
)

RECORD: dict[str, Any] = {
    "attributes": {
        "type": "Opportunity",
        "url": "/services/data/v62.0/sobjects/Opportunity/0065g00000Tl001AAB",
    },
    "Id": "0065g00000Tl001AAB",
    "Name": "Finance transformation",
    "StageName": "Closed Won",
    "IsClosed": True,
    "IsWon": True,
    "Amount": 120000.0,
    "CloseDate": "2026-11-22",
    "CurrencyIsoCode": "GBP",
    "AccountId": "0015g00000Tl001AAB",
    "SystemModstamp": "2026-11-25T10:37:33.000+0000",
    "Legal_Entity__c": "UK01",
    "Project_Template__c": "FIXED-3",
    "Throughline_ERP_Customer_Id__c": None,
    "Throughline_PSA_Project_Id__c": None,
    "Account": {
        "attributes": {
            "type": "Account",
            "url": "/services/data/v62.0/sobjects/Account/0015g00000Tl001AAB",
        },
        "Name": "Northwind Consulting Ltd",
        "BillingCountry": "GB",
        "BillingCity": "London",
        "VAT_Number__c": "GB123456789",
        "CurrencyIsoCode": "GBP",
    },
}


def record(**changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(RECORD)
    for key, value in changes.items():
        if value is ...:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def test_won_opportunity_maps_with_its_account_as_customer() -> None:
    opp = opportunity_from_salesforce(record())

    assert opp.source_id == "0065g00000Tl001AAB"
    assert opp.is_won and opp.is_closed and opp.stage == "Closed Won"
    assert opp.amount == Decimal("120000.00") and str(opp.amount) == "120000.00"
    assert opp.currency == "GBP" and opp.close_date == date(2026, 11, 22)
    assert opp.legal_entity_code == "UK01" and opp.project_template == "FIXED-3"
    assert opp.modified_at == datetime(2026, 11, 25, 10, 37, 33, tzinfo=UTC)
    assert opp.erp_customer_id is None and opp.psa_project_id is None
    customer = opp.customer
    assert customer.source_id == "0015g00000Tl001AAB"
    assert (customer.name, customer.country, customer.city) == (
        "Northwind Consulting Ltd",
        "GB",
        "London",
    )
    assert customer.tax_registration == "GB123456789" and customer.currency == "GBP"


def test_amount_goes_through_its_string_form_never_float_arithmetic() -> None:
    # 0.1 + 0.2 style errors must not reach an invoice: the decimal is the printed value
    assert opportunity_from_salesforce(record(Amount=1234.1)).amount == Decimal("1234.10")
    assert opportunity_from_salesforce(record(Amount="99999.99")).amount == Decimal("99999.99")
    assert opportunity_from_salesforce(record(Amount=45000)).amount == Decimal("45000.00")


@pytest.mark.parametrize(
    ("changes", "field", "vendor_field"),
    [
        ({"Legal_Entity__c": ...}, "legal_entity_code", "Legal_Entity__c"),
        ({"Legal_Entity__c": ""}, "legal_entity_code", "Legal_Entity__c"),
        ({"Amount": "12k"}, "amount", "Amount"),
        ({"Amount": None}, "amount", "Amount"),
        ({"Amount": True}, "amount", "Amount"),
        ({"Amount": [1]}, "amount", "Amount"),
        ({"Amount": "NaN"}, "amount", "Amount"),
        ({"Amount": -5}, "amount", "Amount"),
        ({"Amount": "10.005"}, "amount", "Amount"),  # never rounded silently
        ({"CloseDate": "22/11/2026"}, "close_date", "CloseDate"),
        ({"CurrencyIsoCode": "pounds"}, "currency", "CurrencyIsoCode"),
        ({"IsWon": "true"}, "is_won", "IsWon"),
        ({"Account": None}, "customer", "Account"),
        ({"Project_Template__c": 7}, "project_template", "Project_Template__c"),
        ({"SystemModstamp": "yesterday"}, "modified_at", "SystemModstamp"),
    ],
)
def test_bad_vendor_fields_raise_mapping_error_naming_both_fields(
    changes: dict[str, Any], field: str, vendor_field: str
) -> None:
    with pytest.raises(MappingError) as info:
        opportunity_from_salesforce(record(**changes))

    assert info.value.entity == "opportunity"
    assert field in info.value.fields
    problem = next(p for p in info.value.problems if p["field"] == field)
    assert problem["vendor_field"] == vendor_field


def test_account_problems_name_the_account_field() -> None:
    bad = record()
    bad["Account"]["BillingCountry"] = "United Kingdom"
    bad["Account"]["Name"] = None

    with pytest.raises(MappingError) as info:
        opportunity_from_salesforce(bad)

    vendor_fields = {p["vendor_field"] for p in info.value.problems}
    assert {"Account.BillingCountry", "Account.Name"} <= vendor_fields


def test_several_problems_are_reported_together() -> None:
    with pytest.raises(MappingError) as info:
        opportunity_from_salesforce(record(Amount="abc", Legal_Entity__c=None, CloseDate=None))

    assert {"amount", "legal_entity_code", "close_date"} <= set(info.value.fields)


@pytest.mark.parametrize("value", [None, [], "record", 42])
def test_a_record_that_is_not_an_object_is_a_mapping_error(value: Any) -> None:
    with pytest.raises(MappingError):
        opportunity_from_salesforce(value)


def test_country_and_currency_codes_are_normalised_not_guessed() -> None:
    rec = record()
    rec["Account"]["BillingCountry"] = " gb "
    assert opportunity_from_salesforce(rec).customer.country == "GB"


def test_customer_from_a_plain_account_record() -> None:
    customer = customer_from_salesforce(
        {"Id": "0015g00000Tl003AAB", "Name": "Initech GmbH", "BillingCountry": "DE"}
    )
    assert customer.source_id == "0015g00000Tl003AAB" and customer.country == "DE"
    with pytest.raises(MappingError):
        customer_from_salesforce({"Id": "0015g00000Tl003AAB"})


def test_writeback_fields_for_the_opportunity() -> None:
    assert opportunity_writeback("CUS-1042", "PRJ-77") == {
        "Throughline_ERP_Customer_Id__c": "CUS-1042",
        "Throughline_PSA_Project_Id__c": "PRJ-77",
    }
    with pytest.raises(MappingError) as info:
        opportunity_writeback("", "x" * 300)
    assert set(info.value.fields) == {"erp_customer_id", "psa_project_id"}


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-26T10:00:00.000+0000",
        "2026-11-26T10:00:00Z",
        "2026-11-26T10:00:00+00:00",
        "2026-11-26T11:00:00.000+0100",
        "2026-11-26T05:00:00-05:00",
    ],
)
def test_salesforce_datetimes_parse_to_utc(text: str) -> None:
    parsed = parse_salesforce_datetime(text)
    assert parsed == datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
    assert parsed.utcoffset() == timedelta(0)


def test_aware_datetimes_are_converted_and_naive_ones_refused() -> None:
    cet = timezone(timedelta(hours=1))
    assert parse_salesforce_datetime(datetime(2026, 11, 26, 11, 0, tzinfo=cet)) == datetime(
        2026, 11, 26, 10, 0, tzinfo=UTC
    )
    for bad in (datetime(2026, 11, 26, 10, 0), "2026-11-26T10:00:00", "2026-13-01T00:00:00Z", 5):
        with pytest.raises(MappingError):
            parse_salesforce_datetime(bad)
