"""Salesforce records to and from canonical shapes: Opportunity (with its Account as the
Customer) and its billing model, the write-back of ERP/PSA ids onto the Opportunity, contract
amendments, invoice statuses written back to the CRM, and Salesforce datetimes.

Salesforce data is untrusted: every problem - a missing Legal_Entity__c, an Amount that is
not a number, a date that is not a date - raises `MappingError` naming both the canonical
field and the Salesforce field (`vendor_field` in each problem). Amounts become Decimal via
their string form, never through float arithmetic, and are never rounded: a value with more
than two decimals is an error, not a silent change of money.

Money going to Salesforce is a JSON number (the documented type of currency fields); it is
sent only when the float's shortest repr is exactly the Decimal (true for any amount with at
most 15 significant digits), else MappingError - never a rounded amount.

Contract amendments: `Milestone_Plan__c` is JSON `[{"name", "percent", "offset_days"}]`;
each milestone is due `offset_days` after the `start` the caller gives (the contract or
project start), and its amount is `percent` of the new total rounded half-up to the cent,
the last milestone taking the remainder, so the amounts always add up to the new total.
The percents must add up to exactly 100. Only Approved amendments map. `Reason__c` longer
than 255 characters is shortened (it is description, not data a system acts on).
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from ...canonical.errors import MappingError
from ...canonical.schemas import (
    ContractAmendment,
    Customer,
    InvoiceStatus,
    Opportunity,
    validate,
)

SOURCE = "salesforce"
_CENTS = Decimal("0.01")

ERP_CUSTOMER_ID_FIELD = "Throughline_ERP_Customer_Id__c"
PSA_PROJECT_ID_FIELD = "Throughline_PSA_Project_Id__c"
BILLING_MODEL_FIELD = "Billing_Model__c"
#: the margin the deal was sold at (a percent field of the managed package; optional)
PLANNED_MARGIN_FIELD = "Planned_Margin__c"

#: Billing_Model__c picklist value -> canonical billing model
BILLING_MODELS: dict[str, str] = {
    "Fixed Fee": "fixed_fee",
    "Time and Materials": "time_and_materials",
    "Retainer": "retainer",
}
#: canonical payment state -> Throughline_Invoice__c.Status__c (cancelled has none)
INVOICE_STATUSES: dict[str, str] = {"open": "Open", "paid": "Paid", "overdue": "Overdue"}
AMENDMENT_FIELD_MAP: dict[str, str] = {
    "source_id": "Id",
    "opportunity_source_id": "Opportunity__c",
    "effective_date": "Effective_Date__c",
    "new_total_value": "New_Total_Value__c",
    "currency": "CurrencyIsoCode",
    "milestones": "Milestone_Plan__c",
    "reason": "Reason__c",
    "status": "Status__c",
}
_RECORD_ID = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_HUNDRED = Decimal(100)
#: a milestone plan this long is not a plan a person wrote
_MAX_MILESTONES = 100

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
    "planned_margin": PLANNED_MARGIN_FIELD,
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

    if record.get(PLANNED_MARGIN_FIELD) is not None:
        try:
            data["planned_margin"] = parse_percent(record.get(PLANNED_MARGIN_FIELD))
        except ValueError as exc:
            problems.append(_item("planned_margin", PLANNED_MARGIN_FIELD, str(exc)))

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


def billing_model_from_salesforce(record: dict[str, Any]) -> str:
    """The Opportunity's Billing_Model__c as fixed_fee, time_and_materials or retainer;
    MappingError when it is missing or another value."""
    value = record.get(BILLING_MODEL_FIELD) if isinstance(record, dict) else None
    model = BILLING_MODELS.get(value.strip()) if isinstance(value, str) else None
    if model is None:
        shown = repr(value)[:60]
        raise MappingError(
            entity="opportunity",
            problems=[
                _item(
                    "billing_model",
                    BILLING_MODEL_FIELD,
                    f"expected one of {', '.join(BILLING_MODELS)}, got {shown}",
                )
            ],
            source=SOURCE,
        )
    return model


def amendment_from_salesforce(
    record: dict[str, Any], *, currency: str, start: date
) -> ContractAmendment:
    """An Approved Contract_Amendment__c as a canonical ContractAmendment in `currency` (the
    contract's; the record's own CurrencyIsoCode, when present, must be the same), with its
    milestone plan counted from `start` (see the module docstring)."""
    if not isinstance(record, dict):
        raise _problem("contract_amendment", "record", "expected a Contract_Amendment__c")
    problems: list[dict[str, Any]] = []
    code = currency.strip().upper() if isinstance(currency, str) else ""
    if not _CURRENCY.match(code):
        problems.append(_item("currency", "currency", "expected a three-letter currency code"))
    own = record.get("CurrencyIsoCode")
    if own is not None and (not isinstance(own, str) or own.strip().upper() != code):
        problems.append(
            _item("currency", "CurrencyIsoCode", f"the amendment is in {own!r}, not {code}")
        )
    if not isinstance(start, date) or isinstance(start, datetime):
        problems.append(_item("milestones", "start", "expected the date the plan counts from"))
    status = record.get("Status__c")
    if status != "Approved":
        problems.append(
            _item("status", "Status__c", f"only Approved amendments apply, not {status!r}")
        )
    reason = record.get("Reason__c")
    data: dict[str, Any] = {
        "source_id": record.get("Id"),
        "opportunity_source_id": record.get("Opportunity__c"),
        "currency": code,
        "reason": reason[:255] if isinstance(reason, str) else "",
    }
    if reason is not None and not isinstance(reason, str):
        problems.append(_item("reason", "Reason__c", "expected text"))
    try:
        data["new_total_value"] = total = parse_amount(record.get("New_Total_Value__c"))
    except ValueError as exc:
        problems.append(_item("new_total_value", "New_Total_Value__c", str(exc)))
        total = None
    effective = record.get("Effective_Date__c")
    try:
        if not isinstance(effective, str):
            raise ValueError
        data["effective_date"] = date.fromisoformat(effective)
    except ValueError:
        problems.append(
            _item("effective_date", "Effective_Date__c", "expected a date like 2026-11-30")
        )
    try:
        plan = _milestone_plan(record.get("Milestone_Plan__c"))
    except ValueError as exc:
        problems.append(_item("milestones", "Milestone_Plan__c", str(exc)))
    else:
        if plan and total is not None and not problems:
            data["milestones"] = _milestones(plan, total, start)
    if problems:
        raise MappingError(entity="contract_amendment", problems=problems, source=SOURCE)
    return _validate(ContractAmendment, data, AMENDMENT_FIELD_MAP)


def invoice_status_to_salesforce(
    status: InvoiceStatus,
    *,
    opportunity_id: str,
    currency: str | None = None,
    paid_on: date | None = None,
) -> dict[str, Any]:
    """The Throughline_Invoice__c fields (for `upsert_invoice_status`) that show an ERP
    invoice's state on its Opportunity. `currency` is sent as CurrencyIsoCode when given
    (Salesforce takes the Opportunity's anyway, and refuses another); `paid_on` fills
    Paid_Date__c of a paid invoice (left as it is when not given), other states clear it.
    A cancelled invoice has no Status__c value: MappingError."""
    if not isinstance(status, InvoiceStatus):
        raise _problem("invoice_status", "status", "expected a canonical InvoiceStatus")
    problems: list[dict[str, Any]] = []
    if not isinstance(opportunity_id, str) or not _RECORD_ID.match(opportunity_id):
        problems.append(_item("opportunity_id", "Opportunity__c", "not a Salesforce record id"))
    sf_status = INVOICE_STATUSES.get(status.state)
    if sf_status is None:
        problems.append(
            _item("state", "Status__c", f"no Throughline_Invoice__c status for {status.state}")
        )
    if currency is not None and (not isinstance(currency, str) or not _CURRENCY.match(currency)):
        problems.append(_item("currency", "CurrencyIsoCode", "expected a three-letter code"))
    try:
        amount = wire_amount(status.total)
    except ValueError as exc:
        problems.append(_item("total", "Amount__c", str(exc)))
    if problems:
        raise MappingError(entity="invoice_status", problems=problems, source=SOURCE)
    number = status.number.strip() or status.erp_invoice_id
    fields: dict[str, Any] = {
        "Name": number[:80],
        "Opportunity__c": opportunity_id,
        "Invoice_Number__c": number,
        "Amount__c": amount,
        "Status__c": sf_status,
        "Due_Date__c": status.due_date.isoformat() if status.due_date else None,
    }
    if currency is not None:
        fields["CurrencyIsoCode"] = currency
    if status.state != "paid":
        fields["Paid_Date__c"] = None
    elif paid_on is not None:
        fields["Paid_Date__c"] = paid_on.isoformat()
    return fields


def wire_amount(value: Decimal) -> float:
    """A Decimal amount as the JSON number Salesforce takes, only when that number is exactly
    the amount (see the module docstring); ValueError otherwise."""
    if not isinstance(value, Decimal) or not value.is_finite():
        raise ValueError("amount is not a finite Decimal")
    number = float(value)
    if Decimal(repr(number)) != value:
        raise ValueError(f"amount {value} has too many digits to send exactly")
    return number


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


def parse_percent(value: object) -> Decimal:
    """A Salesforce percent value (35 means 35 %) as Decimal via its string form, never
    rounded (more than two decimals fail the canonical check); ValueError when it is not a
    finite number."""
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise ValueError("percent is not a number")
    try:
        percent = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError("percent is not a number") from None
    if not percent.is_finite():
        raise ValueError("percent is not a finite number")
    exponent = percent.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= -2:
        percent = percent.quantize(_CENTS)  # exact: only adds trailing zeros
    return percent


# -- helpers ------------------------------------------------------------------------------


def _milestone_plan(raw: object) -> list[tuple[str, Decimal, int]]:
    """Milestone_Plan__c as (name, percent, offset_days) rows; ValueError says what is
    wrong. Empty or missing means no plan."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return []
    if not isinstance(raw, str):
        raise ValueError("expected JSON text")
    try:
        items = json.loads(raw)
    except ValueError:
        raise ValueError("not valid JSON") from None
    if not isinstance(items, list):
        raise ValueError("expected a JSON list of milestones")
    if len(items) > _MAX_MILESTONES:
        raise ValueError(f"more than {_MAX_MILESTONES} milestones")
    plan: list[tuple[str, Decimal, int]] = []
    for index, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            raise ValueError(f"milestone {index} is not an object")
        name = item.get("name")
        if not isinstance(name, str) or not name.strip() or len(name.strip()) > 255:
            raise ValueError(f"milestone {index} needs a name of 1 to 255 characters")
        raw_percent = item.get("percent")
        if isinstance(raw_percent, bool) or not isinstance(raw_percent, int | float | str):
            raise ValueError(f"milestone {index} needs a percent")
        try:
            percent = Decimal(str(raw_percent).strip())
        except InvalidOperation:
            raise ValueError(f"milestone {index}: percent is not a number") from None
        if not percent.is_finite() or not 0 < percent <= _HUNDRED:
            raise ValueError(f"milestone {index}: percent must lie above 0 and up to 100")
        offset = item.get("offset_days")
        if isinstance(offset, float) and offset.is_integer():
            offset = int(offset)
        if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset <= 36_500:
            raise ValueError(f"milestone {index}: offset_days must be a whole number of days >= 0")
        plan.append((name.strip(), percent, offset))
    total = sum((percent for _, percent, _ in plan), Decimal(0))
    if plan and total != _HUNDRED:
        raise ValueError(f"the percents add up to {total}, not 100")
    return plan


def _milestones(
    plan: list[tuple[str, Decimal, int]], total: Decimal, start: date
) -> list[dict[str, Any]]:
    """Milestone data whose amounts add up to `total` exactly (the last takes the rest)."""
    rows: list[dict[str, Any]] = []
    allotted = Decimal("0.00")
    for index, (name, percent, offset) in enumerate(plan):
        if index == len(plan) - 1:
            amount = total - allotted
        else:
            amount = (total * percent / _HUNDRED).quantize(_CENTS, rounding=ROUND_HALF_UP)
            allotted += amount
        rows.append({"name": name, "due_date": start + timedelta(days=offset), "amount": amount})
    return rows


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
