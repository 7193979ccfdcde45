"""Console pages of the integrations app: the runs list, one run's timeline (the business
transaction step by step, with its API calls, exceptions and audit trail) and the connections
with their health at a glance."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from django import forms
from django.contrib.auth.mixins import LoginRequiredMixin
from django.db.models import F, Max, Prefetch, QuerySet
from django.db.models.expressions import Window
from django.db.models.functions import RowNumber
from django.views.generic import DetailView, ListView

from console.models import AuditEvent

from .choices import StepStatus
from .filtersets import ConnectionFilterSet, SyncRunFilterSet
from .models import ApiCall, Connection, SyncRun, SyncStep
from .workflows.registry import get_workflow

#: How many of a connection's latest calls its error rate is computed over.
ERROR_RATE_WINDOW = 100
#: How many entries of a step's output the timeline shows, and how long each value may be.
SUMMARY_ITEMS = 8
SUMMARY_VALUE_CHARS = 120


def summarize(data: Any) -> list[tuple[str, str]]:
    """A short, readable view of a step's JSON output: (key, value) pairs, values clipped."""
    if not data:
        return []
    if not isinstance(data, dict):
        data = {"value": data}
    pairs: list[tuple[str, str]] = []
    for key, value in list(data.items())[:SUMMARY_ITEMS]:
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        if len(text) > SUMMARY_VALUE_CHARS:
            text = text[: SUMMARY_VALUE_CHARS - 1] + "…"
        pairs.append((str(key), text))
    if len(data) > SUMMARY_ITEMS:
        pairs.append(("…", f"{len(data) - SUMMARY_ITEMS} more"))
    return pairs


#: Multiple-choice filters with at most this many options render as checkboxes.
CHECKBOX_CHOICES = 6
ANY_YES_NO = [("", "Any"), ("true", "Yes"), ("false", "No")]


def tidy_filter_form(form: forms.Form, labels: dict[str, str] | None = None) -> forms.Form:
    """Make a FilterSet's generated form pleasant on a page: Any/Yes/No instead of
    Unknown/Yes/No, checkboxes for short multiple choices, date-time pickers, clearer labels."""
    for name, form_field in form.fields.items():
        widget = form_field.widget
        if isinstance(widget, forms.NullBooleanSelect):
            form_field.widget = forms.Select(choices=ANY_YES_NO)
        elif isinstance(widget, forms.SelectMultiple) and not isinstance(
            widget, forms.CheckboxSelectMultiple
        ):
            if len(getattr(form_field, "choices", ())) <= CHECKBOX_CHOICES:
                form_field.widget = forms.CheckboxSelectMultiple(choices=form_field.choices)
            else:
                widget.attrs.setdefault("size", 5)
        elif isinstance(form_field, forms.DateTimeField):
            form_field.widget = forms.DateTimeInput(attrs={"type": "datetime-local"})
        if labels and name in labels:
            form_field.label = labels[name]
    return form


def _seconds(start: Any, end: Any) -> float | None:
    if start and end:
        return (end - start).total_seconds()
    return None


class RunListView(LoginRequiredMixin, ListView):
    """Sync runs, newest first, filtered by SyncRunFilterSet."""

    model = SyncRun
    template_name = "integrations/run_list.html"
    context_object_name = "runs"
    paginate_by = 50

    def get_queryset(self) -> QuerySet[SyncRun]:
        queryset = SyncRun.objects.select_related("source_connection")
        self.filterset = SyncRunFilterSet(self.request.GET or None, queryset=queryset)
        # Before validation: bound fields copy their labels when first built.
        tidy_filter_form(
            self.filterset.form,
            {"created_after": "Created from", "created_before": "Created before"},
        )
        if self.filterset.is_bound and not self.filterset.is_valid():
            return queryset.none()
        return self.filterset.qs

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["filter_form"] = self.filterset.form
        return context


@dataclass
class TimelineStep:
    """One row of the timeline: a recorded step, or a planned step not reached yet."""

    name: str
    position: int
    record: SyncStep | None = None
    calls: list[ApiCall] = field(default_factory=list)
    is_next: bool = False

    @property
    def status(self) -> str:
        return self.record.status if self.record else "not_started"

    @property
    def status_label(self) -> str:
        return self.record.get_status_display() if self.record else "Not started"

    @property
    def duration_seconds(self) -> float | None:
        return _seconds(self.record.started_at, self.record.finished_at) if self.record else None

    @property
    def output_summary(self) -> list[tuple[str, str]]:
        return summarize(self.record.output) if self.record else []

    @property
    def error_message(self) -> str:
        if self.record and self.record.error:
            return str(self.record.error.get("message") or self.record.error)
        return ""

    @property
    def error_code(self) -> str:
        if self.record and self.record.error:
            return str(self.record.error.get("code", ""))
        return ""


