"""The canonical model: vendor-independent, versioned shapes of the business entities.

Each schema names its entity and version (`SCHEMA`); connectors map their vendor's objects to
and from these shapes and nothing else. Payloads from vendors are untrusted: every string is
bounded, money is Decimal with two places, dates are dates, and a payload that does not fit
raises `MappingError` (see `validate`) instead of reaching a target system half-formed.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic import ValidationError as PydanticValidationError

from .errors import MappingError

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
Code = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40)]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=255)]
CurrencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
CountryCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
Money = Annotated[Decimal, Field(max_digits=18, decimal_places=2, ge=0)]
#: a percentage (e.g. a margin: 35.50 means 35.5 %), negative allowed
Percent = Annotated[Decimal, Field(max_digits=5, decimal_places=2, ge=-100, le=100)]
Region = Literal["EMEA", "Americas", "APAC"]
SystemKind = Literal["crm", "psa", "erp"]
BillingModel = Literal["fixed_fee", "time_and_materials", "retainer"]


class CanonicalModel(BaseModel):
    """Base: immutable, strict about unknown fields, with a (entity, version) identity."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_max_length=255)
    SCHEMA: ClassVar[tuple[str, int]]


class TaxConfiguration(CanonicalModel):
    SCHEMA = ("tax_configuration", 1)
    registration_number: Annotated[str, StringConstraints(min_length=2, max_length=40)]
    country: CountryCode
    tax_code: Code | None = None


class LegalEntity(CanonicalModel):
    SCHEMA = ("legal_entity", 1)
    code: Code
    name: Name
    country: CountryCode
    currency: CurrencyCode
    region: Region
    tax: TaxConfiguration | None = None


class Customer(CanonicalModel):
    SCHEMA = ("customer", 1)
    source_id: Code
    name: Name
    country: CountryCode | None = None
    currency: CurrencyCode | None = None
    tax_registration: ShortText | None = None
    payment_terms: ShortText | None = None
    city: ShortText | None = None


class Contact(CanonicalModel):
    SCHEMA = ("contact", 1)
    source_id: Code
    customer_source_id: Code | None = None
    first_name: ShortText = ""
    last_name: Name
    email: ShortText | None = None
    phone: ShortText | None = None


class Opportunity(CanonicalModel):
    SCHEMA = ("opportunity", 1)
    source_id: Code
    name: Name
    stage: ShortText
    is_won: bool
    is_closed: bool
    amount: Money
    currency: CurrencyCode
    close_date: dt.date
    customer: Customer
    legal_entity_code: Code
    project_template: Code
    modified_at: dt.datetime | None = None
    erp_customer_id: ShortText | None = None
    psa_project_id: ShortText | None = None
    #: the margin the deal was sold at, in % of its value (the CRM's planned margin)
    planned_margin: Percent | None = None


class Contract(CanonicalModel):
    SCHEMA = ("contract", 1)
    number: Code
    opportunity_source_id: Code
    customer_source_id: Code
    billing_model: BillingModel
    total_value: Money
    currency: CurrencyCode
    start_date: dt.date
    end_date: dt.date | None = None


class Milestone(CanonicalModel):
    SCHEMA = ("milestone", 1)
    name: Name
    due_date: dt.date
    amount: Money
    billable: bool = True


class Budget(CanonicalModel):
    SCHEMA = ("budget", 1)
    amount: Money
    currency: CurrencyCode
    hours: Decimal | None = Field(default=None, ge=0, max_digits=10, decimal_places=2)


class Project(CanonicalModel):
    SCHEMA = ("project", 1)
    key: Code
    name: Name
    customer_name: Name
    legal_entity_code: Code
    start_date: dt.date
    end_date: dt.date | None = None
    budget: Budget
    milestones: tuple[Milestone, ...] = ()


