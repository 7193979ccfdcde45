"""Constant choice sets of the exception queues."""

from django.db import models


class Category(models.TextChoices):
    BUSINESS = "business", "Business"
    TECHNICAL = "technical", "Technical"


class ExceptionStatus(models.TextChoices):
    OPEN = "open", "Open"
    IN_PROGRESS = "in_progress", "In progress"
    RETRYING = "retrying", "Retry queued"
    IGNORED = "ignored", "Ignored"
    RESOLVED = "resolved", "Resolved"


#: statuses that still need a person (the queue's work); resolved and ignored do not
ACTIVE_STATUSES = (ExceptionStatus.OPEN, ExceptionStatus.IN_PROGRESS, ExceptionStatus.RETRYING)


class IncidentStatus(models.TextChoices):
    OPEN = "open", "Open"
    RESOLVED = "resolved", "Resolved"


class PayloadEditStatus(models.TextChoices):
    PENDING = "pending", "Waiting for approval"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    APPLIED = "applied", "Applied"


class BulkKind(models.TextChoices):
    RETRY = "retry", "Retry"
    RESOLVE = "resolve", "Resolve"
    ASSIGN = "assign", "Assign"
    IGNORE = "ignore", "Ignore"


class BulkStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    FINISHED = "finished", "Finished"
    FAILED = "failed", "Failed"


class AlertChannel(models.TextChoices):
    EMAIL = "email", "E-mail"
    WEBHOOK = "webhook", "Webhook"


class AlertEvent(models.TextChoices):
    OPENED = "opened", "Incident opened"
    ESCALATED = "escalated", "SLA breached, escalated"
    RESOLVED = "resolved", "Incident resolved"


class ExceptionCode(models.TextChoices):
    """Stable codes, in business words."""

    TAX_CONFIGURATION_MISSING = "tax_configuration_missing", "Tax configuration missing"
    LEGAL_ENTITY_UNKNOWN = "legal_entity_unknown", "Legal entity unknown"
    LEGAL_ENTITY_NOT_IN_ERP = "legal_entity_not_in_erp", "Legal entity not set up in ERP"
    CUSTOMER_REJECTED_BY_ERP = "customer_rejected_by_erp", "Customer rejected by ERP"
    PROJECT_TEMPLATE_NOT_FOUND = "project_template_not_found", "Project template not found"
    PROJECT_REJECTED_BY_PSA = "project_rejected_by_psa", "Project rejected by PSA"
    DEAL_DATA_INVALID = "deal_data_invalid", "Deal data invalid"
    DEAL_NOT_WON = "deal_not_won", "Deal is no longer closed-won"
    RECORD_NOT_FOUND = "record_not_found", "Record not found in source system"
    WRITE_BACK_REJECTED = "write_back_rejected", "Write-back rejected by CRM"
    AUTHENTICATION_FAILED = "authentication_failed", "Authentication failed"
    RATE_LIMIT_EXHAUSTED = "rate_limit_exhausted", "Rate limit exhausted"
    VENDOR_UNAVAILABLE = "vendor_unavailable", "Vendor unavailable"
    MAPPING_ERROR = "mapping_error", "Data does not fit the mapping"
    VENDOR_RESPONSE_INVALID = "vendor_response_invalid", "Vendor answered with invalid data"
    CONNECTION_MISSING = "connection_missing", "No connection configured"
    TRANSACTION_STUCK = "transaction_stuck", "Transaction stuck"
    CLOSED_ACCOUNTING_PERIOD = "closed_accounting_period", "Closed accounting period"
    TIME_ENTRY_NOT_POSTABLE = "time_entry_not_postable", "Time entries cannot be posted"
    POSTING_REFUSED_BY_ERP = "posting_refused_by_erp", "Postings refused by ERP"
    INVOICE_REJECTED_BY_ERP = "invoice_rejected_by_erp", "Invoice rejected by ERP"
    COST_RATE_MISSING = "cost_rate_missing", "Cost rate missing"
    PURCHASE_ORDER_REFUSED_BY_ERP = (
        "purchase_order_refused_by_erp",
        "Purchase orders refused by ERP",
    )
    PROJECT_NOT_LINKED = "project_not_linked", "Project not linked to a deal"
    ERP_CONFIGURATION_MISSING = "erp_configuration_missing", "ERP configuration missing"
    SYSTEM_OF_RECORD_VIOLATION = "system_of_record_violation", "System-of-record violation"
    RECONCILIATION_MISSING_IN_TARGET = (
        "reconciliation_missing_in_target",
        "Reconciliation: missing in the target system",
    )
    RECONCILIATION_MISSING_IN_SOURCE = (
        "reconciliation_missing_in_source",
        "Reconciliation: missing in the source system",
    )
    RECONCILIATION_FIELD_MISMATCH = (
        "reconciliation_field_mismatch",
        "Reconciliation: systems disagree",
    )
    RECONCILIATION_DUPLICATE = "reconciliation_duplicate", "Reconciliation: duplicate record"
    INTERNAL_ERROR = "internal_error", "Internal error"


class SlaState(models.TextChoices):
    """Where an active exception stands against its queue's SLA (computed from due_at)."""

    OK = "ok", "On time"
    DUE_SOON = "due_soon", "Due soon"
    BREACHED = "breached", "Breached"


#: "due soon" is the last fifth of the queue's SLA window
DUE_SOON_FRACTION = 0.2
