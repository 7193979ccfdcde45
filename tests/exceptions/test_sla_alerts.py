"""SLA and alerts: due times, the states at their boundaries, escalation of long breaches
(once, per exception or per incident), ignored exceptions coming back, and alert delivery
that never breaks its caller."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import httpx
import pytest
from django.core import mail
from django.utils import timezone

from console.choices import TeamKind
from console.models import AuditEvent
from exceptions import alerts, services, sla, tasks
from exceptions.choices import AlertEvent, ExceptionStatus, SlaState
from exceptions.models import Alert, Incident, IntegrationException, Queue
from integrations.choices import Vendor
from integrations.workflows.failures import StepFailure
from tests.factories import make_connection, make_exception, make_queue, make_run, make_team

pytestmark = pytest.mark.django_db

HOUR = dt.timedelta(hours=1)


@pytest.fixture
def finance() -> Queue:
    queue = make_queue(make_team(TeamKind.FINANCE))
    queue.sla_hours = 10
    queue.escalate_after_hours = 2
    queue.escalation_emails = "finance-lead@example.com"
    queue.alert_emails = "finance-team@example.com"
    queue.save()
    return queue


def tax_failure(entity: str = "DE01", connection_id: int | None = None) -> StepFailure:
    return StepFailure(
        kind="business",
        code="tax_configuration_missing",
        message="no tax",
        entity_type="legal_entity",
        entity_ref=entity,
        connection_id=connection_id,
    )


def open_one(key: str, failure: StepFailure | None = None) -> IntegrationException:
    run = make_run()
    return services.open_exception(
        failure or tax_failure(), run=run, step=run.steps.get(), key=(key,)
    )


def test_an_exception_is_due_after_its_queues_sla(finance):
    before = timezone.now()
    exc = open_one("a")
    assert exc.due_at is not None
    assert before + 10 * HOUR <= exc.due_at <= timezone.now() + 10 * HOUR


@pytest.mark.parametrize(
    ("before_due", "state"),
    [
        (dt.timedelta(hours=5), SlaState.OK),
        (dt.timedelta(hours=2, seconds=1), SlaState.OK),  # just before the last fifth
        (dt.timedelta(hours=2), SlaState.DUE_SOON),  # the last fifth of 10 h begins
        (dt.timedelta(seconds=1), SlaState.DUE_SOON),
        (dt.timedelta(0), SlaState.BREACHED),  # due now
        (-dt.timedelta(days=3), SlaState.BREACHED),
    ],
)
def test_sla_states_at_their_boundaries(finance, before_due, state):
    due = timezone.now()
    exc = make_exception(finance, due_at=due)
    assert sla.sla_state(exc, now=due - before_due) == state


def test_no_clock_runs_on_resolved_or_ignored_exceptions(finance):
    past = timezone.now() - HOUR
    for status in (ExceptionStatus.RESOLVED, ExceptionStatus.IGNORED):
        exc = make_exception(finance, status=status, due_at=past)
        assert sla.sla_state(exc) == SlaState.OK
    assert sla.sla_state(make_exception(finance, due_at=None)) == SlaState.OK
    retrying = make_exception(finance, status=ExceptionStatus.RETRYING, due_at=past)
    assert sla.sla_state(retrying) == SlaState.BREACHED


def test_a_long_breach_is_escalated_once(finance, django_capture_on_commit_callbacks):
    now = timezone.now()
    late = make_exception(finance, due_at=now - 3 * HOUR)  # breached 3 h, limit 2 h
    recent = make_exception(finance, due_at=now - HOUR)  # breached, not long enough
    on_time = make_exception(finance, due_at=now + HOUR)

    with django_capture_on_commit_callbacks(execute=True):
        assert sla.sweep(now).escalated == 1
    for exc in (late, recent, on_time):
        exc.refresh_from_db()
    assert late.escalated_at == now
    assert recent.escalated_at is None and on_time.escalated_at is None
    event = AuditEvent.objects.get(action="exception.escalated")
    assert event.object_id == str(late.pk) and "past its SLA" in event.summary
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["finance-lead@example.com"]
    assert "SLA breached, escalated" in mail.outbox[0].subject
    assert f"/exceptions/{late.pk}/" in mail.outbox[0].body

    with django_capture_on_commit_callbacks(execute=True):
        assert sla.sweep(now + HOUR).escalated == 1  # `recent` is now 2 h late; `late` not again
    assert len(mail.outbox) == 2
    assert AuditEvent.objects.filter(action="exception.escalated").count() == 2


def test_a_queue_without_escalation_never_escalates(finance):
    finance.escalate_after_hours = None
    finance.save()
    make_exception(finance, due_at=timezone.now() - 100 * HOUR)
    assert sla.sweep().escalated == 0


def test_exceptions_of_one_incident_escalate_with_one_alert(
    finance, django_capture_on_commit_callbacks
):
    erp = make_connection(Vendor.NETSUITE, name="NetSuite")
    with django_capture_on_commit_callbacks(execute=True):
        opened = [open_one(str(n), tax_failure(connection_id=erp.pk)) for n in range(3)]
    incident = Incident.objects.get()
    assert {e.incident_id for e in opened} == {incident.pk}
    mail.outbox.clear()
    IntegrationException.objects.update(due_at=timezone.now() - 5 * HOUR)

    with django_capture_on_commit_callbacks(execute=True):
        assert sla.sweep().escalated == 3
    assert IntegrationException.objects.filter(escalated_at__isnull=False).count() == 3
    assert len(mail.outbox) == 1  # once per incident, to the escalation contacts
    assert mail.outbox[0].to == ["finance-lead@example.com"]
    assert mail.outbox[0].subject.startswith("[Throughline] SLA breached, escalated:")
    assert "Blocks 3 records" in mail.outbox[0].body
    assert Alert.objects.filter(incident=incident, event=AlertEvent.ESCALATED).count() == 1


def test_an_ignored_exception_comes_back_when_its_time_has_passed(finance):
    now = timezone.now()
    back = make_exception(
        finance,
        status=ExceptionStatus.IGNORED,
        ignored_until=now - dt.timedelta(minutes=1),
        ignored_reason="Period reopens on Monday",
    )
    still = make_exception(finance, status=ExceptionStatus.IGNORED, ignored_until=now + HOUR)
    for_good = make_exception(finance, status=ExceptionStatus.IGNORED, ignored_until=None)

    assert sla.sweep(now).woken == 1
    for exc in (back, still, for_good):
        exc.refresh_from_db()
    assert back.status == ExceptionStatus.OPEN and back.ignored_until is None
    assert still.status == for_good.status == ExceptionStatus.IGNORED
    assert AuditEvent.objects.filter(action="exception.reopened", object_id=str(back.pk)).exists()


def test_the_beat_task_sweeps_and_reports(finance):
    make_exception(finance, due_at=timezone.now() - 3 * HOUR)
    assert tasks.check_sla.delay().get() == {"escalated": 1, "woken": 0, "alerts_retried": 0}


# -- delivery --------------------------------------------------------------------------------


@pytest.fixture
def failing_webhook(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """A webhook that answers 500 until told otherwise (the list holds the status)."""
    status = [500]

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status[0])

    monkeypatch.setattr(alerts, "WEBHOOK_TRANSPORT", httpx.MockTransport(handler))
    yield status


def test_a_failing_webhook_is_recorded_not_raised_and_retried(
    finance, failing_webhook, django_capture_on_commit_callbacks
):
    finance.alert_webhook_url = "https://hooks.example.com/teams/abc"
    finance.save()
    erp = make_connection(Vendor.NETSUITE, name="NetSuite")
    with django_capture_on_commit_callbacks(execute=True):
        exc = open_one("a", tax_failure(connection_id=erp.pk))  # the caller is not disturbed
    hook = Alert.objects.get(incident=exc.incident, channel="webhook")
    assert hook.sent_at is None
    assert hook.error == "The webhook answered HTTP 500."
    assert Alert.objects.get(incident=exc.incident, channel="email").sent_at is not None

    failing_webhook[0] = 200
    assert alerts.retry_failed() == 1
    hook.refresh_from_db()
    assert hook.sent_at is not None and hook.error == ""


def test_an_unreachable_webhook_is_described(finance, monkeypatch):
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("timed out", request=request)

    monkeypatch.setattr(alerts, "WEBHOOK_TRANSPORT", httpx.MockTransport(handler))
    finance.alert_webhook_url = "https://hooks.example.com/slack"
    finance.save()
    erp = make_connection(Vendor.NETSUITE, name="NetSuite")
    exc = open_one("a", tax_failure(connection_id=erp.pk))
    hook = Alert.objects.get(incident=exc.incident, channel="webhook")
    assert alerts.deliver(hook.pk) is False
    hook.refresh_from_db()
    assert hook.error == "The webhook did not answer in time."


def test_money_stays_out_of_alerts_of_non_finance_queues(django_capture_on_commit_callbacks):
    it_queue = make_queue(make_team(TeamKind.IT), name="IT Integration")
    it_queue.alert_emails = "it@example.com"
    it_queue.save()
    erp = make_connection(Vendor.NETSUITE, name="NetSuite")
    run = make_run(
        context={"load_milestone": {"completion": {"amount": "99.00", "currency": "EUR"}}}
    )
    failure = StepFailure(kind="connector", code="transient", message="503", connection_id=erp.pk)
    with django_capture_on_commit_callbacks(execute=True):
        exc = services.open_exception(failure, run=run, step=run.steps.get(), key=("x",))
    assert exc.amount is not None
    assert len(mail.outbox) == 1
    assert "NetSuite: vendor unavailable" in mail.outbox[0].subject
    assert "EUR" not in mail.outbox[0].body and "99.00" not in mail.outbox[0].body


def test_only_incidents_alert_when_they_open(finance, django_capture_on_commit_callbacks):
    sales = make_queue(make_team(TeamKind.SALES_OPS))
    sales.alert_emails = "sales@example.com"
    sales.save()
    failure = StepFailure(
        kind="business", code="deal_data_invalid", message="x", entity_type="opportunity"
    )
    with django_capture_on_commit_callbacks(execute=True):
        exc = open_one("deal", failure)
    assert exc.incident is None
    assert mail.outbox == []


def test_recipients_keep_only_valid_addresses():
    assert alerts.recipients("a@example.com; bad, b@example.com  a@example.com") == [
        "a@example.com",
        "b@example.com",
    ]
