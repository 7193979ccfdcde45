"""Console pages of the SLA thresholds and their alerts:

- `/dashboards/thresholds/`: every threshold (a KPI's or a queue's), its scope, its bands, its
  current value and status, narrowed by KPI, queue, team and enabled (the API's FilterSet);
- `/dashboards/thresholds/new/`, `<id>/edit/`, `<id>/delete/`: for superusers and admins of the
  owning team (dashboards.thresholds.can_manage), checked and audited by the same service the
  API and the admin use (check_threshold, save_threshold, delete_threshold);
- `/dashboards/alerts/`: the alert history, filtered by state, KPI, queue, team and open (the
  API's FilterSet), each alert with the outcome of every notice's channel; `export/` gives the
  same rows as CSV;
- the thresholds and recent alerts block of a KPI's page (`kpi_section`).

Values and boundaries of money KPIs are shown only to finance and leadership
(dashboards.kpi_queries.can_see_money), as in the API.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from console.models import Team
from exceptions.export import file_stamp, safe_cell, streaming_csv, utc_cell
from exceptions.models import Queue

from . import kpi_queries, kpis, thresholds
from .models import KpiThreshold, MetricAlert
from .threshold_api import KpiThresholdFilterSet, MetricAlertFilterSet
from .threshold_forms import KpiThresholdForm, manageable_teams

STATE_LABELS = {
    kpis.OK: "OK",
    kpis.WARNING: "Warning",
    kpis.BREACH: "Breach",
    kpis.NO_DATA: "No data",
}
ALERTS_PER_PAGE = 50
#: alerts shown on a KPI's page
RECENT_ALERTS = 5
REFUSED = "Only superusers and admins of the owning team change its thresholds."


# -- what the pages show ------------------------------------------------------------------


@dataclass
class ThresholdRow:
    """One threshold as the pages show it."""

    threshold: KpiThreshold
    name: str
    url: str
    scope: str
    unit: str
    bands: dict[str, str]
    value: Decimal | None
    #: the value as shown ("" when none or masked)
    value_text: str
    status: str
    status_label: str
    masked: bool
    can_edit: bool


def _number(value: Decimal | None) -> str:
    return "" if value is None else format(value.normalize(), "f")


def _watched(kpi_key: str, queue: Queue | None, measure: str) -> tuple[str, str, str]:
    """(name, link, unit) of what a threshold or an alert watches."""
    if queue is not None:
        label = KpiThreshold.Measure(measure).label.lower() if measure else ""
        return f"Queue {queue.name}: {label}", queue.get_absolute_url(), "exceptions"
    kpi = kpis.BY_KEY.get(kpi_key)
    if kpi is None:
        return kpi_key or "—", "", ""
    unit = "" if kpi.unit == "count" else kpi.unit
    return kpi.name, reverse("dashboards:kpi", args=[kpi.key]), unit


def _masks(kpi_key: str, sees_money: bool) -> bool:
    kpi = kpis.BY_KEY.get(kpi_key)
    return bool(kpi is not None and kpi.is_money and not sees_money)


class _Permissions:
    """can_manage per team, asked once per team and request."""

    def __init__(self, user: Any) -> None:
        self.user = user
        self._known: dict[int | None, bool] = {}

    def __call__(self, team: Team | None) -> bool:
        key = team.pk if team is not None else None
        if key not in self._known:
            self._known[key] = thresholds.can_manage(self.user, team)
        return self._known[key]


def threshold_rows(
    found: list[KpiThreshold], user: Any, now: dt.datetime | None = None
) -> list[ThresholdRow]:
    """The thresholds with their current values (one KPI headline per KPI and scope, one
    grouped count for all queues: dashboards.thresholds.read_all)."""
    sees_money = kpi_queries.can_see_money(user)
    may = _Permissions(user)
    rows = []
    for reading in thresholds.read_all(found, now):
        threshold = reading.threshold
        name, url, unit = _watched(threshold.kpi, threshold.queue, threshold.measure)
        masked = _masks(threshold.kpi, sees_money)
        bounds = kpis.Thresholds(warning=threshold.warning, breach=threshold.breach)
        rows.append(
            ThresholdRow(
                threshold=threshold,
                name=name,
                url=url,
                scope=threshold.scope_words,
                unit=unit,
                bands={} if masked else bounds.bands(thresholds.direction_of(threshold), unit),
                value=None if masked else reading.value,
                value_text="" if masked else _number(reading.value),
                status=reading.status,
                status_label=STATE_LABELS.get(reading.status, reading.status),
                masked=masked,
                can_edit=may(threshold.team),
            )
        )
    return rows


def channel_outcomes(alert: MetricAlert) -> list[dict[str, Any]]:
    """Each notice's channel outcome, oldest first, as the alert keeps them."""
    out = []
    for entry in alert.channel_results or []:
        at = entry.get("at")
        out.append(
            {
                "event": entry.get("event", ""),
                "channel": entry.get("channel", ""),
                "target": entry.get("target", ""),
                "ok": bool(entry.get("ok")),
                "error": entry.get("error") or "",
                "at": dt.datetime.fromisoformat(at) if at else None,
            }
        )
    return out


