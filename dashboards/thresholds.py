"""SLA thresholds on KPIs and queues, and the alerts they raise.

Every minute (`dashboards.evaluate_thresholds`, a beat task) each enabled KpiThreshold is
read against the figure it watches: a KPI's current value through dashboards.kpi_queries
(the same headline the KPI API shows, narrowed to the threshold's scope), or a queue's active
or SLA-breached count through exceptions.queue_counts (one grouped count for all queues).
The value is ok, warning or breach by the threshold's boundaries and direction.

A crossing alerts once, not once per evaluation: leaving ok opens one MetricAlert (one open
alert per threshold, a unique constraint makes it hold under racing workers), a warning that
worsens to breach sends one more notice, and the value returning to ok recovers the alert
(recovered_at) with one recovery notice. "No data" changes nothing. Notices go by e-mail and
webhook to the owning team's queue alert addresses (Queue.alert_emails and
alert_webhook_url of the team's queues), through the sender of exceptions.alerts; each
outcome is kept on the alert (channel_results) and in the audit trail. Alerts are never
deleted.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from console import audit
from console.choices import TeamKind
from exceptions import alerts
from exceptions.choices import AlertEvent
from exceptions.models import Queue
from exceptions.queue_counts import NONE, active_counts

from . import kpi_queries, kpis
from .kpi_queries import Filters
from .kpis import BREACH, OK, WARNING, Thresholds
from .models import KpiThreshold, MetricAlert

logger = logging.getLogger(__name__)

Measure = KpiThreshold.Measure
State = MetricAlert.AlertState

#: the notices an alert sends, at most once each while it is open
OPENED, ESCALATED, RECOVERED = "opened", "breach", "recovered"
#: teams that may watch money KPIs (their addresses receive the amounts)
MONEY_TEAMS = (TeamKind.FINANCE, TeamKind.LEADERSHIP)
#: a threshold's settings, as people edit them (the form, the API) and the audit trail keeps them
SETTINGS = (
    "kpi",
    "queue",
    "measure",
    "legal_entity_code",
    "region",
    "connection",
    "warning",
    "breach",
    "direction",
    "team",
    "enabled",
)


# -- checking a threshold ----------------------------------------------------------------------


def direction_of(threshold: KpiThreshold) -> str:
    """ "lower" or "higher": which way is good for this threshold."""
    if threshold.direction:
        return threshold.direction
    if threshold.queue_id or not threshold.kpi:
        return "lower"
    kpi = kpis.BY_KEY.get(threshold.kpi)
    return kpi.direction if kpi is not None and kpi.direction != "none" else "lower"


def check_threshold(threshold: KpiThreshold) -> None:
    """Raise ValidationError (per field) unless the threshold watches exactly one valid thing
    with boundaries in the right order."""
    errors: dict[str, str] = {}
    if bool(threshold.kpi) == bool(threshold.queue_id):
        errors["kpi"] = "Watch either a KPI or a queue (give one of them, not both)."
    elif threshold.queue_id:
        if threshold.measure not in (Measure.ACTIVE, Measure.BREACHED):
            errors["measure"] = "A queue threshold watches its active or breached count."
        if threshold.legal_entity_code or threshold.region or threshold.connection_id:
            errors["legal_entity_code"] = (
                "A queue threshold has no legal entity, region or connection."
            )
    else:
        kpi = kpis.BY_KEY.get(threshold.kpi)
        if kpi is None:
            errors["kpi"] = f"There is no KPI “{threshold.kpi}”."
        elif not kpi.live:
            errors["kpi"] = f"{kpi.name} is not computed yet ({kpi.needs})."
        else:
            if threshold.measure != Measure.VALUE:
                errors["measure"] = "A KPI threshold watches the KPI's value."
            if kpi.direction == "none" and not threshold.direction:
                errors["direction"] = (
                    f"{kpi.name} has no direction: say whether lower or higher is better."
                )
            team = getattr(threshold, "team", None) if threshold.team_id else None
            if kpi.is_money and team is not None and team.kind not in MONEY_TEAMS:
                errors["team"] = "Only a Finance or Leadership team may watch a money KPI."
    warning, breach = threshold.warning, threshold.breach
    if warning is not None and breach is not None and "kpi" not in errors:
        if direction_of(threshold) == "lower" and warning > breach:
            errors["breach"] = (
                "Where lower is better, the breach boundary is at or above the warning."
            )
        if direction_of(threshold) == "higher" and warning < breach:
            errors["breach"] = (
                "Where higher is better, the breach boundary is at or below the warning."
            )
    if errors:
        raise ValidationError(errors)


# -- reading the values ------------------------------------------------------------------------


@dataclass
class Reading:
    """One threshold's value now and its state (ok, warning, breach, or no_data)."""

    threshold: KpiThreshold
    value: Decimal | None
    status: str


