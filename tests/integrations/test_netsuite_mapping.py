"""NetSuite <-> canonical mapping: subsidiaries become legal entities (with or without a tax
registration), customers become NetSuite bodies without silent truncation, and malformed
vendor data raises MappingError rather than KeyError or TypeError."""

from __future__ import annotations

from typing import Any

import pytest

from integrations.canonical.errors import MappingError
from integrations.canonical.schemas import Customer
from integrations.connectors.netsuite.mapping import (
    currency_ids,
    customer_to_netsuite,
    legal_entity_from_subsidiary,
)

CURRENCIES = {"USD": "1", "GBP": "2", "EUR": "4"}


def subsidiary(**overrides: Any) -> dict[str, Any]:
    sub: dict[str, Any] = {
        "links": [],
        "id": "2",
        "name": "Throughline Demo UK Ltd",
        "country": {"id": "GB", "refName": "United Kingdom"},
        "currency": {"links": [], "id": "2", "refName": "British Pound"},
        "taxRegistration": {
            "links": [],
            "items": [
                {
                    "links": [],
                    "id": "1",
                    "nexusCountry": {"id": "GB", "refName": "United Kingdom"},
                    "nexus": {"id": "2", "refName": "United Kingdom"},
                    "taxRegistrationNumber": "GB999999973",
                },
                {"id": "2", "nexusCountry": {"id": "IE"}, "taxRegistrationNumber": "IE1234567T"},
            ],
            "count": 2,
            "hasMore": False,
        },
    }
    sub.update(overrides)
    return sub


def test_subsidiary_with_registrations_maps_the_first_as_tax() -> None:
    entity = legal_entity_from_subsidiary(
        subsidiary(), code="UK01", region="EMEA", currencies=CURRENCIES
    )
    assert (entity.code, entity.name, entity.country, entity.currency, entity.region) == (
        "UK01",
        "Throughline Demo UK Ltd",
        "GB",
        "GBP",
        "EMEA",
    )
    assert entity.tax is not None
    assert entity.tax.registration_number == "GB999999973" and entity.tax.country == "GB"


def test_subsidiary_without_registrations_has_no_tax() -> None:
    sub = subsidiary(
        name="Throughline Demo GmbH",
        country={"id": "DE"},
        currency={"id": "4", "refName": "Euro"},
        taxRegistration={"links": [], "items": [], "count": 0},
    )
    entity = legal_entity_from_subsidiary(sub, code="DE01", region="EMEA", currencies=CURRENCIES)
    assert entity.tax is None and entity.currency == "EUR" and entity.country == "DE"


def test_plain_country_codes_and_iso_ref_names_are_accepted() -> None:
    sub = subsidiary(country="us", currency={"id": "9", "refName": "USD"})
    entity = legal_entity_from_subsidiary(sub, code="US01", region="Americas")
    assert entity.country == "US" and entity.currency == "USD"


def test_an_unexpanded_sublist_is_refused_not_read_as_no_registration() -> None:
    sub = subsidiary(taxRegistration={"links": [{"rel": "self", "href": "..."}]})
    with pytest.raises(MappingError) as caught:
        legal_entity_from_subsidiary(sub, code="UK01", region="EMEA", currencies=CURRENCIES)
    assert caught.value.fields == ["taxRegistration"]
    without = subsidiary()
    del without["taxRegistration"]
    with pytest.raises(MappingError):
        legal_entity_from_subsidiary(without, code="UK01", region="EMEA", currencies=CURRENCIES)


def test_an_unknown_currency_needs_the_currency_map() -> None:
    with pytest.raises(MappingError) as caught:
        legal_entity_from_subsidiary(subsidiary(), code="UK01", region="EMEA")
    assert caught.value.fields == ["currency"]


