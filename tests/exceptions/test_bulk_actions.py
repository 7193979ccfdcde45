"""Bulk actions over a filtered set (exceptions.bulk and its task): the request only saves the
action and enqueues it; a worker runs it in chunks of 500, saving its progress after each;
roles are checked per exception; a bulk retry resumes the failed runs through the engine's
batched enqueue and asks for one poll per connection; the pages confirm the count first."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from console.choices import Role, TeamKind
from console.models import AuditEvent, User
from exceptions import bulk, tasks
from exceptions.choices import BulkStatus, Category, ExceptionCode, ExceptionStatus
from exceptions.models import BulkAction, IntegrationException, Queue
from integrations.choices import RunStatus, StepStatus, Vendor
from integrations.models import OutboxMessage, SyncRun, SyncStep
from tests.factories import make_connection, make_exception, make_queue, make_team, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def it_queue() -> Queue:
    return make_queue(make_team(TeamKind.IT), name="IT Integration")


@pytest.fixture
def ivan(it_queue: Queue) -> User:
    return make_user("ivan", team=it_queue.team)


def rate_limited(queue: Queue, count: int, *, prefix: str = "BULK") -> list[IntegrationException]:
    """`count` rate-limited exceptions, each with its failed run, in a few inserts."""
    now = timezone.now()
    runs = SyncRun.objects.bulk_create(
        SyncRun(
            workflow="create_service_engagement",
            correlation_id=f"deal:{prefix}{i:06d}",
            trigger="poll",
            status=RunStatus.FAILED,
        )
        for i in range(count)
    )
    steps = SyncStep.objects.bulk_create(
        SyncStep(run=run, name="fetch_deal", position=0, status=StepStatus.FAILED, attempts=1)
        for run in runs
    )
    return IntegrationException.objects.bulk_create(
        IntegrationException(
            queue=queue,
            run=run,
            step=step,
            code=ExceptionCode.RATE_LIMIT_EXHAUSTED,
            category=Category.TECHNICAL,
            title=f"Rate limit exhausted: {run.correlation_id}",
            explanation="Salesforce refused more calls for now.",
            entity_type="opportunity",
            entity_ref=run.correlation_id,
            fingerprint=f"{prefix}-{i}",
            first_seen=now,
            last_seen=now,
        )
        for i, (run, step) in enumerate(zip(runs, steps, strict=True))
    )


def api(user: User) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_bulk_retry_of_1200_runs_in_chunks_without_holding_the_request(
    ivan: User, it_queue: Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    rate_limited(it_queue, 1200)
    query = {"queue": "it-integration", "code": ["rate_limit_exhausted"], "status": "active"}

    response = api(ivan).post(
        "/api/v1/bulk-actions/", {"kind": "retry", "query": query}, format="json"
    )

    assert response.status_code == 202, response.content
    body = response.json()
    assert (body["status"], body["total"], body["done"]) == ("queued", 1200, 0)
    # the request only saved the action and enqueued it: nothing was retried yet
    assert OutboxMessage.objects.filter(task="exceptions.run_bulk_action", args=[body["id"]])
    assert not IntegrationException.objects.filter(status=ExceptionStatus.RETRYING).exists()

    progress: list[int] = []
    real_save = bulk.save_progress

    def spy(action: BulkAction) -> None:
        progress.append(action.done)
        real_save(action)

    monkeypatch.setattr(bulk, "save_progress", spy)
    tasks.run_bulk_action.apply(args=[body["id"]])  # what a worker does (eager here)

    assert progress == [500, 1000, 1200]
    action = api(ivan).get(f"/api/v1/bulk-actions/{body['id']}/").json()
    assert (action["status"], action["done"], action["succeeded"], action["failed"]) == (
        "finished",
        1200,
        1200,
        0,
    )
    assert IntegrationException.objects.filter(status=ExceptionStatus.RETRYING).count() == 1200
    assert SyncRun.objects.filter(status=RunStatus.PENDING).count() == 1200
    assert not SyncStep.objects.filter(status=StepStatus.FAILED).exists()
    # resumed through the engine's batched enqueue: one task per RUN_BATCH_SIZE (50) runs
    batches = OutboxMessage.objects.filter(task="integrations.run_workflows")
    assert batches.count() == 24
    assert sum(len(message.args[0]) for message in batches) == 1200
    assert AuditEvent.objects.filter(action="exception.retry", actor=ivan).count() == 1200
    assert AuditEvent.objects.filter(action="bulk_action.finished").count() == 1


def test_a_second_delivery_of_the_task_does_nothing_twice(ivan: User, it_queue: Queue) -> None:
    rate_limited(it_queue, 3)
    action = bulk.create("resolve", {"queue": "it-integration"}, {"note": "Outage over"}, ivan)
    bulk.run(action.pk)
    bulk.run(action.pk)
    action.refresh_from_db()
    assert (action.done, action.succeeded) == (3, 3)


def test_roles_are_checked_per_exception(ivan: User, it_queue: Queue, finance_queue: Queue) -> None:
    rate_limited(it_queue, 3, prefix="IT")
    theirs = rate_limited(finance_queue, 2, prefix="FIN")
    preview = bulk.preview("resolve", {"code": "rate_limit_exhausted"}, ivan)
    assert (preview.total, preview.actionable) == (5, 3)

    action = bulk.create("resolve", {"code": "rate_limit_exhausted"}, {"note": "Outage over"}, ivan)
    action = bulk.run(action.pk)
    assert (action.total, action.done, action.succeeded, action.failed) == (5, 5, 3, 2)
    assert {e["exception"] for e in action.errors} == {e.pk for e in theirs}
    assert action.errors[0]["error"] == "You are not a resolver of Finance."
    assert IntegrationException.objects.filter(status=ExceptionStatus.RESOLVED).count() == 3


def test_poll_exceptions_request_one_poll_per_connection(ivan: User, it_queue: Queue) -> None:
    salesforce = make_connection(Vendor.SALESFORCE)
    netsuite = make_connection(Vendor.NETSUITE)
    for connection in (salesforce, salesforce, salesforce, netsuite):
        exc = make_exception(it_queue, code=ExceptionCode.VENDOR_UNAVAILABLE, connection=connection)
        IntegrationException.objects.filter(pk=exc.pk).update(run=None)
    action = bulk.run(bulk.create("retry", {"queue": "it-integration"}, {}, ivan).pk)
    assert (action.succeeded, action.failed) == (4, 0)
    polls = OutboxMessage.objects.filter(task="integrations.poll_closed_won")
    assert sorted(m.args[0] for m in polls) == sorted([salesforce.pk, netsuite.pk])


def test_bulk_assign_and_ignore(ivan: User, it_queue: Queue) -> None:
    rate_limited(it_queue, 4)
    colleague = make_user("irene", team=it_queue.team)
    viewer = make_user("vic", team=it_queue.team, role=Role.VIEWER)
    query = {"queue": "it-integration"}

    action = bulk.run(bulk.create("assign", query, {"assignee": "irene"}, ivan).pk)
    assert action.succeeded == 4
    assert set(IntegrationException.objects.values_list("assignee", "assigned_manually")) == {
        (colleague.pk, True)
    }
    action = bulk.run(bulk.create("assign", query, {"assignee": "vic"}, ivan).pk)
    assert (action.succeeded, action.failed) == (0, 4)
    assert action.errors[0]["error"] == f"vic is not a resolver of {it_queue.team}."
    assert viewer.pk not in IntegrationException.objects.values_list("assignee", flat=True)

    params = {"reason": "Vendor outage, retried later", "until_it_happens_again": True}
    action = bulk.run(bulk.create("ignore", query, params, ivan).pk)
    assert action.succeeded == 4
    assert set(IntegrationException.objects.values_list("status", flat=True)) == {"ignored"}
    assert AuditEvent.objects.filter(action="exception.ignored", actor=ivan).count() == 4


def test_bulk_requests_are_checked(ivan: User, it_queue: Queue) -> None:
    rate_limited(it_queue, 1)
    client = api(ivan)
    url = "/api/v1/bulk-actions/"
    bad_filter = {"kind": "retry", "query": {"status": "sideways"}}
    assert client.post(url, bad_filter, format="json").status_code == 400
    nothing = {"kind": "retry", "query": {"queue": "nowhere"}}
    assert client.post(url, nothing, format="json").json()["detail"] == (
        "No exception matches these filters: nothing to do."
    )
    no_note = {"kind": "resolve", "query": {}}
    assert client.post(url, no_note, format="json").status_code == 400
    preview = client.post(f"{url}preview/", {"kind": "retry", "query": {}}, format="json")
    assert preview.json() == {"kind": "retry", "total": 1, "actionable": 1, "runs": 1, "polls": 0}
    assert not BulkAction.objects.exists()


def test_queue_page_confirm_then_progress(ivan: User, it_queue: Queue) -> None:
    rate_limited(it_queue, 7)
    client = Client()
    client.force_login(ivan)
    queue_page = client.get(it_queue.get_absolute_url()).content.decode()
    assert reverse("exceptions:bulk-new") in queue_page
    assert "Bulk action on all the results of these filters" in queue_page

    confirm = client.get(
        reverse("exceptions:bulk-new"),
        {"queue": it_queue.slug, "query": "status=active", "kind": "retry"},
    )
    body = confirm.content.decode()
    assert "7 exceptions match these filters" in body
    assert "A retry resumes <strong>7</strong> failed runs" in body

    response = client.post(
        reverse("exceptions:bulk-new"),
        {"queue": it_queue.slug, "query": "status=active", "kind": "retry"},
    )
    action = BulkAction.objects.get()
    assert response["Location"] == reverse("exceptions:bulk", args=[action.pk])
    assert action.query == {"status": "active", "queue": it_queue.slug}
    assert action.status == BulkStatus.QUEUED  # the worker has it; the page did not wait
    page = client.get(response["Location"]).content.decode()
    assert 'data-bulk-running="true"' in page
    assert reverse("exceptions-api:bulkaction-detail", args=[action.pk]) in page
    assert '0</span> of <span data-bulk="total">7</span>' in page

    bulk.run(action.pk)
    page = client.get(response["Location"]).content.decode()
    assert "data-bulk-running" not in page
    assert "Finished" in page


def test_only_resolvers_see_the_bulk_form(it_queue: Queue) -> None:
    rate_limited(it_queue, 1)
    viewer = make_user("vic", team=it_queue.team, role=Role.VIEWER)
    client = Client()
    client.force_login(viewer)
    assert (
        reverse("exceptions:bulk-new")
        not in client.get(it_queue.get_absolute_url()).content.decode()
    )
    response = client.get(reverse("exceptions:bulk-new"), {"queue": it_queue.slug, "kind": "retry"})
    assert "You may act on <strong>0</strong>" in response.content.decode()
