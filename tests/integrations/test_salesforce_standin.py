"""The Salesforce stand-in over real HTTP: it must behave like Salesforce where a connector
could get it wrong - the JWT handshake, sessions, limits, SOQL, paging, upserts, errors."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from integrations.standins.salesforce import (
    DEMO_CONSUMER_KEY,
    DEMO_USERNAME,
    SalesforceState,
    create_app,
    id18,
    parse_datetime,
)
from integrations.standins.server import RunningStandin, start_standin

V = "/services/data/v62.0"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
NORTHWIND = "0015g00000Tl001AAB"
OPP_NORTHWIND = "0065g00000Tl001AAB"
OPP_CONTOSO = "0065g00000Tl005AAB"


def _keypair() -> tuple[rsa.RSAPrivateKey, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return key, public.decode()


KEY, PUBLIC_PEM = _keypair()
OTHER_KEY, _ = _keypair()


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
    state.page_size, state.daily_limit = 200, 15_000
    yield running


def assertion(aud: str, _key: rsa.RSAPrivateKey = KEY, **claims: Any) -> str:
    body = {"iss": DEMO_CONSUMER_KEY, "sub": DEMO_USERNAME, "aud": aud}
    body["exp"] = int(time.time()) + 170
    body.update(claims)
    return jwt.encode(body, _key, algorithm="RS256")


def get_token(run: RunningStandin, **claims: Any) -> httpx.Response:
    return httpx.post(
        f"{run.url}/services/oauth2/token",
        data={
            "grant_type": JWT_GRANT,
            "assertion": assertion(claims.pop("aud", run.url), **claims),
        },
    )


@pytest.fixture
def api(sf: RunningStandin) -> Iterator[httpx.Client]:
    answer = get_token(sf).json()
    with httpx.Client(
        base_url=answer["instance_url"],
        headers={"Authorization": f"Bearer {answer['access_token']}"},
    ) as client:
        yield client


# -- the OAuth handshake ----------------------------------------------------------------


def test_jwt_bearer_exchange_answers_a_token_and_the_instance_url(sf: RunningStandin) -> None:
    response = get_token(sf)

    assert response.status_code == 200
    body = response.json()
    assert body["instance_url"] == sf.url
    assert body["token_type"] == "Bearer"
    assert {"access_token", "id", "scope", "issued_at", "signature"} <= set(body)
    assert "expires_in" not in body  # Salesforce does not say; the session timeout rules
    limits = httpx.get(
        f"{body['instance_url']}{V}/limits",
        headers={"Authorization": f"Bearer {body['access_token']}"},
    )
    assert limits.status_code == 200
    assert limits.headers["Sforce-Limit-Info"] == "api-usage=1/15000"


@pytest.mark.parametrize("aud", ["https://login.salesforce.com", "https://test.salesforce.com"])
def test_login_and_test_audiences_are_accepted(sf: RunningStandin, aud: str) -> None:
    assert get_token(sf, aud=aud).status_code == 200


@pytest.mark.parametrize(
    ("claims", "error", "description"),
    [
        ({"_key": OTHER_KEY}, "invalid_grant", "invalid assertion"),
        ({"iss": "someone-else"}, "invalid_client_id", "client identifier invalid"),
        ({"aud": "https://evil.example"}, "invalid_grant", "audience is invalid"),
        ({"exp": int(time.time()) - 600}, "invalid_grant", None),
        ({"exp": int(time.time()) + 3600}, "invalid_grant", None),
        ({"sub": "intruder@example.com"}, "invalid_grant", "user hasn't approved this consumer"),
    ],
)
def test_bad_assertions_are_refused_like_salesforce(
    sf: RunningStandin, claims: dict[str, Any], error: str, description: str | None
) -> None:
    response = get_token(sf, **claims)

    assert response.status_code == 400
    assert response.json()["error"] == error
    if description:
        assert response.json()["error_description"] == description


def test_unsigned_or_symmetric_assertions_and_other_grants_are_refused(sf: RunningStandin) -> None:
    url = f"{sf.url}/services/oauth2/token"
    claims = {"iss": DEMO_CONSUMER_KEY, "sub": DEMO_USERNAME, "aud": sf.url}
    claims["exp"] = int(time.time()) + 100
    for forged in (
        jwt.encode(claims, "secret-guess-long-enough-for-hs256!!", algorithm="HS256"),
        jwt.encode(claims, None, algorithm="none"),
    ):
        answer = httpx.post(
            url,
            data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": forged},
        )
        assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"
    answer = httpx.post(url, data={"grant_type": "password", "username": "u", "password": "p"})
    assert answer.json()["error"] == "unsupported_grant_type"


def test_trusted_certificate_is_read_from_standin_keys_dir(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "throughline")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(KEY.public_key())
        .serial_number(1)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(KEY, hashes.SHA256())
    )
    (tmp_path / "salesforce").mkdir()
    (tmp_path / "salesforce" / f"{DEMO_CONSUMER_KEY}.pem").write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
    )
    monkeypatch.setenv("STANDIN_KEYS_DIR", str(tmp_path))
    run = start_standin("salesforce", app=create_app(SalesforceState()))
    try:
        assert get_token(run).status_code == 200
        assert get_token(run, iss="../../etc/passwd").json()["error"] == "invalid_client_id"
    finally:
        run.stop()


# -- sessions and limits ------------------------------------------------------------------


def test_missing_or_revoked_session_answers_401_invalid_session_id(
    sf: RunningStandin, api: httpx.Client
) -> None:
    anonymous = httpx.get(f"{sf.url}{V}/limits")
    assert anonymous.status_code == 401
    assert anonymous.json() == [
        {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}
    ]
    assert api.get(f"{V}/limits").status_code == 200
    sf.state.revoke_tokens()
    assert api.get(f"{V}/limits").json()[0]["errorCode"] == "INVALID_SESSION_ID"


def test_over_the_daily_limit_answers_403_request_limit_exceeded(
    sf: RunningStandin, api: httpx.Client
) -> None:
    sf.state.daily_limit = 2
    assert api.get(f"{V}/limits").json()["DailyApiRequests"] == {"Max": 2, "Remaining": 1}
    assert api.get(f"{V}/limits").status_code == 200
    refused = api.get(f"{V}/sobjects/Account/{NORTHWIND}")

    assert refused.status_code == 403
    assert refused.json() == [
        {"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}
    ]
    assert refused.headers["Sforce-Limit-Info"] == "api-usage=3/2"


def test_versions_need_no_session_and_unknown_versions_are_not_found(
    sf: RunningStandin, api: httpx.Client
) -> None:
    versions = httpx.get(f"{sf.url}/services/data/").json()
    assert {"label": "Winter '25", "url": "/services/data/v62.0", "version": "62.0"} in versions
    assert api.get(f"/services/data/v12.0/sobjects/Account/{NORTHWIND}").status_code == 404


def test_injected_faults_use_the_salesforce_error_array(
    sf: RunningStandin, api: httpx.Client
) -> None:
    sf.state.add_fault(path="/query", status=503, times=1)
    answer = api.get(f"{V}/query", params={"q": "SELECT Id FROM Account"})
    assert answer.status_code == 503
    assert answer.json()[0]["errorCode"] == "SERVER_UNAVAILABLE"
    assert api.get(f"{V}/query", params={"q": "SELECT Id FROM Account"}).status_code == 200


# -- SOQL -----------------------------------------------------------------------------------


def soql(api: httpx.Client, query: str) -> httpx.Response:
    return api.get(f"{V}/query", params={"q": query})


def test_soql_parent_fields_filters_order_and_limit(api: httpx.Client) -> None:
    body = soql(
        api,
        "select Id, Name, Amount, Account.Name, account.billingcountry from opportunity "
        "where IsWon = true and Amount >= 90000 and CurrencyIsoCode != 'eur' "
        "order by Amount desc limit 5",
    ).json()

    assert body["done"] is True and body["totalSize"] == 2
    first, second = body["records"]
    assert first["attributes"] == {
        "type": "Opportunity",
        "url": f"{V}/sobjects/Opportunity/0065g00000Tl002AAB",
    }
    assert (first["Name"], first["Amount"]) == ("ERP rollout phase 1", 250000.0)
    assert first["Account"]["Name"] == "Globex Corporation"
    assert first["Account"]["BillingCountry"] == "US"
    assert first["Account"]["attributes"]["type"] == "Account"
    assert second["Name"] == "Finance transformation"


def test_soql_datetime_watermark_and_null_comparisons(api: httpx.Client) -> None:
    ordered = soql(api, "SELECT SystemModstamp FROM Opportunity ORDER BY SystemModstamp")
    stamps = [r["SystemModstamp"] for r in ordered.json()["records"]]
    third = parse_datetime(stamps[2]).strftime("%Y-%m-%dT%H:%M:%SZ")
    newer = soql(api, f"SELECT Name FROM Opportunity WHERE SystemModstamp > {third}").json()
    assert newer["totalSize"] == 3
    nulls = soql(api, "SELECT Id FROM Opportunity WHERE Throughline_PSA_Project_Id__c = null")
    assert nulls.json()["totalSize"] == 6
    by_short_id = soql(api, f"SELECT Name FROM Account WHERE Id = '{NORTHWIND[:15]}'").json()
    assert by_short_id["records"][0]["Name"] == "Northwind Consulting Ltd"


def test_soql_string_escapes_round_trip(api: httpx.Client) -> None:
    created = api.post(f"{V}/sobjects/Account", json={"Name": "O'Brien \\ Sons"})
    assert created.status_code == 201

    hit = soql(api, "SELECT Id FROM Account WHERE Name = 'O\\'Brien \\\\ Sons'").json()
    assert [r["Id"] for r in hit["records"]] == [created.json()["id"]]


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("SELECT Id FROM Opportunity WHERE IsWon = true OR IsClosed = true", "MALFORMED_QUERY"),
        ("SELECT Id FROM Opportunity WHERE Name LIKE 'A%'", "MALFORMED_QUERY"),
        ("SELECT COUNT() FROM Opportunity", "MALFORMED_QUERY"),
        ("SELECT Id FROM Opportunity WHERE CloseDate = TODAY", "MALFORMED_QUERY"),
        ("SELECT Id FROM Opportunity WHERE Name = 'unterminated", "MALFORMED_QUERY"),
        ("SELECT Id Opportunity", "MALFORMED_QUERY"),
        ("DROP TABLE Opportunity", "MALFORMED_QUERY"),
        (
            "SELECT Id FROM Opportunity WHERE SystemModstamp > '2026-11-26T10:00:00Z'",
            "INVALID_FIELD",
        ),
        ("SELECT Id FROM Opportunity WHERE Amount > '5'", "INVALID_FIELD"),
        ("SELECT Id FROM Opportunity WHERE Name = 5", "INVALID_FIELD"),
        ("SELECT Bogus__c FROM Opportunity", "INVALID_FIELD"),
        ("SELECT Owner.Name FROM Opportunity", "INVALID_FIELD"),
        ("SELECT Id FROM Invoice__c", "INVALID_TYPE"),
    ],
)
def test_soql_outside_the_subset_or_wrongly_typed_answers_400(
    api: httpx.Client, query: str, code: str
) -> None:
    answer = soql(api, query)

    assert answer.status_code == 400
    assert answer.json()[0]["errorCode"] == code
    assert answer.json()[0]["message"]


def test_query_pages_follow_next_records_url(sf: RunningStandin, api: httpx.Client) -> None:
    sf.state.page_size = 2
    first = soql(api, "SELECT Id FROM Opportunity ORDER BY Name").json()

    assert first["totalSize"] == 6 and first["done"] is False and len(first["records"]) == 2
    assert first["nextRecordsUrl"].startswith(f"{V}/query/01g")
    ids = [r["Id"] for r in first["records"]]
    page = first
    while not page["done"]:
        page = api.get(page["nextRecordsUrl"]).json()
        ids += [r["Id"] for r in page["records"]]
    assert len(ids) == len(set(ids)) == 6
    assert "nextRecordsUrl" not in page
    assert api.get(f"{V}/query/01gNOPE-2").json()[0]["errorCode"] == "INVALID_QUERY_LOCATOR"


# -- records ----------------------------------------------------------------------------------


def test_create_then_close_won_sets_flags_and_modstamp(api: httpx.Client) -> None:
    created = api.post(
        f"{V}/sobjects/Opportunity",
        json={
            "Name": "New deal",
            "StageName": "Prospecting",
            "CloseDate": "2026-12-31",
            "Amount": 1000.5,
            "AccountId": NORTHWIND[:15],
        },
    )
    assert created.status_code == 201
    body = created.json()
    assert body["success"] is True and body["errors"] == []
    new_id = body["id"]
    assert new_id.startswith("006") and len(new_id) == 18 and new_id == id18(new_id[:15])
    before = api.get(f"{V}/sobjects/Opportunity/{new_id}").json()
    assert (before["IsClosed"], before["IsWon"], before["AccountId"]) == (False, False, NORTHWIND)
    assert before["SystemModstamp"].endswith(".000+0000")

    opp = f"{V}/sobjects/Opportunity/{OPP_CONTOSO}"
    seeded = api.get(opp).json()
    assert api.patch(opp, json={"StageName": "Closed Won"}).status_code == 204
    won = api.get(opp, params={"fields": "IsWon,IsClosed,SystemModstamp"}).json()
    assert set(won) == {"attributes", "IsWon", "IsClosed", "SystemModstamp"}
    assert won["IsWon"] is True and won["IsClosed"] is True
    assert parse_datetime(won["SystemModstamp"]) > parse_datetime(seeded["SystemModstamp"])
    api.patch(opp, json={"StageName": "Closed Lost"})
    lost = api.get(opp).json()
    assert (lost["IsClosed"], lost["IsWon"]) == (True, False)


@pytest.mark.parametrize(
    ("body", "code", "fields"),
    [
        ({"Bogus__c": 1}, "INVALID_FIELD", ["Bogus__c"]),
        ({"IsWon": True}, "INVALID_FIELD_FOR_INSERT_UPDATE", ["IsWon"]),
        ({"Name": ""}, "REQUIRED_FIELD_MISSING", ["Name"]),
        ({"CurrencyIsoCode": "XXX"}, "FIELD_INTEGRITY_EXCEPTION", ["CurrencyIsoCode"]),
        ({"AccountId": "001000000000000AAA"}, "INVALID_CROSS_REFERENCE_KEY", ["AccountId"]),
        ({"Amount": "lots"}, "JSON_PARSER_ERROR", None),
        ({"CloseDate": "31/12/2026"}, "JSON_PARSER_ERROR", None),
    ],
)
def test_bad_writes_answer_400_with_code_and_fields(
    api: httpx.Client, body: dict[str, Any], code: str, fields: list[str] | None
) -> None:
    answer = api.patch(f"{V}/sobjects/Opportunity/{OPP_NORTHWIND}", json=body)

    assert answer.status_code == 400
    error = answer.json()[0]
    assert error["errorCode"] == code
    if fields is not None:
        assert error["fields"] == fields


def test_required_fields_on_create_and_unknown_records(api: httpx.Client) -> None:
    missing = api.post(f"{V}/sobjects/Opportunity", json={"Name": "x"}).json()[0]
    assert missing["errorCode"] == "REQUIRED_FIELD_MISSING"
    assert set(missing["fields"]) == {"StageName", "CloseDate"}
    gone = api.get(f"{V}/sobjects/Opportunity/006000000000000AAA")
    assert gone.status_code == 404 and gone.json()[0]["errorCode"] == "NOT_FOUND"
    assert api.get(f"{V}/sobjects/Invoice__c/{OPP_NORTHWIND}").status_code == 404
    assert api.delete(f"{V}/sobjects/Contact/0035g00000Tl001AAB").status_code == 204
    assert api.get(f"{V}/sobjects/Contact/0035g00000Tl001AAB").status_code == 404


def test_upsert_by_external_id_creates_then_updates_then_reports_several(
    api: httpx.Client,
) -> None:
    path = f"{V}/sobjects/Account/Throughline_Key__c/TL-ACME"
    created = api.patch(path, json={"Name": "Acme"})
    assert created.status_code == 201 and created.json()["created"] is True
    updated = api.patch(path, json={"BillingCity": "Leeds"})
    assert updated.status_code == 200
    assert updated.json() == {
        "id": created.json()["id"],
        "success": True,
        "errors": [],
        "created": False,
    }
    assert api.get(path).json()["BillingCity"] == "Leeds"

    api.patch(f"{V}/sobjects/Account/{NORTHWIND}", json={"Throughline_Key__c": "TL-ACME"})
    several = api.patch(path, json={"BillingCity": "York"})
    assert several.status_code == 300
    assert sorted(several.json()) == sorted(
        [f"{V}/sobjects/Account/{created.json()['id']}", f"{V}/sobjects/Account/{NORTHWIND}"]
    )


def test_upsert_rules_update_only_and_forbidden_body_fields(api: httpx.Client) -> None:
    base = f"{V}/sobjects/Account/Throughline_Key__c"
    missing = api.patch(f"{base}/TL-NONE", params={"updateOnly": "true"}, json={"Name": "x"})
    assert missing.status_code == 404
    for body in ({"Name": "x", "Id": NORTHWIND}, {"Name": "x", "Throughline_Key__c": "TL-2"}):
        answer = api.patch(f"{base}/TL-2", json=body)
        assert answer.status_code == 400 and answer.json()[0]["errorCode"] == "INVALID_FIELD"
    not_ext = api.patch(f"{V}/sobjects/Account/Name/Acme", json={"BillingCity": "x"})
    assert not_ext.status_code == 404
    assert api.get(f"{V}/query", params={"q": "SELECT Id FROM Account"}).json()["totalSize"] == 5


def test_control_surface_edits_stamp_modstamp_and_derive_stage_flags(
    sf: RunningStandin, api: httpx.Client
) -> None:
    path = f"{V}/sobjects/Opportunity/{OPP_CONTOSO}"
    before = api.get(path).json()["SystemModstamp"]
    edited = httpx.post(
        f"{sf.url}/__standin__/records/Opportunity/{OPP_CONTOSO}",
        json={"StageName": "Closed Won"},
    )
    assert edited.status_code == 200
    after = api.get(path).json()
    assert after["IsWon"] is True and after["SystemModstamp"] > before
