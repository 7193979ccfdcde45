"""The silent-failure audit (DESIGN principle 5, "nothing fails silently"): every source event
Throughline received in the window ended either applied or as an exception.

The source events, as Throughline keeps them:
- inbound events it accepted (vendor webhooks, iPaaS flows, in-house apps:
  integrations.InboundEvent), each with the run it started; a `milestone.completed` fans out,
  so its run is found by its correlation id;
- milestones the PSA's change feed reported (the `milestone.completed` messages to the
  milestone-billing subscriber, integrations.psa_feed), each with its billing run;
- changes a poll found (runs started by a poll: closed-won deals, approved amendments);
- approved time and expense entries read from the PSA, posted in batches
  (integrations.PostingBatch).
Rejected inbound events are counted apart: the sender was told, and nothing was started.

Each event ends:
- applied: its run succeeded, or the milestone its run was expected to reach was met (a
  milestone not to invoice needs no run; a posting batch posted in full);
- as an exception: an exception (open or since resolved) names its run, its transaction (a
  stuck one) or its posting batch;
- in flight: neither yet, but received less than the grace period ago (or its run has an
  expectation not yet due, which the stuck-transaction check will report if missed);
- silent: none of these. Each is a finding (what, why); a finding of silent events opens one
  exception for IT (a repeat audit adds an occurrence to the open one, never a second).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from django.conf import settings
from django.utils import timezone

from exceptions.choices import ExceptionStatus
from exceptions.models import IntegrationException
from integrations.choices import RunStatus, Trigger
from integrations.models import (
    Connection,
    Expectation,
    InboundEvent,
    OutboxMessage,
    PostingBatch,
    SyncRun,
)
from integrations.workflows.failures import StepFailure

from .models import SilentFailureAudit

logger = logging.getLogger(__name__)

TASK = "reconciliation.silent_failure_audit"
#: the failure code of the exception a finding opens (exceptions.classification)
FAILURE_CODE = "silent_failure"
#: the subject of that exception (one open at a time: its fingerprint)
ENTITY_TYPE = "events"
ENTITY_REF = "ended silently"
#: the subscriber that turns a completed milestone into its billing run
MILESTONE_TOPIC = "milestone.completed"
MILESTONE_SUBSCRIBER = "integrations.start_milestone_billing"
MILESTONE_WORKFLOW = "release_milestone_billing"
FINDINGS_KEPT = 200
#: findings copied into the exception's payload
FINDINGS_IN_EXCEPTION = 20
CHUNK = 500

APPLIED = "applied"
AS_EXCEPTION = "as_exception"
IN_FLIGHT = "in_flight"
SILENT = "silent"


def window_seconds() -> int:
    return int(getattr(settings, "SILENT_AUDIT_WINDOW_SECONDS", 86400))


def grace_seconds() -> int:
    return int(getattr(settings, "SILENT_AUDIT_GRACE_SECONDS", 900))


@dataclass
class Event:
    """One source event and where to look for its outcome."""

    event: str
    source: str
    event_type: str
    received_at: dt.datetime
    run_id: int | None = None
    #: the run's correlation id, when the event does not hold the run (a fan-out)
    correlation: str = ""
    #: a posting batch: its key and status
    batch_key: str = ""
    batch_status: str = ""
    #: decided without a run (a milestone not to invoice)
    settled: str = ""


@dataclass(frozen=True)
class Verdict:
    outcome: str
    why: str = ""


@dataclass
class Evidence:
    """What the events' outcomes are read from, loaded in bulk."""

    runs: dict[int, SyncRun]
    runs_by_correlation: dict[str, SyncRun]
    #: ids of runs an exception names
    excepted_runs: set[int]
    #: (entity type, entity ref) an exception names
    excepted_entities: set[tuple[str, str]]
    #: correlation id -> (met, due_at) of its expectations
    expectations: dict[str, list[tuple[bool, dt.datetime]]]


