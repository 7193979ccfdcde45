"""CSV export of the filtered exceptions, from the queue page and the API: the same filters
as the list, business column names, streamed, safe to open in a spreadsheet, audited."""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal

import pytest
from django.http import StreamingHttpResponse
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from console.models import AuditEvent, User
from exceptions.choices import ExceptionCode, ExceptionStatus
from exceptions.export import HEADERS
from exceptions.models import Queue
from tests.factories import make_exception

pytestmark = pytest.mark.django_db


def read_csv(response) -> list[dict[str, str]]:
    assert response.status_code == 200, getattr(response, "content", b"")
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="exceptions-')
    text = b"".join(response.streaming_content).decode()
    reader = csv.DictReader(io.StringIO(text))
    assert reader.fieldnames == HEADERS
    return list(reader)


def test_page_export_has_the_page_filters_and_business_columns(
    fiona: User, finance_queue: Queue, pmo_queue: Queue
) -> None:
    due = timezone.now() - dt.timedelta(hours=1)
    de = make_exception(
        finance_queue,
        legal_entity_code="DE01",
        amount=Decimal("1200.50"),
        currency="EUR",
        assignee=fiona,
        due_at=due,
        title="Tax configuration missing: DE01",
    )
    make_exception(finance_queue, legal_entity_code="UK01")
    make_exception(finance_queue, legal_entity_code="DE01", status=ExceptionStatus.RESOLVED)
    make_exception(pmo_queue, legal_entity_code="DE01")
    client = Client()
    client.force_login(fiona)
    page = client.get(finance_queue.get_absolute_url(), {"legal_entity_code": "DE01"})
    export_url = page.context["export_url"]
    assert export_url in page.content.decode().replace("&amp;", "&")

    (row,) = read_csv(client.get(export_url))

    assert row["Exception"] == str(de.pk)
    assert row["Link"] == f"http://testserver{de.get_absolute_url()}"
    assert row["Queue"] == "Finance" and row["Team"] == "Finance"
    assert row["Status"] == "Open"
    assert row["Problem"] == "Tax configuration missing"
    assert row["Problem code"] == ExceptionCode.TAX_CONFIGURATION_MISSING
    assert row["Legal entity"] == "DE01"
    assert row["Assignee"] == "fiona"
    assert (row["Amount"], row["Currency"]) == ("1200.50", "EUR")
    assert row["Due (UTC)"] == due.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    assert row["SLA"] == "Breached"
    assert row["Transaction"] == de.run.correlation_id
    assert row["What to do"] == de.suggested_fix
    event = AuditEvent.objects.get(action="exception.exported")
    assert event.actor == fiona
    assert event.data["query"] == "legal_entity_code=DE01&status=active"


def test_export_of_everything_asked_for(fiona: User, finance_queue: Queue) -> None:
    for status in (ExceptionStatus.OPEN, ExceptionStatus.RESOLVED, ExceptionStatus.IGNORED):
        make_exception(finance_queue, status=status)
    client = Client()
    client.force_login(fiona)
    url = reverse("exceptions:export", args=[finance_queue.slug])
    assert [r["Status"] for r in read_csv(client.get(url))] == ["Open"]
    every = read_csv(client.get(url, {"status": ["open", "resolved", "ignored"]}))
    assert sorted(r["Status"] for r in every) == ["Ignored", "Open", "Resolved"]


def test_export_cells_never_run_as_formulas(fiona: User, finance_queue: Queue) -> None:
    make_exception(
        finance_queue,
        title='=HYPERLINK("http://evil.example","click")',
        entity_ref="+1-555",
        amount=Decimal("-10.00"),
        currency="EUR",
    )
    client = Client()
    client.force_login(fiona)
    (row,) = read_csv(client.get(reverse("exceptions:export", args=[finance_queue.slug])))
    assert row["Title"] == '\'=HYPERLINK("http://evil.example","click")'
    assert row["Record"] == "'+1-555"
    assert row["Amount"] == "-10.00"  # a number stays a number


def test_export_with_invalid_filters_goes_back_to_the_page(
    fiona: User, finance_queue: Queue
) -> None:
    client = Client()
    client.force_login(fiona)
    response = client.get(
        reverse("exceptions:export", args=[finance_queue.slug]), {"sla": "late"}, follow=True
    )
    assert b"Fix the filters before exporting" in response.content
    assert not AuditEvent.objects.filter(action="exception.exported").exists()


def test_export_needs_a_signed_in_user(finance_queue: Queue) -> None:
    response = Client().get(reverse("exceptions:export", args=[finance_queue.slug]))
    assert response["Location"].startswith(reverse("login"))
    assert APIClient().get("/api/v1/exceptions/export.csv").status_code in (401, 403)


def test_api_export_shares_the_list_filters(
    fiona: User, finance_queue: Queue, pmo_queue: Queue
) -> None:
    finance = make_exception(finance_queue, code=ExceptionCode.CLOSED_ACCOUNTING_PERIOD)
    make_exception(finance_queue, status=ExceptionStatus.RESOLVED)
    pmo = make_exception(pmo_queue, code=ExceptionCode.PROJECT_TEMPLATE_NOT_FOUND)
    client = APIClient()
    client.force_authenticate(fiona)
    url = "/api/v1/exceptions/export.csv"

    rows = read_csv(client.get(url, {"status": "active"}))
    assert {r["Exception"] for r in rows} == {str(finance.pk), str(pmo.pk)}
    rows = read_csv(client.get(url, {"queue": finance_queue.slug, "status": "active"}))
    assert [r["Exception"] for r in rows] == [str(finance.pk)]
    listed = client.get(
        "/api/v1/exceptions/", {"queue": finance_queue.slug, "status": "active"}
    ).json()["results"]
    assert [str(r["id"]) for r in listed] == [r["Exception"] for r in rows]
    assert client.get(url, {"status": "lost"}).status_code == 400
    assert AuditEvent.objects.filter(action="exception.exported", actor=fiona).count() == 2
