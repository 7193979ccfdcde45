"""Alerts about incidents, by e-mail and by webhook (Slack- and Teams-compatible).

Only incidents alert, never single records: an incident sends one "opened" alert per
channel and target, one "escalated" alert when a breach of its queue's SLA is escalated, and
one "resolved" alert when it resolves. The Alert table's unique constraint (incident,
channel, event, target) makes "once" hold under retries and racing workers. An exception
that belongs to no incident alerts nobody when it opens (it is in its queue's list); only
its escalation is sent, once, to the queue's escalation contacts.

`announce` runs inside the caller's transaction: it writes the Alert rows and, through the
outbox, a task per alert that is handed to Celery after commit, so a slow webhook never holds
a worker's transaction. `deliver` (the task) sends and records the outcome on the row; it
never raises: a failure is written to `Alert.error`, and the SLA sweep tries failed alerts
again for an hour.

Money appears in alerts of queues owned by a Finance team only (their recipients have finance
rights); other alerts link to the incident page, which shows it to those allowed to see it.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from typing import Any

import httpx
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from console import audit
from console.choices import TeamKind
from integrations import outbox

from .choices import AlertChannel, AlertEvent
from .models import Alert, Incident, IntegrationException, Queue

logger = logging.getLogger(__name__)

#: tests (and a deployment behind a proxy) may supply the webhook client's transport
WEBHOOK_TRANSPORT: httpx.BaseTransport | None = None
#: failed alerts are tried again by the SLA sweep for this long after they were created
RETRY_FOR = dt.timedelta(hours=1)

SUBJECTS = {
    AlertEvent.OPENED: "Incident opened",
    AlertEvent.ESCALATED: "SLA breached, escalated",
    AlertEvent.RESOLVED: "Incident resolved",
}


# -- what to send, to whom -------------------------------------------------------------------


def recipients(addresses: str) -> list[str]:
    """The valid e-mail addresses of a comma- (or semicolon-) separated list."""
    found = []
    for address in re.split(r"[,;\s]+", addresses or ""):
        try:
            validate_email(address)
        except ValidationError:
            continue
        if address not in found:
            found.append(address)
    return found


def targets(queue: Queue, event: str) -> list[tuple[str, str]]:
    """(channel, target) pairs an event of this queue goes to."""
    emails = queue.escalation_emails if event == AlertEvent.ESCALATED else queue.alert_emails
    pairs = []
    if recipients(emails):
        pairs.append((AlertChannel.EMAIL, ", ".join(recipients(emails))[:500]))
    if queue.alert_webhook_url:
        pairs.append((AlertChannel.WEBHOOK, queue.alert_webhook_url))
    return pairs


def announce(incident: Incident, event: str) -> list[Alert]:
    """Record one alert per target of the incident's queue for `event` and have each sent
    after commit. An alert already recorded for the same event and target is not repeated."""
    created = []
    for channel, target in targets(incident.queue, event):
        try:
            with transaction.atomic():
                alert = Alert.objects.create(
                    incident=incident, channel=channel, event=event, target=target
                )
        except IntegrityError:
            continue  # sent (or being sent) already: once per incident and event
        outbox.enqueue("exceptions.send_alert", alert.pk, key=f"alert:{alert.pk}")
        created.append(alert)
    return created


def escalate(exc: IntegrationException) -> None:
    """Tell the escalation contacts about an escalated exception: through its incident's
    "escalated" alert (once per incident), or on its own when it has no incident."""
    incident = exc.incident
    if incident is not None:
        announce(incident, AlertEvent.ESCALATED)
    elif targets(exc.queue, AlertEvent.ESCALATED):
        outbox.enqueue("exceptions.send_escalation", exc.pk, key=f"escalation:{exc.pk}")


# -- the words -------------------------------------------------------------------------------


def absolute(path: str) -> str:
    return f"{settings.CONSOLE_URL.rstrip('/')}{path}"


def incident_url(incident: Incident) -> str:
    return absolute(reverse("exceptions:incident", args=[incident.pk]))


def shows_money(queue: Queue) -> bool:
    return queue.team.kind == TeamKind.FINANCE


def _utc(moment: dt.datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC" if moment else "—"


def compose(incident: Incident, event: str) -> tuple[str, str, dict[str, Any]]:
    """(subject, plain text, structured fields) of an alert about an incident."""
    from .incidents import impacts, resolution_of

    impact = impacts([incident])[incident.pk]
    queue = incident.queue
    subject = f"[Throughline] {SUBJECTS[AlertEvent(event)]}: {incident.title}"[:250]
    money = [{"currency": c, "amount": str(a)} for c, a in impact.money_list]
    lines = [
        f"{SUBJECTS[AlertEvent(event)]}: {incident.title}",
        f"Incident #{incident.pk} · {incident.get_code_display()} · queue {queue} ({queue.team})",
    ]
    if event == AlertEvent.RESOLVED:
        lines.append(resolution_of(incident))
        lines.append(f"It held up {impact.records} records ({impact.occurrences} failures).")
    else:
        lines.append(f"Blocks {impact.blocked} records ({impact.occurrences} failures).")
    if shows_money(queue):
        if money:
            held = "; ".join(f"{m['amount']} {m['currency']}" for m in money)
            lines.append(f"Money held up: {held}.")
    else:
        money = []
    lines.append(f"First seen {_utc(incident.first_seen)}, last seen {_utc(incident.last_seen)}.")
    url = incident_url(incident)
    lines.append(f"Open it: {url}")
    fields = {
        "event": str(event),
        "incident": {
            "id": incident.pk,
            "title": incident.title,
            "code": incident.code,
            "status": incident.status,
            "queue": queue.slug,
            "team": queue.team.slug,
            "blocked_records": impact.blocked,
            "records": impact.records,
            "occurrences": impact.occurrences,
            "money": money,
            "first_seen": incident.first_seen.isoformat(),
            "last_seen": incident.last_seen.isoformat(),
            "resolved_at": incident.resolved_at.isoformat() if incident.resolved_at else None,
            "url": url,
        },
    }
    return subject, "\n".join(lines), fields


def compose_escalation(exc: IntegrationException) -> tuple[str, str, dict[str, Any]]:
    """(subject, plain text, structured fields) of an exception's own escalation."""
    url = absolute(exc.get_absolute_url())
    subject = f"[Throughline] SLA breached, escalated: {exc.title}"[:250]
    text = "\n".join(
        [
            f"SLA breached, escalated: {exc.title}",
            f"Exception #{exc.pk} · {exc.get_code_display()} · queue {exc.queue} "
            f"({exc.queue.team})",
            f"Due {_utc(exc.due_at)}, still {exc.get_status_display().lower()}; "
            f"{exc.occurrences} failures since {_utc(exc.first_seen)}.",
            f"Open it: {url}",
        ]
    )
    fields = {
        "event": AlertEvent.ESCALATED.value,
        "exception": {
            "id": exc.pk,
            "title": exc.title,
            "code": exc.code,
            "status": exc.status,
            "queue": exc.queue.slug,
            "due_at": exc.due_at.isoformat() if exc.due_at else None,
            "url": url,
        },
    }
    return subject, text, fields


