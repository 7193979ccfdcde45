"""Automatic resolution: an exception whose records later sync successfully is resolved by
the system, with the reason in its resolution and in the audit trail.

The receivers (exceptions.receivers) already resolve a run's exceptions when the run
succeeds, connection exceptions when a poll works again, and stuck transactions when they
reach their milestone. This module covers exceptions that belong to no run:

- `after_runs`: a run that succeeded synced its entities; an exception without a run for
  the same entity (type, id and connection) is resolved too. System-of-record violations are
  left to people (a sync does not undo the other system's change) and so are stuck
  transactions (their own receiver knows when they move).
- `after_posting`: time entries, expenses and charges that could not be posted (a posting
  batch the ERP refused in part, or a project's entries the posting policy held back) are
  resolved when every entry they list has reached the ERP, in this batch or an earlier one.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable

from django.db.models import Q

from integrations.models import PostingBatch, SyncRun

from . import services
from .choices import ExceptionCode, ExceptionStatus
from .models import IntegrationException

logger = logging.getLogger(__name__)

#: codes a successful sync of the same entity does not settle
NOT_SETTLED_BY_SYNC = (ExceptionCode.SYSTEM_OF_RECORD_VIOLATION, ExceptionCode.TRANSACTION_STUCK)

#: posting record types that share one id space in the PSA (time entries; expenses, of which
#: a subcontractor's charge is one), and the batch key prefix of each space
ID_SPACES = {"timeBill": "time", "expenseReport": "expense", "vendorBill": "expense"}
KEY_PREFIXES = {"time": "time", "expense": "expense", "charge": "expense"}
POSTING_ENTITIES = ("posting_batch", "project")
#: the codes postings that could not be made are classified as (exceptions.classification)
POSTING_CODES = (ExceptionCode.POSTING_REFUSED_BY_ERP, ExceptionCode.TIME_ENTRY_NOT_POSTABLE)


def after_runs(runs: Iterable[SyncRun]) -> int:
    """Resolve run-less exceptions about the entities these succeeded runs synced."""
    runs = list(runs)
    entities = set(
        IntegrationException.objects.filter(run__in=runs)
        .exclude(entity_type="")
        .values_list("entity_type", "entity_ref", "connection_id")
    )
    if not entities:
        return 0
    same = Q(pk__in=[])
    for entity_type, entity_ref, connection_id in entities:
        same |= Q(entity_type=entity_type, entity_ref=entity_ref, connection_id=connection_id)
    stale = list(
        IntegrationException.objects.filter(same, run__isnull=True)
        .exclude(status=ExceptionStatus.RESOLVED)
        .exclude(code__in=NOT_SETTLED_BY_SYNC)
        .select_related("run")
    )
    if not stale:
        return 0
    return services.resolve(
        stale, reason="Its record synced successfully in a later run: resolved automatically."
    )


def after_posting(batch: PostingBatch, entry_ids: Iterable[str]) -> int:
    """Resolve the posting exceptions whose every listed entry has now reached the ERP."""
    space = ID_SPACES.get(batch.record_type)
    posted = {str(i) for i in entry_ids}
    if space is None or not posted:
        return 0
    candidates = (
        IntegrationException.objects.filter(
            code__in=POSTING_CODES,  # indexed: the unresolved postings, not every exception
            run__isnull=True,
            entity_type__in=POSTING_ENTITIES,
            connection_id__in=[batch.psa_id, batch.erp_id],
        )
        .exclude(status=ExceptionStatus.RESOLVED)
        .select_related("run")
    )
    settled: list[IntegrationException] = []
    waiting: list[tuple[IntegrationException, set[str]]] = []
    for exc in candidates:
        entries = _entries(exc)
        if not entries or _space(exc) != space or not entries & posted:
            continue
        missing = entries - posted
        if missing:
            waiting.append((exc, missing))
        else:
            settled.append(exc)
    if waiting:  # the rest may have posted in earlier batches
        earlier = _posted_since(batch, space, min(exc.first_seen for exc, _ in waiting))
        settled += [exc for exc, missing in waiting if not missing - earlier]
    if not settled:
        return 0
    count = services.resolve(
        settled,
        reason=f"Its entries have all been posted to {batch.erp.name}: resolved automatically.",
    )
    logger.info("posting batch %s settled %d exceptions", batch.pk, count)
    return count


def _details(exc: IntegrationException) -> dict:
    details = exc.vendor_error.get("details") if isinstance(exc.vendor_error, dict) else None
    return details if isinstance(details, dict) else {}


def _entries(exc: IntegrationException) -> set[str]:
    entries = _details(exc).get("entries")
    return {str(e) for e in entries} if isinstance(entries, list) else set()


def _space(exc: IntegrationException) -> str | None:
    """The PSA id space of an exception's entries (time or expense); None when unknown (an
    assignment's exception lists assignments, not postable entries)."""
    record_type = _details(exc).get("record_type")
    if record_type:
        return ID_SPACES.get(str(record_type))
    if exc.entity_type == "posting_batch":
        return KEY_PREFIXES.get(exc.entity_ref.split(":", 1)[0])
    return None


def _posted_since(batch: PostingBatch, space: str, since: dt.datetime) -> set[str]:
    """Entries of the same PSA and id space posted by other batches created since `since`."""
    types = [t for t, s in ID_SPACES.items() if s == space]
    posted: set[str] = set()
    rows = (
        PostingBatch.objects.filter(
            psa_id=batch.psa_id,
            record_type__in=types,
            status__in=[PostingBatch.Status.POSTED, PostingBatch.Status.PARTIAL],
            created_at__gte=since,
        )
        .exclude(pk=batch.pk)
        .values_list("entries", flat=True)
        .iterator()
    )
    for entries in rows:
        posted.update(str(i["entry"]["source_id"]) for i in entries if i.get("erp_id"))
    return posted
