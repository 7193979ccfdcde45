"""The canonical records Throughline holds, one function per dataset, as rows for extracts.

Where each dataset comes from:

- customers, projects: the succeeded `create_service_engagement` runs (a closed-won deal set
  up as a customer in the ERP and a project in the PSA and ERP); the run's context holds the
  canonical opportunity, its customer and the ids each system gave them. Changed when the run
  finished (a retried run that later succeeds appears then).
- time_entries: approved PSA time entries posted to an ERP (PostingBatch.entries of time bill
  batches): the canonical TimeEntry with the ERP ids. Changed when the batch posted.
- invoices: `release_milestone_billing` runs that created the invoice in the ERP: the
  milestone, the deal and the invoice number, total and payment state the ERP answered.
  Changed when the run finished. Later payment changes are not recorded by Throughline in a
  readable form (only hashes of what it wrote), so they are not in the extract.
- exceptions: IntegrationException. Changed at the latest of last seen, escalated and resolved
  (status changes without a timestamp, such as assignment, wait for the next of those).

Every dataset has a fixed column list; `changed_at` is in every one. Rows are ordered by
(change time, record id): several rows can share one record (a batch of time entries).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.utils.dateparse import parse_date

from exceptions.models import IntegrationException
from integrations.models import PostingBatch, SyncRun

TEXT, MONEY, QUANTITY, TIMESTAMP, DATE, INTEGER, BOOLEAN = (
    "text",
    "money",
    "quantity",
    "timestamp",
    "date",
    "integer",
    "boolean",
)


@dataclass(frozen=True)
class Column:
    name: str
    kind: str = TEXT


@dataclass(frozen=True)
class Row:
    changed_at: dt.datetime
    record_id: int
    values: dict[str, Any]

    @property
    def position(self) -> tuple[dt.datetime, int]:
        return (self.changed_at, self.record_id)


@dataclass(frozen=True)
class Dataset:
    key: str
    columns: tuple[Column, ...]
    rows: Callable[[dt.datetime | None], Iterator[Row]]
    """rows changed at or after the given time (None: all), in any order"""

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


def _d(value: Any) -> Decimal | None:
    return None if value in (None, "") else Decimal(str(value))


def _date(value: Any) -> dt.date | None:
    if value in (None, ""):
        return None
    return value if isinstance(value, dt.date) else parse_date(str(value))


def _engagements(since: dt.datetime | None) -> Iterator[SyncRun]:
    runs = SyncRun.objects.filter(
        workflow="create_service_engagement", status="succeeded", finished_at__isnull=False
    )
    if since is not None:
        runs = runs.filter(finished_at__gte=since)
    for run in runs.order_by("finished_at", "pk").iterator(chunk_size=500):
        if "opportunity" in run.context.get("fetch_deal", {}):
            yield run


# -- customers -------------------------------------------------------------------------------
CUSTOMER_COLUMNS = (
    Column("customer_id"),
    Column("customer_name"),
    Column("country"),
    Column("city"),
    Column("currency"),
    Column("tax_registration"),
    Column("legal_entity_code"),
    Column("erp_customer_id"),
    Column("deal_id"),
    Column("changed_at", TIMESTAMP),
)


def customers(since: dt.datetime | None) -> Iterator[Row]:
    """One row per customer set up for a won deal (the same customer again for a later deal:
    the warehouse keeps the newest by customer_id)."""
    for run in _engagements(since):
        opp = run.context["fetch_deal"]["opportunity"]
        customer = opp.get("customer") or {}
        yield Row(
            run.finished_at,
            run.pk,
            {
                "customer_id": customer.get("source_id"),
                "customer_name": customer.get("name"),
                "country": customer.get("country"),
                "city": customer.get("city"),
                "currency": customer.get("currency"),
                "tax_registration": customer.get("tax_registration"),
                "legal_entity_code": opp.get("legal_entity_code"),
                "erp_customer_id": run.context.get("ensure_erp_customer", {}).get(
                    "erp_customer_id"
                ),
                "deal_id": opp.get("source_id"),
                "changed_at": run.finished_at,
            },
        )


# -- projects --------------------------------------------------------------------------------
PROJECT_COLUMNS = (
    Column("project_key"),
    Column("project_name"),
    Column("deal_id"),
    Column("customer_id"),
    Column("customer_name"),
    Column("legal_entity_code"),
    Column("project_template"),
    Column("contract_value", MONEY),
    Column("currency"),
    Column("close_date", DATE),
    Column("psa_project_id"),
    Column("erp_project_id"),
    Column("milestones", INTEGER),
    Column("provisioned_at", TIMESTAMP),
    Column("changed_at", TIMESTAMP),
)


def projects(since: dt.datetime | None) -> Iterator[Row]:
    for run in _engagements(since):
        opp = run.context["fetch_deal"]["opportunity"]
        provision = run.context.get("provision_project", {})
        contract = run.context.get("push_contract_to_erp", {})
        yield Row(
            run.finished_at,
            run.pk,
            {
                "project_key": run.correlation_id,
                "project_name": opp.get("name"),
                "deal_id": opp.get("source_id"),
                "customer_id": (opp.get("customer") or {}).get("source_id"),
                "customer_name": (opp.get("customer") or {}).get("name"),
                "legal_entity_code": opp.get("legal_entity_code"),
                "project_template": opp.get("project_template"),
                "contract_value": _d(opp.get("amount")),
                "currency": opp.get("currency"),
                "close_date": _date(opp.get("close_date")),
                "psa_project_id": provision.get("psa_project_id"),
                "erp_project_id": contract.get("erp_job_id"),
                "milestones": provision.get("milestones"),
                "provisioned_at": run.finished_at,
                "changed_at": run.finished_at,
            },
        )


# -- time entries ----------------------------------------------------------------------------
TIME_ENTRY_COLUMNS = (
    Column("entry_id"),
    Column("project_key"),
    Column("psa_project_id"),
    Column("erp_project_id"),
    Column("person_id"),
    Column("erp_employee_id"),
    Column("work_date", DATE),
    Column("hours", QUANTITY),
    Column("billable", BOOLEAN),
    Column("cost_rate", MONEY),
    Column("currency"),
    Column("notes"),
    Column("erp", INTEGER),
    Column("erp_time_bill_id"),
    Column("posted_at", TIMESTAMP),
    Column("changed_at", TIMESTAMP),
)


def time_entries(since: dt.datetime | None) -> Iterator[Row]:
    """Time entries the ERP accepted (entries it refused are in the exceptions dataset)."""
    batches = PostingBatch.objects.filter(record_type="timeBill", posted_at__isnull=False)
    if since is not None:
        batches = batches.filter(posted_at__gte=since)
    for batch in batches.order_by("posted_at", "pk").iterator(chunk_size=100):
        for item in batch.entries:
            if not item.get("erp_id"):
                continue
            entry = item.get("entry") or {}
            yield Row(
                batch.posted_at,
                batch.pk,
                {
                    "entry_id": entry.get("source_id"),
                    "project_key": entry.get("project_key"),
                    "psa_project_id": entry.get("psa_project_id"),
                    "erp_project_id": item.get("job_id"),
                    "person_id": entry.get("person_id"),
                    "erp_employee_id": item.get("employee_id"),
                    "work_date": _date(entry.get("work_date")),
                    "hours": _d(entry.get("hours")),
                    "billable": entry.get("billable"),
                    "cost_rate": _d(entry.get("cost_rate")),
                    "currency": entry.get("currency"),
                    "notes": entry.get("notes") or "",
                    "erp": batch.erp_id,
                    "erp_time_bill_id": item.get("erp_id"),
                    "posted_at": batch.posted_at,
                    "changed_at": batch.posted_at,
                },
            )


# -- invoices --------------------------------------------------------------------------------
INVOICE_COLUMNS = (
    Column("invoice_key"),
    Column("erp_invoice_id"),
    Column("invoice_number"),
    Column("project_key"),
    Column("milestone"),
    Column("deal_id"),
    Column("customer_id"),
    Column("customer_name"),
    Column("erp_customer_id"),
    Column("legal_entity_code"),
    Column("currency"),
    Column("net_amount", MONEY),
    Column("total", MONEY),
    Column("amount_remaining", MONEY),
    Column("payment_state"),
    Column("invoice_date", DATE),
    Column("due_date", DATE),
    Column("changed_at", TIMESTAMP),
)


def invoices(since: dt.datetime | None) -> Iterator[Row]:
    runs = SyncRun.objects.filter(workflow="release_milestone_billing", finished_at__isnull=False)
    if since is not None:
        runs = runs.filter(finished_at__gte=since)
    for run in runs.order_by("finished_at", "pk").iterator(chunk_size=500):
        created = run.context.get("create_invoice")
        loaded = run.context.get("load_milestone")
        if not created or not loaded:
            continue
        invoice = created.get("invoice") or {}
        completion = loaded.get("completion") or {}
        opp = loaded.get("opportunity") or {}
        yield Row(
            run.finished_at,
            run.pk,
            {
                "invoice_key": f"TL-INV-{run.input.get('psa_connection')}-"
                f"{run.input.get('story_id')}",
                "erp_invoice_id": invoice.get("erp_invoice_id"),
                "invoice_number": invoice.get("number"),
                "project_key": completion.get("project_key"),
                "milestone": completion.get("name"),
                "deal_id": opp.get("source_id"),
                "customer_id": (opp.get("customer") or {}).get("source_id"),
                "customer_name": (opp.get("customer") or {}).get("name"),
                "erp_customer_id": run.context.get("ensure_invoice_customer", {}).get(
                    "erp_customer_id"
                ),
                "legal_entity_code": opp.get("legal_entity_code"),
                "currency": created.get("currency") or completion.get("currency"),
                "net_amount": _d(completion.get("amount")),
                "total": _d(invoice.get("total")),
                "amount_remaining": _d(invoice.get("amount_remaining")),
                "payment_state": invoice.get("state"),
                "invoice_date": _date(completion.get("completed_on")),
                "due_date": _date(invoice.get("due_date")),
                "changed_at": run.finished_at,
            },
        )


# -- exceptions ------------------------------------------------------------------------------
EXCEPTION_COLUMNS = (
    Column("exception_id", INTEGER),
    Column("code"),
    Column("category"),
    Column("status"),
    Column("queue"),
    Column("title"),
    Column("entity_type"),
    Column("entity_ref"),
    Column("legal_entity_code"),
    Column("region"),
    Column("connection"),
    Column("correlation_id"),
    Column("amount", MONEY),
    Column("currency"),
    Column("occurrences", INTEGER),
    Column("first_seen", TIMESTAMP),
    Column("last_seen", TIMESTAMP),
    Column("due_at", TIMESTAMP),
    Column("escalated_at", TIMESTAMP),
    Column("resolved_at", TIMESTAMP),
    Column("changed_at", TIMESTAMP),
)


def exceptions(since: dt.datetime | None) -> Iterator[Row]:
    from django.db.models import Q

    records = IntegrationException.objects.select_related("queue", "connection", "run")
    if since is not None:
        records = records.filter(
            Q(last_seen__gte=since) | Q(escalated_at__gte=since) | Q(resolved_at__gte=since)
        )
    for exc in records.order_by("pk").iterator(chunk_size=500):
        changed = max(t for t in (exc.last_seen, exc.escalated_at, exc.resolved_at) if t)
        yield Row(
            changed,
            exc.pk,
            {
                "exception_id": exc.pk,
                "code": exc.code,
                "category": exc.category,
                "status": exc.status,
                "queue": exc.queue.name if exc.queue_id else None,
                "title": exc.title,
                "entity_type": exc.entity_type,
                "entity_ref": exc.entity_ref,
                "legal_entity_code": exc.legal_entity_code,
                "region": exc.region,
                "connection": exc.connection.name if exc.connection_id else None,
                "correlation_id": exc.run.correlation_id if exc.run_id else None,
                "amount": exc.amount,
                "currency": exc.currency,
                "occurrences": exc.occurrences,
                "first_seen": exc.first_seen,
                "last_seen": exc.last_seen,
                "due_at": exc.due_at,
                "escalated_at": exc.escalated_at,
                "resolved_at": exc.resolved_at,
                "changed_at": changed,
            },
        )


DATASETS: dict[str, Dataset] = {
    "customers": Dataset("customers", CUSTOMER_COLUMNS, customers),
    "projects": Dataset("projects", PROJECT_COLUMNS, projects),
    "time_entries": Dataset("time_entries", TIME_ENTRY_COLUMNS, time_entries),
    "invoices": Dataset("invoices", INVOICE_COLUMNS, invoices),
    "exceptions": Dataset("exceptions", EXCEPTION_COLUMNS, exceptions),
}


def changed_rows(
    key: str,
    after: tuple[dt.datetime, int] | None,
    until: dt.datetime | None = None,
) -> list[Row]:
    """Rows of dataset `key` changed after the watermark `after` (change time, record id) and
    at or before `until`, ordered by (change time, record id)."""
    dataset = DATASETS[key]
    since = after[0] if after else None
    rows = [
        row
        for row in dataset.rows(since)
        if (after is None or row.position > after) and (until is None or row.changed_at <= until)
    ]
    rows.sort(key=lambda r: r.position)  # stable: a record's rows keep their order
    return rows