# -- sending ---------------------------------------------------------------------------------


def send_email(subject: str, text: str, to: list[str]) -> None:
    send_mail(subject, text, settings.DEFAULT_FROM_EMAIL, to, fail_silently=False)


def post_webhook(url: str, text: str, fields: dict[str, Any]) -> None:
    """POST `{"text": ..., ...fields}`: Slack and Teams incoming webhooks read "text"."""
    with httpx.Client(
        timeout=settings.ALERT_WEBHOOK_TIMEOUT_SECONDS, transport=WEBHOOK_TRANSPORT
    ) as client:
        response = client.post(url, json={"text": text, **fields})
    if response.status_code >= 300:
        raise WebhookRefused(f"The webhook answered HTTP {response.status_code}.")


class WebhookRefused(Exception):
    """The webhook answered, but not with success."""


def _send(channel: str, target: str, subject: str, text: str, fields: dict[str, Any]) -> None:
    if channel == AlertChannel.EMAIL:
        to = recipients(target)
        if not to:
            raise ValueError("No valid e-mail address to send to.")
        send_email(subject, text, to)
    else:
        post_webhook(target, text, fields)


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, WebhookRefused):
        return str(exc)
    if isinstance(exc, httpx.TimeoutException):
        return "The webhook did not answer in time."
    if isinstance(exc, httpx.HTTPError):
        return f"The webhook could not be reached: {exc}"[:500]
    return f"{type(exc).__name__}: {exc}"[:500]