# -- the events ---------------------------------------------------------------------------


def _chunks(values: Iterable[object]) -> Iterator[list[object]]:
    items = list(values)
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def inbound_events(start: dt.datetime, end: dt.datetime) -> tuple[list[Event], int]:
    """The accepted inbound events of the window, and how many were rejected."""
    window = InboundEvent.objects.filter(received_at__gte=start, received_at__lt=end)
    rejected = window.filter(status=InboundEvent.Status.REJECTED).count()
    events = []
    rows = window.filter(status=InboundEvent.Status.ACCEPTED).values_list(
        "pk", "source", "event_type", "received_at", "run_id", "payload"
    )
    for pk, source, event_type, received_at, run_id, payload in rows.iterator():
        correlation = ""
        if run_id is None and event_type == MILESTONE_TOPIC and isinstance(payload, dict):
            correlation = f"milestone:{payload.get('psa_connection')}:{payload.get('story_id')}"
        events.append(
            Event(
                event=f"inbound event #{pk}",
                source=source,
                event_type=event_type,
                received_at=received_at,
                run_id=run_id,
                correlation=correlation,
            )
        )
    return events, rejected


def feed_milestones(start: dt.datetime, end: dt.datetime) -> list[Event]:
    """Milestones the PSA change feed reported (an inbound event's are counted with it)."""
    messages = OutboxMessage.objects.filter(
        topic=MILESTONE_TOPIC,
        task=MILESTONE_SUBSCRIBER,
        created_at__gte=start,
        created_at__lt=end,
    ).values_list("pk", "args", "created_at")
    names = dict(Connection.objects.values_list("pk", "name"))
    events = []
    for pk, args, created_at in messages.iterator():
        payload = args[0] if isinstance(args, list) and args and isinstance(args[0], dict) else {}
        if str(payload.get("event_id", "")).startswith("api:"):
            continue  # published by an inbound event, which is judged itself
        psa, story = payload.get("psa_connection"), payload.get("story_id")
        events.append(
            Event(
                event=f"milestone {story} (message #{pk})",
                source=f"{names.get(psa, f'connection {psa}')} change feed",
                event_type=MILESTONE_TOPIC,
                received_at=created_at,
                correlation=f"milestone:{psa}:{story}",
                # a milestone of a time-and-materials plan marks progress: nothing to invoice
                settled=APPLIED if payload.get("billable") is False else "",
            )
        )
    return events


def polled_changes(start: dt.datetime, end: dt.datetime) -> list[Event]:
    """The changes polls found: each started its run."""
    names = dict(Connection.objects.values_list("pk", "name"))
    runs = SyncRun.objects.filter(
        trigger=Trigger.POLL, created_at__gte=start, created_at__lt=end
    ).values_list("pk", "workflow", "correlation_id", "source_connection_id", "created_at")
    return [
        Event(
            event=correlation,
            source=f"poll of {names.get(conn, 'a connection')}",
            event_type=workflow,
            received_at=created_at,
            run_id=pk,
        )
        for pk, workflow, correlation, conn, created_at in runs.iterator()
    ]


def posting_batches(start: dt.datetime, end: dt.datetime) -> list[Event]:
    """Approved PSA entries read for posting, one event per batch."""
    names = dict(Connection.objects.values_list("pk", "name"))
    batches = PostingBatch.objects.filter(created_at__gte=start, created_at__lt=end).values_list(
        "key", "psa_id", "record_type", "status", "created_at"
    )
    return [
        Event(
            event=f"posting batch {key}",
            source=names.get(psa, f"connection {psa}"),
            event_type=f"{record_type} posting",
            received_at=created_at,
            batch_key=key,
            batch_status=status,
        )
        for key, psa, record_type, status, created_at in batches.iterator()
    ]


# -- their outcomes -----------------------------------------------------------------------


