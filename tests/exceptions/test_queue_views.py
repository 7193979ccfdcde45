"""The queue views people work from: "my queues" with active and breached counts, the queue
page's filters (the same FilterSet as the API), keyset paging, and the detail page's links to
the records in each system."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from console.choices import Role
from console.models import User
from exceptions import pagination
from exceptions.choices import ExceptionCode, ExceptionStatus
from exceptions.links import record_url
from exceptions.models import Incident, IntegrationException, Queue
from integrations import bindings
from integrations.choices import Vendor
from tests.factories import (
    make_connection,
    make_exception,
    make_run,
    make_user,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def resolver(finance_queue: Queue) -> User:
    return make_user("fiona", team=finance_queue.team)


def exception_at(queue: Queue, **fields: Any) -> IntegrationException:
    """make_exception, with first_seen/last_seen as given (the model stamps them on create)."""
    stamps = {k: fields.pop(k) for k in ("first_seen", "last_seen") if k in fields}
    exc = make_exception(queue, **fields)
    if stamps:
        IntegrationException.objects.filter(pk=exc.pk).update(**stamps)
        exc.refresh_from_db()
    return exc


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def page_ids(client: Client, queue: Queue, params: dict[str, Any] | None = None) -> set[int]:
    response = client.get(queue.get_absolute_url(), params or {})
    assert response.status_code == 200
    return {e.pk for e in response.context["exceptions"]}


def api_ids(user: User, queue: Queue, params: dict[str, Any]) -> set[int]:
    client = APIClient()
    client.force_authenticate(user)
    response = client.get("/api/v1/exceptions/", {"queue": queue.slug, **params})
    assert response.status_code == 200, response.content
    return {row["id"] for row in response.json()["results"]}


# -- my queues ----------------------------------------------------------------------------


def test_my_queues_show_active_and_breached_counts(
    resolver: User, finance_queue: Queue, pmo_queue: Queue
) -> None:
    past, future = timezone.now() - dt.timedelta(hours=1), timezone.now() + dt.timedelta(days=1)
    make_exception(finance_queue, due_at=past)
    make_exception(finance_queue, due_at=future, status=ExceptionStatus.IN_PROGRESS)
    make_exception(finance_queue, due_at=past, status=ExceptionStatus.RESOLVED)
    make_exception(finance_queue, due_at=past, status=ExceptionStatus.IGNORED)
    make_exception(pmo_queue, due_at=past)

    response = signed_in(resolver).get(reverse("exceptions:queues"))

    (mine,) = response.context["my_queues"]
    assert (mine.slug, mine.active_count, mine.breached_count) == ("finance", 2, 1)
    (other,) = response.context["other_queues"]
    assert (other.slug, other.active_count, other.breached_count) == ("pmo", 1, 1)
    body = response.content.decode()
    assert "SLA breached" in body
    assert f"{finance_queue.get_absolute_url()}?sla=breached" in body


def test_my_queues_for_someone_in_no_team(finance_queue: Queue) -> None:
    response = signed_in(make_user("nobody")).get(reverse("exceptions:queues"))
    assert response.context["my_queues"] == []
    assert b"You are not a member of any team yet" in response.content
    assert b"No saved views yet" in response.content


# -- the queue page's filters ---------------------------------------------------------------


def test_active_is_the_default_status(resolver: User, finance_queue: Queue) -> None:
    active = {
        make_exception(finance_queue, status=status).pk
        for status in (
            ExceptionStatus.OPEN,
            ExceptionStatus.IN_PROGRESS,
            ExceptionStatus.RETRYING,
        )
    }
    ignored = make_exception(finance_queue, status=ExceptionStatus.IGNORED)
    make_exception(finance_queue, status=ExceptionStatus.RESOLVED)
    client = signed_in(resolver)

    response = client.get(finance_queue.get_absolute_url())
    assert {e.pk for e in response.context["exceptions"]} == active
    assert response.context["filter_form"]["status"].value() == ["active"]  # shown as applied
    assert page_ids(client, finance_queue, {"status": "ignored"}) == {ignored.pk}
    assert api_ids(resolver, finance_queue, {"status": "active"}) == active


def test_filters_match_between_page_and_api(
    resolver: User, finance_queue: Queue, pmo_queue: Queue
) -> None:
    """Every filter gives the same exceptions on the page and on the API."""
    now = timezone.now()
    erp = make_connection(Vendor.NETSUITE)
    other = make_user("olga", team=finance_queue.team)
    incident = Incident.objects.create(
        cause_key="period:2026-01",
        code=ExceptionCode.CLOSED_ACCOUNTING_PERIOD,
        title="Closed",
        queue=finance_queue,
    )
    uk_tax = exception_at(
        finance_queue,
        legal_entity_code="UK01",
        region="EMEA",
        assignee=resolver,
        due_at=now - dt.timedelta(hours=2),
        first_seen=now - dt.timedelta(hours=50),
    )
    us_period = exception_at(
        finance_queue,
        code=ExceptionCode.CLOSED_ACCOUNTING_PERIOD,
        legal_entity_code="US01",
        region="Americas",
        connection=erp,
        assignee=other,
        incident=incident,
        due_at=now + dt.timedelta(hours=2),
        first_seen=now - dt.timedelta(hours=3),
    )
    unassigned = exception_at(
        finance_queue,
        legal_entity_code="DE01",
        region="EMEA",
        due_at=now + dt.timedelta(hours=20),
        first_seen=now - dt.timedelta(hours=1),
    )
    make_exception(pmo_queue, legal_entity_code="UK01", assignee=resolver)  # another queue
    client = signed_in(resolver)
    cases: list[tuple[dict[str, Any], set[int]]] = [
        ({"code": ExceptionCode.CLOSED_ACCOUNTING_PERIOD}, {us_period.pk}),
        ({"legal_entity_code": "UK01"}, {uk_tax.pk}),
        ({"region": "EMEA"}, {uk_tax.pk, unassigned.pk}),
        ({"connection": erp.pk}, {us_period.pk}),
        ({"assignee": "me"}, {uk_tax.pk}),
        ({"assignee": "unassigned"}, {unassigned.pk}),
        ({"assignee": "olga"}, {us_period.pk}),
        ({"assignee": "nobody-by-that-name"}, set()),
        ({"older_than_hours": 24}, {uk_tax.pk}),
        ({"newer_than_hours": 4}, {us_period.pk, unassigned.pk}),
        ({"sla": "breached"}, {uk_tax.pk}),
        ({"sla": "due_soon"}, {us_period.pk}),  # 2 h left of a 24 h SLA: the last fifth
        ({"sla": "ok"}, {unassigned.pk}),
        ({"incident": incident.pk}, {us_period.pk}),
        ({"legal_entity_code": "UK01", "sla": "breached", "assignee": "me"}, {uk_tax.pk}),
    ]
    for params, expected in cases:
        assert page_ids(client, finance_queue, params) == expected, params
        assert api_ids(resolver, finance_queue, params) == expected, params


def test_invalid_filters_are_explained(resolver: User, finance_queue: Queue) -> None:
    make_exception(finance_queue)
    response = signed_in(resolver).get(
        finance_queue.get_absolute_url(), {"sla": "late", "older_than_hours": "-3"}
    )
    assert list(response.context["exceptions"]) == []
    body = response.content.decode()
    assert "Select a valid choice" in body
    assert "greater than or equal to 0" in body
    api = APIClient()
    api.force_authenticate(resolver)
    assert api.get("/api/v1/exceptions/", {"sla": "late"}).status_code == 400


def test_unknown_queue_slug_in_the_api_matches_nothing(
    resolver: User, finance_queue: Queue
) -> None:
    make_exception(finance_queue)
    assert api_ids(resolver, finance_queue, {"queue": "no-such-queue"}) == set()


# -- keyset paging ---------------------------------------------------------------------------


def test_older_and_newer_pages_walk_the_queue(resolver: User, finance_queue: Queue) -> None:
    run = make_run()
    base = timezone.now()
    made = [
        exception_at(finance_queue, run=run, last_seen=base - dt.timedelta(minutes=i))
        for i in range(120)
    ]
    newest_first = [e.pk for e in made]
    client = signed_in(resolver)
    url = finance_queue.get_absolute_url()

    first = client.get(url)
    assert [e.pk for e in first.context["exceptions"]] == newest_first[:50]
    assert first.context["page"].previous_cursor is None
    assert b"120 exceptions match" in first.content
    second = client.get(url, {"cursor": first.context["page"].next_cursor})
    assert [e.pk for e in second.context["exceptions"]] == newest_first[50:100]
    third = client.get(url, {"cursor": second.context["page"].next_cursor})
    assert [e.pk for e in third.context["exceptions"]] == newest_first[100:]
    assert third.context["page"].next_cursor is None
    back = client.get(url, {"cursor": third.context["page"].previous_cursor})
    assert [e.pk for e in back.context["exceptions"]] == newest_first[50:100]
    assert b"Newest" in back.content and b"Older" in back.content


def test_rows_seen_at_the_same_instant_are_neither_lost_nor_repeated(
    resolver: User, finance_queue: Queue
) -> None:
    run = make_run()
    same = timezone.now()
    ids = {exception_at(finance_queue, run=run, last_seen=same).pk for _ in range(75)}
    client = signed_in(resolver)
    first = client.get(finance_queue.get_absolute_url())
    second = client.get(
        finance_queue.get_absolute_url(), {"cursor": first.context["page"].next_cursor}
    )
    seen = [e.pk for e in first.context["exceptions"]] + [
        e.pk for e in second.context["exceptions"]
    ]
    assert sorted(seen) == sorted(ids)


def test_a_broken_page_link_starts_again(resolver: User, finance_queue: Queue) -> None:
    exc = make_exception(finance_queue)
    response = signed_in(resolver).get(finance_queue.get_absolute_url(), {"cursor": "bm9wZQ"})
    assert [e.pk for e in response.context["exceptions"]] == [exc.pk]
    assert b"This page link is not valid any more" in response.content
    api = APIClient()
    api.force_authenticate(resolver)
    assert api.get("/api/v1/exceptions/", {"cursor": "bm9wZQ"}).status_code == 404


def test_api_pages_by_cursor_and_caps_its_count(
    resolver: User, finance_queue: Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pagination, "COUNT_CAP", 5)
    run = make_run()
    base = timezone.now()
    made = [
        exception_at(finance_queue, run=run, last_seen=base - dt.timedelta(minutes=i)).pk
        for i in range(7)
    ]
    client = APIClient()
    client.force_authenticate(resolver)
    body = client.get("/api/v1/exceptions/", {"limit": 3}).json()
    assert (body["count"], body["count_capped"], body["previous"]) == (5, True, None)
    seen = [row["id"] for row in body["results"]]
    while body["next"]:
        body = client.get(body["next"]).json()
        seen += [row["id"] for row in body["results"]]
    assert seen == made


# -- the detail page ----------------------------------------------------------------------


def test_detail_links_to_the_records_in_each_system(resolver: User, finance_queue: Queue) -> None:
    crm = make_connection(Vendor.SALESFORCE, base_url="http://127.0.0.1:8101")
    erp = make_connection(Vendor.NETSUITE, base_url="http://127.0.0.1:8102", name="NetSuite")
    psa = make_connection(Vendor.KANTATA, base_url="http://127.0.0.1:8103", name="Kantata")
    run = make_run(correlation_id="deal:006TL0000001", business_key="deal:006TL0000001")
    run.source_connection = crm
    run.save(update_fields=["source_connection"])
    bindings.bind(erp, "legal_entity", "DE01", "3")
    bindings.bind(psa, "project", "deal:006TL0000001", "41", run=run)
    exc = make_exception(
        finance_queue,
        run=run,
        entity_type="legal_entity",
        entity_ref="DE01",
        explanation="DE01 has no tax registration in the ERP.",
        suggested_fix="Add the VAT number to subsidiary DE01, then Retry.",
        payload={"Name": "Initech"},
        vendor_error={"status": 400, "detail": "taxRegistration required"},
    )

    response = signed_in(resolver).get(exc.get_absolute_url())

    urls = {link.url for link in response.context["record_links"]}
    assert urls == {
        "http://127.0.0.1:8101/__standin__/records/Opportunity/006TL0000001",
        "http://127.0.0.1:8102/__standin__/records/subsidiary/3",
        "http://127.0.0.1:8103/__standin__/records/workspaces/41",
    }
    body = response.content.decode()
    assert "Records in each system" in body
    assert "DE01 has no tax registration in the ERP." in body
    assert "Add the VAT number to subsidiary DE01, then Retry." in body
    assert "taxRegistration required" in body
    assert "Initech" in body
    assert reverse("dashboards:trace", args=["deal:006TL0000001"]) in body


def test_detail_without_known_records_says_so(resolver: User, finance_queue: Queue) -> None:
    exc = make_exception(finance_queue, entity_type="", entity_ref="")
    body = signed_in(resolver).get(exc.get_absolute_url()).content.decode()
    assert "No record in a connected system is known for this exception yet" in body


@pytest.mark.parametrize(
    ("vendor", "base_url", "settings", "entity", "external_id", "expected"),
    [
        (
            Vendor.NETSUITE,
            "https://1234567-sb1.suitetalk.api.netsuite.com",
            {"account_id": "1234567_SB1"},
            "customer",
            "812",
            "https://1234567-sb1.app.netsuite.com/app/common/entity/custjob.nl?id=812",
        ),
        (
            Vendor.NETSUITE,
            "https://tstdrv1.suitetalk.api.netsuite.com",
            {"account_id": "TSTDRV1"},
            "invoice",
            "99",
            "https://tstdrv1.app.netsuite.com/app/accounting/transactions/custinvc.nl?id=99",
        ),
        (
            Vendor.SALESFORCE,
            "https://login.salesforce.com",
            {"instance_url": "https://acme.my.salesforce.com"},
            "opportunity",
            "006A",
            "https://acme.my.salesforce.com/lightning/r/Opportunity/006A/view",
        ),
        (
            Vendor.KANTATA,
            "https://api.mavenlink.com",
            {},
            "project",
            "41",
            "https://app.mavenlink.com/workspaces/41",
        ),
    ],
)
def test_record_urls_of_the_real_vendors(
    vendor: str, base_url: str, settings: dict, entity: str, external_id: str, expected: str
) -> None:
    connection = make_connection(vendor, base_url=base_url, settings=settings)
    link = record_url(connection, entity, external_id)
    assert link is not None and link.url == expected


def test_no_link_for_a_record_kind_the_vendor_has_no_page_for() -> None:
    connection = make_connection(Vendor.KANTATA, base_url="https://api.mavenlink.com")
    assert record_url(connection, "invoice", "1") is None


def test_reading_another_teams_queue_is_allowed_but_acting_is_not(
    finance_queue: Queue, pmo_queue: Queue
) -> None:
    exc = make_exception(finance_queue)
    outsider = make_user("pat", team=pmo_queue.team)
    viewer = make_user("vera", team=finance_queue.team, role=Role.VIEWER)
    for user in (outsider, viewer):
        response = signed_in(user).get(finance_queue.get_absolute_url())
        assert [e.pk for e in response.context["exceptions"]] == [exc.pk]
        assert b"You can read this queue; only Finance members" in response.content
        assert reverse("exceptions:retry", args=[exc.pk]).encode() not in response.content
    assert IntegrationException.objects.get(pk=exc.pk).status == ExceptionStatus.OPEN


def test_legal_entity_and_region_filters_ignore_case(finance_queue: Queue, fiona: User) -> None:
    make_exception(finance_queue, legal_entity_code="UK01", region="EMEA", title="uk one")
    make_exception(finance_queue, legal_entity_code="US01", region="Americas", title="us one")
    client = Client()
    client.force_login(fiona)
    url = finance_queue.get_absolute_url()
    assert "uk one" in client.get(url, {"legal_entity_code": "uk01"}).content.decode()
    page = client.get(url, {"region": "americas"}).content.decode()
    assert "us one" in page and "uk one" not in page