# -- version 1 of the delivery and finance entities (project-to-cash, resource-to-finance) ----
Quantity = Annotated[Decimal, Field(max_digits=12, decimal_places=2, ge=0)]
Rate = Annotated[Decimal, Field(max_digits=18, decimal_places=6, gt=0)]


class ContractAmendment(CanonicalModel):
    """A change to a sold contract: new total value and, where given, a new milestone plan."""

    SCHEMA = ("contract_amendment", 1)
    source_id: Code
    opportunity_source_id: Code
    effective_date: dt.date
    new_total_value: Money
    currency: CurrencyCode
    milestones: tuple[Milestone, ...] = ()
    reason: ShortText = ""


class MilestoneCompletion(CanonicalModel):
    """A billing milestone marked complete in the PSA: the trigger of milestone billing."""

    SCHEMA = ("milestone_completion", 1)
    project_key: Code
    psa_project_id: Code
    psa_milestone_id: Code
    name: Name
    amount: Money
    currency: CurrencyCode
    completed_on: dt.date


class InvoiceLine(CanonicalModel):
    SCHEMA = ("invoice_line", 1)
    description: Name
    quantity: Quantity = Decimal(1)
    unit_price: Money
    amount: Money
    tax_code: Code | None = None


class Invoice(CanonicalModel):
    SCHEMA = ("invoice", 1)
    key: Code
    customer_erp_id: Code
    legal_entity_code: Code
    currency: CurrencyCode
    invoice_date: dt.date
    due_date: dt.date
    lines: tuple[InvoiceLine, ...]
    project_key: Code | None = None
    memo: ShortText = ""


PaymentState = Literal["open", "paid", "overdue", "cancelled"]


class InvoiceStatus(CanonicalModel):
    """What the ERP says of an invoice: its number, amounts and payment state."""

    SCHEMA = ("invoice_status", 1)
    erp_invoice_id: Code
    number: ShortText
    total: Money
    amount_remaining: Money
    state: PaymentState
    due_date: dt.date | None = None


class TimeEntry(CanonicalModel):
    SCHEMA = ("time_entry", 1)
    source_id: Code
    project_key: Code
    psa_project_id: Code
    person_id: Code
    work_date: dt.date
    hours: Quantity
    billable: bool
    approved: bool
    task_id: Code | None = None
    cost_rate: Money | None = None
    currency: CurrencyCode | None = None
    notes: ShortText = ""
    #: when the PSA counted the entry as approved (see the PSA's mapping for what it reads)
    approved_at: dt.datetime | None = None


class Expense(CanonicalModel):
    SCHEMA = ("expense", 1)
    source_id: Code
    project_key: Code
    psa_project_id: Code
    person_id: Code
    spent_on: dt.date
    category: ShortText
    amount: Money
    currency: CurrencyCode
    billable: bool
    approved: bool
    receipt_attached: bool
    notes: ShortText = ""


class Employee(CanonicalModel):
    SCHEMA = ("employee", 1)
    source_id: Code
    first_name: ShortText = ""
    last_name: Name
    email: ShortText | None = None
    legal_entity_code: Code | None = None
    cost_centre_code: Code | None = None
    active: bool = True


class CostRate(CanonicalModel):
    """An employee's labour cost per hour, from a date."""

    SCHEMA = ("cost_rate", 1)
    employee_source_id: Code
    hourly_cost: Money
    currency: CurrencyCode
    effective_from: dt.date


class CostCentre(CanonicalModel):
    SCHEMA = ("cost_centre", 1)
    code: Code
    name: Name
    active: bool = True


class ExchangeRate(CanonicalModel):
    SCHEMA = ("exchange_rate", 1)
    base: CurrencyCode
    quote: CurrencyCode
    rate: Rate
    effective_date: dt.date


class Assignment(CanonicalModel):
    """A person assigned to a project (or one task of it) for some hours."""

    SCHEMA = ("assignment", 1)
    source_id: Code
    psa_project_id: Code
    person_id: Code
    task_id: Code | None = None
    allocated_hours: Quantity | None = None
    start_date: dt.date | None = None
    end_date: dt.date | None = None