def gather_evidence(events: list[Event]) -> Evidence:
    runs: dict[int, SyncRun] = {}
    fields = ("pk", "status", "correlation_id", "business_key", "workflow")
    for chunk in _chunks({e.run_id for e in events if e.run_id is not None}):
        runs.update({run.pk: run for run in SyncRun.objects.filter(pk__in=chunk).only(*fields)})
    by_correlation: dict[str, SyncRun] = {}
    wanted = {e.correlation for e in events if e.run_id is None and e.correlation}
    for chunk in _chunks(wanted):
        found = SyncRun.objects.filter(workflow=MILESTONE_WORKFLOW, correlation_id__in=chunk)
        by_correlation.update({run.correlation_id: run for run in found.only(*fields)})
    every_run = [*runs.values(), *by_correlation.values()]
    excepted_runs: set[int] = set()
    for chunk in _chunks({run.pk for run in every_run}):
        excepted_runs.update(
            IntegrationException.objects.filter(run_id__in=chunk).values_list("run_id", flat=True)
        )
    transactions = {run.correlation_id for run in every_run} | {
        run.business_key for run in every_run if run.business_key
    }
    excepted: set[tuple[str, str]] = set()
    for entity_type, refs in (
        ("transaction", transactions),
        ("posting_batch", {e.batch_key[:120] for e in events if e.batch_key}),
    ):
        for chunk in _chunks(refs):
            excepted.update(
                IntegrationException.objects.filter(
                    entity_type=entity_type, entity_ref__in=chunk
                ).values_list("entity_type", "entity_ref")
            )
    expectations: dict[str, list[tuple[bool, dt.datetime]]] = {}
    for chunk in _chunks({run.correlation_id for run in every_run}):
        rows = Expectation.objects.filter(business_key__in=chunk).values_list(
            "business_key", "met_at", "due_at"
        )
        for key, met_at, due_at in rows:
            expectations.setdefault(key, []).append((met_at is not None, due_at))
    return Evidence(runs, by_correlation, excepted_runs, excepted, expectations)


