"""REST API of the exception queues: authentication, filters, queue counts, the retry action
(403 for the wrong team, 409 for the wrong state, 202 when queued) and its query budget."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from console.choices import Role
from console.models import User
from exceptions.choices import ExceptionCode, ExceptionStatus
from exceptions.models import IntegrationException, Queue
from integrations.choices import RunStatus, StepStatus
from integrations.models import OutboxMessage
from tests.factories import make_exception, make_run, make_user

pytestmark = pytest.mark.django_db


def client_for(user: User | None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


@pytest.fixture
def resolver(finance_queue: Queue) -> User:
    return make_user(team=finance_queue.team, role=Role.RESOLVER)


@pytest.fixture
def enqueued() -> Callable[[], list[int]]:
    """The run ids written to the outbox for a worker (the worker is tested elsewhere; these
    tests run in a transaction that never commits, so nothing is sent)."""

    def runs() -> list[int]:
        return [m.args[0] for m in OutboxMessage.objects.filter(task="integrations.run_workflow")]

    return runs


def ids(response: Any) -> set[int]:
    assert response.status_code == 200, response.content
    return {row["id"] for row in response.json()["results"]}


# -- authentication -------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["/api/v1/exceptions/", "/api/v1/queues/"])
def test_anonymous_is_refused(url: str) -> None:
    assert APIClient().get(url).status_code in (401, 403)


def test_anonymous_cannot_retry(finance_queue: Queue, enqueued: Callable[[], list[int]]) -> None:
    exc = make_exception(finance_queue)
    response = APIClient().post(f"/api/v1/exceptions/{exc.pk}/retry/")
    assert response.status_code in (401, 403)
    assert enqueued() == []


def test_token_authentication_works(resolver: User, finance_queue: Queue) -> None:
    exc = make_exception(finance_queue)
    token = Token.objects.create(user=resolver)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    response = client.get(f"/api/v1/exceptions/{exc.pk}/")
    assert response.status_code == 200
    assert response.json()["queue"] == finance_queue.slug


# -- list, filters, queues ------------------------------------------------------------------


def test_filters_by_status_queue_and_unresolved(
    resolver: User, finance_queue: Queue, pmo_queue: Queue
) -> None:
    open_finance = make_exception(finance_queue)
    retrying_finance = make_exception(finance_queue, status=ExceptionStatus.RETRYING)
    resolved_finance = make_exception(finance_queue, status=ExceptionStatus.RESOLVED)
    open_pmo = make_exception(pmo_queue, code=ExceptionCode.PROJECT_TEMPLATE_NOT_FOUND)
    client = client_for(resolver)
    url = "/api/v1/exceptions/"

    assert ids(client.get(url)) == {
        open_finance.pk,
        retrying_finance.pk,
        resolved_finance.pk,
        open_pmo.pk,
    }
    assert ids(client.get(url, {"status": "open"})) == {open_finance.pk, open_pmo.pk}
    assert ids(client.get(url, {"status": ["open", "retrying"]})) == {
        open_finance.pk,
        retrying_finance.pk,
        open_pmo.pk,
    }
    assert ids(client.get(url, {"queue": finance_queue.slug})) == {
        open_finance.pk,
        retrying_finance.pk,
        resolved_finance.pk,
    }
    assert ids(client.get(url, {"unresolved": "true"})) == {
        open_finance.pk,
        retrying_finance.pk,
        open_pmo.pk,
    }
    assert ids(client.get(url, {"unresolved": "false"})) == {resolved_finance.pk}
    assert ids(client.get(url, {"queue": pmo_queue.slug, "unresolved": "true"})) == {open_pmo.pk}
    assert ids(client.get(url, {"code": "project_template_not_found"})) == {open_pmo.pk}
    assert ids(client.get(url, {"q": open_finance.entity_ref})) == {open_finance.pk}


def test_invalid_filter_value_is_a_400(resolver: User) -> None:
    response = client_for(resolver).get("/api/v1/exceptions/", {"status": "lost"})
    assert response.status_code == 400


def test_exception_detail_fields(resolver: User, finance_queue: Queue) -> None:
    exc = make_exception(finance_queue)
    body = client_for(resolver).get(f"/api/v1/exceptions/{exc.pk}/").json()
    assert body["code"] == ExceptionCode.TAX_CONFIGURATION_MISSING
    assert body["status"] == "open"
    assert body["run"] == exc.run_id
    assert body["correlation_id"] == exc.run.correlation_id
    assert body["suggested_fix"]


def test_queues_have_open_counts(resolver: User, finance_queue: Queue, pmo_queue: Queue) -> None:
    make_exception(finance_queue)
    make_exception(finance_queue)
    make_exception(finance_queue, status=ExceptionStatus.RETRYING)
    make_exception(finance_queue, status=ExceptionStatus.RESOLVED)
    client = client_for(resolver)
    rows = {row["slug"]: row for row in client.get("/api/v1/queues/").json()["results"]}
    assert rows[finance_queue.slug]["active_count"] == 3  # open, open, retry queued
    assert rows[finance_queue.slug]["unresolved_count"] == 3
    assert rows[finance_queue.slug]["team"] == finance_queue.team.slug
    assert rows[pmo_queue.slug]["open_count"] == 0
    detail = client.get(f"/api/v1/queues/{finance_queue.slug}/").json()
    assert detail["active_count"] == 3


def test_exception_list_query_count(
    resolver: User, finance_queue: Queue, pmo_queue: Queue, django_assert_max_num_queries: Any
) -> None:
    resolved_by = make_user()
    for i in range(12):
        make_exception(
            finance_queue if i % 2 else pmo_queue,
            status=ExceptionStatus.RESOLVED if i % 3 == 0 else ExceptionStatus.OPEN,
            resolved_by=resolved_by if i % 3 == 0 else None,
        )
    client = client_for(resolver)
    # count + page + the user's finance rights (masking), whatever the page size (one spare
    # for a filter's own look-up).
    with django_assert_max_num_queries(3):
        assert client.get("/api/v1/exceptions/").json()["count"] == 12
    with django_assert_max_num_queries(4):
        response = client.get(
            "/api/v1/exceptions/", {"queue": finance_queue.slug, "unresolved": "true"}
        )
        assert response.json()["count"] == 4


# -- retry ----------------------------------------------------------------------------------


def test_retry_queues_the_run_for_a_resolver_of_the_team(
    resolver: User, finance_queue: Queue, enqueued: Callable[[], list[int]]
) -> None:
    exc = make_exception(finance_queue)
    response = client_for(resolver).post(f"/api/v1/exceptions/{exc.pk}/retry/")
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == ExceptionStatus.RETRYING
    assert body["message"]
    assert enqueued() == [exc.run_id]
    exc.refresh_from_db()
    assert exc.status == ExceptionStatus.RETRYING
    assert exc.run.status == RunStatus.PENDING
    assert not exc.run.steps.filter(status=StepStatus.FAILED).exists()


def test_retry_is_refused_for_a_user_of_another_team(
    finance_queue: Queue, pmo_queue: Queue, enqueued: Callable[[], list[int]]
) -> None:
    exc = make_exception(finance_queue)
    pmo_resolver = make_user(team=pmo_queue.team, role=Role.ADMIN)
    response = client_for(pmo_resolver).post(f"/api/v1/exceptions/{exc.pk}/retry/")
    assert response.status_code == 403
    assert enqueued() == []
    exc.refresh_from_db()
    assert exc.status == ExceptionStatus.OPEN
    assert exc.run.status == RunStatus.FAILED


def test_retry_is_refused_for_a_viewer_of_the_team(
    finance_queue: Queue, enqueued: Callable[[], list[int]]
) -> None:
    exc = make_exception(finance_queue)
    viewer = make_user(team=finance_queue.team, role=Role.VIEWER)
    assert client_for(viewer).post(f"/api/v1/exceptions/{exc.pk}/retry/").status_code == 403
    assert enqueued() == []


def test_retry_of_a_resolved_exception_is_a_conflict(
    resolver: User, finance_queue: Queue, enqueued: Callable[[], list[int]]
) -> None:
    exc = make_exception(finance_queue, status=ExceptionStatus.RESOLVED)
    response = client_for(resolver).post(f"/api/v1/exceptions/{exc.pk}/retry/")
    assert response.status_code == 409
    assert "resolved" in response.json()["detail"]
    assert enqueued() == []


def test_retry_while_the_run_is_queued_is_a_conflict(
    resolver: User, finance_queue: Queue, enqueued: Callable[[], list[int]]
) -> None:
    exc = make_exception(finance_queue, run=make_run(status=RunStatus.PENDING))
    response = client_for(resolver).post(f"/api/v1/exceptions/{exc.pk}/retry/")
    assert response.status_code == 409
    assert enqueued() == []
    exc.refresh_from_db()
    assert exc.status == ExceptionStatus.OPEN


def test_superuser_may_retry_any_queue(
    finance_queue: Queue, enqueued: Callable[[], list[int]]
) -> None:
    exc = make_exception(finance_queue)
    admin = make_user(is_superuser=True)
    assert client_for(admin).post(f"/api/v1/exceptions/{exc.pk}/retry/").status_code == 202
    assert enqueued() == [exc.run_id]


def test_exceptions_are_read_only(resolver: User, finance_queue: Queue) -> None:
    exc = make_exception(finance_queue)
    client = client_for(resolver)
    url = f"/api/v1/exceptions/{exc.pk}/"
    assert client.patch(url, {"status": "resolved"}, format="json").status_code == 405
    assert client.delete(url).status_code == 405
    assert IntegrationException.objects.get(pk=exc.pk).status == ExceptionStatus.OPEN
