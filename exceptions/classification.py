"""Classification: what a failure means in business words, and which team owns it.

Input is the engine's StepFailure (kind, code, entity); output is a Classification with a
stable ExceptionCode, business or technical category, owning team, a title, a plain-language
explanation and the suggested fix.
"""

from __future__ import annotations

from dataclasses import dataclass

from console.choices import TeamKind
from integrations.workflows.failures import StepFailure

from .choices import Category, ExceptionCode


@dataclass(frozen=True)
class Rule:
    code: ExceptionCode
    category: Category
    owner: TeamKind
    explanation: str
    fix: str


@dataclass(frozen=True)
class Classification:
    code: ExceptionCode
    category: Category
    owner: TeamKind
    title: str
    explanation: str
    suggested_fix: str


B, T = Category.BUSINESS, Category.TECHNICAL
C = ExceptionCode
RULES: dict[str, Rule] = {
    "tax_configuration_missing": Rule(
        C.TAX_CONFIGURATION_MISSING,
        B,
        TeamKind.FINANCE,
        "The ERP subsidiary of this legal entity has no tax registration, so Throughline "
        "cannot create the customer or any invoice for it.",
        "Add the tax registration (VAT or sales-tax number) to the subsidiary in the ERP, "
        "then press Retry.",
    ),
    "legal_entity_not_in_erp": Rule(
        C.LEGAL_ENTITY_NOT_IN_ERP,
        B,
        TeamKind.FINANCE,
        "Throughline knows this legal entity but not which ERP subsidiary it is.",
        "Bind the legal entity to its ERP subsidiary (external-id bindings), then Retry.",
    ),
    "legal_entity_unknown": Rule(
        C.LEGAL_ENTITY_UNKNOWN,
        B,
        TeamKind.SALES_OPS,
        "The deal names a legal entity that does not exist.",
        "Correct the legal entity on the deal in the CRM, then Retry.",
    ),
    "customer_rejected_by_erp": Rule(
        C.CUSTOMER_REJECTED_BY_ERP,
        B,
        TeamKind.FINANCE,
        "The ERP refused the customer record Throughline sent.",
        "Read the ERP's message below, correct the customer data at its source, then Retry.",
    ),
    "project_template_not_found": Rule(
        C.PROJECT_TEMPLATE_NOT_FOUND,
        B,
        TeamKind.PMO,
        "The deal asks for a project template that does not exist, so no project can be set "
        "up for it.",
        "Create the template in Throughline (or correct the template on the deal), then Retry.",
    ),
    "project_rejected_by_psa": Rule(
        C.PROJECT_REJECTED_BY_PSA,
        B,
        TeamKind.PMO,
        "The PSA refused the project Throughline sent.",
        "Read the PSA's message below, fix the template or deal data, then Retry.",
    ),
    "deal_data_invalid": Rule(
        C.DEAL_DATA_INVALID,
        B,
        TeamKind.SALES_OPS,
        "The deal in the CRM is missing data the handoff needs, or holds data of the wrong kind.",
        "Fix the fields listed below on the deal in the CRM, then Retry.",
    ),
    "deal_not_won": Rule(
        C.DEAL_NOT_WON,
        B,
        TeamKind.SALES_OPS,
        "The deal was closed-won when Throughline saw it but is not any more.",
        "If the deal is really won, set its stage back to Closed Won and Retry.",
    ),
    "write_back_rejected": Rule(
        C.WRITE_BACK_REJECTED,
        B,
        TeamKind.SALES_OPS,
        "The CRM refused the ERP and PSA ids Throughline wrote back to the deal.",
        "Check the deal's validation rules and field permissions in the CRM, then Retry.",
    ),
    "connection_missing": Rule(
        C.CONNECTION_MISSING,
        T,
        TeamKind.IT,
        "No enabled connection is configured for a system this workflow needs.",
        "Add or enable the connection in Throughline, then Retry.",
    ),
    "auth": Rule(
        C.AUTHENTICATION_FAILED,
        T,
        TeamKind.IT,
        "The vendor rejected Throughline's credentials.",
        "Renew the connection's credentials (certificate, token or client secret), then Retry.",
    ),
    "rate_limited": Rule(
        C.RATE_LIMIT_EXHAUSTED,
        T,
        TeamKind.IT,
        "The vendor refused the calls for volume, and retries with back-off did not get through.",
        "Wait for the vendor's limit to reset (or raise it), then Retry.",
    ),
    "transient": Rule(
        C.VENDOR_UNAVAILABLE,
        T,
        TeamKind.IT,
        "The vendor did not answer, or answered with a server error, after several retries.",
        "Check the vendor's status page and the connection's health, then Retry.",
    ),
    "bad_response": Rule(
        C.VENDOR_RESPONSE_INVALID,
        T,
        TeamKind.IT,
        "The vendor answered with data that does not have the documented shape.",
        "Look at the vendor's answer below; if the vendor changed its API, update the "
        "connector, then Retry.",
    ),
    "not_found": Rule(
        C.RECORD_NOT_FOUND,
        B,
        TeamKind.SALES_OPS,
        "The record no longer exists in the source system (deleted or merged).",
        "Restore the record or confirm it is gone; Retry once it exists again.",
    ),
    "mapping_error": Rule(
        C.MAPPING_ERROR,
        T,
        TeamKind.IT,
        "Data read from a vendor does not fit Throughline's canonical model.",
        "Read the field problems below; fix the data at its source or the mapping, then Retry.",
    ),
    "stuck_project_provisioned": Rule(
        C.TRANSACTION_STUCK,
        B,
        TeamKind.PMO,
        "A closed-won deal has no project yet, past the time allowed, although no call "
        "reported a failure.",
        "Open the transaction's trace to see where it stopped; push the run through or fix "
        "what holds it.",
    ),
    "stuck_invoice_created": Rule(
        C.TRANSACTION_STUCK,
        B,
        TeamKind.FINANCE,
        "A completed milestone has no invoice yet, past the time allowed.",
        "Open the transaction's trace to see where it stopped, then retry or raise the invoice.",
    ),
    "sor_violation_crm": Rule(
        C.SYSTEM_OF_RECORD_VIOLATION,
        B,
        TeamKind.SALES_OPS,
        "Someone changed, in the CRM, data that another system owns. Throughline did not "
        "pass the change on, so the systems now disagree.",
        "Make the change in the owning system (named below) and undo it in the CRM; "
        "Throughline then syncs it everywhere. Resolve this exception when done.",
    ),
    "sor_violation_psa": Rule(
        C.SYSTEM_OF_RECORD_VIOLATION,
        B,
        TeamKind.PMO,
        "Someone changed, in the PSA, data that another system owns. Throughline did not "
        "pass the change on, so the systems now disagree.",
        "Make the change in the owning system (named below) and undo it in the PSA; "
        "Throughline then syncs it everywhere. Resolve this exception when done.",
    ),
    "sor_violation_erp": Rule(
        C.SYSTEM_OF_RECORD_VIOLATION,
        B,
        TeamKind.FINANCE,
        "Someone changed, in the ERP, data that another system owns. Throughline did not "
        "pass the change on, so the systems now disagree.",
        "Make the change in the owning system (named below) and undo it in the ERP; "
        "Throughline then syncs it everywhere. Resolve this exception when done.",
    ),
    "closed_accounting_period": Rule(
        C.CLOSED_ACCOUNTING_PERIOD,
        B,
        TeamKind.FINANCE,
        "The ERP refused the invoice because its accounting period is closed.",
        "Reopen the period for receivables in the ERP (or agree a later invoice date), then Retry.",
    ),
    "invoice_rejected_by_erp": Rule(
        C.INVOICE_REJECTED_BY_ERP,
        B,
        TeamKind.FINANCE,
        "The ERP refused the invoice Throughline sent.",
        "Read the ERP's message below, correct the data at its source, then Retry.",
    ),
    "project_not_linked": Rule(
        C.PROJECT_NOT_LINKED,
        B,
        TeamKind.PMO,
        "A milestone was completed on a project Throughline did not provision, so it cannot "
        "tell which deal, customer and legal entity to invoice.",
        "Provision the project through Throughline (or link it to its deal), then Retry.",
    ),
    "erp_configuration_missing": Rule(
        C.ERP_CONFIGURATION_MISSING,
        T,
        TeamKind.FINANCE,
        "The ERP connection lacks a setting Throughline needs to create the record.",
        "Complete the connection's settings (named below), then Retry.",
    ),
    "time_entry_on_unknown_project": Rule(
        C.TIME_ENTRY_NOT_POSTABLE,
        B,
        TeamKind.PMO,
        "Approved time was logged on a project Throughline did not provision, so it does not "
        "know which customer and legal entity to post it to.",
        "Provision the project through Throughline (or move the time to the right project).",
    ),
    "time_entry_invalid": Rule(
        C.TIME_ENTRY_NOT_POSTABLE,
        B,
        TeamKind.PMO,
        "Approved time entries hold data the ERP cannot take (hours, dates or people).",
        "Correct the entries in the PSA; they are picked up again when they change.",
    ),
    "person_not_in_erp": Rule(
        C.TIME_ENTRY_NOT_POSTABLE,
        B,
        TeamKind.FINANCE,
        "The people who logged this time are not employees in the ERP that receives the "
        "postings (no matching e-mail).",
        "Add the employee in the ERP (or correct the e-mail in either system); reference "
        "data sync then links them.",
    ),
    "project_not_in_erp": Rule(
        C.TIME_ENTRY_NOT_POSTABLE,
        B,
        TeamKind.FINANCE,
        "The project does not exist in the ERP that receives its postings (its hand-off has "
        "not reached the ERP, or an ERP route sends postings to another ERP than the "
        "project accounting).",
        "Retry the project's hand-off, or align the ERP routes for postings and projects.",
    ),
    "project_rejected_by_erp": Rule(
        C.PROJECT_REJECTED_BY_PSA,
        B,
        TeamKind.FINANCE,
        "The ERP refused the project, billing plan or revenue schedule Throughline sent.",
        "Read the ERP's message below, fix the data or the template, then Retry.",
    ),
    "expense_receipt_missing": Rule(
        C.TIME_ENTRY_NOT_POSTABLE,
        B,
        TeamKind.PMO,
        "Approved expenses above the receipt threshold have no receipt attached.",
        "Attach the receipts in the PSA (or reject the expenses); they are picked up again "
        "when they change.",
    ),
    "exchange_rate_missing": Rule(
        C.TIME_ENTRY_NOT_POSTABLE,
        B,
        TeamKind.FINANCE,
        "Expenses in a foreign currency cannot be converted: the ERP publishes no rate for "
        "that currency on the expense date.",
        "Add the exchange rate in the ERP; reference data brings it over within the hour.",
    ),
    "expense_entry_invalid": Rule(
        C.TIME_ENTRY_NOT_POSTABLE,
        B,
        TeamKind.PMO,
        "Approved expenses hold data the ERP cannot take.",
        "Correct the expenses in the PSA; they are picked up again when they change.",
    ),
    "assignment_invalid": Rule(
        C.TIME_ENTRY_NOT_POSTABLE,
        B,
        TeamKind.PMO,
        "Resource assignments in the PSA hold data the ERP cannot take.",
        "Correct the assignments in the PSA; they are picked up again when they change.",
    ),
    "vendor_not_in_erp": Rule(
        C.TIME_ENTRY_NOT_POSTABLE,
        B,
        TeamKind.FINANCE,
        "Subcontractor charges name a vendor the ERP that receives them does not know.",
        "Create the vendor in the ERP (or link the PSA's vendor to it), then collect again.",
    ),
    "purchase_order_vendor_not_in_erp": Rule(
        C.ERP_CONFIGURATION_MISSING,
        B,
        TeamKind.FINANCE,
        "Subcontractors are assigned to this project, but their firm is not a vendor in the "
        "ERP that does the project's accounting, so no purchase order can be raised for "
        "their hours.",
        "Create the vendor in the ERP (or link the subcontractor's firm to it); the orders "
        "are raised when the assignments are next synchronised.",
    ),
    "subcontractor_rate_missing": Rule(
        C.COST_RATE_MISSING,
        B,
        TeamKind.PMO,
        "Subcontractors are assigned to this project without an hourly cost in the PSA in "
        "the project's currency, so their purchase orders cannot be priced.",
        "Enter the subcontractor's cost rate in that currency in the PSA, then touch the "
        "assignment so it is synchronised again.",
    ),
    "purchase_order_refused_by_erp": Rule(
        C.PURCHASE_ORDER_REFUSED_BY_ERP,
        B,
        TeamKind.FINANCE,
        "The ERP refused the purchase orders Throughline raised for subcontractors on this "
        "project.",
        "Read the ERP's message below (a vendor of another subsidiary or currency, an "
        "inactive vendor or item...), fix it in the ERP; the orders are raised when the "
        "assignments are next synchronised.",
    ),
    "posting_refused_by_erp": Rule(
        C.POSTING_REFUSED_BY_ERP,
        B,
        TeamKind.FINANCE,
        "The ERP refused some of the time entries of a posting batch.",
        "Read the ERP's code below (a closed period, an inactive employee...), fix it in the "
        "ERP, then Retry the batch.",
    ),
    "amendment_before_handoff": Rule(
        C.DEAL_DATA_INVALID,
        B,
        TeamKind.SALES_OPS,
        "An amendment was approved for a deal whose hand-off has not completed.",
        "Clear the deal's hand-off exception first, then Retry the amendment.",
    ),
    "amendment_conflicts_with_delivery": Rule(
        C.PROJECT_REJECTED_BY_PSA,
        B,
        TeamKind.PMO,
        "The amendment would change a milestone that is already completed (and billed).",
        "Agree the change as a new milestone or a credit; correct the amendment, then Retry.",
    ),
    "internal_error": Rule(
        C.INTERNAL_ERROR,
        T,
        TeamKind.IT,
        "Throughline itself failed while running this step.",
        "Report it to the integration team with this exception's number; Retry after a fix.",
    ),
    # reconciliation.silent_audit: events that ended neither applied nor as an exception
    "silent_failure": Rule(
        C.INTERNAL_ERROR,
        T,
        TeamKind.IT,
        "The silent-failure audit found source events Throughline received that ended neither "
        "applied nor as an exception: work was lost without anyone being told.",
        "Open each finding (the audit's address ends the explanation above): retry or restart "
        "its run, or post its batch again, and find why no exception was opened. Resolve this "
        "exception when every finding is handled; the next audit opens a new one if any remain.",
    ),
}


