"""Open, group and resolve exceptions: the only code that writes IntegrationException rows."""

from __future__ import annotations

import hashlib
import logging

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from console import audit
from console.models import User
from integrations.models import Connection, SyncRun, SyncStep
from integrations.workflows.failures import StepFailure

from . import ignoring, incidents, sla
from .choices import ExceptionStatus
from .classification import classify
from .models import IntegrationException
from .money import money_of
from .rules import Facts, place

logger = logging.getLogger(__name__)


def fingerprint(*parts: str) -> str:
    """Versioned identity of "the same failure for the same thing"."""
    raw = "|".join([f"v{IntegrationException.FINGERPRINT_VERSION}", *parts])
    return hashlib.sha256(raw.encode()).hexdigest()[:40]


@transaction.atomic
def open_exception(
    failure: StepFailure,
    *,
    run: SyncRun | None = None,
    step: SyncStep | None = None,
    key: tuple[str, ...] = (),
    region: str = "",
    legal_entity_code: str = "",
) -> IntegrationException:
    """Record a failure: a new exception, or one more occurrence of the open one."""
    result = classify(failure)
    region = run.region if run is not None else region
    legal_entity_code = run.legal_entity_code if run is not None else legal_entity_code
    print_ = fingerprint(result.code, failure.entity_type, failure.entity_ref, *key)
    now = timezone.now()
    existing = (
        IntegrationException.objects.select_for_update(of=("self",))
        .filter(fingerprint=print_)
        .exclude(status=ExceptionStatus.RESOLVED)
        .first()
    )
    if existing is not None:
        IntegrationException.objects.filter(pk=existing.pk).update(
            occurrences=F("occurrences") + 1,
            last_seen=now,
            # open again, unless ignored for good or for now (exceptions.ignoring)
            **ignoring.fields_after_repeat(existing, now),
            explanation=result.explanation,
            vendor_error=failure.vendor_error or {"details": failure.details},
            payload=failure.payload,
            step=step,
        )
        existing.refresh_from_db()
        # the repeat keeps its incident alive (last seen), or joins the cause's open one
        incident = incidents.incident_for(existing, failure, step=step, now=now)
        if incident is not None and existing.incident_id != incident.pk:
            existing.incident = incident
            existing.save(update_fields=["incident"])
        return existing
    connection = (
        Connection.objects.filter(pk=failure.connection_id).first()
        if failure.connection_id
        else None
    )
    amount, currency = money_of(failure, run)
    queue, rule = place(
        Facts(
            code=result.code,
            category=result.category,
            entity_type=failure.entity_type,
            legal_entity_code=legal_entity_code,
            region=region,
            connection_id=connection.pk if connection is not None else None,
            owner=result.owner,
            amount=amount,
        )
    )
    exc = IntegrationException.objects.create(
        queue=queue,
        routed_by=rule,
        code=result.code,
        category=result.category,
        title=result.title,
        explanation=result.explanation,
        suggested_fix=result.suggested_fix,
        run=run,
        step=step,
        connection=connection,
        entity_type=failure.entity_type,
        entity_ref=failure.entity_ref[:120],
        legal_entity_code=legal_entity_code,
        region=region,
        payload=failure.payload,
        vendor_error=failure.vendor_error or {"details": failure.details},
        fingerprint=print_,
        first_seen=now,
        last_seen=now,
        amount=amount,
        currency=currency,
        due_at=sla.due_at(queue, now),
    )
    audit.record(
        "exception.opened",
        f"Exception #{exc.pk} opened in {exc.queue}: {exc.title}",
        obj=exc,
        correlation_id=run.correlation_id if run is not None else "",
        code=exc.code,
        routed_by=f"{rule.name} (version {rule.version})" if rule is not None else None,
    )
    logger.info("exception %s opened in %s: %s", exc.pk, exc.queue, exc.code)
    # the second level of grouping: the open incident of its root cause, if it has one
    exc.incident = incidents.incident_for(exc, failure, step=step, now=now)
    if exc.incident is not None:
        exc.save(update_fields=["incident"])
    return exc


@transaction.atomic
def resolve(
    exceptions: list[IntegrationException], *, reason: str, actor: User | None = None
) -> int:
    """Mark exceptions resolved, with the reason, and audit each."""
    now = timezone.now()
    count = 0
    touched_incidents: set[int] = set()
    for exc in exceptions:
        if exc.status == ExceptionStatus.RESOLVED:
            continue
        exc.status = ExceptionStatus.RESOLVED
        exc.resolved_at = now
        exc.resolved_by = actor if actor is not None and actor.is_authenticated else None
        exc.resolution = reason[:300]
        exc.save(update_fields=["status", "resolved_at", "resolved_by", "resolution"])
        audit.record(
            "exception.resolved",
            f"Exception #{exc.pk} resolved: {reason}",
            actor=actor,
            obj=exc,
            correlation_id=exc.run.correlation_id if exc.run_id else "",
        )
        count += 1
        if exc.incident_id:
            touched_incidents.add(exc.incident_id)
    # an incident whose every exception is now resolved resolves too (and says why)
    incidents.resolve_cleared(touched_incidents, now=now)
    return count


def unresolved_for_run(run: SyncRun) -> list[IntegrationException]:
    return unresolved_for_runs([run])


def unresolved_for_runs(runs: list[SyncRun]) -> list[IntegrationException]:
    return list(
        IntegrationException.objects.filter(run__in=runs)
        .exclude(status=ExceptionStatus.RESOLVED)
        .select_related("run")
    )
