"""Exception pages through the Django test client: queues, a queue's filtered list with its
Retry buttons, the detail page (escaped, truncated payloads) and the retry action."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client
from django.urls import reverse

from console.choices import Role
from console.models import AuditEvent, User
from exceptions.choices import ExceptionCode, ExceptionStatus
from exceptions.models import IntegrationException, Queue
from exceptions.views import PAYLOAD_DISPLAY_CHARS
from integrations.choices import RunStatus
from integrations.models import OutboxMessage
from tests.factories import make_exception, make_run, make_user

pytestmark = pytest.mark.django_db

SCRIPT = "<script>alert(1)</script>"


@pytest.fixture
def resolver(finance_queue: Queue) -> User:
    return make_user("fiona", team=finance_queue.team)


@pytest.fixture
def enqueued() -> Callable[[], list[int]]:
    """The run ids written to the outbox for a worker (the worker is tested elsewhere; these
    tests run in a transaction that never commits, so nothing is sent)."""

    def runs() -> list[int]:
        return [m.args[0] for m in OutboxMessage.objects.filter(task="integrations.run_workflow")]

    return runs


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize(
    "url",
    [
        "/exceptions/",
        "/exceptions/queues/finance/",
        "/exceptions/1/",
    ],
)
def test_pages_require_login(client: Client, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_retry_requires_login_and_post(
    client: Client, resolver: User, finance_queue: Queue
) -> None:
    exc = make_exception(finance_queue)
    url = reverse("exceptions:retry", args=[exc.pk])
    assert client.post(url)["Location"].startswith(reverse("login"))
    assert signed_in(resolver).get(url).status_code == 405


def test_queues_page_lists_mine_first(
    resolver: User, finance_queue: Queue, pmo_queue: Queue
) -> None:
    make_exception(finance_queue)
    make_exception(finance_queue, status=ExceptionStatus.RESOLVED)
    response = signed_in(resolver).get(reverse("exceptions:queues"))
    assert [q.slug for q in response.context["my_queues"]] == ["finance"]
    assert [q.slug for q in response.context["other_queues"]] == ["pmo"]
    assert response.context["my_queues"][0].open_count == 1


def test_queue_page_shows_unresolved_by_default(resolver: User, finance_queue: Queue) -> None:
    open_exc = make_exception(finance_queue, title="Open one")
    retrying = make_exception(finance_queue, title="Retrying one", status=ExceptionStatus.RETRYING)
    make_exception(finance_queue, title="Resolved one", status=ExceptionStatus.RESOLVED)
    response = signed_in(resolver).get(finance_queue.get_absolute_url())
    assert response.status_code == 200
    assert {e.pk for e in response.context["exceptions"]} == {open_exc.pk, retrying.pk}
    body = response.content.decode()
    assert "Resolved one" not in body
    assert "Tax configuration missing" in body  # the code's label
    assert 'class="badge badge-open"' in body


def test_queue_page_only_shows_its_queue(
    resolver: User, finance_queue: Queue, pmo_queue: Queue
) -> None:
    make_exception(pmo_queue, title="PMO only")
    response = signed_in(resolver).get(finance_queue.get_absolute_url() + "?queue=pmo")
    assert list(response.context["exceptions"]) == []


def test_queue_page_filters(resolver: User, finance_queue: Queue) -> None:
    de = make_exception(finance_queue, title="German entity", legal_entity_code="DE01")
    make_exception(finance_queue, title="British entity", legal_entity_code="GB01")
    closed = make_exception(
        finance_queue,
        title="Closed period",
        code=ExceptionCode.CUSTOMER_REJECTED_BY_ERP,
        status=ExceptionStatus.RESOLVED,
    )
    client = signed_in(resolver)
    url = finance_queue.get_absolute_url()

    response = client.get(url, {"legal_entity_code": "DE01"})
    assert [e.pk for e in response.context["exceptions"]] == [de.pk]

    response = client.get(url, {"q": "british"})
    assert [e.title for e in response.context["exceptions"]] == ["British entity"]

    response = client.get(url, {"unresolved": "false"})
    assert [e.pk for e in response.context["exceptions"]] == [closed.pk]

    response = client.get(url, {"status": ["resolved"], "code": ["customer_rejected_by_erp"]})
    assert [e.pk for e in response.context["exceptions"]] == [closed.pk]

    response = client.get(url, {"unresolved": "unknown"})
    assert len(response.context["exceptions"]) == 3


def test_queue_page_is_paginated(resolver: User, finance_queue: Queue) -> None:
    run = make_run()
    for _ in range(55):
        make_exception(finance_queue, run=run)
    client = signed_in(resolver)
    first = client.get(finance_queue.get_absolute_url())
    assert len(first.context["exceptions"]) == 50
    older = first.context["page"].next_cursor
    assert f"cursor={older}".encode() in first.content  # the "Older" link (keyset paging)
    second = client.get(finance_queue.get_absolute_url(), {"cursor": older})
    assert len(second.context["exceptions"]) == 5
    assert not {e.pk for e in second.context["exceptions"]} & {
        e.pk for e in first.context["exceptions"]
    }


def test_retry_button_only_where_user_can_act(
    resolver: User, finance_queue: Queue, pmo_queue: Queue
) -> None:
    exc = make_exception(finance_queue)
    retry_url = reverse("exceptions:retry", args=[exc.pk])
    assert retry_url in signed_in(resolver).get(finance_queue.get_absolute_url()).content.decode()

    viewer = make_user("vera", team=finance_queue.team, role=Role.VIEWER)
    body = signed_in(viewer).get(finance_queue.get_absolute_url()).content.decode()
    assert retry_url not in body

    outsider = make_user("pat", team=pmo_queue.team)
    body = signed_in(outsider).get(finance_queue.get_absolute_url()).content.decode()
    assert retry_url not in body
    assert "Only Finance resolvers can retry" in (
        signed_in(outsider).get(exc.get_absolute_url()).content.decode()
    )


def test_queue_page_query_count_is_bounded(
    resolver: User, finance_queue: Queue, django_assert_max_num_queries
) -> None:
    for _ in range(30):
        make_exception(finance_queue)
    client = signed_in(resolver)
    client.get(finance_queue.get_absolute_url())  # warm the session
    with django_assert_max_num_queries(10):
        response = client.get(finance_queue.get_absolute_url())
    assert len(response.context["exceptions"]) == 30


def test_detail_shows_explanation_fix_and_run(resolver: User, finance_queue: Queue) -> None:
    exc = make_exception(
        finance_queue,
        explanation="DE01 has no tax registration in the ERP.",
        suggested_fix="Add the VAT number to subsidiary DE01, then Retry.",
        vendor_error={"status": 400, "detail": "taxRegistration required"},
    )
    response = signed_in(resolver).get(exc.get_absolute_url())
    body = response.content.decode()
    assert "DE01 has no tax registration in the ERP." in body
    assert "Add the VAT number to subsidiary DE01, then Retry." in body
    assert reverse("integrations:run", args=[exc.run_id]) in body
    assert "taxRegistration required" in body
    assert reverse("exceptions:retry", args=[exc.pk]) in body
    assert exc.entity_ref in body


def test_detail_escapes_html(resolver: User, finance_queue: Queue) -> None:
    exc = make_exception(
        finance_queue,
        title=f"Deal {SCRIPT}",
        explanation=f"Bad name {SCRIPT}",
        payload={"Name": SCRIPT, "Html": "<img src=x onerror=alert(2)>"},
        vendor_error={"message": SCRIPT},
    )
    body = signed_in(resolver).get(exc.get_absolute_url()).content.decode()
    assert SCRIPT not in body
    assert "<img src=x" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "&lt;img src=x onerror=alert(2)&gt;" in body


def test_detail_truncates_huge_payload(resolver: User, finance_queue: Queue) -> None:
    exc = make_exception(finance_queue, payload={"blob": "x" * 2_000_000})
    response = signed_in(resolver).get(exc.get_absolute_url())
    assert len(response.context["payload_json"]) == PAYLOAD_DISPLAY_CHARS
    assert response.context["payload_truncated"]
    assert b"Showing the first 20000 of" in response.content
    assert len(response.content) < 200_000


def test_retry_refused_for_another_teams_member(
    finance_queue: Queue, pmo_queue: Queue, enqueued: Callable[[], list[int]]
) -> None:
    exc = make_exception(finance_queue)
    outsider = make_user("pat", team=pmo_queue.team)
    response = signed_in(outsider).post(reverse("exceptions:retry", args=[exc.pk]), follow=True)
    assert response.redirect_chain[-1][0] == exc.get_absolute_url()
    assert b"Only members of Finance with a resolver role can retry." in response.content
    assert b"message-error" in response.content
    assert enqueued() == []
    exc.refresh_from_db()
    assert exc.status == ExceptionStatus.OPEN
    assert exc.run.status == RunStatus.FAILED
    assert not AuditEvent.objects.filter(action="exception.retry").exists()


def test_retry_queues_the_run_and_goes_back(
    resolver: User, finance_queue: Queue, enqueued: Callable[[], list[int]]
) -> None:
    exc = make_exception(finance_queue)
    queue_url = finance_queue.get_absolute_url() + "?legal_entity_code=DE01"
    response = signed_in(resolver).post(
        reverse("exceptions:retry", args=[exc.pk]), {"next": queue_url}, follow=True
    )
    assert response.redirect_chain[0][0] == queue_url
    assert b"Retry queued" in response.content
    assert b"message-success" in response.content
    assert enqueued() == [exc.run_id]
    exc.refresh_from_db()
    assert exc.status == ExceptionStatus.RETRYING
    assert AuditEvent.objects.filter(action="exception.retry", object_id=str(exc.pk)).exists()


def test_retry_ignores_an_unsafe_next(
    resolver: User, finance_queue: Queue, enqueued: Callable[[], list[int]]
) -> None:
    exc = make_exception(finance_queue)
    response = signed_in(resolver).post(
        reverse("exceptions:retry", args=[exc.pk]), {"next": "https://evil.example/phish"}
    )
    assert response.status_code == 302
    assert response["Location"] == exc.get_absolute_url()


def test_retry_of_a_resolved_exception_is_refused(
    resolver: User, finance_queue: Queue, enqueued: Callable[[], list[int]]
) -> None:
    exc = make_exception(finance_queue, status=ExceptionStatus.RESOLVED)
    response = signed_in(resolver).post(reverse("exceptions:retry", args=[exc.pk]), follow=True)
    assert b"already resolved" in response.content
    assert enqueued() == []
    assert IntegrationException.objects.get(pk=exc.pk).status == ExceptionStatus.RESOLVED
