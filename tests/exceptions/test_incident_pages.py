"""Incident pages and API: the list (open by default, filtered), the detail with what it
blocks, its exceptions and alerts, the SLA and incident shown on exceptions, and money
masked for users without finance rights."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from console.choices import TeamKind
from console.models import User
from exceptions import services
from exceptions.masking import MASK
from exceptions.models import Incident, IntegrationException, Queue
from integrations.choices import Vendor
from integrations.models import Connection
from integrations.workflows.failures import StepFailure
from tests.factories import (
    make_connection,
    make_exception,
    make_queue,
    make_run,
    make_team,
    make_user,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def finance() -> Queue:
    queue = make_queue(make_team(TeamKind.FINANCE))
    queue.alert_emails = "finance-team@example.com"
    queue.save()
    return queue


@pytest.fixture
def erp() -> Connection:
    return make_connection(Vendor.NETSUITE, name="NetSuite")


@pytest.fixture
def incident(finance: Queue, erp: Connection) -> Incident:
    for n, amount in enumerate(("1200.00", "800.50")):
        run = make_run(
            "release_milestone_billing",
            context={"load_milestone": {"completion": {"amount": amount, "currency": "EUR"}}},
        )
        failure = StepFailure(
            kind="business",
            code="closed_accounting_period",
            message="refused: The period Sep 2026 is closed.",
            entity_type="invoice",
            entity_ref=f"TL-INV-{n}",
            connection_id=erp.pk,
        )
        services.open_exception(failure, run=run, step=run.steps.get(), key=(str(n),))
    return Incident.objects.get()


@pytest.fixture
def accountant(finance: Queue) -> User:
    return make_user("fiona", team=finance.team)


@pytest.fixture
def engineer() -> User:
    return make_user("ivan", team=make_team(TeamKind.IT))


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_incident_list_shows_open_incidents_with_what_they_block(incident, accountant):
    page = signed_in(accountant).get(reverse("exceptions:incidents"))
    assert page.status_code == 200
    html = page.content.decode()
    assert "Accounting period Sep 2026 is closed in NetSuite" in html
    assert "2000.50 EUR" in html
    assert reverse("exceptions:incident", args=[incident.pk]) in html


def test_resolved_incidents_leave_the_default_list_but_can_be_filtered(incident, accountant):
    services.resolve(list(incident.exceptions.all()), reason="Period reopened, retried.")
    client = signed_in(accountant)
    assert "Sep 2026" not in client.get(reverse("exceptions:incidents")).content.decode()
    page = client.get(reverse("exceptions:incidents"), {"status": "resolved"})
    assert "Sep 2026" in page.content.decode()


def test_the_incident_page_lists_its_exceptions_alerts_and_money(incident, accountant):
    html = (
        signed_in(accountant)
        .get(reverse("exceptions:incident", args=[incident.pk]))
        .content.decode()
    )
    assert "2 records waiting" in html
    assert "2000.50 EUR" in html
    for exc in incident.exceptions.all():
        assert exc.get_absolute_url() in html
    assert "Incident opened" in html and "finance-team@example.com" in html


def test_money_is_masked_for_users_without_finance_rights(incident, engineer):
    html = (
        signed_in(engineer).get(reverse("exceptions:incident", args=[incident.pk])).content.decode()
    )
    assert "2000.50" not in html
    assert "finance only" in html
    client = APIClient()
    client.force_authenticate(engineer)
    body = client.get(f"/api/v1/incidents/{incident.pk}/").json()
    assert body["money"] == [{"currency": "EUR", "amount": MASK}]


def test_the_api_lists_filters_and_details_incidents(incident, accountant, finance):
    client = APIClient()
    client.force_authenticate(accountant)
    listed = client.get("/api/v1/incidents/", {"status": "open", "queue": finance.slug})
    assert listed.status_code == 200
    (row,) = listed.json()["results"]
    assert row["id"] == incident.pk
    assert row["code"] == "closed_accounting_period"
    assert row["blocked_records"] == 2
    assert row["money"] == [{"currency": "EUR", "amount": "2000.50"}]
    assert client.get("/api/v1/incidents/", {"code": "vendor_unavailable"}).json()["count"] == 0
    assert client.get("/api/v1/incidents/", {"status": "resolved"}).json()["count"] == 0

    detail = client.get(f"/api/v1/incidents/{incident.pk}/").json()
    assert {e["id"] for e in detail["exceptions"]} == set(
        incident.exceptions.values_list("pk", flat=True)
    )
    assert detail["alerts"][0]["event"] == "opened"
    assert detail["resolution"] == ""
    assert client.get("/api/v1/exceptions/", {"incident": incident.pk}).json()["count"] == 2


def test_an_exception_shows_its_incident_and_sla(incident, accountant, finance):
    exc = incident.exceptions.first()
    IntegrationException.objects.filter(pk=exc.pk).update(
        due_at=timezone.now() - dt.timedelta(hours=1)
    )
    client = signed_in(accountant)
    html = client.get(exc.get_absolute_url()).content.decode()
    assert reverse("exceptions:incident", args=[incident.pk]) in html
    assert "Breached" in html
    queue_page = client.get(finance.get_absolute_url()).content.decode()
    assert "Breached" in queue_page
    api = APIClient()
    api.force_authenticate(accountant)
    body = api.get(f"/api/v1/exceptions/{exc.pk}/").json()
    assert body["incident"] == incident.pk
    assert body["sla_state"] == "breached"


def test_an_empty_incident_list_says_so(accountant):
    html = signed_in(accountant).get(reverse("exceptions:incidents")).content.decode()
    assert "No root cause is blocking several records right now." in html


def test_exceptions_without_incident_show_no_incident_link(finance, accountant):
    exc = make_exception(finance)
    html = signed_in(accountant).get(exc.get_absolute_url()).content.decode()
    assert "/exceptions/incidents/" not in html.split("<main", 1)[1]