#: Reconciliation differences (reconciliation.actions): one failure code per class of
#: difference and owning team, `reconciliation_<class>_<team kind>`, so a difference goes to
#: the queue of the team its comparison names as owner (the routing fallthrough, or any rule
#: naming the code, e.g. by legal entity). Several teams own each of these codes.
RECONCILIATION_OWNERS: tuple[TeamKind, ...] = (TeamKind.FINANCE, TeamKind.PMO, TeamKind.SALES_OPS)
RECONCILIATION_FIX = (
    "Open the difference (its address ends the explanation above) and Re-sync it there, or "
    "correct the record in the system that is wrong; the next run then shows it matched. "
    "Resolve this exception when done."
)
RECONCILIATION_RULES: dict[str, tuple[ExceptionCode, str]] = {
    "missing_in_target": (
        C.RECONCILIATION_MISSING_IN_TARGET,
        "Reconciliation found a record in the source system that the target system does not "
        "have: it was lost or never created on the way.",
    ),
    "missing_in_source": (
        C.RECONCILIATION_MISSING_IN_SOURCE,
        "Reconciliation found a record in the target system that the source system does not "
        "have: created by hand, or deleted at the source.",
    ),
    "field_mismatch": (
        C.RECONCILIATION_FIELD_MISMATCH,
        "Reconciliation found the record in both systems with different values (the "
        "field-level difference is below).",
    ),
    "duplicate": (
        C.RECONCILIATION_DUPLICATE,
        "Reconciliation found more than one record for the same key in one system: it may be "
        "billed or posted twice.",
    ),
}


