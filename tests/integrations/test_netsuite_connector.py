"""The NetSuite client against its stand-in over real HTTP: M2M auth and token refresh,
idempotent creates that survive lost responses and re-runs, retries that honour Retry-After
and the concurrency limit, paging, SuiteQL, and classified errors for bad answers."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import jwt
import pytest

from integrations.canonical.schemas import Customer
from integrations.connectors.errors import (
    AuthError,
    ConflictError,
    RateLimitedError,
    ResponseShapeError,
    ValidationError,
)
from integrations.connectors.http import CallRecord
from integrations.connectors.keys import generate_key_pair
from integrations.connectors.netsuite import NetSuiteClient, NetSuiteM2MAuth, build_client
from integrations.connectors.netsuite.client import IdempotencyConflictError, service_path
from integrations.connectors.netsuite.mapping import (
    currency_ids,
    customer_to_netsuite,
    legal_entity_from_subsidiary,
)
from integrations.standins.netsuite import CERTIFICATE_ID, CLIENT_ID, NetSuiteState, create_app
from integrations.standins.server import RunningStandin, start_standin

CONNECTION_IDS = itertools.count(100)


def _keypair() -> tuple[str, str]:
    return generate_key_pair()


@pytest.fixture(scope="module")
def keys() -> dict[str, str]:
    private, public = _keypair()
    other_private, _ = _keypair()
    return {"private": private, "public": public, "other_private": other_private}


@pytest.fixture(scope="module")
def server(keys: dict[str, str]) -> Iterator[RunningStandin]:
    running = start_standin(
        "netsuite", app=create_app(NetSuiteState({CERTIFICATE_ID: keys["public"]}))
    )
    yield running
    running.stop()


@pytest.fixture
def standin(server: RunningStandin) -> Iterator[RunningStandin]:
    server.state.reset()
    NetSuiteM2MAuth.forget()
    yield server
    state = server.state
    state.concurrency_limit, state.latency_ms = 15, 0


ClientFactory = Callable[..., NetSuiteClient]


@pytest.fixture
def make_client(standin: RunningStandin, keys: dict[str, str]) -> Iterator[ClientFactory]:
    made: list[NetSuiteClient] = []

    def factory(*, private_key: str | None = None, **options: Any) -> NetSuiteClient:
        options.setdefault("sleep", lambda seconds: None)
        client = build_client(
            base_url=standin.url,
            settings={"account_id": "TSTDRV1234567"},
            secrets={
                "client_id": CLIENT_ID,
                "certificate_id": CERTIFICATE_ID,
                "private_key": private_key or keys["private"],
            },
            connection_id=next(CONNECTION_IDS),
            **options,
        )
        made.append(client)
        return client

    yield factory
    for client in made:
        client.close()


@pytest.fixture
def client(make_client: ClientFactory) -> NetSuiteClient:
    return make_client()


def customers(standin: RunningStandin) -> list[dict[str, Any]]:
    return list(standin.state.table("customer").values())


def calls(standin: RunningStandin, path_part: str) -> list[dict[str, Any]]:
    return [c for c in standin.state.calls if path_part in c["path"]]


ACME = {"companyName": "Acme Widgets Ltd", "subsidiary": {"id": "2"}, "externalId": "crm-acme"}


# -- auth --------------------------------------------------------------------------------------
def test_client_authenticates_with_the_certificate_and_caches_the_token(
    standin: RunningStandin, client: NetSuiteClient
) -> None:
    assert client.get_subsidiary("1")["name"] == "Throughline Demo Inc."
    assert client.get_record("currency", "4")["symbol"] == "EUR"
    token_calls = calls(standin, "/oauth2/v1/token")
    assert len(token_calls) == 1  # fetched once, then cached
    sent = client.http.auth.client_assertion()  # type: ignore[union-attr]
    assert jwt.get_unverified_header(sent)["kid"] == CERTIFICATE_ID
    claims = jwt.decode(sent, options={"verify_signature": False})
    assert claims["iss"] == CLIENT_ID and claims["scope"] == "restlets,rest_webservices"
    assert claims["aud"] == standin.url + "/services/rest/auth/oauth2/v1/token"
    assert claims["exp"] - claims["iat"] <= 3600


def test_revoked_token_is_refreshed_once_and_the_call_succeeds(
    standin: RunningStandin, client: NetSuiteClient
) -> None:
    client.get_record("currency", "1")
    httpx.post(standin.url + "/__standin__/revoke-tokens")
    assert client.get_record("currency", "2")["symbol"] == "GBP"
    assert len(calls(standin, "/oauth2/v1/token")) == 2


def test_an_untrusted_key_is_an_auth_error(
    make_client: ClientFactory, keys: dict[str, str]
) -> None:
    client = make_client(private_key=keys["other_private"])
    with pytest.raises(AuthError) as caught:
        client.get_record("currency", "1")
    assert caught.value.vendor_code == "invalid_client"


def test_incomplete_or_unreadable_credentials_are_auth_errors(standin: RunningStandin) -> None:
    with pytest.raises(AuthError, match="certificate_id"):
        build_client(
            base_url=standin.url,
            settings={"account_id": "TSTDRV1234567"},
            secrets={"client_id": CLIENT_ID, "private_key": "x"},
        )
    with pytest.raises(AuthError, match="private key"):
        build_client(
            base_url=standin.url,
            settings={"account_id": "TSTDRV1234567"},
            secrets={"client_id": CLIENT_ID, "certificate_id": "c", "private_key": "not a pem"},
        )


def test_base_url_defaults_to_the_account_domain(keys: dict[str, str]) -> None:
    client = build_client(
        base_url="",
        settings={"account_id": "1234567_SB1"},
        secrets={"client_id": "c", "certificate_id": "k", "private_key": keys["private"]},
    )
    assert str(client.http.base_url) == "https://1234567-sb1.suitetalk.api.netsuite.com"
    client.close()


# -- idempotent writes -----------------------------------------------------------------------------
def test_retry_after_a_lost_response_does_not_create_a_duplicate(
    standin: RunningStandin, client: NetSuiteClient
) -> None:
    """The first POST is committed but its answer is lost (503): the retry carries the same
    idempotency key, NetSuite answers IDEMPOTENCY_ERROR, and the client reads the first
    request's job to return the id it created."""
    httpx.post(
        standin.url + "/__standin__/netsuite/lose-responses",
        json={"path": "/record/v1/customer$", "method": "POST", "times": 1},
    )
    rid = client.create_record("customer", ACME, idempotency_key="step-42")
    assert [c["id"] for c in customers(standin)] == [rid]
    posts = [c for c in calls(standin, "/record/v1/customer") if c["method"] == "POST"]
    assert [c["status"] for c in posts] == [503, 400]
    assert {c["headers"]["x-netsuite-idempotency-key"] for c in posts} == {"step-42"}
    assert all(c["headers"]["prefer"] == "respond-async" for c in posts)