def _scope_words(scope: dict[str, Any]) -> str:
    return ", ".join(f"{key.replace('_', ' ')} {value}" for key, value in sorted(scope.items()))


def alert_row(alert: MetricAlert, sees_money: bool) -> dict[str, Any]:
    name, url, unit = _watched(alert.kpi, alert.queue, alert.measure)
    masked = _masks(alert.kpi, sees_money)
    return {
        "alert": alert,
        "name": name,
        "url": url,
        "unit": unit,
        "scope": _scope_words(alert.scope or {}),
        "masked": masked,
        # amounts as shown ("" when masked)
        "value": "" if masked else _number(alert.value),
        "opened_value": "" if masked else _number(alert.opened_value),
        "warning": "" if masked else _number(alert.warning),
        "breach": "" if masked else _number(alert.breach),
        "channels": channel_outcomes(alert),
    }


# -- the KPI page's block ---------------------------------------------------------------------


def _may_set(user: Any, kpi: kpis.Kpi) -> bool:
    """Whether `user` administers a team that may own a threshold on this KPI (a money KPI:
    a Finance or Leadership team, as dashboards.thresholds.check_threshold requires)."""
    teams = manageable_teams(user)
    if kpi.is_money:
        teams = teams.filter(kind__in=thresholds.MONEY_TEAMS)
    return teams.exists()


def kpi_section(request: HttpRequest, kpi: kpis.Kpi) -> dict[str, Any]:
    """The thresholds set on a KPI with their current status, its recent alerts, and the
    links to change them for those allowed (dashboards.kpi_views.kpi_detail shows them)."""
    if not kpi.live:
        return {}
    found = list(
        KpiThreshold.objects.filter(kpi=kpi.key).select_related("team", "queue", "connection")
    )
    sees_money = kpi_queries.can_see_money(request.user)
    alerts = MetricAlert.objects.filter(kpi=kpi.key).select_related("team", "queue")
    query = urlencode({"kpi": kpi.key})
    return {
        "team_thresholds": threshold_rows(found, request.user),
        "recent_alerts": [alert_row(a, sees_money) for a in alerts[:RECENT_ALERTS]],
        "can_edit_thresholds": _may_set(request.user, kpi),
        "thresholds_url": reverse("dashboards:thresholds") + "?" + query,
        "new_threshold_url": reverse("dashboards:threshold-new") + "?" + query,
        "alerts_url": reverse("dashboards:alerts") + "?" + query,
    }


# -- the thresholds pages ---------------------------------------------------------------------


def _select(
    request: HttpRequest, name: str, label: str, anything: str, choices: list[tuple[str, str]]
) -> dict[str, Any]:
    """One select of a filter bar (dashboards/_threshold_filters.html): its query parameter,
    label, the option meaning "any", the choices (value, words) and the one chosen now."""
    return {
        "name": name,
        "label": label,
        "anything": anything,
        "choices": choices,
        "chosen": request.GET.get(name, ""),
    }


def _watch_filters(request: HttpRequest) -> list[dict[str, Any]]:
    """What a threshold or alert watches and who owns it: KPI, queue and team."""
    return [
        _select(request, "kpi", "KPI", "All KPIs", [(k.key, k.name) for k in kpis.KPIS if k.live]),
        _select(
            request,
            "queue",
            "Queue",
            "All queues",
            list(Queue.objects.order_by("name").values_list("slug", "name")),
        ),
        _select(
            request,
            "team",
            "Team",
            "All teams",
            list(Team.objects.order_by("name").values_list("slug", "name")),
        ),
    ]


