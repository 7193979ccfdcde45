"""REST API of the engine: authentication, connections (secrets never returned, stored
encrypted, IT admins only write), runs with steps and calls, API-call telemetry, the schema."""

from __future__ import annotations

from typing import Any

import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from console.choices import Role, TeamKind
from console.models import AuditEvent, User
from integrations.choices import RunStatus
from integrations.models import ApiCall, Connection, SyncRun
from tests.factories import (
    make_connection,
    make_exception,
    make_run,
    make_team,
    make_user,
)

pytestmark = pytest.mark.django_db

PLAINTEXT = "pl41ntext-s3cret-value"


def client_for(user: User | None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


@pytest.fixture
def it_admin() -> User:
    return make_user(team=make_team(TeamKind.IT), role=Role.ADMIN)


@pytest.fixture
def reader() -> User:
    return make_user(team=make_team(TeamKind.FINANCE), role=Role.RESOLVER)


def connection_payload(**overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "name": "NetSuite production",
        "vendor": "netsuite",
        "system": "erp",
        "base_url": "https://1234567.suitetalk.api.netsuite.com",
        "auth_kind": "oauth_m2m",
        "settings": {"account_id": "1234567"},
        "secrets": {"client_id": "cid", "private_key": PLAINTEXT},
    }
    payload.update(overrides)
    return payload


def make_call(run: SyncRun, connection: Connection, **extra: Any) -> ApiCall:
    values: dict[str, Any] = {
        "operation": "erp.create_customer",
        "method": "POST",
        "path": "/record/v1/customer",
        "status_code": 200,
        "latency_ms": 12.5,
        "started_at": timezone.now(),
        "step": run.steps.first(),
    }
    values.update(extra)
    return ApiCall.objects.create(connection=connection, run=run, **values)


# -- authentication -------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["/api/v1/connections/", "/api/v1/runs/", "/api/v1/api-calls/"])
def test_anonymous_is_refused(url: str) -> None:
    assert APIClient().get(url).status_code in (401, 403)


def test_anonymous_cannot_create_a_connection() -> None:
    response = APIClient().post("/api/v1/connections/", connection_payload(), format="json")
    assert response.status_code in (401, 403)
    assert not Connection.objects.exists()


def test_token_authentication_works(reader: User) -> None:
    token = Token.objects.create(user=reader)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    assert client.get("/api/v1/runs/").status_code == 200
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert client.get("/api/v1/runs/").status_code in (401, 403)


def test_session_authentication_works(reader: User) -> None:
    client = APIClient()
    assert client.login(username=reader.username, password="pw-for-tests-1")
    assert client.get("/api/v1/connections/").status_code == 200


# -- connections ----------------------------------------------------------------------------


def test_it_admin_creates_a_connection_with_encrypted_secrets(it_admin: User) -> None:
    response = client_for(it_admin).post(
        "/api/v1/connections/", connection_payload(), format="json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert "secrets" not in body
    assert body["secret_names"] == ["client_id", "private_key"]
    assert PLAINTEXT not in response.content.decode()

    connection = Connection.objects.get(pk=body["id"])
    assert PLAINTEXT not in connection.secrets_ciphertext
    assert connection.secrets == {"client_id": "cid", "private_key": PLAINTEXT}
    assert connection.settings == {"account_id": "1234567"}
    event = AuditEvent.objects.get(action="connection.created")
    assert event.actor == it_admin
    assert PLAINTEXT not in str(event.data)


def test_secret_values_are_never_returned(reader: User) -> None:
    connection = make_connection(secrets={"token": PLAINTEXT})
    client = client_for(reader)
    for url in ("/api/v1/connections/", f"/api/v1/connections/{connection.pk}/"):
        response = client.get(url)
        assert response.status_code == 200
        assert PLAINTEXT not in response.content.decode()
    detail = client.get(f"/api/v1/connections/{connection.pk}/").json()
    assert detail["secret_names"] == ["token"]
    assert "secrets" not in detail


def test_patch_merges_secrets_and_keeps_them_hidden(it_admin: User) -> None:
    connection = make_connection(secrets={"token": "old", "client_id": "cid"})
    response = client_for(it_admin).patch(
        f"/api/v1/connections/{connection.pk}/",
        {"secrets": {"token": PLAINTEXT, "client_id": ""}, "enabled": False},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert PLAINTEXT not in response.content.decode()
    assert response.json()["enabled"] is False
    connection.refresh_from_db()
    assert connection.secrets == {"token": PLAINTEXT, "client_id": "cid"}
    assert PLAINTEXT not in connection.secrets_ciphertext
    assert AuditEvent.objects.filter(action="connection.updated").count() == 1


def test_superuser_may_create_a_connection() -> None:
    admin = make_user(is_superuser=True)
    response = client_for(admin).post("/api/v1/connections/", connection_payload(), format="json")
    assert response.status_code == 201


@pytest.mark.parametrize(
    ("kind", "role"),
    [(TeamKind.IT, Role.RESOLVER), (TeamKind.IT, Role.VIEWER), (TeamKind.FINANCE, Role.ADMIN)],
)
def test_non_admin_cannot_create_or_change_a_connection(kind: str, role: str) -> None:
    user = make_user(team=make_team(kind), role=role)
    client = client_for(user)
    response = client.post("/api/v1/connections/", connection_payload(), format="json")
    assert response.status_code == 403
    assert not Connection.objects.filter(name="NetSuite production").exists()

    connection = make_connection()
    response = client.patch(
        f"/api/v1/connections/{connection.pk}/", {"enabled": False}, format="json"
    )
    assert response.status_code == 403
    connection.refresh_from_db()
    assert connection.enabled is True
    assert client.get(f"/api/v1/connections/{connection.pk}/").status_code == 200


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"vendor": "sap"}, "vendor"),
        ({"system": "hr"}, "system"),
        ({"auth_kind": "basic"}, "auth_kind"),
        ({"base_url": "not a url"}, "base_url"),
        ({"base_url": "ftp://files.example.com"}, "base_url"),
        ({"settings": ["a", "list"]}, "settings"),
        ({"settings": "text"}, "settings"),
        ({"secrets": "token"}, "secrets"),
        ({"system": "crm"}, "system"),  # NetSuite is an ERP
    ],
)
def test_connection_input_is_validated(it_admin: User, overrides: dict, field: str) -> None:
    response = client_for(it_admin).post(
        "/api/v1/connections/", connection_payload(**overrides), format="json"
    )
    assert response.status_code == 400
    assert field in response.json()
    assert not Connection.objects.exists()


