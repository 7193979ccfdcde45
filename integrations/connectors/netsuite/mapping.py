"""Mapping between NetSuite REST records and the canonical model.

- subsidiary -> LegalEntity: `name`, `country` ({id: "GB"} or "GB"), `currency` (a reference;
  its ISO code comes from the `currencies` map built by `currency_ids`, or from a refName that
  is already an ISO code), tax = the first line of the SuiteTax `taxRegistration` sublist
  (`taxRegistrationNumber`, `nexusCountry`), or None when the sublist is empty. The subsidiary
  must be fetched with `expandSubResources=true` (`NetSuiteClient.get_subsidiary`): an
  unexpanded sublist is refused rather than read as "no registration".
- Customer -> customer body: companyName (NetSuite allows 83 characters; longer names raise
  MappingError, nothing is truncated), externalId, subsidiary and currency references,
  isPerson false, and the VAT number as a taxRegistration line (REST web services expose only
  SuiteTax tax fields). Payment terms are sent only when the caller resolved the term's
  internal id (`terms_id`); the city is not sent (addresses are subrecords).

Project-to-cash and resource-to-finance:
- Amounts travel as JSON numbers (NetSuite's currency fields are doubles). A Decimal goes on
  the wire as a float only when the float reads back as exactly the same Decimal; otherwise
  MappingError (no silent rounding). Amounts read back (numbers or numeric strings) become
  Decimal through their text, never through float arithmetic.
- Invoice -> invoice body: entity, subsidiary, currency, tranDate, dueDate, memo, job (when
  `job_id` is given) and an `item` line per invoice line (item = `item_id`, description,
  quantity, rate, amount; taxCode only through `tax_code_ids`: a line with a tax code and no
  mapping for it is refused, not sent without). A line whose amount is not quantity x unit
  price (to the cent, half up) is refused. The external id is the invoice key.
- invoice record or SuiteQL row -> InvoiceStatus: number = tranId, total, amount remaining,
  state "paid" when nothing remains (or the status says Paid In Full), "cancelled" when voided,
  "overdue" when open and the due date is before `today`, else "open". Overdue is not a
  NetSuite status: it is derived here.
- TimeEntry -> timeBill body (externalId = the PSA entry id, hours as a decimal number,
  supervisorApproval = approved); Expense -> expenseReport body with one `expense` line.
- employee/department/currencyRate records or SuiteQL rows -> Employee, CostRate,
  CostCentre, ExchangeRate. A cost centre's code is the department's internal id (what an
  employee record references), so the two agree. NetSuite's rate is "base currency units per
  one transaction-currency unit": base GBP->USD 1.27 on base USD becomes the canonical
  ExchangeRate(base="GBP", quote="USD", rate=1.27) (one GBP is 1.27 USD), rounded half up to
  the canonical six places.
- Project -> job body; RevenueSchedule -> one custom record body per line (the lines must sum
  to the schedule's total); Project milestones -> billing plan custom record bodies.
- accountingperiod row -> AccountingPeriod (start, end, closed); a revenue schedule line of a
  closed period -> RecognisedRevenue (the line's id and externalId, contract, period start,
  amount exact to the cent, ISO currency).
- Assignment -> resourceAllocation body: allocationResource = the employee, project = the
  job, allocationAmount in hours ("H") when `allocated_hours` is set, else 100 percent of
  time ("P"), allocationType Hard ("1"), startDate/endDate from the assignment or else from
  the `default_start`/`default_end` the caller passes (the job's dates; NetSuite requires both
  dates on create, and Kantata participations carry none). 0 hours (an assignment that is no
  longer current) is refused: NetSuite takes only more than 0; end the allocation instead.
  The externalId is the source id when it is NetSuite-safe; otherwise every other character
  becomes '_' and 8 hex digits of the id's SHA-256 are appended, so two ids never meet
  ("assignment:7" -> "assignment_7-<hash>"). The task is not sent (no projectTask mapping).
- SubcontractorCharge -> vendorBill body: entity = the vendor, subsidiary, currency, tranDate
  = the day the charge was incurred, a memo naming the charge (and its purchase order), and
  one `expense` line: the amount (a JSON number that reads back as exactly the charge's
  Decimal, else MappingError), customer = the job the cost is for, the same memo, and the
  expense account only when `account_id` is given (otherwise NetSuite takes the vendor's
  default expense account: not confirmed for REST, see the stand-in). The line is not marked
  billable: the cost lands on the project without being re-invoiced as a billable expense.
  The externalId is `netsuite_external_id(charge.source_id)`. The vendor's own invoice number
  (tranId) is not known to the PSA and is not sent. A charge against a purchase order carries
  the order's internal id in the custom body field `custbody_tl_po` (`purchase_order_id`).
- PurchaseOrder -> purchaseOrder body: externalId = the order's key ("TL-PO-<assignment id>"),
  entity = the vendor, subsidiary, currency, tranDate = `ordered_on`, a memo, and one `item`
  line: item = the purchase item (`item_id`, a service-for-purchase item), description,
  quantity = the hours, rate = the subcontractor's hourly cost, amount (hours x rate to the
  cent, half up: anything else is refused), customer = the job the hours are for, isClosed
  (an engagement that ended closes its line; the order is not deleted). Hours, rate and
  amount must each travel as a JSON number that reads back exactly, else MappingError.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Iterable, Mapping
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from integrations.canonical.errors import MappingError
from integrations.canonical.schemas import (
    AccountingPeriod,
    Assignment,
    CostCentre,
    CostRate,
    Customer,
    Employee,
    ExchangeRate,
    Expense,
    Invoice,
    InvoiceStatus,
    LegalEntity,
    Project,
    PurchaseOrder,
    RecognisedRevenue,
    RevenueSchedule,
    SubcontractorCharge,
    TimeEntry,
    validate,
)

SOURCE = "netsuite"
MAX_COMPANY_NAME = 83
EXTERNAL_ID = re.compile(r"^[A-Za-z0-9_\-]{1,255}$")
ISO_CURRENCY = re.compile(r"^[A-Z]{3}$")


def _problem(entity: str, field: str, problem: str, kind: str = "value_error") -> MappingError:
    return MappingError(
        entity=entity,
        problems=[{"field": field, "problem": problem, "type": kind}],
        source=SOURCE,
    )


def _ref(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


def _code(value: Any) -> str | None:
    """A country-like code from "GB" or {"id": "GB", ...}."""
    if isinstance(value, dict):
        value = value.get("id")
    return value.strip().upper() if isinstance(value, str) and value.strip() else None


def _tax_lines(sub: Mapping[str, Any]) -> list[dict[str, Any]]:
    sublist = sub.get("taxRegistration")
    if sublist is None:
        raise _problem(
            "legal_entity",
            "taxRegistration",
            "the subsidiary has no taxRegistration sublist: fetch it with "
            "expandSubResources=true (and SuiteTax enabled)",
            "missing",
        )
    if isinstance(sublist, dict):
        if "items" not in sublist:
            raise _problem(
                "legal_entity",
                "taxRegistration",
                "the taxRegistration sublist was not expanded (fetch with expandSubResources)",
                "missing",
            )
        sublist = sublist["items"]
    if not isinstance(sublist, list) or not all(isinstance(line, dict) for line in sublist):
        raise _problem("legal_entity", "taxRegistration", "expected a list of lines", "type_error")
    return sublist


def legal_entity_from_subsidiary(
    sub: dict[str, Any],
    *,
    code: str,
    region: str,
    currencies: Mapping[str, str] | None = None,
) -> LegalEntity:
    """A canonical LegalEntity from an expanded subsidiary record.

    `currencies` maps ISO code -> NetSuite currency id (as `currency_ids` returns); it is
    needed unless the currency reference's refName is itself an ISO code.
    """
    if not isinstance(sub, Mapping):
        raise _problem("legal_entity", "payload", "expected a subsidiary object", "type_error")
    currency_ref = _ref(sub.get("currency"))
    currency: str | None = None
    if currency_ref is not None:
        currency_id = currency_ref.get("id")
        by_id = {str(v): k for k, v in (currencies or {}).items()}
        currency = by_id.get(str(currency_id)) if currency_id is not None else None
        ref_name = currency_ref.get("refName")
        if currency is None and isinstance(ref_name, str) and ISO_CURRENCY.fullmatch(ref_name):
            currency = ref_name
        if currency is None:
            raise _problem(
                "legal_entity",
                "currency",
                f"NetSuite currency {currency_id!r} has no known ISO code: pass "
                "currencies=currency_ids(...)",
            )
    tax: dict[str, Any] | None = None
    lines = _tax_lines(sub)
    if lines:
        first = lines[0]
        tax = {
            "registration_number": first.get("taxRegistrationNumber"),
            "country": _code(first.get("nexusCountry")),
        }
    data = {
        "code": code,
        "name": sub.get("name"),
        "country": _code(sub.get("country")),
        "currency": currency,
        "region": region,
        "tax": tax,
    }
    return validate(LegalEntity, data, source=SOURCE)


def customer_to_netsuite(
    customer: Customer,
    *,
    external_id: str,
    subsidiary_id: str,
    currency_id: str,
    terms_id: str | None = None,
) -> dict[str, Any]:
    """The body of a NetSuite customer create/upsert for a canonical Customer."""
    problems: list[dict[str, Any]] = []
    if not isinstance(external_id, str) or not EXTERNAL_ID.fullmatch(external_id):
        problems.append(
            {
                "field": "external_id",
                "problem": "NetSuite external ids hold only letters, digits, '_' and '-'",
                "type": "value_error",
            }
        )
    if len(customer.name) > MAX_COMPANY_NAME:
        problems.append(
            {
                "field": "name",
                "problem": f"NetSuite company names hold at most {MAX_COMPANY_NAME} characters "
                f"(this one has {len(customer.name)})",
                "type": "string_too_long",
            }
        )
    for field, value in (("subsidiary_id", subsidiary_id), ("currency_id", currency_id)):
        if not isinstance(value, str) or not value.isdigit():
            problems.append(
                {
                    "field": field,
                    "problem": "expected a NetSuite internal id",
                    "type": "value_error",
                }
            )
    if customer.tax_registration and not customer.country:
        problems.append(
            {
                "field": "country",
                "problem": "a tax registration needs the customer's country (nexusCountry)",
                "type": "missing",
            }
        )
    if customer.tax_registration and len(customer.tax_registration) > 40:
        problems.append(
            {
                "field": "tax_registration",
                "problem": "NetSuite tax registration numbers hold at most 40 characters",
                "type": "string_too_long",
            }
        )
    if problems:
        raise MappingError(entity="customer", problems=problems, source=SOURCE)
    body: dict[str, Any] = {
        "externalId": external_id,
        "companyName": customer.name,
        "isPerson": False,
        "subsidiary": {"id": subsidiary_id},
        "currency": {"id": currency_id},
    }
    if customer.tax_registration:
        body["taxRegistration"] = {
            "items": [
                {
                    "nexusCountry": {"id": customer.country},
                    "taxRegistrationNumber": customer.tax_registration,
                }
            ]
        }
    if terms_id is not None:
        body["terms"] = {"id": terms_id}
    return body


def currency_ids(items: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """ISO code -> NetSuite currency internal id, from currency records or SuiteQL rows
    (`SELECT id, symbol FROM currency`)."""
    out: dict[str, str] = {}
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise _problem("currency", f"items[{index}]", "expected an object", "type_error")
        symbol = item.get("symbol")
        cid = item.get("id")
        if not isinstance(symbol, str) or not ISO_CURRENCY.fullmatch(symbol.strip().upper()):
            raise _problem(
                "currency", f"items[{index}].symbol", f"not an ISO currency code: {symbol!r}"
            )
        if isinstance(cid, bool) or not isinstance(cid, str | int) or not str(cid).strip():
            raise _problem("currency", f"items[{index}].id", "missing internal id", "missing")
        out[symbol.strip().upper()] = str(cid).strip()
    return out


# -- shared helpers for the finance records -----------------------------------------------------
CENT = Decimal("0.01")
RATE_PLACES = Decimal("0.000001")
INTERNAL_ID = re.compile(r"^\d{1,18}$")
US_DATE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")
REVENUE_RECORD = "customrecord_tl_revenue_schedule"
MILESTONE_RECORD = "customrecord_tl_billing_milestone"
MAX_JOB_NAME = 83
MAX_HOURS = Decimal(24)
PAID_STATUSES = frozenset({"b", "paid in full", "custinvc:b"})
VOID_STATUSES = frozenset({"v", "voided", "custinvc:v"})
OPEN_STATUSES = frozenset({"a", "open", "custinvc:a"})


def _field(record: Mapping[str, Any], name: str) -> Any:
    """A field from a REST record (camelCase) or a SuiteQL row (lower case)."""
    if name in record:
        return record[name]
    return record.get(name.lower())


def _ref_value(value: Any) -> str | None:
    """An internal id from a reference ({"id": "2", ...}) or a SuiteQL column ("2" or 2)."""
    if isinstance(value, Mapping):
        value = value.get("id")
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value).strip()
    return text or None


def _flag(value: Any, default: bool = False) -> bool | None:
    """A boolean from JSON (true/false) or SuiteQL ('T'/'F'); None when unreadable."""
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().upper() in ("T", "F"):
        return value.strip().upper() == "T"
    return None


def _decimal(value: Any) -> Decimal | None:
    """A Decimal from a JSON number or numeric string, through its text (never float maths)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, float):
        value = repr(value)
    if not isinstance(value, str | int | Decimal):
        return None
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _money(value: Any) -> Decimal | None:
    """A two-place amount; None when unreadable or not exact to the cent."""
    number = _decimal(value)
    if number is None or number != number.quantize(CENT):
        return None
    return number.quantize(CENT)


