"""The Salesforce connector against its stand-in over real HTTP: the closed-won feed and its
watermark, paging, write-back, upserts, and how failures are retried and classified."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest

from integrations.canonical.errors import MappingError
from integrations.connectors.auth import OAuthTokenAuth
from integrations.connectors.errors import (
    AuthError,
    ConflictError,
    NotFoundError,
    RateLimitedError,
    ResponseShapeError,
    TransientError,
    ValidationError,
)
from integrations.connectors.http import CallRecord
from integrations.connectors.keys import generate_key_pair
from integrations.connectors.salesforce import (
    SalesforceClient,
    build_client,
    opportunity_from_salesforce,
    opportunity_writeback,
    parse_salesforce_datetime,
    soql_quote,
)
from integrations.standins.salesforce import (
    DEMO_CONSUMER_KEY,
    DEMO_USERNAME,
    SalesforceState,
    create_app,
)
from integrations.standins.server import RunningStandin, start_standin

WON = ["0065g00000Tl001AAB", "0065g00000Tl002AAB", "0065g00000Tl003AAB", "0065g00000Tl004AAB"]
OPP_CONTOSO = "0065g00000Tl005AAB"


def _pem_pair() -> tuple[str, str]:
    return generate_key_pair()


PRIVATE_PEM, PUBLIC_PEM = _pem_pair()
OTHER_PRIVATE_PEM, _ = _pem_pair()


@pytest.fixture(scope="module")
def running() -> Iterator[RunningStandin]:
    run = start_standin(
        "salesforce", app=create_app(SalesforceState(trusted_keys={DEMO_CONSUMER_KEY: PUBLIC_PEM}))
    )
    yield run
    run.stop()


@pytest.fixture
def sf(running: RunningStandin) -> Iterator[RunningStandin]:
    state = running.state
    state.reset()
    state.page_size, state.daily_limit, state.instance_url = 200, 15_000, None
    yield running


class Harness:
    """Builds clients for a stand-in and remembers what they reported and slept."""

    def __init__(self, run: RunningStandin) -> None:
        self.run = run
        self.calls: list[CallRecord] = []
        self.sleeps: list[float] = []
        self.clients: list[SalesforceClient] = []
        self.sent: list[str] = []  # paths of every request the clients sent

    def client(self, *, private_key: str = PRIVATE_PEM, **settings: Any) -> SalesforceClient:
        connection_id = settings.pop("connection_id", 7)
        client = build_client(
            base_url=self.run.url,
            settings={"username": DEMO_USERNAME, **settings},
            secrets={"consumer_key": DEMO_CONSUMER_KEY, "private_key": private_key},
            connection_id=connection_id,
            on_call=self.calls.append,
            sleep=self.sleeps.append,
            max_attempts=3,
        )
        OAuthTokenAuth.forget(client.http.auth.cache_key)  # type: ignore[union-attr]
        client.http.event_hooks["request"].append(lambda r: self.sent.append(r.url.path))
        self.clients.append(client)
        return client

    def token_requests(self) -> int:
        return self.sent.count("/services/oauth2/token")

    def close(self) -> None:
        for client in self.clients:
            OAuthTokenAuth.forget(client.http.auth.cache_key)  # type: ignore[union-attr]
            client.close()


@pytest.fixture
def harness(sf: RunningStandin) -> Iterator[Harness]:
    h = Harness(sf)
    yield h
    h.close()


@pytest.fixture
def client(harness: Harness) -> SalesforceClient:
    return harness.client()


def fault(run: RunningStandin, **rule: Any) -> None:
    run.state.add_fault(**rule)


# -- the closed-won feed ---------------------------------------------------------------------


def test_closed_won_feed_returns_won_deals_oldest_change_first_with_accounts(
    client: SalesforceClient, harness: Harness
) -> None:
    won = client.closed_won_opportunities(None)

    assert [r["Id"] for r in won] == WON
    stamps = [parse_salesforce_datetime(r["SystemModstamp"]) for r in won]
    assert stamps == sorted(stamps)
    mapped = [opportunity_from_salesforce(r) for r in won]
    assert [(o.customer.name, o.legal_entity_code, o.project_template) for o in mapped] == [
        ("Northwind Consulting Ltd", "UK01", "FIXED-3"),
        ("Globex Corporation", "US01", "TM-STD"),
        ("Initech GmbH", "DE01", "FIXED-3"),
        ("Umbrella Advisory LLC", "US01", "LEGACY-X"),
    ]
    assert str(mapped[2].amount) == "90000.00" and mapped[2].currency == "EUR"
    assert harness.token_requests() == 1
    query_calls = [c for c in harness.calls if c.operation == "salesforce.query"]
    assert query_calls[0].rate_limit["Sforce-Limit-Info"].startswith("api-usage=")


def test_watermark_returns_only_deals_changed_after_it(
    client: SalesforceClient, harness: Harness
) -> None:
    first = client.closed_won_opportunities(None)
    watermark = parse_salesforce_datetime(first[-1]["SystemModstamp"])
    assert client.closed_won_opportunities(watermark) == []
    assert [r["Id"] for r in client.closed_won_opportunities(watermark, inclusive=True)] == [
        WON[-1]
    ]

    client.update("Opportunity", OPP_CONTOSO, {"StageName": "Closed Won"})

    later = client.closed_won_opportunities(watermark)
    assert [r["Id"] for r in later] == [OPP_CONTOSO]
    assert later[0]["IsWon"] is True
    assert parse_salesforce_datetime(later[0]["SystemModstamp"]) > watermark


def test_feed_honours_limit_and_refuses_naive_watermarks(client: SalesforceClient) -> None:
    assert [r["Id"] for r in client.closed_won_opportunities(None, limit=2)] == WON[:2]
    with pytest.raises(ValueError):
        client.closed_won_opportunities(datetime(2026, 11, 26, 10, 0))
    with pytest.raises(ValueError):
        client.closed_won_opportunities(None, limit=0)


def test_paging_returns_every_record_once(
    sf: RunningStandin, client: SalesforceClient, harness: Harness
) -> None:
    sf.state.page_size = 2

    records = list(client.query("SELECT Id, Name FROM Opportunity ORDER BY Name"))

    assert len(records) == 6 and len({r["Id"] for r in records}) == 6
    assert [c.operation for c in harness.calls].count("salesforce.query.more") == 2
    assert [r["Id"] for r in client.closed_won_opportunities(None)] == WON


def test_get_opportunity_and_write_back_the_erp_and_psa_ids(client: SalesforceClient) -> None:
    client.update("Opportunity", WON[0], opportunity_writeback("CUS-1042", "PRJ-77"))

    opp = opportunity_from_salesforce(client.get_opportunity(WON[0]))
    assert (opp.erp_customer_id, opp.psa_project_id) == ("CUS-1042", "PRJ-77")
    assert client.get("Opportunity", WON[0], fields=["Name"])["Name"] == "Finance transformation"
    with pytest.raises(NotFoundError):
        client.get_opportunity("006000000000000AAA")
    with pytest.raises(ValueError):
        client.get_opportunity("' OR Name != '")


def test_soql_literals_are_escaped_so_quotes_cannot_inject(client: SalesforceClient) -> None:
    tricky = "O'Brien \\ Sons"
    new_id = client.create("Account", {"Name": tricky})

    found = list(client.query(f"SELECT Id FROM Account WHERE Name = {soql_quote(tricky)}"))
    assert [r["Id"] for r in found] == [new_id]
    injected = soql_quote("x' AND Name != 'y")
    assert list(client.query(f"SELECT Id FROM Account WHERE Name = {injected}")) == []


def test_limits_report_remaining_daily_calls(client: SalesforceClient) -> None:
    first = client.limits()["DailyApiRequests"]
    second = client.limits()["DailyApiRequests"]
    assert first["Max"] == 15_000 and second["Remaining"] == first["Remaining"] - 1


# -- upserts and retries -------------------------------------------------------------------


def test_upsert_creates_then_updates_the_same_record(client: SalesforceClient) -> None:
    created_id, created = client.upsert("Account", "Throughline_Key__c", "TL-9", {"Name": "Acme"})
    again_id, again = client.upsert("Account", "Throughline_Key__c", "TL-9", {"BillingCity": "Ely"})

    assert created and not again and created_id == again_id
    assert client.get("Account", created_id or "")["BillingCity"] == "Ely"
    with pytest.raises(NotFoundError):
        client.upsert("Account", "Throughline_Key__c", "TL-0", {"Name": "x"}, update_only=True)
    with pytest.raises(ValueError):
        client.upsert("Account", "Throughline_Key__c", "TL-9", {"Throughline_Key__c": "TL-9"})


def test_upsert_matching_several_records_is_a_conflict(client: SalesforceClient) -> None:
    client.create("Account", {"Name": "Twin A", "Throughline_Key__c": "TWIN"})
    client.create("Account", {"Name": "Twin B", "Throughline_Key__c": "TWIN"})

    with pytest.raises(ConflictError) as info:
        client.upsert("Account", "Throughline_Key__c", "TWIN", {"BillingCity": "x"})
    assert info.value.status == 300 and info.value.vendor_code == "MULTIPLE_CHOICES"


def count_accounts(client: SalesforceClient) -> int:
    return len(list(client.query("SELECT Id FROM Account")))


@pytest.mark.parametrize("status", [500, 502, 503])
def test_upsert_after_a_server_error_is_retried_without_a_duplicate(
    sf: RunningStandin, client: SalesforceClient, harness: Harness, status: int
) -> None:
    # a PATCH by external id is repeatable: even had the first attempt been processed, the
    # repeat would find that record (test above) - so the client retries it like a PUT
    fault(sf, method="PATCH", path="/Throughline_Key__c/", status=status, times=1)

    record_id, created = client.upsert("Account", "Throughline_Key__c", "TL-R", {"Name": "R"})

    assert created and record_id
    assert count_accounts(client) == 6
    upsert_call = next(c for c in harness.calls if c.operation == "salesforce.Account.upsert")
    assert upsert_call.attempts == 2 and upsert_call.status in (200, 201)


def test_create_is_retried_after_503_but_not_after_500(
    sf: RunningStandin, client: SalesforceClient, harness: Harness
) -> None:
    fault(sf, method="POST", path="/sobjects/Account$", status=503, times=1)
    client.create("Account", {"Name": "Once"})
    assert count_accounts(client) == 6

    fault(sf, method="POST", path="/sobjects/Account$", status=500, times=1)
    with pytest.raises(TransientError):
        client.create("Account", {"Name": "Maybe"})
    create_calls = [c for c in harness.calls if c.operation == "salesforce.Account.create"]
    assert [c.attempts for c in create_calls] == [2, 1]


# -- failures are classified ----------------------------------------------------------------


def test_daily_limit_is_rate_limited_and_honours_retry_after(
    sf: RunningStandin, client: SalesforceClient, harness: Harness
) -> None:
    sf.state.daily_limit = 0
    with pytest.raises(RateLimitedError) as info:
        client.limits()
    assert info.value.vendor_code == "REQUEST_LIMIT_EXCEEDED" and info.value.status == 403

    sf.state.daily_limit = 15_000
    harness.sleeps.clear()
    fault(
        sf,
        path="/limits",
        status=403,
        code="REQUEST_LIMIT_EXCEEDED",
        message="ConcurrentRequests Limit exceeded.",
        headers={"Retry-After": "7"},
        times=1,
    )
    assert client.limits()["DailyApiRequests"]["Max"] == 15_000
    assert harness.sleeps == [7.0]


def test_revoked_session_is_renewed_with_a_new_assertion(
    sf: RunningStandin, client: SalesforceClient, harness: Harness
) -> None:
    client.limits()
    sf.state.revoke_tokens()

    assert client.get_opportunity(WON[0])["Id"] == WON[0]
    assert harness.token_requests() == 2


def test_refused_assertion_is_an_auth_error_not_retried(harness: Harness) -> None:
    client = harness.client(private_key=OTHER_PRIVATE_PEM)

    with pytest.raises(AuthError) as info:
        client.limits()
    assert info.value.vendor_code == "invalid_grant"
    assert harness.token_requests() == 1


@pytest.mark.parametrize(
    ("rule", "error", "code"),
    [
        ({"status": 400, "code": "UNABLE_TO_LOCK_ROW"}, TransientError, "UNABLE_TO_LOCK_ROW"),
        ({"status": 400, "code": "INVALID_FIELD"}, ValidationError, "INVALID_FIELD"),
        ({"status": 404}, NotFoundError, "NOT_FOUND"),
        ({"status": 403, "code": "INSUFFICIENT_ACCESS"}, AuthError, "INSUFFICIENT_ACCESS"),
    ],
)
def test_vendor_errors_are_classified(
    sf: RunningStandin,
    client: SalesforceClient,
    rule: dict[str, Any],
    error: type[Exception],
    code: str,
) -> None:
    fault(sf, method="PATCH", path="/sobjects/Opportunity/", **rule)
    with pytest.raises(error) as info:
        client.update("Opportunity", WON[0], {"StageName": "Closed Lost"})
    assert info.value.vendor_code == code  # type: ignore[attr-defined]


def test_invalid_field_names_the_field(client: SalesforceClient) -> None:
    with pytest.raises(ValidationError) as info:
        client.update("Opportunity", WON[0], {"Not_A_Field__c": "x"})
    assert info.value.field == "Not_A_Field__c" and info.value.vendor_code == "INVALID_FIELD"


@pytest.mark.parametrize(
    "body",
    [
        {"unexpected": True},
        {"done": True, "records": "nope"},
        {"done": True, "records": [1, 2]},
        {"done": False, "records": []},
        {"done": False, "records": [], "nextRecordsUrl": "https://evil.example/steal"},
        ["not", "an", "object"],
    ],
)
def test_malformed_query_answers_raise_response_shape_error(
    sf: RunningStandin, client: SalesforceClient, body: Any
) -> None:
    fault(sf, path="/query", status=200, body=body, times=1)
    with pytest.raises(ResponseShapeError):
        client.closed_won_opportunities(None)


def test_malformed_write_answers_raise_response_shape_error(
    sf: RunningStandin, client: SalesforceClient
) -> None:
    fault(sf, method="POST", status=201, body={"success": True}, times=1)
    with pytest.raises(ResponseShapeError):
        client.create("Account", {"Name": "x"})
    fault(sf, method="PATCH", status=201, body=[], times=1)
    with pytest.raises(ResponseShapeError):
        client.upsert("Account", "Throughline_Key__c", "K", {"Name": "x"})


def test_a_malformed_won_deal_fails_mapping_not_with_key_errors(
    sf: RunningStandin, client: SalesforceClient
) -> None:
    sf.state.table("Opportunity")[WON[2]].update({"Legal_Entity__c": None, "Amount": None})
    bad = client.get_opportunity(WON[2])
    with pytest.raises(MappingError) as info:
        opportunity_from_salesforce(bad)
    assert {"legal_entity_code", "amount"} <= set(info.value.fields)


# -- auth and configuration -----------------------------------------------------------------


def test_calls_go_to_the_instance_url_from_the_token(sf: RunningStandin, harness: Harness) -> None:
    instance = start_standin("salesforce", app=create_app(sf.state))  # same org, other host
    try:
        sf.state.instance_url = instance.url
        client = harness.client()
        hosts: list[str] = []
        client.http.event_hooks["request"].append(
            lambda request: hosts.append(f"{request.url.host}:{request.url.port}")
        )

        client.limits()

        login_host = sf.url.removeprefix("http://")
        assert hosts == [login_host, instance.url.removeprefix("http://")]
    finally:
        instance.stop()


def test_tokens_are_cached_per_connection_and_username(harness: Harness) -> None:
    a1 = harness.client(connection_id=1)
    a2 = harness.client(connection_id=1)
    b = harness.client(connection_id=2)
    a1.limits()
    a2.limits()
    assert harness.token_requests() == 1
    b.limits()
    assert harness.token_requests() == 2
    keys = {c.http.auth.cache_key for c in (a1, b)}  # type: ignore[union-attr]
    assert all(DEMO_USERNAME in key for key in keys) and len(keys) == 2


@pytest.mark.parametrize(
    ("settings", "secrets"),
    [
        ({}, {"consumer_key": DEMO_CONSUMER_KEY, "private_key": PRIVATE_PEM}),
        ({"username": DEMO_USERNAME}, {"private_key": PRIVATE_PEM}),
        ({"username": DEMO_USERNAME}, {"consumer_key": DEMO_CONSUMER_KEY}),
        ({"username": DEMO_USERNAME}, {"consumer_key": "k", "private_key": "not a pem"}),
    ],
)
def test_incomplete_credentials_are_auth_errors(
    settings: dict[str, Any], secrets: dict[str, Any]
) -> None:
    with pytest.raises(AuthError):
        build_client(base_url="https://login.salesforce.com", settings=settings, secrets=secrets)


def test_settings_choose_login_url_and_api_version(sf: RunningStandin) -> None:
    client = build_client(
        base_url="https://acme.my.salesforce.com",
        settings={"username": DEMO_USERNAME, "login_url": sf.url, "api_version": "61.0"},
        secrets={"consumer_key": DEMO_CONSUMER_KEY, "private_key": PRIVATE_PEM},
        connection_id=99,
    )
    try:
        assert client.api_version == "v61.0"
        assert str(client.http.base_url).rstrip("/") == sf.url
        assert client.limits()["DailyApiRequests"]["Max"] == 15_000
    finally:
        OAuthTokenAuth.forget(client.http.auth.cache_key)  # type: ignore[union-attr]
        client.close()


def test_token_answer_must_carry_a_usable_instance_url(harness: Harness) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, json={"access_token": "t", "instance_url": "http://plain"})

    client = build_client(
        base_url="https://login.salesforce.com",
        settings={"username": DEMO_USERNAME},
        secrets={"consumer_key": DEMO_CONSUMER_KEY, "private_key": PRIVATE_PEM},
        connection_id=123,
        transport=httpx.MockTransport(handler),
        sleep=lambda s: None,
    )
    try:
        with pytest.raises(ResponseShapeError):
            client.limits()  # an https login must not hand the token to a plain-http host
        assert seen == ["https://login.salesforce.com/services/oauth2/token"]
    finally:
        OAuthTokenAuth.forget(client.http.auth.cache_key)  # type: ignore[union-attr]
        client.close()


def test_assertion_claims(harness: Harness) -> None:
    client = harness.client(audience="https://test.salesforce.com")
    auth: Any = client.http.auth
    claims = jwt.decode(auth.assertion(), options={"verify_signature": False})
    assert claims["iss"] == DEMO_CONSUMER_KEY and claims["sub"] == DEMO_USERNAME
    assert claims["aud"] == "https://test.salesforce.com"
    expires = datetime.fromtimestamp(claims["exp"], UTC) - datetime.now(UTC)
    assert timedelta(minutes=2) < expires <= timedelta(minutes=3)