def filters_of(threshold: KpiThreshold) -> Filters:
    return Filters(
        legal_entity=threshold.legal_entity_code or None,
        region=threshold.region or None,
        connection=threshold.connection_id or None,
    )


def read_all(thresholds: list[KpiThreshold], now: dt.datetime | None = None) -> list[Reading]:
    """The current value and state of each threshold: one grouped count for every watched
    queue, one KPI headline per distinct (KPI, scope)."""
    queue_ids = {t.queue_id for t in thresholds if t.queue_id}
    counts = active_counts(queue_ids) if queue_ids else {}
    headlines: dict[tuple[str, Filters], Decimal | None] = {}
    readings = []
    for threshold in thresholds:
        if threshold.queue_id:
            mine = counts.get(threshold.queue_id, NONE)
            count = mine.breached if threshold.measure == Measure.BREACHED else mine.active
            value: Decimal | None = Decimal(count)
        else:
            kpi = kpis.BY_KEY.get(threshold.kpi)
            if kpi is None:
                readings.append(Reading(threshold, None, kpis.NO_DATA))
                continue
            key = (kpi.key, filters_of(threshold))
            if key not in headlines:
                headlines[key] = kpi_queries.current(kpi, key[1], now).value
            value = headlines[key]
        bounds = Thresholds(warning=threshold.warning, breach=threshold.breach)
        readings.append(Reading(threshold, value, bounds.status(value, direction_of(threshold))))
    return readings


# -- opening, raising and recovering alerts ----------------------------------------------------


def evaluate(now: dt.datetime | None = None) -> list[MetricAlert]:
    """Read every enabled threshold and move its alert; returns the alerts that changed
    (opened, raised to breach, recovered), each with its notices sent."""
    now = now or timezone.now()
    thresholds = list(
        KpiThreshold.objects.filter(enabled=True).select_related("team", "queue", "connection")
    )
    changed = []
    for reading in read_all(thresholds, now):
        try:
            moved = transition(reading, now)
        except Exception:  # one bad threshold must not stop the others
            logger.exception("evaluating threshold %s failed", reading.threshold.pk)
            continue
        if moved is not None:
            changed.append(moved)
    return changed


def transition(reading: Reading, now: dt.datetime) -> MetricAlert | None:
    """Apply one reading to its threshold's open alert; send the notice a change calls for."""
    if reading.status not in (OK, WARNING, BREACH) or reading.value is None:
        return None  # no data: nothing opens and nothing recovers
    threshold, value, status = reading.threshold, reading.value, reading.status
    event = None
    with transaction.atomic():
        alert = (
            MetricAlert.objects.select_for_update()
            .filter(threshold=threshold, recovered_at__isnull=True)
            .first()
        )
        if alert is None:
            if status == OK:
                return None
            try:
                with transaction.atomic():
                    alert = MetricAlert.objects.create(
                        threshold=threshold,
                        kpi=threshold.kpi,
                        queue=threshold.queue,
                        measure=threshold.measure,
                        scope=_scope(threshold),
                        team=threshold.team,
                        state=status,
                        worst=status,
                        value=value,
                        opened_value=value,
                        warning=threshold.warning,
                        breach=threshold.breach,
                        opened_at=now,
                    )
            except IntegrityError:
                return None  # another worker opened it just now
            event = OPENED
        else:
            if status == OK:
                alert.state, alert.recovered_at = State.RECOVERED, now
                event = RECOVERED
            elif status == BREACH and alert.worst != State.BREACH:
                alert.state = alert.worst = State.BREACH
                event = ESCALATED
            else:
                alert.state = status  # back to warning after a breach: no new notice
            alert.value = value
            alert.save(update_fields=["state", "worst", "value", "recovered_at"])
    if event is None:
        return None
    notify(alert, event)
    return alert