class PurchaseOrder(CanonicalModel):
    """An order to a subcontractor's firm (a vendor) for hours on a project: `source_id` is
    Throughline's key of the order ("TL-PO-<assignment id>"), one line of `hours` at the
    subcontractor's hourly cost `rate` (amount = hours x rate, to the cent); `closed` when the
    engagement has ended (the order stays, its line closed)."""

    SCHEMA = ("purchase_order", 1)
    source_id: Code
    vendor_name: Name
    project_key: Code
    amount: Money
    currency: CurrencyCode
    ordered_on: dt.date
    vendor_key: ShortText = ""
    assignment_id: Code | None = None
    person_id: Code | None = None
    hours: Quantity | None = None
    rate: Money | None = None
    description: ShortText = ""
    closed: bool = False


class SubcontractorCharge(CanonicalModel):
    SCHEMA = ("subcontractor_charge", 1)
    source_id: Code
    vendor_name: Name
    project_key: Code
    amount: Money
    currency: CurrencyCode
    incurred_on: dt.date
    purchase_order_source_id: Code | None = None


class RevenueScheduleLine(CanonicalModel):
    SCHEMA = ("revenue_schedule_line", 1)
    period_start: dt.date
    amount: Money


class RevenueSchedule(CanonicalModel):
    """When a contract's revenue is recognised, from its billing model."""

    SCHEMA = ("revenue_schedule", 1)
    contract_key: Code
    billing_model: BillingModel
    currency: CurrencyCode
    total: Money
    lines: tuple[RevenueScheduleLine, ...]


class AccountingPeriod(CanonicalModel):
    """A month of the ERP's accounting calendar; closed: its books are final."""

    SCHEMA = ("accounting_period", 1)
    source_id: Code
    name: ShortText
    start_date: dt.date
    end_date: dt.date
    closed: bool


class RecognisedRevenue(CanonicalModel):
    """A revenue schedule line as the ERP holds it for a closed accounting period: revenue
    the ERP recognised."""

    SCHEMA = ("recognised_revenue", 1)
    source_id: Code
    key: ShortText
    contract_key: ShortText
    period_start: dt.date
    amount: Money
    currency: CurrencyCode


SCHEMAS: dict[tuple[str, int], type[CanonicalModel]] = {
    cls.SCHEMA: cls
    for cls in (
        TaxConfiguration,
        LegalEntity,
        Customer,
        Contact,
        Opportunity,
        Contract,
        Milestone,
        Budget,
        Project,
        ContractAmendment,
        MilestoneCompletion,
        InvoiceLine,
        Invoice,
        InvoiceStatus,
        TimeEntry,
        Expense,
        Employee,
        CostRate,
        CostCentre,
        ExchangeRate,
        Assignment,
        PurchaseOrder,
        SubcontractorCharge,
        RevenueScheduleLine,
        RevenueSchedule,
        AccountingPeriod,
        RecognisedRevenue,
    )
}

M = TypeVar("M", bound=CanonicalModel)


def validate(model: type[M], data: dict[str, Any], *, source: str = "") -> M:
    """Build a canonical object from mapped data, or raise MappingError naming the fields."""
    try:
        return model.model_validate(data)
    except PydanticValidationError as exc:
        problems = [
            {
                "field": ".".join(str(p) for p in err["loc"]),
                "problem": err["msg"],
                "type": err["type"],
            }
            for err in exc.errors(include_url=False, include_input=False)
        ]
        raise MappingError(
            entity=model.SCHEMA[0],
            problems=problems,
            source=source,
        ) from None


def schema_catalogue() -> list[dict[str, Any]]:
    """Every schema with its version and JSON schema, for the API and the docs."""
    return [
        {"entity": name, "version": version, "json_schema": cls.model_json_schema()}
        for (name, version), cls in sorted(SCHEMAS.items())
    ]
