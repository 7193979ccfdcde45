"""Saved views: a person saves the queue page's filters under a name, finds them on the queue
page and under "my queues", opens them, deletes their own; the API offers the same to each
owner alone. Every save and delete is audited."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from console.models import AuditEvent, User
from exceptions.models import Queue, SavedView
from tests.factories import make_exception, make_user

pytestmark = pytest.mark.django_db


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def api_for(user: User) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_save_the_current_filters_and_open_them_again(fiona: User, finance_queue: Queue) -> None:
    de = make_exception(finance_queue, legal_entity_code="DE01")
    make_exception(finance_queue, legal_entity_code="UK01")
    client = signed_in(fiona)
    page = client.get(finance_queue.get_absolute_url(), {"legal_entity_code": "DE01"})
    query = page.context["filter_query"]
    assert query == "legal_entity_code=DE01&status=active"

    response = client.post(
        reverse("exceptions:save-view", args=[finance_queue.slug]),
        {"name": "DE01 tax", "query": query + "&cursor=abc"},
        follow=True,
    )

    view = SavedView.objects.get(owner=fiona)
    assert (view.name, view.queue, view.query) == ("DE01 tax", finance_queue, query)
    assert response.redirect_chain[-1][0] == f"{finance_queue.get_absolute_url()}?{query}"
    assert [e.pk for e in response.context["exceptions"]] == [de.pk]
    assert b"Saved the view" in response.content
    assert AuditEvent.objects.filter(
        action="exception.view_saved", actor=fiona, object_id=str(view.pk)
    ).exists()
    # listed on the queue page and on "my queues", with a link that opens it
    link = f'href="{finance_queue.get_absolute_url()}?legal_entity_code=DE01&amp;status=active"'
    assert link in client.get(finance_queue.get_absolute_url()).content.decode()
    queues = client.get(reverse("exceptions:queues"))
    assert [v.name for v in queues.context["saved_views"]] == ["DE01 tax"]
    assert link in queues.content.decode()


def test_a_second_view_of_the_same_name_is_refused(fiona: User, finance_queue: Queue) -> None:
    client = signed_in(fiona)
    url = reverse("exceptions:save-view", args=[finance_queue.slug])
    client.post(url, {"name": "Mine", "query": "region=EMEA"})
    response = client.post(url, {"name": "Mine", "query": "region=APAC"}, follow=True)
    assert b"You already have a view named" in response.content
    assert list(SavedView.objects.values_list("query", flat=True)) == ["region=EMEA"]


@pytest.mark.parametrize(
    ("name", "query", "message"),
    [
        ("", "region=EMEA", b"Give the view a name."),
        ("Bad", "sla=late", b"These filters are not valid: SLA"),
        ("Long", "q=" + "x" * 1200, b"This filter is too long to save"),
    ],
)
def test_views_that_cannot_be_saved_say_why(
    fiona: User, finance_queue: Queue, name: str, query: str, message: bytes
) -> None:
    response = signed_in(fiona).post(
        reverse("exceptions:save-view", args=[finance_queue.slug]),
        {"name": name, "query": query},
        follow=True,
    )
    assert message in response.content
    assert not SavedView.objects.exists()


def test_delete_ones_own_view_only(fiona: User, finance_queue: Queue) -> None:
    mine = SavedView.objects.create(owner=fiona, name="Mine", queue=finance_queue, query="")
    other = make_user("olga", team=finance_queue.team)
    theirs = SavedView.objects.create(owner=other, name="Theirs", queue=finance_queue, query="")
    client = signed_in(fiona)

    assert client.post(reverse("exceptions:delete-view", args=[theirs.pk])).status_code == 404
    response = client.post(
        reverse("exceptions:delete-view", args=[mine.pk]),
        {"next": finance_queue.get_absolute_url()},
    )
    assert response["Location"] == finance_queue.get_absolute_url()
    assert list(SavedView.objects.values_list("name", flat=True)) == ["Theirs"]
    assert AuditEvent.objects.filter(action="exception.view_deleted", actor=fiona).exists()
    # nobody sees someone else's views
    page = client.get(finance_queue.get_absolute_url())
    assert page.context["saved_views"] == []
    assert b"Theirs" not in page.content


def test_saving_and_deleting_need_a_signed_in_post(finance_queue: Queue) -> None:
    save = reverse("exceptions:save-view", args=[finance_queue.slug])
    assert Client().post(save, {"name": "x"})["Location"].startswith(reverse("login"))
    assert signed_in(make_user()).get(save).status_code == 405


# -- API --------------------------------------------------------------------------------------


def test_api_create_list_change_delete(fiona: User, finance_queue: Queue) -> None:
    client = api_for(fiona)
    created = client.post(
        "/api/v1/saved-views/",
        {"name": "UK breaches", "queue": finance_queue.slug, "query": "sla=breached&cursor=x"},
        format="json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["query"] == "sla=breached"
    assert body["page_url"] == f"{finance_queue.get_absolute_url()}?sla=breached"
    assert body["api_url"] == f"/api/v1/exceptions/?sla=breached&queue={finance_queue.slug}"
    view_url = f"/api/v1/saved-views/{body['id']}/"

    assert [v["name"] for v in client.get("/api/v1/saved-views/").json()["results"]] == [
        "UK breaches"
    ]
    changed = client.patch(view_url, {"query": "sla=due_soon"}, format="json")
    assert changed.status_code == 200 and changed.json()["query"] == "sla=due_soon"
    assert client.delete(view_url).status_code == 204
    assert not SavedView.objects.exists()
    actions = set(AuditEvent.objects.filter(actor=fiona).values_list("action", flat=True))
    assert {"exception.view_saved", "exception.view_changed", "exception.view_deleted"} <= actions


def test_api_views_belong_to_their_owner(fiona: User, finance_queue: Queue) -> None:
    theirs = SavedView.objects.create(owner=make_user("olga"), name="Theirs", query="")
    client = api_for(fiona)
    assert client.get("/api/v1/saved-views/").json()["results"] == []
    for method in ("get", "patch", "delete"):
        response = getattr(client, method)(f"/api/v1/saved-views/{theirs.pk}/")
        assert response.status_code == 404, method
    assert SavedView.objects.filter(pk=theirs.pk).exists()
    assert APIClient().get("/api/v1/saved-views/").status_code in (401, 403)


def test_api_refuses_a_bad_query_or_a_taken_name(fiona: User) -> None:
    client = api_for(fiona)
    bad = client.post("/api/v1/saved-views/", {"name": "x", "query": "status=lost"}, format="json")
    assert bad.status_code == 400
    assert "These filters are not valid" in bad.json()["query"][0]
    ok = client.post("/api/v1/saved-views/", {"name": "All", "query": ""}, format="json")
    assert ok.status_code == 201
    assert ok.json()["page_url"] is None  # a view of no queue lives in the API only
    assert ok.json()["api_url"] == "/api/v1/exceptions/"
    taken = client.post("/api/v1/saved-views/", {"name": "All"}, format="json")
    assert taken.status_code == 400
    assert "already have a view" in taken.json()["name"][0]