def _day(value: Any) -> dt.date | None:
    """A date from YYYY-MM-DD (also the date of an ISO datetime) or M/D/YYYY (SuiteQL)."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if match := US_DATE.fullmatch(text):
        month, day, year = (int(g) for g in match.groups())
        try:
            return dt.date(year, month, day)
        except ValueError:
            return None
    try:
        return dt.date.fromisoformat(text[:10])
    except ValueError:
        return None


def _wire(value: Decimal, field: str, problems: list[dict[str, Any]]) -> float:
    """A Decimal as the JSON number NetSuite takes, only if the float is exactly it."""
    number = float(value)
    if Decimal(repr(number)) != value:
        problems.append(
            {
                "field": field,
                "problem": f"{value} cannot travel as a NetSuite number without rounding",
                "type": "value_error",
            }
        )
    return number


def _need_ids(problems: list[dict[str, Any]], **ids: Any) -> None:
    for name, value in ids.items():
        if not isinstance(value, str) or not INTERNAL_ID.fullmatch(value):
            problems.append(
                {"field": name, "problem": "expected a NetSuite internal id", "type": "value_error"}
            )


def _need_external_id(problems: list[dict[str, Any]], field: str, value: str) -> None:
    if not EXTERNAL_ID.fullmatch(value):
        problems.append(
            {
                "field": field,
                "problem": "NetSuite external ids hold only letters, digits, '_' and '-' "
                f"(1-255 characters): {value!r}",
                "type": "value_error",
            }
        )


def _raise(entity: str, problems: list[dict[str, Any]]) -> None:
    if problems:
        raise MappingError(entity=entity, problems=problems, source=SOURCE)


def _need_mapping(record: Any, entity: str) -> Mapping[str, Any]:
    if not isinstance(record, Mapping):
        raise _problem(entity, "payload", "expected a NetSuite record object", "type_error")
    return record


# -- invoices ---------------------------------------------------------------------------------
def invoice_to_netsuite(
    invoice: Invoice,
    *,
    subsidiary_id: str,
    currency_id: str,
    item_id: str,
    job_id: str | None = None,
    tax_code_ids: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The body of a NetSuite invoice upsert (`upsert_invoice(invoice.key, body)`)."""
    problems: list[dict[str, Any]] = []
    _need_external_id(problems, "key", invoice.key)
    _need_ids(
        problems,
        customer_erp_id=invoice.customer_erp_id,
        subsidiary_id=subsidiary_id,
        currency_id=currency_id,
        item_id=item_id,
    )
    if job_id is not None:
        _need_ids(problems, job_id=job_id)
    if not invoice.lines:
        problems.append({"field": "lines", "problem": "an invoice needs a line", "type": "missing"})
    if invoice.due_date < invoice.invoice_date:
        problems.append(
            {"field": "due_date", "problem": "due before the invoice date", "type": "value_error"}
        )
    items: list[dict[str, Any]] = []
    for index, line in enumerate(invoice.lines):
        where = f"lines.{index}"
        expected = (line.quantity * line.unit_price).quantize(CENT, rounding=ROUND_HALF_UP)
        if expected != line.amount:
            problems.append(
                {
                    "field": f"{where}.amount",
                    "problem": f"{line.amount} is not quantity x unit price ({expected})",
                    "type": "value_error",
                }
            )
        item: dict[str, Any] = {
            "item": {"id": item_id},
            "description": line.description,
            "quantity": _wire(line.quantity, f"{where}.quantity", problems),
            "rate": _wire(line.unit_price, f"{where}.unit_price", problems),
            "amount": _wire(line.amount, f"{where}.amount", problems),
        }
        if line.tax_code is not None:
            tax_id = (tax_code_ids or {}).get(line.tax_code)
            if tax_id is None or not INTERNAL_ID.fullmatch(str(tax_id)):
                problems.append(
                    {
                        "field": f"{where}.tax_code",
                        "problem": f"no NetSuite tax code is mapped for {line.tax_code!r}",
                        "type": "value_error",
                    }
                )
            else:
                item["taxCode"] = {"id": str(tax_id)}
        items.append(item)
    _raise("invoice", problems)
    body: dict[str, Any] = {
        "externalId": invoice.key,
        "entity": {"id": invoice.customer_erp_id},
        "subsidiary": {"id": subsidiary_id},
        "currency": {"id": currency_id},
        "tranDate": invoice.invoice_date.isoformat(),
        "dueDate": invoice.due_date.isoformat(),
        "item": {"items": items},
    }
    if invoice.memo:
        body["memo"] = invoice.memo
    if job_id is not None:
        body["job"] = {"id": job_id}
    return body