def test_re_running_a_step_with_the_same_key_returns_the_first_id(
    standin: RunningStandin, client: NetSuiteClient
) -> None:
    first = client.create_record("customer", ACME, idempotency_key="wf-7-step-3")
    second = client.create_record("customer", ACME, idempotency_key="wf-7-step-3")
    assert first == second and len(customers(standin)) == 1
    other = client.create_record(
        "customer", {**ACME, "externalId": "crm-other"}, idempotency_key="wf-8"
    )
    assert other != first and len(customers(standin)) == 2


def test_a_keyed_create_that_failed_fails_the_same_way_when_re_run(
    standin: RunningStandin, client: NetSuiteClient
) -> None:
    bad = {"companyName": "No Subsidiary"}
    for _ in range(2):
        with pytest.raises(ValidationError) as caught:
            client.create_record("customer", bad, idempotency_key="bad-1")
        assert caught.value.field == "subsidiary"
    assert customers(standin) == []


def test_idempotency_conflict_without_a_job_location_is_a_conflict(
    standin: RunningStandin, client: NetSuiteClient
) -> None:
    standin.state.add_fault(
        path="/record/v1/customer$",
        method="POST",
        status=400,
        times=1,
        body={
            "type": "x",
            "title": "Conflict",
            "status": 400,
            "o:errorDetails": [{"detail": "dup", "o:errorCode": "IDEMPOTENCY_ERROR"}],
        },
    )
    with pytest.raises(IdempotencyConflictError) as caught:
        client.create_record("customer", ACME, idempotency_key="k")
    assert isinstance(caught.value, ConflictError) and caught.value.job_path is None


def test_an_unkeyed_create_refused_with_503_is_retried_once_created_once(
    standin: RunningStandin, make_client: ClientFactory
) -> None:
    sleeps: list[float] = []
    client = make_client(sleep=sleeps.append)
    standin.state.add_fault(path="/record/v1/customer$", method="POST", status=503, times=1)
    rid = client.create_record("customer", ACME)
    assert [c["id"] for c in customers(standin)] == [rid]
    assert len(sleeps) == 1


def test_upsert_by_external_id_returns_the_same_id_each_time(
    standin: RunningStandin, client: NetSuiteClient
) -> None:
    body = {"companyName": "Upsert Ltd", "subsidiary": {"id": "1"}}
    first = client.upsert_by_external_id("customer", "crm-up-1", body)
    second = client.upsert_by_external_id("customer", "crm-up-1", {"companyName": "Renamed"})
    assert first == second
    assert client.find_by_external_id("customer", "crm-up-1")["companyName"] == "Renamed"
    assert client.find_by_external_id("customer", "crm-nobody") is None