@pytest.mark.parametrize(
    "overrides",
    [
        {"name": None},
        {"name": ["not", "a", "name"]},
        {"country": None},
        {"country": {"id": "Great Britain"}},
        {"currency": "2"},
        {"taxRegistration": {"items": "GB1"}},
        {"taxRegistration": {"items": [{"nexusCountry": {"id": "GB"}}]}},
        {"taxRegistration": {"items": [{"taxRegistrationNumber": "GB1", "nexusCountry": 5}]}},
    ],
)
def test_malformed_subsidiaries_raise_mapping_error(overrides: dict[str, Any]) -> None:
    with pytest.raises(MappingError):
        legal_entity_from_subsidiary(
            subsidiary(**overrides), code="UK01", region="EMEA", currencies=CURRENCIES
        )


def test_region_and_code_are_validated() -> None:
    with pytest.raises(MappingError) as caught:
        legal_entity_from_subsidiary(subsidiary(), code="", region="Mars", currencies=CURRENCIES)
    assert set(caught.value.fields) == {"code", "region"}
    with pytest.raises(MappingError):
        legal_entity_from_subsidiary("not a dict", code="X", region="EMEA")  # type: ignore[arg-type]


def test_customer_maps_to_a_netsuite_body() -> None:
    customer = Customer(
        source_id="001A", name="Acme Widgets Ltd", country="GB", tax_registration="GB123456789"
    )
    body = customer_to_netsuite(
        customer, external_id="sf-001A", subsidiary_id="2", currency_id="2", terms_id="2"
    )
    assert body == {
        "externalId": "sf-001A",
        "companyName": "Acme Widgets Ltd",
        "isPerson": False,
        "subsidiary": {"id": "2"},
        "currency": {"id": "2"},
        "taxRegistration": {
            "items": [{"nexusCountry": {"id": "GB"}, "taxRegistrationNumber": "GB123456789"}]
        },
        "terms": {"id": "2"},
    }
    plain = customer_to_netsuite(
        Customer(source_id="2", name="Plain"), external_id="x", subsidiary_id="1", currency_id="1"
    )
    assert "taxRegistration" not in plain and "terms" not in plain


def test_a_name_over_83_characters_is_refused_not_truncated() -> None:
    ok = Customer(source_id="1", name="n" * 83)
    assert (
        customer_to_netsuite(ok, external_id="a", subsidiary_id="1", currency_id="1")["companyName"]
        == "n" * 83
    )
    long = Customer(source_id="1", name="n" * 84)
    with pytest.raises(MappingError) as caught:
        customer_to_netsuite(long, external_id="a", subsidiary_id="1", currency_id="1")
    assert caught.value.fields == ["name"] and caught.value.entity == "customer"


@pytest.mark.parametrize(
    ("customer", "kwargs", "field"),
    [
        (Customer(source_id="1", name="A"), {"external_id": "has space"}, "external_id"),
        (Customer(source_id="1", name="A"), {"subsidiary_id": "UK"}, "subsidiary_id"),
        (Customer(source_id="1", name="A"), {"currency_id": ""}, "currency_id"),
        (Customer(source_id="1", name="A", tax_registration="GB1"), {}, "country"),
        (
            Customer(source_id="1", name="A", country="GB", tax_registration="G" * 41),
            {},
            "tax_registration",
        ),
    ],
)
def test_customer_problems_name_the_field(
    customer: Customer, kwargs: dict[str, str], field: str
) -> None:
    args = {"external_id": "ok-1", "subsidiary_id": "1", "currency_id": "1", **kwargs}
    with pytest.raises(MappingError) as caught:
        customer_to_netsuite(customer, **args)
    assert field in caught.value.fields


def test_currency_ids_from_records_or_suiteql_rows() -> None:
    rows = [{"links": [], "id": "1", "symbol": "USD"}, {"id": 4, "symbol": "eur"}]
    assert currency_ids(rows) == {"USD": "1", "EUR": "4"}
    assert currency_ids([]) == {}


@pytest.mark.parametrize(
    "items",
    [[{"id": "1"}], [{"id": "1", "symbol": "Dollar"}], [{"symbol": "USD"}], ["USD"], [None]],
)
def test_malformed_currencies_raise_mapping_error(items: list[Any]) -> None:
    with pytest.raises(MappingError):
        currency_ids(items)