def invoice_status_from_netsuite(record: dict[str, Any], *, today: dt.date) -> InvoiceStatus:
    """What NetSuite says of an invoice (a REST record or an `invoices_changed_since` row)."""
    record = dict(_need_mapping(record, "invoice_status"))
    problems: list[dict[str, Any]] = []
    rid = _ref_value(record.get("id"))
    number = _field(record, "tranId")
    total = _money(record.get("total", record.get("foreigntotal")))
    remaining = _money(
        _field(record, "amountRemaining")
        if _field(record, "amountRemaining") is not None
        else record.get("foreignamountremaining")
    )
    status = record.get("status")
    names = [status.get("refName"), status.get("id")] if isinstance(status, Mapping) else [status]
    codes = {str(n).strip().lower() for n in names if isinstance(n, str | int) and str(n).strip()}
    raw_due = _field(record, "dueDate")
    due = _day(raw_due)
    if raw_due not in (None, "") and due is None:
        problems.append(
            {"field": "dueDate", "problem": f"not a date: {raw_due!r}", "type": "date_parsing"}
        )
    if total is None:
        problems.append(
            {"field": "total", "problem": "missing or not an amount", "type": "missing"}
        )
    if remaining is None:
        problems.append(
            {"field": "amountRemaining", "problem": "missing or not an amount", "type": "missing"}
        )
    if not codes:
        problems.append({"field": "status", "problem": "missing", "type": "missing"})
    elif not codes & (PAID_STATUSES | VOID_STATUSES | OPEN_STATUSES):
        problems.append(
            {
                "field": "status",
                "problem": f"unknown invoice status {sorted(codes)}",
                "type": "value_error",
            }
        )
    if total is not None and remaining is not None and not 0 <= remaining <= max(total, 0):
        problems.append(
            {
                "field": "amountRemaining",
                "problem": f"{remaining} remaining on a total of {total}",
                "type": "value_error",
            }
        )
    if codes & PAID_STATUSES and remaining not in (None, Decimal(0)):
        problems.append(
            {
                "field": "status",
                "problem": f"Paid In Full with {remaining} remaining",
                "type": "value_error",
            }
        )
    _raise("invoice_status", problems)
    if codes & VOID_STATUSES:
        state = "cancelled"
    elif remaining == 0 or codes & PAID_STATUSES:
        state = "paid"
    elif due is not None and due < today:
        state = "overdue"
    else:
        state = "open"
    data = {
        "erp_invoice_id": rid,
        "number": number if isinstance(number, str) else None,
        "total": total,
        "amount_remaining": remaining,
        "state": state,
        "due_date": due,
    }
    return validate(InvoiceStatus, data, source=SOURCE)


