"""The business-transaction trace: everything that happened to one deal (or project, or
invoice) across CRM, PSA and ERP, in time order — every run's steps and API calls, every
exception, every human action, the business timestamps — and what is expected next."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Q

from console.models import AuditEvent
from exceptions.models import IntegrationException
from integrations.choices import StepStatus
from integrations.models import BusinessTimestamp, Expectation, SyncRun, SyncStep
from integrations.telemetry import calls_of_runs
from integrations.workflows.registry import WORKFLOWS


@dataclass
class Entry:
    at: dt.datetime
    kind: str  # step | call | exception | action | milestone
    title: str
    detail: str = ""
    status: str = ""
    url: str = ""


@dataclass
class Trace:
    business_key: str
    runs: list[SyncRun]
    entries: list[Entry]
    expectations: list[Expectation]
    expected_next: list[str] = field(default_factory=list)

    @property
    def stuck(self) -> list[Expectation]:
        return [e for e in self.expectations if e.stuck_at and not e.met_at]


def build_trace(business_key: str, *, max_calls: int = 500) -> Trace:
    runs = list(
        SyncRun.objects.filter(
            Q(business_key=business_key) | Q(correlation_id=business_key)
        ).order_by("created_at")
    )
    run_ids = [r.pk for r in runs]
    correlations = [r.correlation_id for r in runs]
    entries: list[Entry] = []
    steps = SyncStep.objects.filter(run_id__in=run_ids).select_related("run")
    for step in steps:
        if step.started_at is None:
            continue
        entries.append(
            Entry(
                at=step.finished_at or step.started_at,
                kind="step",
                title=f"{step.run.workflow}: {step.name}",
                detail=(step.error or {}).get("message", ""),
                status=step.status,
                url=f"/runs/{step.run_id}/",
            )
        )
    calls = calls_of_runs(run_ids).select_related("connection").order_by("started_at")[:max_calls]
    for call in calls:
        entries.append(
            Entry(
                at=call.started_at,
                kind="call",
                title=f"{call.connection.name}: {call.method} {call.path}",
                detail=f"{call.operation} · {call.latency_ms:.0f} ms"
                + (f" · {call.attempts} attempts" if call.attempts > 1 else "")
                + (f" · shared by {call.runs_served} runs" if call.runs_served > 1 else ""),
                status=str(call.status_code or call.error_kind or ""),
            )
        )
    exceptions = IntegrationException.objects.filter(
        Q(run_id__in=run_ids)
        | Q(entity_type="transaction", entity_ref__in=[business_key, *correlations])
    ).select_related("queue")
    for exc in exceptions:
        entries.append(
            Entry(
                at=exc.first_seen,
                kind="exception",
                title=f"#{exc.pk} {exc.title}",
                detail=f"{exc.queue} · {exc.occurrences} occurrence(s)",
                status=exc.status,
                url=exc.get_absolute_url(),
            )
        )
    actions = AuditEvent.objects.filter(correlation_id__in=[business_key, *correlations])
    for event in actions:
        entries.append(
            Entry(at=event.at, kind="action", title=event.summary, detail=event.actor_label)
        )
    for stamp in BusinessTimestamp.objects.filter(business_key=business_key):
        entries.append(
            Entry(
                at=stamp.at,
                kind="milestone",
                title=stamp.name.replace("_", " ").capitalize(),
                detail=stamp.source,
            )
        )
    entries.sort(key=lambda e: e.at)
    return Trace(
        business_key=business_key,
        runs=runs,
        entries=entries,
        expectations=list(
            Expectation.objects.filter(business_key__in=[business_key, *correlations])
        ),
        expected_next=_expected_next(runs),
    )


def _expected_next(runs: list[SyncRun]) -> list[str]:
    """For each unfinished run, the first step that has not succeeded."""
    pending: list[str] = []
    done: dict[int, set[str]] = {}
    for step in SyncStep.objects.filter(run__in=runs, status=StepStatus.SUCCEEDED):
        done.setdefault(step.run_id, set()).add(step.name)
    for run in runs:
        workflow: Any = WORKFLOWS.get(run.workflow)
        if workflow is None or run.status == "succeeded":
            continue
        for name in workflow.step_names():
            if name not in done.get(run.pk, set()):
                pending.append(f"{workflow.title}: {name}")
                break
    return pending