def _scope(threshold: KpiThreshold) -> dict[str, Any]:
    if threshold.queue_id:
        return {}
    return {
        key: val for key, val in filters_of(threshold).as_dict().items() if val not in (None, "")
    }


# -- the notice --------------------------------------------------------------------------------


def targets(alert: MetricAlert) -> list[tuple[str, str]]:
    """(channel, target) pairs of the owning team's queues' alert addresses, each once."""
    if alert.team_id is None:
        return []
    pairs: list[tuple[str, str]] = []
    for queue in Queue.objects.filter(team_id=alert.team_id).order_by("name"):
        for pair in alerts.targets(queue, AlertEvent.OPENED):
            if pair not in pairs:
                pairs.append(pair)
    return pairs


def _number(value: Decimal) -> str:
    return format(value.normalize(), "f")


def _utc(moment: dt.datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC" if moment else "—"


def what_of(alert: MetricAlert) -> tuple[str, str, str]:
    """(name of what is watched, its unit as words follow a number, link)."""
    if alert.queue_id is not None:
        queue = alert.queue
        measure = "active exceptions" if alert.measure == Measure.ACTIVE else "exceptions past SLA"
        return f"Queue {queue}: {measure}", "", alerts.absolute(queue.get_absolute_url())
    kpi = kpis.BY_KEY.get(alert.kpi)
    name = kpi.name if kpi is not None else alert.kpi
    if alert.scope:
        name += " (" + ", ".join(f"{k} {v}" for k, v in sorted(alert.scope.items())) + ")"
    unit = "" if kpi is None or kpi.unit in ("count", "money") else kpi.unit
    try:
        path = reverse("dashboards:kpi", args=[alert.kpi])
    except NoReverseMatch:
        path = reverse("dashboards:api-kpi", args=[alert.kpi])
    url = alerts.absolute(path)
    return name, unit, url


def compose(alert: MetricAlert, event: str) -> tuple[str, str, dict[str, Any]]:
    """(subject, plain text, structured fields) of one notice about an alert."""
    name, unit, url = what_of(alert)

    def amount(value: Decimal) -> str:
        number = _number(value)
        return f"{number}%" if unit == "%" else f"{number} {unit}".strip()

    headline = {
        OPENED: f"{alert.get_worst_display()}",
        ESCALATED: "Breach",
        RECOVERED: "Recovered",
    }[event]
    subject = f"[Throughline] {headline}: {name} at {amount(alert.value)}"[:250]
    bounds = f"warning at {amount(alert.warning)}, breach at {amount(alert.breach)}"
    lines = [f"{headline}: {name} is {amount(alert.value)} ({bounds})."]
    if event == RECOVERED:
        lines.append(
            f"Open since {_utc(alert.opened_at)} (worst: {alert.worst}); "
            f"back to ok at {_utc(alert.recovered_at)}."
        )
    else:
        lines.append(f"Since {_utc(alert.opened_at)}; owned by {alert.team}.")
    lines.append(f"Open it: {url}")
    fields = {
        "event": f"metric_alert.{event}",
        "metric_alert": {
            "id": alert.pk,
            "kpi": alert.kpi or None,
            "queue": alert.queue.slug if alert.queue_id is not None else None,
            "measure": alert.measure,
            "scope": alert.scope,
            "state": alert.state,
            "value": str(alert.value),
            "warning": str(alert.warning),
            "breach": str(alert.breach),
            "team": alert.team.slug if alert.team_id is not None else None,
            "opened_at": alert.opened_at.isoformat(),
            "recovered_at": alert.recovered_at.isoformat() if alert.recovered_at else None,
            "url": url,
        },
    }
    return subject, "\n".join(lines), fields


def notify(alert: MetricAlert, event: str) -> None:
    """Send one notice to every target of the owning team; keep each outcome on the alert
    and in the audit trail. Never raises."""
    subject, text, fields = compose(alert, event)
    results = alerts.send_each(targets(alert), subject, text, fields)
    at = timezone.now()
    entries = [
        {
            "event": event,
            "channel": str(channel),
            "target": target,
            "ok": not error,
            "error": error,
            "at": at.isoformat(),
        }
        for channel, target, error in results
    ]
    alert.channel_results = [*alert.channel_results, *entries]
    if any(e["ok"] for e in entries):
        alert.notified_at = at
    alert.save(update_fields=["channel_results", "notified_at"])
    sent = [f"{e['channel']} to {e['target']}" for e in entries if e["ok"]]
    failed = [f"{e['channel']} to {e['target']}: {e['error']}" for e in entries if not e["ok"]]
    outcome = (
        (f"; sent by {', '.join(sent)}" if sent else "")
        + (f"; failed: {'; '.join(failed)}" if failed else "")
        + ("" if entries else "; the team's queues have no alert addresses")
    )
    audit.record(
        f"metric_alert.{event}",
        f"{subject.removeprefix('[Throughline] ')}{outcome}",
        obj=alert,
        value=str(alert.value),
        state=alert.state,
        failed=len(failed),
    )


# -- changing thresholds (the API and the admin) -----------------------------------------------


def can_manage(user: Any, team: Any) -> bool:
    """Superusers and admins of the owning team change its thresholds."""
    from console.choices import Role

    if not getattr(user, "is_authenticated", False) or team is None:
        return False
    return bool(user.is_superuser or user.can_act_for(team, minimum=Role.ADMIN))


def snapshot(threshold: KpiThreshold) -> dict[str, Any]:
    """The threshold's settings as the audit trail keeps them."""
    return {
        "kpi": threshold.kpi,
        "queue": threshold.queue.slug if threshold.queue_id else None,
        "measure": threshold.measure,
        "legal_entity_code": threshold.legal_entity_code,
        "region": threshold.region,
        "connection": threshold.connection_id,
        "warning": str(threshold.warning),
        "breach": str(threshold.breach),
        "direction": threshold.direction,
        "team": threshold.team.slug if threshold.team_id else None,
        "enabled": threshold.enabled,
    }


def save_threshold(
    threshold: KpiThreshold, actor: Any, before: dict[str, Any] | None = None
) -> KpiThreshold:
    """Check and save a threshold; audit it with its settings before and after."""
    check_threshold(threshold)
    creating = threshold.pk is None
    threshold.save()
    after = snapshot(threshold)
    changes = sorted(k for k in after if (before or {}).get(k) != after[k])
    if not creating and not changes:
        return threshold
    audit.record(
        "kpi_threshold.created" if creating else "kpi_threshold.changed",
        f"Threshold on {threshold.subject} {'created' if creating else 'changed: '}"
        f"{'' if creating else ', '.join(changes)} (warning {_number(threshold.warning)}, "
        f"breach {_number(threshold.breach)})",
        actor=actor,
        obj=threshold,
        before=before,
        after=after,
        changes=changes,
    )
    return threshold


def delete_threshold(threshold: KpiThreshold, actor: Any) -> None:
    """Delete a threshold (its alerts stay, detached); audited with what it was."""
    before = snapshot(threshold)
    subject = threshold.subject
    audit.record(
        "kpi_threshold.deleted",
        f"Threshold on {subject} deleted",
        actor=actor,
        obj=threshold,
        before=before,
        after=None,
    )
    threshold.delete()