# -- time and expenses --------------------------------------------------------------------------
def time_bill_from_entry(
    entry: TimeEntry, *, employee_id: str, job_id: str, subsidiary_id: str
) -> dict[str, Any]:
    """A timeBill body for the record service or the bulk RESTlet (keyed by the entry id)."""
    problems: list[dict[str, Any]] = []
    _need_external_id(problems, "source_id", entry.source_id)
    _need_ids(problems, employee_id=employee_id, job_id=job_id, subsidiary_id=subsidiary_id)
    if not 0 < entry.hours <= MAX_HOURS:
        problems.append(
            {
                "field": "hours",
                "problem": f"NetSuite takes more than 0 and at most 24 hours ({entry.hours})",
                "type": "value_error",
            }
        )
    hours = _wire(entry.hours, "hours", problems)
    _raise("time_entry", problems)
    body: dict[str, Any] = {
        "externalId": entry.source_id,
        "employee": {"id": employee_id},
        "customer": {"id": job_id},
        "subsidiary": {"id": subsidiary_id},
        "tranDate": entry.work_date.isoformat(),
        "hours": hours,
        "isBillable": entry.billable,
        "supervisorApproval": entry.approved,
    }
    if entry.notes:
        body["memo"] = entry.notes
    return body


def expense_report_from_expense(
    expense: Expense,
    *,
    employee_id: str,
    job_id: str,
    subsidiary_id: str,
    currency_id: str,
    category_id: str | None = None,
) -> dict[str, Any]:
    """An expenseReport body with one expense line (keyed by the PSA expense id).
    `category_id` is the expenseCategory for the line; most accounts require one."""
    problems: list[dict[str, Any]] = []
    _need_external_id(problems, "source_id", expense.source_id)
    _need_ids(
        problems,
        employee_id=employee_id,
        job_id=job_id,
        subsidiary_id=subsidiary_id,
        currency_id=currency_id,
    )
    if category_id is not None:
        _need_ids(problems, category_id=category_id)
    if expense.amount <= 0:
        problems.append(
            {
                "field": "amount",
                "problem": "an expense amount must be above 0",
                "type": "value_error",
            }
        )
    amount = _wire(expense.amount, "amount", problems)
    _raise("expense", problems)
    memo = " - ".join(part for part in (expense.category, expense.notes) if part)[:4000]
    line: dict[str, Any] = {
        "expenseDate": expense.spent_on.isoformat(),
        "amount": amount,
        "foreignAmount": amount,
        "currency": {"id": currency_id},
        "customer": {"id": job_id},
        "isBillable": expense.billable,
        "receipt": expense.receipt_attached,
    }
    if memo:
        line["memo"] = memo
    if category_id is not None:
        line["category"] = {"id": category_id}
    return {
        "externalId": expense.source_id,
        "entity": {"id": employee_id},
        "subsidiary": {"id": subsidiary_id},
        "tranDate": expense.spent_on.isoformat(),
        "expenseReportCurrency": {"id": currency_id},
        "supervisorApproval": expense.approved,
        "expense": {"items": [line]},
    }