@require_GET
@login_required
def threshold_list(request: HttpRequest) -> HttpResponse:
    """Every threshold with its bands and current status, narrowed like the API."""
    filterset = KpiThresholdFilterSet(
        request.GET or None,
        queryset=KpiThreshold.objects.select_related("team", "queue", "connection"),
    )
    found = list(filterset.qs)
    return render(
        request,
        "dashboards/thresholds.html",
        {
            "rows": threshold_rows(found, request.user),
            "filterset": filterset,
            "filters": [
                *_watch_filters(request),
                _select(
                    request,
                    "enabled",
                    "State",
                    "Enabled or not",
                    [("true", "Enabled"), ("false", "Disabled")],
                ),
            ],
            "can_add": manageable_teams(request.user).exists(),
            "new_url": reverse("dashboards:threshold-new")
            + ("?" + urlencode({"kpi": request.GET["kpi"]}) if request.GET.get("kpi") else ""),
            "api_url": reverse("dashboards:api-kpi-threshold-list")
            + ("?" + request.GET.urlencode() if request.GET else ""),
        },
    )


def _initial(request: HttpRequest) -> dict[str, Any]:
    """A new threshold's presets from the query string (`kpi` or `queue`), and the team:
    the queue's, the KPI's owner among the user's teams, or their only team."""
    teams = list(manageable_teams(request.user))
    initial: dict[str, Any] = {"enabled": True, "measure": KpiThreshold.Measure.VALUE}
    queue = Queue.objects.filter(slug=request.GET.get("queue") or "").first()
    kpi = kpis.BY_KEY.get(request.GET.get("kpi") or "")
    if queue is not None:
        initial |= {"queue": queue.pk, "measure": KpiThreshold.Measure.ACTIVE}
        if queue.team in teams:
            initial["team"] = queue.team_id
    elif kpi is not None and kpi.live:
        initial["kpi"] = kpi.key
        if kpi.thresholds is not None:
            initial |= {"warning": kpi.thresholds.warning, "breach": kpi.thresholds.breach}
        owners = [team for team in teams if team.kind == kpi.owner]
        if owners:
            initial["team"] = owners[0].pk
    if "team" not in initial and len(teams) == 1:
        initial["team"] = teams[0].pk
    return initial


def _done_url(threshold: KpiThreshold) -> str:
    query = {"kpi": threshold.kpi} if threshold.kpi else {"queue": threshold.queue.slug}
    return reverse("dashboards:thresholds") + "?" + urlencode(query)


@require_http_methods(["GET", "POST"])
@login_required
def threshold_new(request: HttpRequest) -> HttpResponse:
    """Create a threshold for a team the user administers."""
    if not manageable_teams(request.user).exists():
        raise PermissionDenied(REFUSED)
    form = KpiThresholdForm(
        request.POST or None, user=request.user, initial=None if request.POST else _initial(request)
    )
    if request.method == "POST" and form.is_valid():
        threshold = form.instance
        if not thresholds.can_manage(request.user, threshold.team):
            form.add_error("team", REFUSED)
        else:
            thresholds.save_threshold(threshold, request.user)
            messages.success(request, f"Threshold on {threshold.subject} created.")
            return HttpResponseRedirect(_done_url(threshold))
    return render(request, "dashboards/threshold_form.html", {"form": form, "threshold": None})


def _editable(request: HttpRequest, pk: int) -> KpiThreshold:
    threshold = get_object_or_404(
        KpiThreshold.objects.select_related("team", "queue", "connection"), pk=pk
    )
    if not thresholds.can_manage(request.user, threshold.team):
        raise PermissionDenied(REFUSED)
    return threshold


