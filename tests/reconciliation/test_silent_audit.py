"""The silent-failure audit: every source event received in the window ended applied, as an
exception, or is still in flight; the rest are findings, and a finding opens one exception
for IT (a repeat audit adds an occurrence to it, never a second one)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from console.celery import app as celery_app
from console.choices import TeamKind
from exceptions.choices import ExceptionCode, ExceptionStatus
from exceptions.models import IntegrationException
from integrations import inbound, outbox
from integrations.choices import RunStatus, Trigger
from integrations.models import Expectation, InboundEvent, PostingBatch, SyncRun
from reconciliation import silent_audit
from reconciliation.models import SilentFailureAudit
from tests.factories import (
    make_connection,
    make_exception,
    make_queue,
    make_run,
    make_team,
    make_user,
)

pytestmark = pytest.mark.django_db

AN_HOUR_AGO = dt.timedelta(hours=1)


@pytest.fixture
def it_queue():
    return make_queue(make_team(TeamKind.IT))


def aged(obj: Any, age: dt.timedelta, field: str = "created_at") -> Any:
    """Back-date a record's auto-set time."""
    type(obj).objects.filter(pk=obj.pk).update(**{field: timezone.now() - age})
    obj.refresh_from_db()
    return obj


def polled_run(status: str, age: dt.timedelta = AN_HOUR_AGO, **extra: Any) -> SyncRun:
    run = make_run(status=status, **extra)
    assert run.trigger == Trigger.POLL
    return aged(run, age)


def accepted_event(run: SyncRun | None, age: dt.timedelta = AN_HOUR_AGO, **extra: Any):
    values = {
        "source": "webhook:Salesforce",
        "event_type": "opportunity.closed_won",
        "idempotency_key": f"key-{InboundEvent.objects.count()}",
        "payload": {"opportunity_id": "006A"},
        "status": InboundEvent.Status.ACCEPTED,
        "run": run,
    } | extra
    return aged(InboundEvent.objects.create(**values), age, "received_at")


def exception_about(**extra: Any) -> IntegrationException:
    """An exception naming an entity, not an event's run (its run is not an event)."""
    unrelated = make_run()
    SyncRun.objects.filter(pk=unrelated.pk).update(trigger=Trigger.MANUAL)
    return make_exception(run=unrelated, **extra)


def findings(audit: SilentFailureAudit) -> dict[str, str]:
    return {f["event"]: f["why"] for f in audit.findings}


def test_applied_exception_in_flight_and_silent_are_told_apart(it_queue) -> None:
    applied = polled_run(RunStatus.SUCCEEDED)
    failed_with_exception = polled_run(RunStatus.FAILED)
    make_exception(run=failed_with_exception)
    in_flight = polled_run(RunStatus.PENDING, age=dt.timedelta(minutes=3))
    failed_silently = polled_run(RunStatus.FAILED)
    stuck_silently = polled_run(RunStatus.RUNNING)
    accepted_event(polled_run(RunStatus.SUCCEEDED, workflow="update_billing_plan"))
    InboundEvent.objects.create(
        source="api:crm-flow",
        event_type="opportunity.closed_won",
        idempotency_key="rejected-1",
        status=InboundEvent.Status.REJECTED,
        error="the event's data is not valid",
    )

    audit = silent_audit.run_audit()

    # 6 poll runs + 1 inbound event (its run is a poll run too) + 1 rejected
    assert audit.events == 8
    assert (audit.applied, audit.as_exception, audit.in_flight) == (3, 1, 1)
    assert (audit.rejected, audit.silent) == (1, 2)
    found = findings(audit)
    assert set(found) == {failed_silently.correlation_id, stuck_silently.correlation_id}
    assert found[failed_silently.correlation_id] == (
        f"run #{failed_silently.pk} failed and no exception was opened"
    )
    assert "still running" in found[stuck_silently.correlation_id]
    assert applied.correlation_id not in found and in_flight.correlation_id not in found


def test_silent_events_open_one_exception_for_it_and_a_repeat_adds_an_occurrence(
    it_queue,
) -> None:
    silent_run = polled_run(RunStatus.FAILED)

    first = silent_audit.run_audit()
    second = silent_audit.run_audit()

    assert first.silent == second.silent == 1
    opened = IntegrationException.objects.filter(entity_type=silent_audit.ENTITY_TYPE)
    assert opened.count() == 1
    exc = opened.get()
    assert exc.queue == it_queue
    assert exc.code == ExceptionCode.INTERNAL_ERROR
    assert exc.occurrences == 2
    assert exc.status == ExceptionStatus.OPEN
    assert silent_run.correlation_id in exc.explanation
    assert f"/api/v1/silent-failure-audits/{second.pk}/" in exc.explanation
    assert exc.payload["findings"][0]["event"] == silent_run.correlation_id
    assert silent_audit.open_exception() == exc