# -- reference data (ERP -> PSA) --------------------------------------------------------------
def employee_from_netsuite(
    record: dict[str, Any], *, legal_entities: Mapping[str, str] | None = None
) -> Employee:
    """A canonical Employee from an employee record or `list_employees` row.
    `legal_entities` maps subsidiary internal id -> legal entity code; the cost centre code is
    the department's internal id (as `cost_centre_from_department` gives it)."""
    record = dict(_need_mapping(record, "employee"))
    subsidiary = _ref_value(_field(record, "subsidiary"))
    active = _flag(_field(record, "isInactive"))
    if active is None:
        raise _problem("employee", "isInactive", "expected true/false or 'T'/'F'", "bool_type")
    data = {
        "source_id": _ref_value(record.get("id")),
        "first_name": _field(record, "firstName") or "",
        "last_name": _field(record, "lastName"),
        "email": _field(record, "email") or None,
        "legal_entity_code": (legal_entities or {}).get(subsidiary) if subsidiary else None,
        "cost_centre_code": _ref_value(_field(record, "department")),
        "active": not active,
    }
    return validate(Employee, data, source=SOURCE)


def cost_rate_from_employee(
    record: dict[str, Any], *, currency: str, effective_from: dt.date
) -> CostRate | None:
    """The employee's labour cost per hour (NetSuite's laborCost, in the currency of the
    employee's subsidiary, which the caller resolves); None when none is recorded. NetSuite
    keeps no history of it, so the caller says from when it applies."""
    record = dict(_need_mapping(record, "cost_rate"))
    raw = _field(record, "laborCost")
    if raw in (None, ""):
        return None
    cost = _money(raw)
    if cost is None:
        raise _problem("cost_rate", "laborCost", f"not an amount to the cent: {raw!r}")
    data = {
        "employee_source_id": _ref_value(record.get("id")),
        "hourly_cost": cost,
        "currency": currency,
        "effective_from": effective_from,
    }
    return validate(CostRate, data, source=SOURCE)