def test_update_and_delete(standin: RunningStandin, client: NetSuiteClient) -> None:
    rid = client.create_record("customer", ACME)
    client.update_record("customer", rid, {"email": "ap@acme.example"})
    client.update_record("customer", rid, {"comments": "keyed"}, idempotency_key=f"update-{rid}")
    record = client.get_record("customer", rid)
    assert record["email"] == "ap@acme.example" and record["comments"] == "keyed"
    assert client.delete_record("customer", rid) is True
    assert client.delete_record("customer", rid) is False


# -- limits ------------------------------------------------------------------------------------
def test_429_honours_retry_after(standin: RunningStandin, make_client: ClientFactory) -> None:
    sleeps: list[float] = []
    client = make_client(sleep=sleeps.append)
    standin.state.add_fault(
        path="/record/v1/currency", status=429, times=1, headers={"Retry-After": "7"}
    )
    assert client.get_record("currency", "1")["symbol"] == "USD"
    assert sleeps == [7.0]


def test_restlet_style_concurrency_error_is_rate_limited(
    standin: RunningStandin, make_client: ClientFactory
) -> None:
    client = make_client(max_attempts=2)
    standin.state.add_fault(
        path="/record/v1/currency",
        status=400,
        code="SSS_REQUEST_LIMIT_EXCEEDED",
        message="Concurrent request limit exceeded",
    )
    with pytest.raises(RateLimitedError) as caught:
        client.get_record("currency", "1")
    assert caught.value.vendor_code == "SSS_REQUEST_LIMIT_EXCEEDED"
    assert len(calls(standin, "/record/v1/currency")) == 2  # retried, then gave up


