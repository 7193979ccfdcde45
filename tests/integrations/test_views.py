"""Engine pages through the Django test client: the runs list, a run's timeline and the
connections page (secret names only, never values); the connection admin's write-only
secrets."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from console import audit
from console.choices import TeamKind
from console.models import User
from integrations.choices import RunStatus, StepStatus, Vendor
from integrations.models import ApiCall, Connection, SyncRun, SyncStep
from tests.factories import (
    make_connection,
    make_exception,
    make_queue,
    make_run,
    make_team,
    make_user,
)

pytestmark = pytest.mark.django_db

SECRET_VALUE = "s3cr3t-value-never-shown"


@pytest.fixture
def user() -> User:
    return make_user("ivan", team=make_team(TeamKind.IT))


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def make_call(
    connection: Connection,
    *,
    run: SyncRun | None = None,
    step: SyncStep | None = None,
    operation: str = "get_deal",
    error_kind: str = "",
    status_code: int | None = 200,
    attempts: int = 1,
    started_at=None,
) -> ApiCall:
    return ApiCall.objects.create(
        connection=connection,
        run=run,
        step=step,
        operation=operation,
        method="GET",
        path=f"/services/data/v62.0/{operation}",
        status_code=status_code,
        latency_ms=42.5,
        attempts=attempts,
        error_kind=error_kind,
        error_message="Service unavailable" if error_kind else "",
        started_at=started_at or timezone.now(),
    )


@pytest.mark.parametrize("url", ["/runs/", "/runs/1/", "/connections/"])
def test_pages_require_login(client: Client, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_runs_list_filters_by_status(user: User) -> None:
    failed = make_run(status=RunStatus.FAILED, title="Failed deal")
    make_run(status=RunStatus.SUCCEEDED, title="Good deal")
    client = signed_in(user)
    response = client.get(reverse("integrations:runs"))
    assert len(response.context["runs"]) == 2
    body = response.content.decode()
    assert 'class="badge badge-failed"' in body and 'class="badge badge-succeeded"' in body
    assert '<form method="get" class="filters"' in body

    response = client.get(reverse("integrations:runs"), {"status": "failed"})
    assert [r.pk for r in response.context["runs"]] == [failed.pk]
    response = client.get(reverse("integrations:runs"), {"q": "good"})
    assert [r.title for r in response.context["runs"]] == ["Good deal"]


def test_runs_list_is_paginated_by_50(user: User) -> None:
    for _ in range(51):
        make_run(steps=())
    client = signed_in(user)
    response = client.get(reverse("integrations:runs"), {"status": "failed"})
    assert len(response.context["runs"]) == 50
    assert b"status=failed&amp;page=2" in response.content
    response = client.get(reverse("integrations:runs"), {"status": "failed", "page": 2})
    assert len(response.context["runs"]) == 1


def test_runs_list_invalid_filter_shows_nothing(user: User) -> None:
    make_run()
    response = signed_in(user).get(reverse("integrations:runs"), {"status": "bogus"})
    assert response.status_code == 200
    assert list(response.context["runs"]) == []
    assert b"No runs match these filters" in response.content


@pytest.fixture
def failed_run() -> SyncRun:
    """A create_service_engagement run that failed at its second step, with calls."""
    now = timezone.now()
    run = make_run(
        steps=("fetch_deal", "ensure_customer"),
        title="Acme GmbH onboarding",
        legal_entity_code="DE01",
        region="EMEA",
        attempts=2,
        finished_at=now + timedelta(seconds=3),
    )
    crm = make_connection(Vendor.SALESFORCE, name="Salesforce prod")
    erp = make_connection(Vendor.NETSUITE, name="NetSuite prod")
    first, second = run.steps.order_by("position")
    first.output = {"deal_id": "006ACME", "amount": "120000.00"}
    first.started_at, first.finished_at = now, now + timedelta(seconds=1)
    first.save()
    second.error = {"code": "tax_configuration_missing", "message": "DE01 has no tax number"}
    second.save()
    make_call(crm, run=run, step=first, operation="get_opportunity", started_at=now)
    make_call(
        erp,
        run=run,
        step=second,
        operation="create_customer",
        error_kind="server",
        status_code=503,
        attempts=3,
        started_at=now + timedelta(seconds=2),
    )
    audit.record("run.resumed", "Run resumed by a test", correlation_id=run.correlation_id)
    audit.record("other.thing", "Unrelated event", correlation_id="deal:OTHER")
    return run


def test_run_timeline_shows_steps_and_calls(user: User, failed_run: SyncRun) -> None:
    queue = make_queue(make_team(TeamKind.FINANCE))
    exc = make_exception(queue, run=failed_run, title="Tax configuration missing: DE01")
    response = signed_in(user).get(reverse("integrations:run", args=[failed_run.pk]))
    assert response.status_code == 200
    timeline = response.context["timeline"]
    names = [s.name for s in timeline]
    assert names[:2] == ["fetch_deal", "ensure_customer"]
    assert [c.operation for c in timeline[0].calls] == ["get_opportunity"]
    assert [c.operation for c in timeline[1].calls] == ["create_customer"]
    assert [s.is_next for s in timeline[:2]] == [False, True]
    assert sum(s.is_next for s in timeline) == 1
    # planned steps not reached yet are listed after the recorded ones
    assert all(s.record is None for s in timeline[2:])

    body = response.content.decode()
    assert failed_run.correlation_id in body
    assert "DE01" in body and "EMEA" in body
    assert body.index("fetch_deal") < body.index("get_opportunity") < body.index("ensure_customer")
    assert body.index("ensure_customer") < body.index("create_customer")
    assert 'aria-current="step"' in body and "step-next" in body
    assert "DE01 has no tax number" in body
    assert "006ACME" in body  # output summary
    assert "503" in body and "2 retries" in body and "server" in body
    assert exc.get_absolute_url() in body
    assert "Run resumed by a test" in body
    assert "Unrelated event" not in body


def test_run_timeline_of_a_succeeded_run_has_no_next_step(user: User) -> None:
    run = make_run(workflow="unknown_workflow", status=RunStatus.SUCCEEDED, steps=("a", "b"))
    response = signed_in(user).get(reverse("integrations:run", args=[run.pk]))
    assert [s.status for s in response.context["timeline"]] == [StepStatus.SUCCEEDED] * 2
    assert not any(s.is_next for s in response.context["timeline"])


def test_run_detail_query_count_is_bounded(
    user: User, failed_run: SyncRun, django_assert_max_num_queries
) -> None:
    erp = Connection.objects.get(name="NetSuite prod")
    step = failed_run.steps.get(name="ensure_customer")
    for _ in range(20):
        make_call(erp, run=failed_run, step=step, operation="retry_customer")
    make_call(erp, run=failed_run, operation="token")
    client = signed_in(user)
    client.get(reverse("home"))
    with django_assert_max_num_queries(11):
        response = client.get(reverse("integrations:run", args=[failed_run.pk]))
    assert len(response.context["timeline"][1].calls) == 21
    assert [c.operation for c in response.context["unattached_calls"]] == ["token"]


def test_connections_page_never_shows_secret_values(user: User) -> None:
    make_connection(
        Vendor.NETSUITE,
        name="NetSuite prod",
        secrets={"client_secret": SECRET_VALUE, "private_key": SECRET_VALUE + "-key"},
    )
    response = signed_in(user).get(reverse("integrations:connections"))
    body = response.content.decode()
    assert "NetSuite prod" in body
    assert "client_secret" in body and "private_key" in body
    assert SECRET_VALUE not in body


def test_connections_page_shows_last_call_and_error_rate(user: User) -> None:
    conn = make_connection(Vendor.KANTATA, name="Kantata prod")
    idle = make_connection(Vendor.SALESFORCE, name="Salesforce idle")
    start = timezone.now() - timedelta(hours=1)
    # 10 old failures fall outside the window of the latest 100 calls
    for i in range(10):
        make_call(conn, error_kind="server", started_at=start + timedelta(seconds=i))
    for i in range(100):
        make_call(
            conn,
            error_kind="rate_limit" if i % 4 == 0 else "",
            started_at=start + timedelta(minutes=1, seconds=i),
        )
    response = signed_in(user).get(reverse("integrations:connections"))
    by_name = {c.name: c for c in response.context["connections"]}
    assert by_name["Kantata prod"].recent_calls == 100
    assert by_name["Kantata prod"].error_rate == pytest.approx(25.0)
    assert by_name["Kantata prod"].last_call_at == start + timedelta(minutes=1, seconds=99)
    assert by_name[idle.name].error_rate is None
    body = response.content.decode()
    assert "25.0 %" in body and "never" in body


# -- connection admin: write-only secrets -------------------------------------------------------


@pytest.fixture
def admin_client_() -> Client:
    return signed_in(User.objects.create_superuser("root", "r@example.com", "pw-root-12345"))


def test_connection_admin_never_renders_secret_values(admin_client_: Client) -> None:
    conn = make_connection(Vendor.NETSUITE, secrets={"client_secret": SECRET_VALUE})
    response = admin_client_.get(reverse("admin:integrations_connection_change", args=[conn.pk]))
    body = response.content.decode()
    assert response.status_code == 200
    assert "client_secret" in body
    assert SECRET_VALUE not in body
    assert conn.secrets_ciphertext not in body


def connection_form(**overrides: str) -> dict[str, str]:
    data = {
        "name": "NetSuite sandbox",
        "vendor": "netsuite",
        "system": "erp",
        "base_url": "https://1234.suitetalk.api.netsuite.com",
        "auth_kind": "oauth_m2m",
        "settings": "{}",
        "enabled": "on",
        "secrets": "",
    }
    data.update(overrides)
    return data


def test_connection_admin_sets_and_merges_secrets(admin_client_: Client) -> None:
    add = reverse("admin:integrations_connection_add")
    response = admin_client_.post(add, connection_form(secrets='{"client_secret": "one"}'))
    assert response.status_code == 302, response.content.decode()
    conn = Connection.objects.get(name="NetSuite sandbox")
    assert conn.secrets == {"client_secret": "one"}

    change = reverse("admin:integrations_connection_change", args=[conn.pk])
    response = admin_client_.post(change, connection_form(secrets='{"certificate_id": "c1"}'))
    assert response.status_code == 302
    conn.refresh_from_db()
    assert conn.secrets == {"client_secret": "one", "certificate_id": "c1"}

    response = admin_client_.post(change, connection_form())  # blank keeps the secrets
    conn.refresh_from_db()
    assert conn.secret_names == ["certificate_id", "client_secret"]

    response = admin_client_.post(
        change, connection_form(secrets='{"token": "t2"}', replace_secrets="on")
    )
    conn.refresh_from_db()
    assert conn.secrets == {"token": "t2"}

    response = admin_client_.post(change, connection_form(secrets='["not", "an object"]'))
    assert response.status_code == 200
    assert b"Enter a JSON object" in response.content