def cost_centre_from_department(record: dict[str, Any]) -> CostCentre:
    """A cost centre from a department record or `list_departments` row (code = internal id)."""
    record = dict(_need_mapping(record, "cost_centre"))
    inactive = _flag(_field(record, "isInactive"))
    if inactive is None:
        raise _problem("cost_centre", "isInactive", "expected true/false or 'T'/'F'", "bool_type")
    data = {
        "code": _ref_value(record.get("id")),
        "name": _field(record, "name"),
        "active": not inactive,
    }
    return validate(CostCentre, data, source=SOURCE)


def exchange_rate_from_netsuite(
    record: dict[str, Any], *, currencies: Mapping[str, str]
) -> ExchangeRate:
    """A canonical rate from a currencyRate record or `currency_rates` row; `currencies` maps
    ISO code -> NetSuite currency id (`currency_ids`)."""
    record = dict(_need_mapping(record, "exchange_rate"))
    by_id = {str(v): k for k, v in currencies.items()}
    problems: list[dict[str, Any]] = []
    codes: dict[str, str | None] = {}
    for name in ("baseCurrency", "transactionCurrency"):
        cid = _ref_value(_field(record, name))
        codes[name] = by_id.get(cid) if cid else None
        if codes[name] is None:
            problems.append(
                {"field": name, "problem": f"NetSuite currency {cid!r} has no known ISO code",
                 "type": "value_error"}
            )  # fmt: skip
    raw_rate = _field(record, "exchangeRate")
    rate = _decimal(raw_rate)
    if rate is None or rate <= 0:
        problems.append(
            {"field": "exchangeRate", "problem": f"not a rate: {raw_rate!r}", "type": "value_error"}
        )
    raw_day = _field(record, "effectiveDate")
    effective = _day(raw_day)
    if effective is None:
        problems.append(
            {
                "field": "effectiveDate",
                "problem": f"not a date: {raw_day!r}",
                "type": "date_parsing",
            }
        )
    _raise("exchange_rate", problems)
    data = {
        "base": codes["transactionCurrency"],
        "quote": codes["baseCurrency"],
        "rate": rate.quantize(RATE_PLACES, rounding=ROUND_HALF_UP) if rate else None,
        "effective_date": effective,
    }
    return validate(ExchangeRate, data, source=SOURCE)


# -- projects, revenue and billing plans ------------------------------------------------------
def job_from_project(
    project: Project, *, customer_id: str, subsidiary_id: str, currency_id: str
) -> dict[str, Any]:
    """A job (project) body, keyed by the project key (`upsert_job(project.key, body)`)."""
    problems: list[dict[str, Any]] = []
    _need_external_id(problems, "key", project.key)
    _need_ids(
        problems, customer_id=customer_id, subsidiary_id=subsidiary_id, currency_id=currency_id
    )
    if len(project.name) > MAX_JOB_NAME:
        problems.append(
            {
                "field": "name",
                "problem": f"NetSuite project names hold at most {MAX_JOB_NAME} characters "
                f"(this one has {len(project.name)})",
                "type": "string_too_long",
            }
        )
    if len(project.key) > MAX_JOB_NAME:
        problems.append(
            {"field": "key", "problem": f"a Project ID holds at most {MAX_JOB_NAME} characters",
             "type": "string_too_long"}
        )  # fmt: skip
    _raise("project", problems)
    body: dict[str, Any] = {
        "externalId": project.key,
        "entityId": project.key,
        "companyName": project.name,
        "parent": {"id": customer_id},
        "subsidiary": {"id": subsidiary_id},
        "currency": {"id": currency_id},
        "startDate": project.start_date.isoformat(),
    }
    if project.end_date is not None:
        body["projectedEndDate"] = project.end_date.isoformat()
    return body


def accounting_period_from_netsuite(record: dict[str, Any]) -> AccountingPeriod:
    """An `accounting_periods_after` row (or an accountingPeriod record) as a canonical
    AccountingPeriod: closed 'T'/'F' (or true/false); an end before the start is refused."""
    record = dict(_need_mapping(record, "accounting_period"))
    problems: list[dict[str, Any]] = []
    days: dict[str, dt.date | None] = {}
    for name in ("startDate", "endDate"):
        days[name] = _day(_field(record, name))
        if days[name] is None:
            problems.append(
                {"field": name, "problem": f"not a date: {_field(record, name)!r}",
                 "type": "date_parsing"}
            )  # fmt: skip
    closed = _flag(_field(record, "closed"))
    if closed is None:
        problems.append({"field": "closed", "problem": "expected T or F", "type": "value_error"})
    start, end = days["startDate"], days["endDate"]
    if start is not None and end is not None and end < start:
        problems.append(
            {"field": "endDate", "problem": f"{end} is before {start}", "type": "value_error"}
        )
    _raise("accounting_period", problems)
    data = {
        "source_id": _ref_value(record.get("id")),
        "name": str(_field(record, "periodName") or ""),
        "start_date": start,
        "end_date": end,
        "closed": closed,
    }
    return validate(AccountingPeriod, data, source=SOURCE)


