"""The canonical schemas: what vendor data may become, and how a bad payload is reported."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pydantic
import pytest

from integrations.canonical.errors import MappingError
from integrations.canonical.schemas import (
    SCHEMAS,
    Budget,
    CanonicalModel,
    Contact,
    Customer,
    LegalEntity,
    Opportunity,
    Project,
    schema_catalogue,
    validate,
)


def opportunity_data(**overrides):
    data = {
        "source_id": "006A000001",
        "name": "Acme rollout",
        "stage": "Closed Won",
        "is_won": True,
        "is_closed": True,
        "amount": "125000.10",
        "currency": "EUR",
        "close_date": "2025-03-31",
        "customer": {"source_id": "001A000001", "name": "Acme GmbH", "country": "DE"},
        "legal_entity_code": "DE01",
        "project_template": "STD-IMPL",
    }
    data.update(overrides)
    return data


def problems_by_field(exc: MappingError) -> dict[str, str]:
    return {p["field"]: p["type"] for p in exc.problems}


def test_valid_opportunity_builds_typed_immutable_object():
    opp = validate(Opportunity, opportunity_data(), source="salesforce")
    assert opp.amount == Decimal("125000.10")
    assert str(opp.amount) == "125000.10"  # cents kept exactly, no float round trip
    assert opp.close_date == dt.date(2025, 3, 31)
    assert isinstance(opp.customer, Customer)
    assert opp.customer.country == "DE"
    assert opp.modified_at is None
    with pytest.raises(pydantic.ValidationError):
        opp.name = "changed"


@pytest.mark.parametrize(
    ("amount", "expected"),
    [
        (Decimal("0.10"), "0.10"),
        ("19.99", "19.99"),
        (19.99, "19.99"),  # a float from vendor JSON keeps its two places
        (1500, "1500"),
        ("9999999999999999.99", "9999999999999999.99"),
    ],
)
def test_money_accepted_exactly(amount, expected):
    assert str(validate(Budget, {"amount": amount, "currency": "USD"}).amount) == expected


@pytest.mark.parametrize(
    ("amount", "error_type"),
    [
        (12.345, "decimal_max_places"),
        ("0.001", "decimal_max_places"),
        (0.1 + 0.2, "decimal_max_places"),  # 0.30000000000000004 is not money
        ("-1.00", "greater_than_equal"),
        ("NaN", "finite_number"),
        ("Infinity", "finite_number"),
        ("10000000000000000000", "decimal_max_digits"),
        ("12,50", "decimal_parsing"),
        (True, "decimal_type"),
        ([1], "decimal_type"),
    ],
)
def test_money_rejected(amount, error_type):
    with pytest.raises(MappingError) as excinfo:
        validate(Budget, {"amount": amount, "currency": "USD"})
    assert problems_by_field(excinfo.value) == {"amount": error_type}


def test_huge_name_rejected_without_echoing_the_input():
    huge = "A" * 2_000_000
    with pytest.raises(MappingError) as excinfo:
        validate(Customer, {"source_id": "C1", "name": huge}, source="hubspot")
    err = excinfo.value
    assert err.fields == ["name"]
    assert err.problems[0]["type"] == "string_too_long"
    assert err.entity == "customer"
    assert err.source == "hubspot"
    # the 2 MB payload must not be copied into the error, its message or its problems
    assert len(str(err)) < 200
    assert len(json.dumps(err.problems)) < 500


def test_wrong_types_are_all_listed():
    data = opportunity_data(
        name=123,
        is_won="maybe",
        close_date="31/03/2025",
        amount={"value": 1},
        customer="Acme",
    )
    with pytest.raises(MappingError) as excinfo:
        validate(Opportunity, data)
    err = excinfo.value
    assert set(err.fields) == {"name", "is_won", "close_date", "amount", "customer"}
    assert str(err).startswith("opportunity from vendor is invalid: ")
    for name in err.fields:
        assert name in str(err)
    assert all(p["problem"] for p in err.problems)


def test_missing_required_fields_are_listed():
    with pytest.raises(MappingError) as excinfo:
        validate(Opportunity, {"source_id": "X"})
    missing = {p["field"] for p in excinfo.value.problems if p["type"] == "missing"}
    assert missing == {
        "name",
        "stage",
        "is_won",
        "is_closed",
        "amount",
        "currency",
        "close_date",
        "customer",
        "legal_entity_code",
        "project_template",
    }


def test_nested_problems_name_the_full_path():
    data = {
        "key": "P-1",
        "name": "Rollout",
        "customer_name": "Acme",
        "legal_entity_code": "DE01",
        "start_date": "2025-04-01",
        "budget": {"amount": "10.00", "currency": "eur"},
        "milestones": [
            {"name": "Kick-off", "due_date": "2025-04-10", "amount": "5.00"},
            {"name": "Go-live", "due_date": "2025-06-01", "amount": "5.001"},
        ],
    }
    with pytest.raises(MappingError) as excinfo:
        validate(Project, data)
    assert problems_by_field(excinfo.value) == {
        "budget.currency": "string_pattern_mismatch",
        "milestones.1.amount": "decimal_max_places",
    }


@pytest.mark.parametrize("currency", ["USD", "EUR", "JPY"])
def test_currency_codes_accepted(currency):
    assert validate(Budget, {"amount": 1, "currency": currency}).currency == currency


@pytest.mark.parametrize("currency", ["usd", "US", "USDT", " USD", "USD\n", "U$D", "", 840])
def test_currency_codes_rejected(currency):
    with pytest.raises(MappingError) as excinfo:
        validate(Budget, {"amount": 1, "currency": currency})
    assert excinfo.value.fields == ["currency"]


@pytest.mark.parametrize(("country", "ok"), [("DE", True), ("de", False), ("DEU", False)])
def test_country_codes(country, ok):
    data = {"code": "DE01", "name": "Acme DE", "country": country, "currency": "EUR"}
    data["region"] = "EMEA"
    if ok:
        assert validate(LegalEntity, data).country == country
    else:
        with pytest.raises(MappingError) as excinfo:
            validate(LegalEntity, data)
        assert excinfo.value.fields == ["country"]


def test_region_is_a_closed_list():
    data = {"code": "X", "name": "X", "country": "US", "currency": "USD", "region": "Mars"}
    with pytest.raises(MappingError) as excinfo:
        validate(LegalEntity, data)
    assert excinfo.value.fields == ["region"]


def test_extra_fields_forbidden_at_every_level():
    data = opportunity_data(Probability=90)
    data["customer"] = {**data["customer"], "Owner": "someone"}
    with pytest.raises(MappingError) as excinfo:
        validate(Opportunity, data)
    assert problems_by_field(excinfo.value) == {
        "Probability": "extra_forbidden",
        "customer.Owner": "extra_forbidden",
    }


def test_names_are_stripped_and_blank_names_rejected():
    assert validate(Customer, {"source_id": " C1 ", "name": "  Acme  "}).name == "Acme"
    with pytest.raises(MappingError) as excinfo:
        validate(Customer, {"source_id": "C1", "name": "   "})
    assert excinfo.value.fields == ["name"]


def test_optional_text_is_bounded_too():
    with pytest.raises(MappingError) as excinfo:
        validate(Contact, {"source_id": "C1", "last_name": "Doe", "email": "x" * 256})
    assert excinfo.value.fields == ["email"]
    contact = validate(Contact, {"source_id": "C1", "last_name": "Doe"})
    assert contact.first_name == ""


def test_payload_that_is_not_an_object_is_a_mapping_error():
    with pytest.raises(MappingError, match="customer from vendor is invalid: payload"):
        validate(Customer, ["not", "a", "dict"])  # type: ignore[arg-type]


def test_mapping_error_without_problems_names_the_payload():
    err = MappingError(entity="invoice", problems=[], source="netsuite")
    assert str(err) == "invoice from netsuite is invalid: payload"
    assert err.fields == []


def test_schema_catalogue_lists_every_schema_with_version():
    catalogue = schema_catalogue()
    assert {(c["entity"], c["version"]) for c in catalogue} == set(SCHEMAS)
    assert len(catalogue) == len(SCHEMAS) == 27
    assert [c["entity"] for c in catalogue] == sorted(c["entity"] for c in catalogue)
    for entry in catalogue:
        schema = entry["json_schema"]
        assert schema["type"] == "object"
        assert schema["additionalProperties"] is False
        assert schema["properties"]
        json.dumps(schema)  # serialisable for the API
    opportunity = next(c for c in catalogue if c["entity"] == "opportunity")
    assert "amount" in opportunity["json_schema"]["required"]


def test_every_schema_is_registered_under_its_own_identity():
    for key, cls in SCHEMAS.items():
        assert key == cls.SCHEMA
        assert issubclass(cls, CanonicalModel)
        assert isinstance(key[1], int) and key[1] >= 1
    assert len({cls for cls in SCHEMAS.values()}) == len(SCHEMAS)