def test_connections_cannot_be_deleted_or_replaced(it_admin: User) -> None:
    connection = make_connection()
    client = client_for(it_admin)
    url = f"/api/v1/connections/{connection.pk}/"
    assert client.delete(url).status_code == 405
    assert client.put(url, connection_payload(), format="json").status_code == 405
    assert Connection.objects.filter(pk=connection.pk).exists()


def test_connections_filter_by_vendor(reader: User) -> None:
    make_connection("salesforce")
    kantata = make_connection("kantata")
    body = client_for(reader).get("/api/v1/connections/", {"vendor": "kantata"}).json()
    assert [row["id"] for row in body["results"]] == [kantata.pk]


# -- runs and calls -------------------------------------------------------------------------


def test_runs_filter_by_status(reader: User) -> None:
    failed = make_run(status=RunStatus.FAILED)
    make_run(status=RunStatus.SUCCEEDED)
    body = client_for(reader).get("/api/v1/runs/", {"status": "failed"}).json()
    assert body["count"] == 1
    assert body["results"][0]["id"] == failed.pk
    assert body["results"][0]["status"] == "failed"


def test_run_detail_has_steps_and_exception_ids(reader: User) -> None:
    run = make_run(steps=("fetch_deal", "create_customer"))
    exc = make_exception(run=run)
    body = client_for(reader).get(f"/api/v1/runs/{run.pk}/").json()
    assert [s["name"] for s in body["steps"]] == ["fetch_deal", "create_customer"]
    assert body["steps"][1]["status"] == "failed"
    assert set(body["steps"][0]) == {
        "name",
        "position",
        "status",
        "attempts",
        "started_at",
        "finished_at",
        "output",
        "error",
    }
    assert body["exceptions"] == [exc.pk]


def test_run_calls_lists_its_telemetry(reader: User) -> None:
    connection = make_connection("netsuite")
    run, other = make_run(), make_run()
    call = make_call(run, connection, attempts=3)
    make_call(other, connection)
    body = client_for(reader).get(f"/api/v1/runs/{run.pk}/calls/").json()
    assert [row["id"] for row in body["results"]] == [call.pk]
    assert body["results"][0]["retries"] == 2
    assert body["results"][0]["step_name"] == "fetch_deal"


def test_api_calls_filter_failed(reader: User) -> None:
    connection = make_connection("kantata")
    run = make_run()
    make_call(run, connection)
    failed = make_call(run, connection, status_code=503, error_kind="unavailable")
    client = client_for(reader)
    body = client.get("/api/v1/api-calls/", {"failed": "true"}).json()
    assert [row["id"] for row in body["results"]] == [failed.pk]
    assert client.get("/api/v1/api-calls/", {"run": run.pk}).json()["count"] == 2


def test_runs_list_query_count(reader: User, django_assert_max_num_queries: Any) -> None:
    for _ in range(8):
        make_run(steps=("fetch_deal", "create_customer"))
    client = client_for(reader)
    with django_assert_max_num_queries(3):
        assert client.get("/api/v1/runs/").json()["count"] == 8


# -- schema ---------------------------------------------------------------------------------


def test_schema_is_openapi_3(reader: User) -> None:
    response = client_for(reader).get("/api/v1/schema/", {"format": "json"})
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    for path in (
        "/api/v1/connections/",
        "/api/v1/runs/{id}/calls/",
        "/api/v1/exceptions/{id}/retry/",
        "/api/v1/queues/",
    ):
        assert path in schema["paths"]
    connection = schema["components"]["schemas"]["Connection"]["properties"]
    assert "secrets" not in connection
    assert "secret_names" in connection