def reconciliation_code(kind: str, owner: str) -> str:
    """The failure code of a reconciliation difference of class `kind` owned by `owner`."""
    return f"reconciliation_{kind}_{owner}"


RULES.update(
    {
        reconciliation_code(kind, owner): Rule(code, B, owner, explanation, RECONCILIATION_FIX)
        for kind, (code, explanation) in RECONCILIATION_RULES.items()
        for owner in RECONCILIATION_OWNERS
    }
)


def classify(failure: StepFailure) -> Classification:
    """The business meaning of a failure; unknown codes are internal errors for IT."""
    rule = RULES.get(failure.code) or RULES["internal_error"]
    if failure.code in ("validation", "conflict"):
        rule = Rule(
            C.VENDOR_RESPONSE_INVALID,
            T,
            TeamKind.IT,
            "The vendor refused the data Throughline sent.",
            "Read the vendor's message below, fix the data or mapping, then Retry.",
        )
    subject = f"{failure.entity_type.replace('_', ' ')} {failure.entity_ref}".strip()
    title = f"{rule.code.label}: {subject}" if subject else rule.code.label
    return Classification(
        code=rule.code,
        category=rule.category,
        owner=rule.owner,
        title=title[:300],
        explanation=f"{rule.explanation} {failure.message}".strip(),
        suggested_fix=rule.fix,
    )