@require_http_methods(["GET", "POST"])
@login_required
def threshold_edit(request: HttpRequest, pk: int) -> HttpResponse:
    """Change a threshold (an admin of its team; of the new team too when it changes hands)."""
    threshold = _editable(request, pk)
    before, subject = thresholds.snapshot(threshold), threshold.subject
    form = KpiThresholdForm(request.POST or None, instance=threshold, user=request.user)
    if request.method == "POST" and form.is_valid():
        if not thresholds.can_manage(request.user, form.instance.team):
            form.add_error("team", REFUSED)
        else:
            thresholds.save_threshold(form.instance, request.user, before)
            messages.success(request, f"Threshold on {form.instance.subject} saved.")
            return HttpResponseRedirect(_done_url(threshold))
    return render(
        request,
        "dashboards/threshold_form.html",
        {"form": form, "threshold": threshold, "subject": subject},
    )


@require_http_methods(["GET", "POST"])
@login_required
def threshold_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """Delete a threshold after confirming; its alerts stay in the history."""
    threshold = _editable(request, pk)
    if request.method == "POST":
        done = _done_url(threshold)
        subject = threshold.subject
        thresholds.delete_threshold(threshold, request.user)
        messages.success(request, f"Threshold on {subject} deleted; its alerts stay listed.")
        return HttpResponseRedirect(done)
    return render(request, "dashboards/threshold_delete.html", {"threshold": threshold})


# -- the alert history ------------------------------------------------------------------------


def _alerts(request: HttpRequest) -> MetricAlertFilterSet:
    return MetricAlertFilterSet(
        request.GET or None,
        queryset=MetricAlert.objects.select_related("team", "queue").order_by("-opened_at", "-pk"),
    )


@require_GET
@login_required
def alert_list(request: HttpRequest) -> HttpResponse:
    """The alerts thresholds raised, newest first, with each notice's channel outcome."""
    filterset = _alerts(request)
    page = Paginator(filterset.qs, ALERTS_PER_PAGE).get_page(request.GET.get("page"))
    sees_money = kpi_queries.can_see_money(request.user)
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "dashboards/alerts.html",
        {
            "rows": [alert_row(alert, sees_money) for alert in page.object_list],
            "page_obj": page,
            "is_paginated": page.paginator.num_pages > 1,
            "filterset": filterset,
            "filters": [
                _select(request, "state", "Status", "Any status", MetricAlert.AlertState.choices),
                *_watch_filters(request),
                _select(
                    request,
                    "open",
                    "Open",
                    "Open or recovered",
                    [("true", "Open"), ("false", "Recovered")],
                ),
            ],
            "export_url": reverse("dashboards:alerts-export")
            + ("?" + query.urlencode() if query else ""),
            "api_url": reverse("dashboards:api-metric-alert-list")
            + ("?" + query.urlencode() if query else ""),
        },
    )


ALERT_CSV_HEADERS = [
    "Alert",
    "Opened (UTC)",
    "Recovered (UTC)",
    "State",
    "Worst",
    "Watches",
    "KPI",
    "Queue",
    "Scope",
    "Team",
    "Value",
    "Value when opened",
    "Warning",
    "Breach",
    "Last notified (UTC)",
    "Notices",
]


def alert_csv_rows(alerts: Any, user: Any) -> Any:
    """The header, then one row per alert as `user` may see it (amounts of money KPIs empty
    for people without finance or leadership rights)."""
    sees_money = kpi_queries.can_see_money(user)
    yield ALERT_CSV_HEADERS
    for alert in alerts.iterator(chunk_size=1000):
        row = alert_row(alert, sees_money)
        notices = "; ".join(
            f"{c['event']} {c['channel']} to {c['target']}: "
            + ("sent" if c["ok"] else f"failed ({c['error']})")
            for c in row["channels"]
        )
        cells = [
            alert.pk,
            utc_cell(alert.opened_at),
            utc_cell(alert.recovered_at),
            alert.get_state_display(),
            alert.get_worst_display(),
            row["name"],
            alert.kpi,
            alert.queue.slug if alert.queue_id else "",
            row["scope"],
            alert.team.name if alert.team_id else "",
            row["value"],
            row["opened_value"],
            row["warning"],
            row["breach"],
            utc_cell(alert.notified_at),
            notices,
        ]
        yield [safe_cell(cell) for cell in cells]


@require_GET
@login_required
def alert_export(request: HttpRequest) -> StreamingHttpResponse:
    """The filtered alert history as CSV (streamed)."""
    filterset = _alerts(request)
    rows = alert_csv_rows(filterset.qs, request.user)
    return streaming_csv(rows, f"metric-alerts-{file_stamp()}.csv")
