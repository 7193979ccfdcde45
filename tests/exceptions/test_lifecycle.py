"""The lifecycle of an exception by people (exceptions.lifecycle and actions.restart), through
the functions, the detail page and the REST API: each action works for a resolver of the
queue's team, is refused for a viewer and for another team, and leaves an audit record; a
manual assignment survives the rules; ignored exceptions come back exactly when they should."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from console.choices import Role
from console.models import AuditEvent, User
from exceptions import actions, ignoring, lifecycle, rerouting, services
from exceptions.actions import ActionRefused, InvalidInput, NotAllowed
from exceptions.choices import ExceptionStatus
from exceptions.models import Comment, IntegrationException, Queue, RoutingRule
from integrations.choices import RunStatus, StepStatus
from integrations.models import OutboxMessage
from integrations.workflows.failures import StepFailure
from tests.factories import make_exception, make_run, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def frank(finance_queue: Queue) -> User:
    return make_user("frank", team=finance_queue.team)


@pytest.fixture
def viewer(finance_queue: Queue) -> User:
    return make_user("vera", team=finance_queue.team, role=Role.VIEWER)


@pytest.fixture
def outsider(pmo_queue: Queue) -> User:
    return make_user("pat", team=pmo_queue.team)


def audited(action: str, exc: IntegrationException, actor: User | None = None) -> bool:
    events = AuditEvent.objects.filter(action=action, object_id=str(exc.pk))
    if actor is not None:
        events = events.filter(actor=actor)
    return events.exists()


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def api(user: User) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def repeat(exc: IntegrationException) -> IntegrationException:
    """The same failure happens again (the engine reports it; services groups it)."""
    failure = StepFailure(
        kind="business", code="tax_configuration_missing", message="again", payload={}
    )
    IntegrationException.objects.filter(pk=exc.pk).update(
        fingerprint=services.fingerprint(
            "tax_configuration_missing", "", "", exc.run.correlation_id, "fetch_deal"
        )
    )
    services.open_exception(
        failure, run=exc.run, step=exc.step, key=(exc.run.correlation_id, "fetch_deal")
    )
    exc.refresh_from_db()
    return exc


# -- assignment ---------------------------------------------------------------------------


def test_assign_to_a_resolver_of_the_team(fiona: User, frank: User, finance_queue: Queue) -> None:
    exc = make_exception(finance_queue)
    result = lifecycle.assign(exc, fiona, frank)
    assert result.ok
    exc.refresh_from_db()
    assert (exc.assignee, exc.assigned_manually) == (frank, True)
    assert audited("exception.assigned", exc, fiona)


def test_assign_is_refused_for_a_viewer_and_another_team(
    viewer: User, outsider: User, frank: User, finance_queue: Queue
) -> None:
    exc = make_exception(finance_queue)
    for user in (viewer, outsider):
        with pytest.raises(NotAllowed, match="Only members of Finance with a resolver role"):
            lifecycle.assign(exc, user, frank)
    exc.refresh_from_db()
    assert exc.assignee is None
    assert not AuditEvent.objects.filter(action="exception.assigned").exists()


def test_assign_only_to_someone_who_can_work_the_queue(
    fiona: User, viewer: User, outsider: User, finance_queue: Queue
) -> None:
    exc = make_exception(finance_queue)
    for person in (viewer, outsider):
        with pytest.raises(InvalidInput, match="is not a resolver of Finance"):
            lifecycle.assign(exc, fiona, person)


def test_take_and_unassign(fiona: User, finance_queue: Queue) -> None:
    exc = make_exception(finance_queue)
    assert lifecycle.take(exc, fiona).message == "It is yours now."
    assert exc.assignee == fiona
    with pytest.raises(ActionRefused, match="already assigned to fiona"):
        lifecycle.take(exc, fiona)
    lifecycle.unassign(exc, fiona)
    exc.refresh_from_db()
    assert exc.assignee is None
    assert exc.assigned_manually  # nobody, on purpose: the rules do not assign it again
    assert audited("exception.unassigned", exc, fiona)
    with pytest.raises(ActionRefused, match="Nobody is assigned"):
        lifecycle.unassign(exc, fiona)


def test_a_manual_assignment_survives_rerouting_and_repeats(
    fiona: User, frank: User, finance_queue: Queue, pmo_queue: Queue
) -> None:
    exc = make_exception(finance_queue)
    lifecycle.assign(exc, fiona, frank)
    RoutingRule.objects.create(
        position=1, name="Tax to PMO", queue=pmo_queue, codes=["tax_configuration_missing"]
    )
    report = rerouting.reroute(actor=fiona)
    assert report.kept_manual == 1
    repeat(exc)
    assert (exc.queue, exc.assignee, exc.assigned_manually) == (finance_queue, frank, True)
    assert exc.occurrences == 2


# -- start, comment -----------------------------------------------------------------------


def test_start_puts_it_in_progress_and_makes_it_the_starters(
    fiona: User, viewer: User, finance_queue: Queue
) -> None:
    exc = make_exception(finance_queue)
    with pytest.raises(NotAllowed):
        lifecycle.start(exc, viewer)
    lifecycle.start(exc, fiona)
    assert (exc.status, exc.assignee) == (ExceptionStatus.IN_PROGRESS, fiona)
    assert audited("exception.started", exc, fiona)
    with pytest.raises(ActionRefused, match="Only an open exception can be started"):
        lifecycle.start(exc, fiona)
    # a repeat while someone works on it keeps it in progress
    assert repeat(exc).status == ExceptionStatus.IN_PROGRESS


def test_comments_are_validated_and_audited(
    fiona: User, outsider: User, finance_queue: Queue
) -> None:
    exc = make_exception(finance_queue)
    note = lifecycle.comment(exc, fiona, "  Asked the controller for the VAT number.  ")
    assert note.body == "Asked the controller for the VAT number."
    assert audited("exception.commented", exc, fiona)
    with pytest.raises(InvalidInput, match="Write a comment"):
        lifecycle.comment(exc, fiona, "   ")
    with pytest.raises(InvalidInput, match="at most 5000"):
        lifecycle.comment(exc, fiona, "x" * 5001)
    with pytest.raises(NotAllowed):
        lifecycle.comment(exc, outsider, "Not my queue")
    assert Comment.objects.filter(exception=exc).count() == 1


# -- ignore and reopen --------------------------------------------------------------------


def test_ignored_for_good_stays_ignored_when_it_happens_again(
    fiona: User, finance_queue: Queue
) -> None:
    exc = make_exception(finance_queue)
    with pytest.raises(InvalidInput, match="Write why you ignore it"):
        lifecycle.ignore(exc, fiona, "")
    assert (
        lifecycle.ignore(exc, fiona, "Test entity, never invoiced").message == "Ignored for good."
    )
    assert audited("exception.ignored", exc, fiona)
    exc = repeat(exc)
    assert exc.status == ExceptionStatus.IGNORED
    assert exc.occurrences == 2
    assert exc.ignored_reason == "Test entity, never invoiced"


def test_ignored_until_it_happens_again_is_reopened_by_a_repeat(
    fiona: User, finance_queue: Queue
) -> None:
    exc = make_exception(finance_queue)
    lifecycle.ignore(exc, fiona, "One-off glitch", until_it_happens_again=True)
    assert ignoring.describe(exc) == "Ignored until it happens again"
    assert ignoring.wake_due() == 0  # no clock wakes it
    exc = repeat(exc)
    assert exc.status == ExceptionStatus.OPEN
    assert (exc.ignored_reason, exc.ignored_until) == ("", None)
    assert audited("exception.reopened", exc)


def test_ignored_until_a_time_comes_back_then(fiona: User, finance_queue: Queue) -> None:
    exc = make_exception(finance_queue)
    with pytest.raises(InvalidInput, match="already passed"):
        lifecycle.ignore(exc, fiona, "Period closes", until=timezone.now() - dt.timedelta(hours=1))
    until = timezone.now() + dt.timedelta(days=2)
    lifecycle.ignore(exc, fiona, "Period reopens Monday", until=until)
    assert repeat(exc).status == ExceptionStatus.IGNORED  # a repeat before the time: still
    assert ignoring.wake_due(until - dt.timedelta(minutes=1)) == 0
    assert ignoring.wake_due(until + dt.timedelta(minutes=1)) == 1
    exc.refresh_from_db()
    assert exc.status == ExceptionStatus.OPEN


def test_reopen_an_ignored_or_resolved_exception(fiona: User, finance_queue: Queue) -> None:
    exc = make_exception(finance_queue)
    with pytest.raises(ActionRefused, match="Only an ignored or resolved exception"):
        lifecycle.reopen(exc, fiona)
    lifecycle.ignore(exc, fiona, "later")
    lifecycle.reopen(exc, fiona)
    assert (exc.status, exc.ignored_reason) == (ExceptionStatus.OPEN, "")
    lifecycle.resolve(exc, fiona, "Fixed in NetSuite directly")
    lifecycle.reopen(exc, fiona)
    assert (exc.status, exc.resolved_at, exc.resolution) == (ExceptionStatus.OPEN, None, "")
    assert AuditEvent.objects.filter(action="exception.reopened", actor=fiona).count() == 2


def test_reopen_refuses_when_the_same_failure_is_open_again(
    fiona: User, finance_queue: Queue
) -> None:
    old = make_exception(finance_queue, fingerprint="same", status=ExceptionStatus.RESOLVED)
    newer = make_exception(finance_queue, fingerprint="same")
    with pytest.raises(ActionRefused, match=f"open as exception #{newer.pk}"):
        lifecycle.reopen(old, fiona)


# -- resolve by hand ----------------------------------------------------------------------


def test_resolve_by_hand_needs_a_note_and_is_audited(
    fiona: User, viewer: User, finance_queue: Queue
) -> None:
    exc = make_exception(finance_queue)
    with pytest.raises(NotAllowed):
        lifecycle.resolve(exc, viewer, "nope")
    with pytest.raises(InvalidInput, match="how it was resolved"):
        lifecycle.resolve(exc, fiona, " ")
    lifecycle.resolve(exc, fiona, "Invoice raised by hand in NetSuite")
    assert (exc.status, exc.resolved_by, exc.resolution) == (
        ExceptionStatus.RESOLVED,
        fiona,
        "Invoice raised by hand in NetSuite",
    )
    assert audited("exception.resolved", exc, fiona)
    with pytest.raises(ActionRefused, match="already resolved"):
        lifecycle.resolve(exc, fiona, "again")


# -- restart ------------------------------------------------------------------------------


def test_restart_sets_every_step_back_to_pending_and_enqueues_the_run(
    fiona: User, outsider: User, finance_queue: Queue
) -> None:
    run = make_run(steps=("fetch_deal", "check_legal_entity", "ensure_erp_customer"))
    exc = make_exception(finance_queue, run=run)
    with pytest.raises(NotAllowed):
        actions.restart(exc, outsider)
    result = actions.restart(exc, fiona)
    assert result.ok, result.message
    run.refresh_from_db()
    assert run.status == RunStatus.PENDING
    assert set(run.steps.values_list("status", flat=True)) == {StepStatus.PENDING}
    assert list(run.steps.values_list("attempts", flat=True)) == [1, 1, 1]  # kept: look first
    assert OutboxMessage.objects.filter(task="integrations.run_workflow", args=[run.pk]).exists()
    exc.refresh_from_db()
    assert exc.status == ExceptionStatus.RETRYING
    assert audited("exception.restart", exc, fiona)
    assert AuditEvent.objects.filter(action="run.restarted", object_id=str(run.pk)).exists()
    with pytest.raises(ActionRefused, match="already queued or running"):
        actions.restart(exc, fiona)


def test_restart_needs_a_run(fiona: User, finance_queue: Queue) -> None:
    exc = make_exception(finance_queue)
    IntegrationException.objects.filter(pk=exc.pk).update(run=None)
    exc.refresh_from_db()
    with pytest.raises(ActionRefused, match="no workflow run"):
        actions.restart(exc, fiona)


# -- through the pages and the API --------------------------------------------------------


def test_detail_page_shows_the_actions_panel_and_comments(
    fiona: User, frank: User, viewer: User, finance_queue: Queue
) -> None:
    exc = make_exception(finance_queue)
    lifecycle.comment(exc, frank, "Waiting for the <b>controller</b>.")
    body = signed_in(fiona).get(exc.get_absolute_url()).content.decode()
    assert reverse("exceptions:act", args=[exc.pk, "take"]) in body
    assert reverse("exceptions:act", args=[exc.pk, "ignore"]) in body
    assert reverse("exceptions:replay", args=[exc.pk]) in body
    assert "Waiting for the &lt;b&gt;controller&lt;/b&gt;." in body
    assert reverse("exceptions:comment", args=[exc.pk]) in body
    body = signed_in(viewer).get(exc.get_absolute_url()).content.decode()
    assert reverse("exceptions:act", args=[exc.pk, "take"]) not in body
    assert reverse("exceptions:comment", args=[exc.pk]) not in body
    assert "Only Finance members with a resolver role can assign" in body


def test_page_actions_post_and_come_back_with_a_message(
    fiona: User, frank: User, viewer: User, finance_queue: Queue
) -> None:
    exc = make_exception(finance_queue)
    client = signed_in(fiona)
    response = client.post(
        reverse("exceptions:act", args=[exc.pk, "assign"]), {"assignee": "frank"}, follow=True
    )
    assert b"Assigned to frank." in response.content
    response = client.post(
        reverse("exceptions:act", args=[exc.pk, "ignore"]),
        {"reason": "Known issue", "mode": "until", "until": "2099-01-01T09:00"},
        follow=True,
    )
    assert b"Ignored until 2099-01-01 09:00 UTC." in response.content
    exc.refresh_from_db()
    assert exc.ignored_until == dt.datetime(2099, 1, 1, 9, 0, tzinfo=dt.UTC)
    response = client.post(
        reverse("exceptions:comment", args=[exc.pk]), {"body": "Looked at it"}, follow=True
    )
    assert b"Comment added." in response.content
    response = signed_in(viewer).post(
        reverse("exceptions:act", args=[exc.pk, "reopen"]), follow=True
    )
    assert b"Only members of Finance with a resolver role can reopen" in response.content
    exc.refresh_from_db()
    assert exc.status == ExceptionStatus.IGNORED


def test_api_actions(fiona: User, frank: User, outsider: User, finance_queue: Queue) -> None:
    exc = make_exception(finance_queue)
    base = f"/api/v1/exceptions/{exc.pk}"
    response = api(fiona).post(f"{base}/assign/", {"assignee": "frank"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["assignee"] == "frank"
    assert api(outsider).post(f"{base}/take/").status_code == 403
    assert api(fiona).post(f"{base}/start/").json()["status"] == "in_progress"
    response = api(fiona).post(f"{base}/comments/", {"body": "On it"}, format="json")
    assert response.status_code == 201
    assert [c["body"] for c in api(outsider).get(f"{base}/comments/").json()] == ["On it"]
    assert api(fiona).post(f"{base}/comments/", {"body": ""}, format="json").status_code == 400
    response = api(fiona).post(
        f"{base}/ignore/", {"reason": "flaky", "until_it_happens_again": True}, format="json"
    )
    assert response.json()["status"] == "ignored"
    assert api(fiona).post(f"{base}/ignore/", {"reason": "x"}, format="json").status_code == 409
    assert api(fiona).post(f"{base}/reopen/").json()["status"] == "open"
    response = api(fiona).post(f"{base}/resolve/", {"note": "done by hand"}, format="json")
    assert response.json()["status"] == "resolved"
    assert api(fiona).post(f"{base}/unassign/").status_code == 409
    assert AuditEvent.objects.filter(object_id=str(exc.pk), actor=fiona).count() >= 6