def recognised_revenue_from_netsuite(record: dict[str, Any]) -> RecognisedRevenue:
    """A `revenue_lines_between` row (a line of Throughline's revenue schedule custom record)
    as canonical RecognisedRevenue: the caller vouches that its period is closed. The amount
    must be exact to the cent and the currency an ISO code."""
    record = dict(_need_mapping(record, "recognised_revenue"))
    problems: list[dict[str, Any]] = []
    raw_amount = record.get("custrecord_tl_amount")
    amount = _money(raw_amount)
    if amount is None:
        problems.append(
            {"field": "custrecord_tl_amount", "problem": f"not an amount: {raw_amount!r}",
             "type": "value_error"}
        )  # fmt: skip
    period = _day(record.get("custrecord_tl_period"))
    if period is None:
        problems.append(
            {"field": "custrecord_tl_period",
             "problem": f"not a date: {record.get('custrecord_tl_period')!r}",
             "type": "date_parsing"}
        )  # fmt: skip
    _raise("recognised_revenue", problems)
    data = {
        "source_id": _ref_value(record.get("id")),
        "key": record.get("externalid"),
        "contract_key": record.get("custrecord_tl_contract"),
        "period_start": period,
        "amount": amount,
        "currency": record.get("custrecord_tl_currency"),
    }
    return validate(RecognisedRevenue, data, source=SOURCE)


def revenue_schedule_lines(schedule: RevenueSchedule) -> list[dict[str, Any]]:
    """One `customrecord_tl_revenue_schedule` body per line, keyed
    `<contract key>-<YYYYMMDD of the period start>`; the lines must sum to the total."""
    problems: list[dict[str, Any]] = []
    _need_external_id(problems, "contract_key", schedule.contract_key)
    seen: set[dt.date] = set()
    bodies: list[dict[str, Any]] = []
    for index, line in enumerate(schedule.lines):
        if line.period_start in seen:
            problems.append(
                {
                    "field": f"lines.{index}.period_start",
                    "problem": f"two lines for the period starting {line.period_start}",
                    "type": "value_error",
                }
            )
        seen.add(line.period_start)
        key = f"{schedule.contract_key}-{line.period_start:%Y%m%d}"
        bodies.append(
            {
                "externalId": key,
                "name": f"{schedule.contract_key} {line.period_start.isoformat()}"[:300],
                "custrecord_tl_contract": schedule.contract_key,
                "custrecord_tl_period": line.period_start.isoformat(),
                "custrecord_tl_amount": _wire(line.amount, f"lines.{index}.amount", problems),
                "custrecord_tl_currency": schedule.currency,
            }
        )
    total = sum((line.amount for line in schedule.lines), Decimal(0))
    if total != schedule.total:
        problems.append(
            {
                "field": "lines",
                "problem": f"the lines sum to {total}, not the schedule's total {schedule.total}",
                "type": "value_error",
            }
        )
    if len(schedule.contract_key) + 9 > 255:
        problems.append(
            {
                "field": "contract_key",
                "problem": "too long for an external id",
                "type": "value_error",
            }
        )
    _raise("revenue_schedule", problems)
    return bodies


def billing_milestone_lines(project: Project) -> list[dict[str, Any]]:
    """One `customrecord_tl_billing_milestone` body per milestone of the project, keyed
    `<project key>-M<n>` (its place in the plan), for `upsert_billing_plan(job_id, ...)`."""
    problems: list[dict[str, Any]] = []
    _need_external_id(problems, "key", project.key)
    bodies = []
    for index, milestone in enumerate(project.milestones, start=1):
        bodies.append(
            {
                "externalId": f"{project.key}-M{index}",
                "name": milestone.name[:300],
                "custrecord_tl_bm_date": milestone.due_date.isoformat(),
                "custrecord_tl_bm_amount": _wire(
                    milestone.amount, f"milestones.{index - 1}.amount", problems
                ),
                "custrecord_tl_bm_currency": project.budget.currency,
                "custrecord_tl_bm_billable": milestone.billable,
            }
        )
    _raise("project", problems)
    return bodies


# -- resource allocations -----------------------------------------------------------------------
UNSAFE_ID_CHARS = re.compile(r"[^A-Za-z0-9_\-]")
HARD_ALLOCATION = "1"


def netsuite_external_id(source_id: str) -> str:
    """A NetSuite-safe external id for a source id: unchanged when already safe, else the
    unsafe characters replaced by '_' and a short hash of the original appended."""
    safe = UNSAFE_ID_CHARS.sub("_", source_id)
    if safe == source_id and safe:
        return safe
    digest = hashlib.sha256(source_id.encode("utf-8")).hexdigest()[:8]
    return f"{safe[:200]}-{digest}"


def allocation_from_assignment(
    assignment: Assignment,
    *,
    employee_id: str,
    job_id: str,
    default_start: dt.date | None = None,
    default_end: dt.date | None = None,
) -> dict[str, Any]:
    """A resourceAllocation body, for `upsert_allocation(body["externalId"], body)`."""
    problems: list[dict[str, Any]] = []
    _need_ids(problems, employee_id=employee_id, job_id=job_id)
    hours = assignment.allocated_hours
    if hours is not None and hours <= 0:
        problems.append(
            {
                "field": "allocated_hours",
                "problem": "NetSuite allocates more than 0 hours: an assignment with 0 hours "
                "is no longer current, end its allocation instead",
                "type": "value_error",
            }
        )
    start = assignment.start_date or default_start
    end = assignment.end_date or default_end
    if start is not None and end is not None and end < start:
        problems.append(
            {
                "field": "end_date",
                "problem": f"the end date {end} is before the start date {start}",
                "type": "value_error",
            }
        )
    amount: float = 100.0
    if hours is not None:
        amount = _wire(hours, "allocated_hours", problems)
    _raise("assignment", problems)
    body: dict[str, Any] = {
        "externalId": netsuite_external_id(assignment.source_id),
        "allocationResource": {"id": employee_id},
        "project": {"id": job_id},
        "allocationAmount": amount,
        "allocationUnit": {"id": "H" if hours is not None else "P"},
        "allocationType": {"id": HARD_ALLOCATION},
    }
    if start is not None:
        body["startDate"] = start.isoformat()
    if end is not None:
        body["endDate"] = end.isoformat()
    return body