def test_after_it_resolves_the_exception_a_new_finding_opens_a_new_one(it_queue) -> None:
    polled_run(RunStatus.FAILED)
    silent_audit.run_audit()
    exc = silent_audit.open_exception()
    IntegrationException.objects.filter(pk=exc.pk).update(status=ExceptionStatus.RESOLVED)

    silent_audit.run_audit()

    assert IntegrationException.objects.filter(entity_type=silent_audit.ENTITY_TYPE).count() == 2


def test_nothing_silent_opens_nothing(it_queue) -> None:
    polled_run(RunStatus.SUCCEEDED)

    audit = silent_audit.run_audit()

    assert (audit.events, audit.applied, audit.silent, audit.findings) == (1, 1, 0, [])
    assert not IntegrationException.objects.exists()


def test_a_stuck_transaction_exception_counts_and_an_expectation_not_yet_due_waits(
    it_queue,
) -> None:
    stuck = polled_run(RunStatus.RUNNING)
    exception_about(  # the stuck-transaction exception names the transaction
        code=ExceptionCode.TRANSACTION_STUCK,
        entity_type="transaction",
        entity_ref=stuck.correlation_id,
    )
    waiting = polled_run(RunStatus.RUNNING)
    Expectation.objects.create(
        business_key=waiting.correlation_id,
        milestone="project_provisioned",
        due_at=timezone.now() + dt.timedelta(minutes=30),
    )
    met = polled_run(RunStatus.RUNNING)
    Expectation.objects.create(
        business_key=met.correlation_id,
        milestone="project_provisioned",
        due_at=timezone.now(),
        met_at=timezone.now(),
    )

    audit = silent_audit.run_audit()

    assert (audit.applied, audit.as_exception, audit.in_flight, audit.silent) == (1, 1, 1, 0)


def test_an_event_whose_run_was_never_started_is_silent(it_queue) -> None:
    psa = make_connection("kantata")
    lost = accepted_event(
        None,
        event_type="milestone.completed",
        payload={"psa_connection": psa.pk, "story_id": "S1"},
    )
    accepted_event(  # in flight
        None,
        age=dt.timedelta(minutes=1),
        event_type="milestone.completed",
        payload={"psa_connection": psa.pk, "story_id": "S2"},
    )
    accepted_event(  # its run succeeded
        None, event_type="milestone.completed", payload={"psa_connection": psa.pk, "story_id": "S3"}
    )
    SyncRun.objects.create(
        workflow=silent_audit.MILESTONE_WORKFLOW,
        correlation_id=f"milestone:{psa.pk}:S3",
        trigger=Trigger.WEBHOOK,
        status=RunStatus.SUCCEEDED,
    )

    audit = silent_audit.run_audit()

    assert (audit.applied, audit.in_flight, audit.silent) == (1, 1, 1)
    assert set(findings(audit)) == {f"inbound event #{lost.pk}"}
    assert findings(audit)[f"inbound event #{lost.pk}"].startswith("no run was started")


def test_psa_feed_milestones_need_their_billing_run_unless_not_billable(it_queue) -> None:
    psa = make_connection("kantata", name="Kantata EU")
    for story, billable in (("S10", True), ("S11", False), ("S12", True)):
        outbox.publish(
            "milestone.completed",
            {"psa_connection": psa.pk, "story_id": story, "event_id": "7", "billable": billable},
            key=f"milestone:{psa.pk}:{story}",
        )
    outbox.publish(  # published by an inbound event: judged with that event
        "milestone.completed",
        {"psa_connection": psa.pk, "story_id": "S13", "event_id": "api:flow"},
        key=f"milestone:{psa.pk}:S13",
    )
    SyncRun.objects.create(
        workflow=silent_audit.MILESTONE_WORKFLOW,
        correlation_id=f"milestone:{psa.pk}:S10",
        trigger=Trigger.WEBHOOK,
        status=RunStatus.SUCCEEDED,
    )
    for message in outbox.OutboxMessage.objects.all():
        aged(message, AN_HOUR_AGO)

    audit = silent_audit.run_audit()

    assert (audit.events, audit.applied, audit.silent) == (3, 2, 1)
    (finding,) = audit.findings
    assert finding["event"].startswith("milestone S12")
    assert finding["source"] == "Kantata EU change feed"