def judge(event: Event, evidence: Evidence, now: dt.datetime, grace: dt.timedelta) -> Verdict:
    """How the event ended (see the module doc)."""
    if event.settled:
        return Verdict(event.settled)
    age = now - event.received_at
    young = age < grace
    minutes = int(age.total_seconds() // 60)
    if event.batch_key:
        return _judge_batch(event, evidence, young, minutes)
    run = (
        evidence.runs.get(event.run_id)
        if event.run_id is not None
        else evidence.runs_by_correlation.get(event.correlation)
    )
    if run is None:
        if young:
            return Verdict(IN_FLIGHT)
        return Verdict(SILENT, f"no run was started for it in {minutes} min")
    expected = evidence.expectations.get(run.correlation_id, [])
    if run.status == RunStatus.SUCCEEDED or any(met for met, _due in expected):
        return Verdict(APPLIED)
    if (
        run.pk in evidence.excepted_runs
        or ("transaction", run.correlation_id) in evidence.excepted_entities
        or ("transaction", run.business_key) in evidence.excepted_entities
    ):
        return Verdict(AS_EXCEPTION)
    if young or any(due > now for met, due in expected if not met):
        return Verdict(IN_FLIGHT)
    if run.status == RunStatus.FAILED:
        return Verdict(SILENT, f"run #{run.pk} failed and no exception was opened")
    return Verdict(
        SILENT, f"run #{run.pk} is still {run.status} {minutes} min later, with no exception"
    )


def _judge_batch(event: Event, evidence: Evidence, young: bool, minutes: int) -> Verdict:
    if event.batch_status == PostingBatch.Status.POSTED:
        return Verdict(APPLIED)
    if ("posting_batch", event.batch_key[:120]) in evidence.excepted_entities:
        return Verdict(AS_EXCEPTION)
    if young:
        return Verdict(IN_FLIGHT)
    if event.batch_status == PostingBatch.Status.PENDING:
        return Verdict(SILENT, f"the batch is not posted {minutes} min later, with no exception")
    label = PostingBatch.Status(event.batch_status).label.lower()
    return Verdict(SILENT, f"the batch {label} and no exception was opened")


# -- the audit ----------------------------------------------------------------------------


def run_audit(now: dt.datetime | None = None) -> SilentFailureAudit:
    """Audit the window ending now; store the result; open (or repeat) the exception for IT
    when events went silent."""
    now = now or timezone.now()
    start = now - dt.timedelta(seconds=window_seconds())
    grace = dt.timedelta(seconds=grace_seconds())
    inbound, rejected = inbound_events(start, now)
    events = [
        *inbound,
        *feed_milestones(start, now),
        *polled_changes(start, now),
        *posting_batches(start, now),
    ]
    evidence = gather_evidence(events)
    counts = {APPLIED: 0, AS_EXCEPTION: 0, IN_FLIGHT: 0, SILENT: 0}
    silent: list[tuple[Event, Verdict]] = []
    for event in events:
        verdict = judge(event, evidence, now, grace)
        counts[verdict.outcome] += 1
        if verdict.outcome == SILENT:
            silent.append((event, verdict))
    silent.sort(key=lambda pair: pair[0].received_at)
    findings = [
        {
            "event": event.event,
            "source": event.source,
            "event_type": event.event_type,
            "received_at": event.received_at.isoformat(),
            "why": verdict.why,
        }
        for event, verdict in silent[:FINDINGS_KEPT]
    ]
    audit = SilentFailureAudit.objects.create(
        window_start=start,
        window_end=now,
        events=len(events) + rejected,
        applied=counts[APPLIED],
        as_exception=counts[AS_EXCEPTION],
        in_flight=counts[IN_FLIGHT],
        rejected=rejected,
        silent=counts[SILENT],
        findings=findings,
    )
    if silent:
        _open_exception(audit)
        logger.warning(
            "silent-failure audit: %d of %d events went silent", len(silent), len(events)
        )
    return audit


def _open_exception(audit: SilentFailureAudit) -> IntegrationException:
    from exceptions import services

    first = audit.findings[0]
    failure = StepFailure(
        kind="internal",
        code=FAILURE_CODE,
        message=(
            f"The audit of {audit.checked_at:%Y-%m-%d %H:%M} UTC found {audit.silent} of "
            f"{audit.events} events received since {audit.window_start:%Y-%m-%d %H:%M} UTC "
            f"silent. First: {first['event']} from {first['source']}, {first['why']}. "
            f"All findings: /api/v1/silent-failure-audits/{audit.pk}/"
        ),
        entity_type=ENTITY_TYPE,
        entity_ref=ENTITY_REF,
        details={"audit": audit.pk, "silent": audit.silent, "events": audit.events},
        payload={"audit": audit.pk, "findings": audit.findings[:FINDINGS_IN_EXCEPTION]},
    )
    return services.open_exception(failure)


def open_exception() -> IntegrationException | None:
    """The open exception the audits' findings raised, if any."""
    return (
        IntegrationException.objects.filter(entity_type=ENTITY_TYPE, entity_ref=ENTITY_REF)
        .exclude(status=ExceptionStatus.RESOLVED)
        .order_by("-last_seen")
        .first()
    )


def latest() -> SilentFailureAudit | None:
    return SilentFailureAudit.objects.order_by("-checked_at", "-pk").first()


def card() -> dict[str, object]:
    """What the dashboards show of the latest audit."""
    audit = latest()
    return {
        "audit": audit,
        "exception": open_exception() if audit is not None and audit.silent else None,
        "interval_minutes": int(getattr(settings, "SILENT_AUDIT_INTERVAL_SECONDS", 900)) // 60,
        "window_hours": round(window_seconds() / 3600, 1),
        "grace_minutes": grace_seconds() // 60,
    }