def send_each(
    pairs: list[tuple[str, str]], subject: str, text: str, fields: dict[str, Any]
) -> list[tuple[str, str, str]]:
    """Send one message to each (channel, target); never raises. Returns (channel, target,
    error) per target, error "" when it went (other apps' alerts, e.g. dashboards.thresholds,
    send through this)."""
    results = []
    for channel, target in pairs:
        try:
            _send(channel, target, subject, text, fields)
        except Exception as error:
            results.append((channel, target, describe_error(error)))
        else:
            results.append((channel, target, ""))
    return results


def deliver(alert_id: int) -> bool:
    """Send one recorded alert (unless it went already); record the outcome on it. Never
    raises: a failure is kept in `Alert.error` for people and for the retry."""
    alert = Alert.objects.select_related("incident__queue__team").filter(pk=alert_id).first()
    if alert is None or alert.sent_at is not None:
        return False
    try:
        subject, text, fields = compose(alert.incident, alert.event)
        _send(alert.channel, alert.target, subject, text, fields)
    except Exception as exc:
        error = describe_error(exc)
        Alert.objects.filter(pk=alert.pk).update(error=error[:500])
        logger.warning(
            "alert %s (%s to %s) failed: %s", alert.pk, alert.channel, alert.target, error
        )
        return False
    Alert.objects.filter(pk=alert.pk).update(sent_at=timezone.now(), error="")
    audit.record(
        "incident.alert_sent",
        f"{alert.get_event_display()} alert for incident #{alert.incident_id} sent by "
        f"{alert.get_channel_display()} to {alert.target}",
        obj=alert.incident,
        channel=alert.channel,
        alert_event=alert.event,
    )
    return True


def deliver_escalation(exception_id: int) -> bool:
    """Send an incident-less exception's escalation to its queue's contacts; the outcome
    goes to the audit trail. Never raises."""
    exc = IntegrationException.objects.select_related("queue__team").filter(pk=exception_id).first()
    if exc is None:
        return False
    subject, text, fields = compose_escalation(exc)
    sent, failed = [], []
    for channel, target in targets(exc.queue, AlertEvent.ESCALATED):
        try:
            _send(channel, target, subject, text, fields)
        except Exception as error:
            failed.append(f"{channel} to {target}: {describe_error(error)}")
        else:
            sent.append(f"{channel} to {target}")
    if sent or failed:
        summary = "; ".join(
            ([f"sent by {', '.join(sent)}"] if sent else [])
            + ([f"failed: {'; '.join(failed)}"] if failed else [])
        )
        audit.record(
            "exception.escalation_sent" if not failed else "exception.escalation_failed",
            f"Escalation of exception #{exc.pk} {summary}",
            obj=exc,
        )
    return bool(sent) and not failed


def retry_failed(now: dt.datetime | None = None) -> int:
    """Try again the alerts that failed within the last hour (the SLA sweep calls this)."""
    now = now or timezone.now()
    failed = Alert.objects.filter(sent_at__isnull=True, created_at__gte=now - RETRY_FOR).exclude(
        error=""
    )
    return sum(1 for pk in failed.values_list("pk", flat=True) if deliver(pk))