def test_posting_batches_end_posted_or_with_an_exception(it_queue) -> None:
    psa, erp = make_connection("kantata"), make_connection("netsuite")

    def batch(key: str, status: str, age: dt.timedelta = AN_HOUR_AGO) -> PostingBatch:
        made = PostingBatch.objects.create(
            psa=psa, erp=erp, record_type="timeBill", key=key, entries=[], status=status
        )
        return aged(made, age)

    batch("posted", PostingBatch.Status.POSTED)
    batch("partial", PostingBatch.Status.PARTIAL)
    exception_about(
        code=ExceptionCode.POSTING_REFUSED_BY_ERP, entity_type="posting_batch", entity_ref="partial"
    )
    batch("failed", PostingBatch.Status.FAILED)
    batch("pending-new", PostingBatch.Status.PENDING, age=dt.timedelta(minutes=2))
    batch("pending-old", PostingBatch.Status.PENDING)

    audit = silent_audit.run_audit()

    assert (audit.applied, audit.as_exception, audit.in_flight, audit.silent) == (1, 1, 1, 2)
    assert findings(audit) == {
        "posting batch failed": "the batch failed and no exception was opened",
        "posting batch pending-old": "the batch is not posted 60 min later, with no exception",
    }


def test_only_the_window_is_audited(it_queue, settings) -> None:
    settings.SILENT_AUDIT_WINDOW_SECONDS = 3600
    polled_run(RunStatus.FAILED, age=dt.timedelta(hours=2))
    polled_run(RunStatus.SUCCEEDED, age=dt.timedelta(minutes=30))

    audit = silent_audit.run_audit()

    assert (audit.events, audit.applied, audit.silent) == (1, 1, 0)
    assert audit.window_end - audit.window_start == dt.timedelta(hours=1)


def test_a_real_event_whose_run_fails_ends_as_an_exception(
    it_queue, django_capture_on_commit_callbacks
) -> None:
    make_queue(make_team(TeamKind.SALES_OPS))
    with django_capture_on_commit_callbacks(execute=True):
        event, created = inbound.accept(
            "opportunity.closed_won",
            {"opportunity_id": "006NOCRM"},
            source="api:test",
            idempotency_key="real-1",
        )
    event.refresh_from_db()
    assert created and event.run.status == RunStatus.FAILED  # no CRM connection to read from

    audit = silent_audit.run_audit()

    assert (audit.events, audit.as_exception, audit.silent) == (1, 1, 0)


def test_the_beat_task_is_registered_and_scheduled(it_queue) -> None:
    from django.conf import settings as live

    celery_app.loader.import_default_modules()  # what a worker does when it starts
    assert silent_audit.TASK in celery_app.tasks
    assert live.CELERY_BEAT_SCHEDULE["silent-failure-audit"] == {
        "task": silent_audit.TASK,
        "schedule": live.SILENT_AUDIT_INTERVAL_SECONDS,
    }
    polled_run(RunStatus.FAILED)

    result = celery_app.tasks[silent_audit.TASK].delay().get()

    assert result["silent"] == 1 and SilentFailureAudit.objects.get().pk == result["audit"]


# -- where people see it --------------------------------------------------------------------


@pytest.fixture
def client_in() -> Client:
    client = Client()
    client.force_login(make_user())
    return client


def test_api_lists_filters_and_details_audits(it_queue, client_in: Client) -> None:
    clean = silent_audit.run_audit()
    polled_run(RunStatus.FAILED)
    dirty = silent_audit.run_audit()

    listed = client_in.get("/api/v1/silent-failure-audits/").json()
    assert [row["id"] for row in listed["results"]] == [dirty.pk, clean.pk]
    assert "findings" not in listed["results"][0]
    silent_only = client_in.get("/api/v1/silent-failure-audits/?has_silent=true").json()
    assert [row["id"] for row in silent_only["results"]] == [dirty.pk]
    after = (dirty.checked_at - dt.timedelta(microseconds=1)).isoformat()
    since = client_in.get("/api/v1/silent-failure-audits/", {"checked_after": after}).json()
    assert [row["id"] for row in since["results"]] == [dirty.pk]
    detail = client_in.get(f"/api/v1/silent-failure-audits/{dirty.pk}/").json()
    assert detail["silent"] == 1
    assert detail["findings"][0]["why"].endswith("failed and no exception was opened")
    assert Client().get("/api/v1/silent-failure-audits/").status_code in (401, 403)


def test_health_page_and_kpi_overview_show_the_latest_audit(it_queue, client_in: Client) -> None:
    empty = client_in.get("/dashboards/health/").content.decode()
    assert "Silent-failure audit" in empty and "No audit yet" in empty

    polled_run(RunStatus.FAILED)
    silent_audit.run_audit()
    exc = silent_audit.open_exception()

    for url in ("/dashboards/health/", "/dashboards/kpis/"):
        page = client_in.get(url).content.decode()
        assert "1 of 1 source event ended neither applied nor as an exception" in page
        assert f"/exceptions/{exc.pk}/" in page
        assert "failed and no exception was opened" in page
