"""Salesforce records to and from canonical shapes: Opportunity (with its Account as the
Customer), the write-back of ERP/PSA ids onto the Opportunity, and Salesforce datetimes.

Salesforce data is untrusted: every problem - a missing Legal_Entity__c, an Amount that is
not a number, a date that is not a date - raises `MappingError` naming both the canonical
field and the Salesforce field (`vendor_field` in each problem). Amounts become Decimal via
their string form, never through float arithmetic, and are never rounded: a value with more
than two decimals is an error, not a silent change of money.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from ...canonical.errors import MappingError
from ...canonical.schemas import Customer, Opportunity, validate

SOURCE = "salesforce"
_CENTS = Decimal("0.01")

ERP_CUSTOMER_ID_FIELD = "Throughline_ERP_Customer_Id__c"
PSA_PROJECT_ID_FIELD = "Throughline_PSA_Project_Id__c"

#: canonical field path -> Salesforce field (for error messages)
OPPORTUNITY_FIELD_MAP: dict[str, str] = {
    "source_id": "Id",
    "name": "Name",
    "stage": "StageName",
    "is_won": "IsWon",
    "is_closed": "IsClosed",
    "amount": "Amount",
    "currency": "CurrencyIsoCode",
    "close_date": "CloseDate",
    "legal_entity_code": "Legal_Entity__c",
    "project_template": "Project_Template__c",
    "modified_at": "SystemModstamp",
    "erp_customer_id": ERP_CUSTOMER_ID_FIELD,
    "psa_project_id": PSA_PROJECT_ID_FIELD,
    "customer": "Account",
    "customer.source_id": "AccountId",
    "customer.name": "Account.Name",
    "customer.country": "Account.BillingCountry",
    "customer.city": "Account.BillingCity",
    "customer.tax_registration": "Account.VAT_Number__c",
    "customer.currency": "Account.CurrencyIsoCode",
}
CUSTOMER_FIELD_MAP: dict[str, str] = {
    "source_id": "Id",
    "name": "Name",
    "country": "BillingCountry",
    "city": "BillingCity",
    "tax_registration": "VAT_Number__c",
    "currency": "CurrencyIsoCode",
}

_DATETIME = re.compile(r"^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(\.\d{1,6})?(Z|[+-]\d{2}:?\d{2})$")


def parse_salesforce_datetime(value: object, *, field: str = "datetime") -> datetime:
    """A Salesforce datetime (`2026-11-26T10:00:00.000+0000`, `...Z`, `+00:00`) in UTC.

    Raises MappingError for anything else, naive times included.
    """
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise _problem("datetime", field, "datetime has no timezone")
        return value.astimezone(UTC)
    if not isinstance(value, str):
        raise _problem("datetime", field, "expected a datetime string")
    match = _DATETIME.match(value.strip())
    if match is None:
        raise _problem("datetime", field, f"not a Salesforce datetime: {value[:40]!r}")
    day, clock, fraction, offset = match.groups()
    if offset == "Z":
        offset = "+00:00"
    elif ":" not in offset:
        offset = f"{offset[:3]}:{offset[3:]}"
    try:
        parsed = datetime.fromisoformat(f"{day}T{clock}{fraction or ''}{offset}")
    except ValueError:
        raise _problem("datetime", field, f"not a valid datetime: {value[:40]!r}") from None
    return parsed.astimezone(UTC)


def customer_from_salesforce(account: dict[str, Any], account_id: object = None) -> Customer:
    """An Account record (or the nested `Account` of a query) as a canonical Customer."""
    if not isinstance(account, dict):
        raise _problem("customer", "Account", "expected an Account object")
    return _validate(Customer, _customer_data(account, account_id), CUSTOMER_FIELD_MAP)


def opportunity_from_salesforce(record: dict[str, Any]) -> Opportunity:
    """An Opportunity record (with `Account.*` fields, see client.OPPORTUNITY_FIELDS) as a
    canonical Opportunity whose customer is the Account."""
    if not isinstance(record, dict):
        raise _problem("opportunity", "record", "expected an Opportunity object")
    problems: list[dict[str, Any]] = []
    data: dict[str, Any] = {
        "source_id": record.get("Id"),
        "name": record.get("Name"),
        "stage": record.get("StageName"),
        "is_won": record.get("IsWon"),
        "is_closed": record.get("IsClosed"),
        "currency": record.get("CurrencyIsoCode"),
        "legal_entity_code": record.get("Legal_Entity__c"),
        "project_template": record.get("Project_Template__c"),
        "erp_customer_id": record.get(ERP_CUSTOMER_ID_FIELD) or None,
        "psa_project_id": record.get(PSA_PROJECT_ID_FIELD) or None,
    }
    for key in ("is_won", "is_closed"):
        if not isinstance(data[key], bool):
            problems.append(_item(key, OPPORTUNITY_FIELD_MAP[key], "expected true or false"))

    try:
        data["amount"] = parse_amount(record.get("Amount"))
    except ValueError as exc:
        problems.append(_item("amount", "Amount", str(exc)))

    close_date = record.get("CloseDate")
    try:
        if not isinstance(close_date, str):
            raise ValueError
        data["close_date"] = date.fromisoformat(close_date)
    except ValueError:
        problems.append(_item("close_date", "CloseDate", "expected a date like 2026-11-30"))

    modstamp = record.get("SystemModstamp")
    if modstamp is not None:
        try:
            data["modified_at"] = parse_salesforce_datetime(modstamp, field="SystemModstamp")
        except MappingError:
            problems.append(_item("modified_at", "SystemModstamp", "not a Salesforce datetime"))

    account = record.get("Account")
    if isinstance(account, dict):
        data["customer"] = _customer_data(account, record.get("AccountId"))
    else:
        problems.append(_item("customer", "Account", "the opportunity has no Account"))

    try:
        opportunity = _validate(Opportunity, data, OPPORTUNITY_FIELD_MAP)
    except MappingError as exc:
        known = {p["field"] for p in problems}
        problems.extend(p for p in exc.problems if p["field"] not in known)
    else:
        if not problems:
            return opportunity
    raise MappingError(entity="opportunity", problems=problems, source=SOURCE)


def opportunity_writeback(erp_customer_id: str, psa_project_id: str) -> dict[str, str]:
    """The fields to PATCH on the Opportunity once the ERP customer and PSA project exist."""
    problems = [
        _item(name, sf_field, "expected a non-empty id of at most 255 characters")
        for name, sf_field, value in (
            ("erp_customer_id", ERP_CUSTOMER_ID_FIELD, erp_customer_id),
            ("psa_project_id", PSA_PROJECT_ID_FIELD, psa_project_id),
        )
        if not isinstance(value, str) or not value.strip() or len(value) > 255
    ]
    if problems:
        raise MappingError(entity="opportunity_writeback", problems=problems, source=SOURCE)
    return {
        ERP_CUSTOMER_ID_FIELD: erp_customer_id.strip(),
        PSA_PROJECT_ID_FIELD: psa_project_id.strip(),
    }


def parse_amount(value: object) -> Decimal:
    """A Salesforce currency value as Decimal via its string form (120000.0 -> 120000.00,
    never rounded: more than two decimals stay as they are and fail the canonical check);
    ValueError when it is not a finite number."""
    if value is None:
        raise ValueError("amount is missing")
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise ValueError("amount is not a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("amount is not a finite number")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError("amount is not a number") from None
    if not amount.is_finite():
        raise ValueError("amount is not a finite number")
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= -2:
        amount = amount.quantize(_CENTS)  # exact: only adds trailing zeros
    return amount


# -- helpers ------------------------------------------------------------------------------


def _customer_data(account: dict[str, Any], account_id: object) -> dict[str, Any]:
    country = account.get("BillingCountry")
    if isinstance(country, str):
        country = country.strip().upper() or None
    currency = account.get("CurrencyIsoCode")
    if isinstance(currency, str):
        currency = currency.strip().upper() or None
    return {
        "source_id": account_id if account_id is not None else account.get("Id"),
        "name": account.get("Name"),
        "country": country,
        "currency": currency,
        "tax_registration": account.get("VAT_Number__c") or None,
        "city": account.get("BillingCity") or None,
    }


def _validate(model: Any, data: dict[str, Any], field_map: dict[str, str]) -> Any:
    try:
        return validate(model, data, source=SOURCE)
    except MappingError as exc:
        for problem in exc.problems:
            problem.setdefault("vendor_field", field_map.get(problem["field"], problem["field"]))
        raise


def _item(field: str, vendor_field: str, problem: str) -> dict[str, Any]:
    return {"field": field, "vendor_field": vendor_field, "problem": problem, "type": "mapping"}


def _problem(entity: str, field: str, problem: str) -> MappingError:
    return MappingError(entity=entity, problems=[_item(field, field, problem)], source=SOURCE)