def test_calls_over_the_concurrency_limit_are_retried_until_they_pass(
    standin: RunningStandin, make_client: ClientFactory
) -> None:
    standin.state.concurrency_limit = 2
    standin.state.latency_ms = 150
    client = make_client(sleep=time.sleep, backoff_initial=0.05, backoff_max=0.3, max_attempts=10)
    client.get_record("currency", "1")  # token first, so threads share it
    results: list[Any] = []

    def fetch() -> None:
        try:
            results.append(client.get_record("currency", "2")["symbol"])
        except Exception as exc:  # collected for the assertion
            results.append(exc)

    threads = [threading.Thread(target=fetch) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == ["GBP"] * 6
    assert standin.state.rejected >= 1


def test_governance_limits(standin: RunningStandin, client: NetSuiteClient) -> None:
    limits = client.governance_limits()
    assert limits["accountConcurrencyLimit"] == 15
    assert limits["integrationLimitType"] == "accountLimit"


# -- reading -----------------------------------------------------------------------------------
def test_list_records_follows_every_page(
    standin: RunningStandin, make_client: ClientFactory
) -> None:
    client = make_client(page_size=2)
    created = [client.create_record("customer", {**ACME, "externalId": f"c-{n}"}) for n in range(5)]
    assert [item["id"] for item in client.list_records("customer")] == created
    lists = [c for c in calls(standin, "/record/v1/customer") if c["method"] == "GET"]
    assert len(lists) == 3


def test_suiteql_pages_and_polls_by_last_modified(
    standin: RunningStandin, make_client: ClientFactory
) -> None:
    client = make_client(page_size=2)
    for n in range(3):
        client.create_record("customer", {**ACME, "externalId": f"q-{n}"})
    old = client.create_record("customer", {**ACME, "externalId": "q-old"})
    standin.state.table("customer")[old]["lastModifiedDate"] = "2020-05-05T10:00:00Z"
    rows = list(
        client.suiteql(
            "SELECT id, TO_CHAR(lastmodifieddate, 'YYYY-MM-DD HH24:MI:SS') AS modified "
            "FROM customer WHERE lastmodifieddate > "
            "TO_TIMESTAMP('2021-01-01 00:00:00', 'YYYY-MM-DD HH24:MI:SS') ORDER BY id"
        )
    )
    assert len(rows) == 3 and old not in {r["id"] for r in rows}
    assert all("links" not in r and len(r["modified"]) == 19 for r in rows)
    assert currency_ids(client.suiteql("SELECT id, symbol FROM currency")) == {
        "USD": "1",
        "GBP": "2",
        "EUR": "4",
    }


# -- errors --------------------------------------------------------------------------------------
def test_validation_errors_name_the_field_and_code(
    standin: RunningStandin, client: NetSuiteClient
) -> None:
    with pytest.raises(ValidationError) as caught:
        client.create_record("customer", {**ACME, "companyName": "x" * 84})
    error = caught.value
    assert error.field == "companyName" and error.vendor_code == "USER_ERROR"
    assert error.status == 400 and "83" in error.message
    with pytest.raises(ConflictError):
        client.create_record("customer", ACME)
        client.create_record("customer", ACME)  # same externalId: DUP_RCRD


@pytest.mark.parametrize(
    ("path", "body", "call"),
    [
        ("/record/v1/currency/1", "not a record", lambda c: c.get_record("currency", "1")),
        ("/record/v1/currency/1", {"no": "id"}, lambda c: c.get_record("currency", "1")),
        ("/record/v1/customer", {"items": "x"}, lambda c: list(c.list_records("customer"))),
        (
            "/record/v1/customer",
            {"items": [], "hasMore": True},
            lambda c: list(c.list_records("customer")),
        ),
        (
            "/record/v1/customer",
            {"items": [7], "hasMore": False},
            lambda c: list(c.list_records("customer")),
        ),
        ("/query/v1/suiteql", [1, 2], lambda c: list(c.suiteql("SELECT id FROM currency"))),
        ("/system/v1/governanceLimits", {}, lambda c: c.governance_limits()),
    ],
)
def test_malformed_answers_raise_response_shape_error(
    standin: RunningStandin,
    client: NetSuiteClient,
    path: str,
    body: Any,
    call: Callable[[NetSuiteClient], Any],
) -> None:
    standin.state.add_fault(path=path, status=200, body=body, times=1)
    with pytest.raises(ResponseShapeError):
        call(client)


def test_a_create_without_location_is_a_response_shape_error(
    standin: RunningStandin, client: NetSuiteClient
) -> None:
    standin.state.add_fault(
        path="/record/v1/customer$", method="POST", status=204, body={}, times=1
    )
    with pytest.raises(ResponseShapeError):
        client.create_record("customer", ACME)


def test_locations_are_reduced_to_service_paths() -> None:
    assert (
        service_path("https://evil.example/services/rest/record/v1/customer/5")
        == "/services/rest/record/v1/customer/5"
    )
    assert service_path("/services/rest/async/v1/job/3") == "/services/rest/async/v1/job/3"
    assert service_path("https://evil.example/steal") is None
    assert service_path("/services/rest/../../etc") is None
    assert service_path(None) is None


def test_telemetry_reports_each_logical_call(
    standin: RunningStandin, make_client: ClientFactory
) -> None:
    records: list[CallRecord] = []
    client = make_client(on_call=records.append)
    standin.state.add_fault(path="/record/v1/subsidiary", status=503, times=1)
    client.get_subsidiary("2")
    client.create_record("customer", ACME, idempotency_key="tele-1")
    first = records[0]
    assert first.operation == "netsuite.subsidiary.get" and first.attempts == 2
    assert first.status == 200 and first.error_kind == ""
    create = next(r for r in records if r.operation == "netsuite.customer.create")
    assert create.idempotency_key == "tele-1" and create.status == 202
    assert records[-1].operation == "netsuite.customer.create.result"


# -- end to end with the mapper --------------------------------------------------------------------
def test_the_gmbh_has_no_tax_until_someone_adds_a_registration(
    standin: RunningStandin, client: NetSuiteClient
) -> None:
    currencies = currency_ids(client.suiteql("SELECT id, symbol FROM currency"))
    gmbh = legal_entity_from_subsidiary(
        client.get_subsidiary("3"), code="DE01", region="EMEA", currencies=currencies
    )
    assert gmbh.tax is None and gmbh.currency == "EUR"
    client.update_record(
        "subsidiary",
        "3",
        {
            "taxRegistration": {
                "items": [{"nexusCountry": {"id": "DE"}, "taxRegistrationNumber": "DE999999999"}]
            }
        },
    )
    fixed = legal_entity_from_subsidiary(
        client.get_subsidiary("3"), code="DE01", region="EMEA", currencies=currencies
    )
    assert fixed.tax is not None and fixed.tax.registration_number == "DE999999999"
    assert fixed.tax.country == "DE"


def test_a_mapped_customer_is_accepted_by_netsuite(
    standin: RunningStandin, client: NetSuiteClient
) -> None:
    customer = Customer(
        source_id="001A",
        name="Acme Widgets GmbH",
        country="DE",
        currency="EUR",
        tax_registration="DE123456789",
    )
    body = customer_to_netsuite(customer, external_id="sf-001A", subsidiary_id="3", currency_id="4")
    rid = client.upsert_by_external_id("customer", "sf-001A", body)
    record = client.get_record("customer", rid, expand=True)
    assert record["companyName"] == "Acme Widgets GmbH" and record["currency"]["id"] == "4"
    line = record["taxRegistration"]["items"][0]
    assert line["taxRegistrationNumber"] == "DE123456789" and line["nexusCountry"]["id"] == "DE"