# -- subcontractor charges (payables) -----------------------------------------------------------
def vendor_bill_from_charge(
    charge: SubcontractorCharge,
    *,
    vendor_id: str,
    job_id: str,
    subsidiary_id: str,
    currency_id: str,
    account_id: str | None = None,
    purchase_order_id: str | None = None,
) -> dict[str, Any]:
    """A vendorBill body with one expense line for a subcontractor's charge to a project,
    for `upsert_vendor_bill(body["externalId"], body)`; `purchase_order_id` (the internal id
    of the subcontractor's purchase order on the project) goes in `custbody_tl_po`."""
    problems: list[dict[str, Any]] = []
    _need_ids(
        problems,
        vendor_id=vendor_id,
        job_id=job_id,
        subsidiary_id=subsidiary_id,
        currency_id=currency_id,
    )
    if account_id is not None:
        _need_ids(problems, account_id=account_id)
    if purchase_order_id is not None:
        _need_ids(problems, purchase_order_id=purchase_order_id)
    if charge.amount <= 0:
        problems.append(
            {
                "field": "amount",
                "problem": "a subcontractor charge must be above 0",
                "type": "value_error",
            }
        )
    amount = _wire(charge.amount, "amount", problems)
    _raise("subcontractor_charge", problems)
    memo = f"{charge.vendor_name}: charge {charge.source_id} to project {charge.project_key}"
    if charge.purchase_order_source_id:
        memo += f" (PO {charge.purchase_order_source_id})"
    line: dict[str, Any] = {"amount": amount, "memo": memo[:4000], "customer": {"id": job_id}}
    if account_id is not None:
        line["account"] = {"id": account_id}
    body: dict[str, Any] = {
        "externalId": netsuite_external_id(charge.source_id),
        "entity": {"id": vendor_id},
        "subsidiary": {"id": subsidiary_id},
        "currency": {"id": currency_id},
        "tranDate": charge.incurred_on.isoformat(),
        "memo": memo[:999],
        "expense": {"items": [line]},
    }
    if purchase_order_id is not None:
        body[PURCHASE_ORDER_FIELD] = {"id": purchase_order_id}
    return body


# -- purchase orders for subcontractors ---------------------------------------------------------
#: the custom transaction body field (List/Record: Purchase Order) that ties a vendor bill to
#: the purchase order it is billed against; see the connector's docstring for why not createdFrom
PURCHASE_ORDER_FIELD = "custbody_tl_po"


def purchase_order_to_netsuite(
    order: PurchaseOrder,
    *,
    vendor_id: str,
    job_id: str,
    subsidiary_id: str,
    currency_id: str,
    item_id: str,
) -> dict[str, Any]:
    """A purchaseOrder body with one `item` line (the subcontractor's hours on the job), for
    `upsert_purchase_order(body["externalId"], body)`."""
    problems: list[dict[str, Any]] = []
    _need_external_id(problems, "source_id", order.source_id)
    _need_ids(
        problems,
        vendor_id=vendor_id,
        job_id=job_id,
        subsidiary_id=subsidiary_id,
        currency_id=currency_id,
        item_id=item_id,
    )
    hours, rate = order.hours, order.rate
    if hours is None or hours <= 0:
        problems.append(
            {
                "field": "hours",
                "problem": "a purchase order line needs more than 0 hours: close the order of "
                "an engagement that ended instead",
                "type": "value_error",
            }
        )
    if rate is None:
        problems.append(
            {"field": "rate", "problem": "the subcontractor's hourly cost", "type": "missing"}
        )
    if hours is not None and rate is not None:
        expected = (hours * rate).quantize(CENT, rounding=ROUND_HALF_UP)
        if expected != order.amount:
            problems.append(
                {
                    "field": "amount",
                    "problem": f"{order.amount} is not hours x rate ({expected})",
                    "type": "value_error",
                }
            )
    quantity = _wire(hours, "hours", problems) if hours is not None else 0.0
    unit = _wire(rate, "rate", problems) if rate is not None else 0.0
    amount = _wire(order.amount, "amount", problems)
    _raise("purchase_order", problems)
    work = order.description or f"{order.vendor_name}: {hours} h on project {order.project_key}"
    memo = f"{order.vendor_name}: subcontracted hours on project {order.project_key}"
    if order.assignment_id:
        memo += f" ({order.assignment_id})"
    line: dict[str, Any] = {
        "item": {"id": item_id},
        "description": work[:4000],
        "quantity": quantity,
        "rate": unit,
        "amount": amount,
        "customer": {"id": job_id},
        "isClosed": order.closed,
    }
    return {
        "externalId": order.source_id,
        "entity": {"id": vendor_id},
        "subsidiary": {"id": subsidiary_id},
        "currency": {"id": currency_id},
        "tranDate": order.ordered_on.isoformat(),
        "memo": memo[:999],
        "item": {"items": [line]},
    }