def build_timeline(run: SyncRun) -> list[TimelineStep]:
    """The run's steps in order (recorded ones, then planned ones not reached yet), the calls
    of each nested under it, and the step expected next (first not succeeded) marked."""
    records = list(run.steps.all())
    shared: dict[str, list[ApiCall]] = {}
    keys = [s.batch_key for s in records if s.batch_key]
    if keys:  # bulk calls the step made for its whole batch of runs
        for call in (
            ApiCall.objects.filter(batch_key__in=keys)
            .select_related("connection")
            .order_by("started_at", "id")
        ):
            shared.setdefault(call.batch_key, []).append(call)
    steps = [
        TimelineStep(
            name=s.name,
            position=s.position,
            record=s,
            calls=sorted(
                [*s.calls.all(), *shared.get(s.batch_key, [])],
                key=lambda c: (c.started_at, c.pk),
            ),
        )
        for s in records
    ]
    try:
        planned = get_workflow(run.workflow).step_names()
    except LookupError:
        planned = []
    recorded = {s.name for s in steps}
    offset = len(steps)
    for i, name in enumerate(n for n in planned if n not in recorded):
        steps.append(TimelineStep(name=name, position=offset + i))
    for step in steps:
        if step.status != StepStatus.SUCCEEDED:
            step.is_next = True
            break
    return steps


class RunDetailView(LoginRequiredMixin, DetailView):
    """One business transaction's timeline."""

    model = SyncRun
    template_name = "integrations/run_detail.html"
    context_object_name = "run"

    def get_queryset(self) -> QuerySet[SyncRun]:
        calls = ApiCall.objects.select_related("connection").order_by("started_at", "id")
        return SyncRun.objects.select_related("source_connection").prefetch_related(
            Prefetch("steps", queryset=SyncStep.objects.prefetch_related(Prefetch("calls", calls)))
        )

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        run: SyncRun = self.object
        try:
            workflow_title = get_workflow(run.workflow).title
        except LookupError:
            workflow_title = run.workflow
        context.update(
            workflow_title=workflow_title,
            timeline=build_timeline(run),
            unattached_calls=list(
                ApiCall.objects.filter(run=run, step__isnull=True)
                .select_related("connection")
                .order_by("started_at", "id")
            ),
            run_exceptions=list(run.exceptions.select_related("queue").order_by("-last_seen")),
            audit_events=list(
                AuditEvent.objects.filter(correlation_id=run.correlation_id)
                .select_related("actor")
                .order_by("at", "id")
            ),
        )
        return context


def error_rates(connection_ids: list[int]) -> dict[int, tuple[int, int]]:
    """(failed, total) over each connection's latest ERROR_RATE_WINDOW calls, in one query."""
    ranked = (
        ApiCall.objects.filter(connection_id__in=connection_ids)
        .annotate(
            rank=Window(
                RowNumber(),
                partition_by=[F("connection_id")],
                order_by=[F("started_at").desc(), F("id").desc()],
            )
        )
        .filter(rank__lte=ERROR_RATE_WINDOW)
        .values_list("connection_id", "error_kind")
    )
    rates: dict[int, tuple[int, int]] = {}
    for connection_id, error_kind in ranked:
        failed, total = rates.get(connection_id, (0, 0))
        rates[connection_id] = (failed + (1 if error_kind else 0), total + 1)
    return rates


class ConnectionListView(LoginRequiredMixin, ListView):
    """Connections with secret names (never values), last call and recent error rate."""

    model = Connection
    template_name = "integrations/connection_list.html"
    context_object_name = "connections"

    def get_queryset(self) -> QuerySet[Connection]:
        queryset = Connection.objects.annotate(last_call_at=Max("calls__started_at"))
        self.filterset = ConnectionFilterSet(self.request.GET or None, queryset=queryset)
        tidy_filter_form(self.filterset.form)
        if self.filterset.is_bound and not self.filterset.is_valid():
            return queryset.none()
        return self.filterset.qs

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        connections = list(context["connections"])
        rates = error_rates([c.pk for c in connections])
        for connection in connections:
            failed, total = rates.get(connection.pk, (0, 0))
            connection.recent_calls = total
            connection.recent_failed = failed
            connection.error_rate = (100.0 * failed / total) if total else None
        context.update(
            connections=connections,
            filter_form=self.filterset.form,
            error_rate_window=ERROR_RATE_WINDOW,
        )
        return context
