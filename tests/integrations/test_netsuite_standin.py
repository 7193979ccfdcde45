"""The NetSuite stand-in over real HTTP: M2M token handshake, record service, idempotency,
async jobs, SuiteQL, concurrency governance and the control extras."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from integrations.standins.netsuite import (
    CERTIFICATE_ID,
    CLIENT_ID,
    TOKEN_PATH,
    NetSuiteState,
    create_app,
)
from integrations.standins.server import RunningStandin, start_standin

RECORD = "/services/rest/record/v1"
SUITEQL = "/services/rest/query/v1/suiteql"


def _keypair() -> tuple[rsa.RSAPrivateKey, str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return key, private, public


@pytest.fixture(scope="module")
def keys() -> dict[str, Any]:
    key, private, public = _keypair()
    other, _, _ = _keypair()
    return {"key": key, "private": private, "public": public, "other": other}


@pytest.fixture(scope="module")
def server(keys: dict[str, Any]) -> Iterator[RunningStandin]:
    running = start_standin(
        "netsuite", app=create_app(NetSuiteState({CERTIFICATE_ID: keys["public"]}))
    )
    yield running
    running.stop()


@pytest.fixture
def standin(server: RunningStandin) -> Iterator[RunningStandin]:
    server.state.reset()
    yield server
    state = server.state
    state.concurrency_limit, state.latency_ms, state.token_lifetime = 15, 0, 3600


def assertion(
    key: Any,
    aud: str,
    *,
    kid: str = CERTIFICATE_ID,
    iss: str = CLIENT_ID,
    scope: Any = "restlets,rest_webservices",
    lifetime: int = 300,
    alg: str = "PS256",
) -> str:
    now = int(time.time())
    claims = {"iss": iss, "scope": scope, "aud": aud, "iat": now, "exp": now + lifetime}
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid})


def request_token(url: str, client_assertion: str, **extra: str) -> httpx.Response:
    data = {
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": client_assertion,
        **extra,
    }
    return httpx.post(url + TOKEN_PATH, data=data)


@pytest.fixture
def api(standin: RunningStandin, keys: dict[str, Any]) -> Iterator[httpx.Client]:
    answer = request_token(standin.url, assertion(keys["key"], standin.url + TOKEN_PATH))
    assert answer.status_code == 200, answer.text
    token = answer.json()["access_token"]
    with httpx.Client(base_url=standin.url, headers={"Authorization": f"Bearer {token}"}) as client:
        yield client


def new_customer(api: httpx.Client, **fields: Any) -> str:
    body = {"companyName": "Acme Widgets", "subsidiary": {"id": "2"}, **fields}
    answer = api.post(f"{RECORD}/customer", json=body)
    assert answer.status_code == 204, answer.text
    return answer.headers["Location"].rsplit("/", 1)[1]


def only_detail(answer: httpx.Response) -> dict[str, Any]:
    body = answer.json()
    assert body["status"] == answer.status_code
    assert set(body) >= {"type", "title", "status", "o:errorDetails"}
    return body["o:errorDetails"][0]


# -- token ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("alg", ["PS256", "RS256"])
def test_signed_assertion_is_traded_for_a_bearer_token(
    standin: RunningStandin, keys: dict[str, Any], alg: str
) -> None:
    answer = request_token(standin.url, assertion(keys["key"], standin.url + TOKEN_PATH, alg=alg))
    assert answer.status_code == 200
    body = answer.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 3600
    check = httpx.get(
        standin.url + f"{RECORD}/currency/1",
        headers={"Authorization": f"Bearer {body['access_token']}"},
    )
    assert check.status_code == 200 and check.json()["symbol"] == "USD"


def test_the_real_account_token_url_is_an_accepted_audience(
    standin: RunningStandin, keys: dict[str, Any]
) -> None:
    aud = "https://tstdrv1234567.suitetalk.api.netsuite.com" + TOKEN_PATH
    assert request_token(standin.url, assertion(keys["key"], aud)).status_code == 200


@pytest.mark.parametrize(
    ("change", "status", "error"),
    [
        ({"kid": "unknown-cert"}, 401, "invalid_client"),
        ({"signer": "other"}, 401, "invalid_client"),
        ({"iss": "someone-else"}, 401, "invalid_client"),
        ({"aud": "https://example.com/token"}, 400, "invalid_grant"),
        ({"lifetime": 7200}, 400, "invalid_grant"),
        ({"lifetime": -120}, 400, "invalid_grant"),
        ({"scope": "restlets"}, 400, "invalid_scope"),
        ({"grant_type": "password"}, 400, "unsupported_grant_type"),
    ],
)
def test_bad_assertions_are_refused_with_oauth_errors(
    standin: RunningStandin,
    keys: dict[str, Any],
    change: dict[str, Any],
    status: int,
    error: str,
) -> None:
    key = keys["other"] if change.get("signer") == "other" else keys["key"]
    kwargs = {k: v for k, v in change.items() if k in ("kid", "iss", "scope", "lifetime")}
    signed = assertion(key, change.get("aud", standin.url + TOKEN_PATH), **kwargs)
    extra = {"grant_type": change["grant_type"]} if "grant_type" in change else {}
    answer = request_token(standin.url, signed, **extra)
    assert answer.status_code == status
    assert answer.json()["error"] == error


def test_trusted_keys_are_read_from_the_keys_directory(
    keys: dict[str, Any], tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A certificate dropped into <STANDIN_KEYS_DIR>/netsuite/<kid>.pem is trusted, as when
    it is uploaded to NetSuite's M2M setup."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "throughline")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(keys["key"].public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(keys["key"], hashes.SHA256())
    )
    (tmp_path / "netsuite").mkdir()
    (tmp_path / "netsuite" / "uploaded-cert.pem").write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
    )
    monkeypatch.setenv("STANDIN_KEYS_DIR", str(tmp_path))
    running = start_standin("netsuite", app=create_app(NetSuiteState()))
    try:
        url = running.url + TOKEN_PATH
        good = request_token(running.url, assertion(keys["key"], url, kid="uploaded-cert"))
        assert good.status_code == 200
        traversal = request_token(running.url, assertion(keys["key"], url, kid="../netsuite"))
        assert traversal.status_code == 401
    finally:
        running.stop()


def test_calls_without_a_valid_token_answer_invalid_login(standin: RunningStandin) -> None:
    for headers in ({}, {"Authorization": "Bearer forged"}):
        answer = httpx.get(standin.url + f"{RECORD}/subsidiary/1", headers=headers)
        assert answer.status_code == 401
        assert only_detail(answer)["o:errorCode"] == "INVALID_LOGIN"


# -- records ---------------------------------------------------------------------------------------
def test_seed_has_currencies_and_a_gmbh_without_tax_registration(api: httpx.Client) -> None:
    symbols = {cid: api.get(f"{RECORD}/currency/{cid}").json()["symbol"] for cid in "124"}
    assert symbols == {"1": "USD", "2": "GBP", "4": "EUR"}
    assert api.get(f"{RECORD}/currency/3").status_code == 404
    subs = {}
    for sid in "123":
        sub = api.get(f"{RECORD}/subsidiary/{sid}", params={"expandSubResources": "true"}).json()
        subs[sid] = sub
    assert subs["1"]["name"] == "Throughline Demo Inc."
    assert subs["2"]["country"]["id"] == "GB" and subs["2"]["currency"]["id"] == "2"
    uk = subs["2"]["taxRegistration"]["items"][0]
    assert uk["taxRegistrationNumber"] == "GB999999973" and uk["nexusCountry"]["id"] == "GB"
    gmbh = subs["3"]
    assert gmbh["name"] == "Throughline Demo GmbH" and gmbh["currency"]["id"] == "4"
    assert gmbh["taxRegistration"]["items"] == [] and gmbh["taxRegistration"]["count"] == 0
    assert api.get(f"{RECORD}/customer").json()["totalResults"] == 0


def test_sublists_are_links_unless_expanded(api: httpx.Client) -> None:
    plain = api.get(f"{RECORD}/subsidiary/2").json()["taxRegistration"]
    assert set(plain) == {"links"}
    assert plain["links"][0]["href"].endswith("/subsidiary/2/taxRegistration")
    sub = api.get(plain["links"][0]["href"]).json()
    assert sub["items"][0]["taxRegistrationNumber"] == "GB999999973"


def test_create_answers_204_with_location_and_reads_back_by_id_and_eid(
    api: httpx.Client,
) -> None:
    answer = api.post(
        f"{RECORD}/customer",
        json={
            "externalId": "tl-cust-1",
            "companyName": "Acme Widgets Ltd",
            "subsidiary": {"id": "2"},
            "email": "ap@acme.example",
            "terms": {"id": "2"},
            "taxRegistration": {
                "items": [{"nexusCountry": {"id": "GB"}, "taxRegistrationNumber": "GB123456789"}]
            },
        },
    )
    assert answer.status_code == 204 and answer.content == b""
    location = answer.headers["Location"]
    assert location.startswith(api.base_url.join(f"{RECORD}/customer/").__str__())
    rid = location.rsplit("/", 1)[1]
    by_id = api.get(location).json()
    by_eid = api.get(f"{RECORD}/customer/eid:tl-cust-1").json()
    assert by_id == by_eid
    assert by_id["id"] == rid and int(rid) >= 1001
    assert by_id["currency"]["id"] == "2"  # defaults to the subsidiary's currency
    assert by_id["terms"]["refName"] == "Net 30"
    assert by_id["defaultTaxReg"]["refName"] == "GB123456789"
    assert by_id["dateCreated"].endswith("Z") and by_id["lastModifiedDate"].endswith("Z")


@pytest.mark.parametrize(
    ("body", "status", "code", "path"),
    [
        ({"nickname": "x"}, 400, "INVALID_FIELD", "nickname"),
        ({"companyName": "x" * 84}, 400, "USER_ERROR", "companyName"),
        ({"subsidiary": {"id": "99"}}, 400, "USER_ERROR", "subsidiary"),
        ({"subsidiary": None}, 400, "USER_ERROR", "subsidiary"),
        ({"id": "5"}, 400, "USER_ERROR", "id"),
        ({"email": "not-an-email"}, 400, "USER_ERROR", "email"),
        ({"externalId": "has space"}, 400, "USER_ERROR", "externalId"),
        (
            {"taxRegistration": {"items": [{"taxRegistrationNumber": "GB1"}]}},
            400,
            "USER_ERROR",
            "taxRegistration.items[0].nexusCountry",
        ),
    ],
)
def test_invalid_writes_name_the_field_and_create_nothing(
    api: httpx.Client, body: dict[str, Any], status: int, code: str, path: str
) -> None:
    payload = {"companyName": "Acme", "subsidiary": {"id": "1"}, **body}
    if payload.get("subsidiary") is None:
        del payload["subsidiary"]
    answer = api.post(f"{RECORD}/customer", json=payload)
    assert answer.status_code == status
    detail = only_detail(answer)
    assert detail["o:errorCode"] == code and detail["o:errorPath"] == path
    assert api.get(f"{RECORD}/customer").json()["totalResults"] == 0


def test_company_name_of_83_characters_is_accepted(api: httpx.Client) -> None:
    rid = new_customer(api, companyName="x" * 83)
    assert api.get(f"{RECORD}/customer/{rid}").json()["companyName"] == "x" * 83


def test_malformed_json_is_invalid_content(api: httpx.Client) -> None:
    answer = api.post(
        f"{RECORD}/customer", content=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 400 and only_detail(answer)["o:errorCode"] == "INVALID_CONTENT"


def test_missing_records_and_types_answer_404(api: httpx.Client) -> None:
    missing = api.get(f"{RECORD}/customer/424242")
    assert missing.status_code == 404 and only_detail(missing)["o:errorCode"] == "NONEXISTENT_ID"
    assert api.get(f"{RECORD}/customer/eid:nobody").status_code == 404
    assert api.get(f"{RECORD}/spaceship").status_code == 404
    assert api.patch(f"{RECORD}/customer/424242", json={"email": "a@b.co"}).status_code == 404


def test_duplicate_external_id_is_refused(api: httpx.Client) -> None:
    new_customer(api, externalId="dup-1")
    answer = api.post(
        f"{RECORD}/customer",
        json={"companyName": "Other", "subsidiary": {"id": "1"}, "externalId": "dup-1"},
    )
    assert answer.status_code == 400 and only_detail(answer)["o:errorCode"] == "DUP_RCRD"


def test_repeated_idempotency_key_answers_idempotency_error_and_creates_nothing(
    api: httpx.Client,
) -> None:
    headers = {"X-NetSuite-Idempotency-Key": "5b0c9a7e-key"}
    body = {"companyName": "Once Only", "subsidiary": {"id": "1"}}
    first = api.post(f"{RECORD}/customer", json=body, headers=headers)
    assert first.status_code == 204
    again = api.post(f"{RECORD}/customer", json=body, headers=headers)
    assert again.status_code == 400
    assert only_detail(again)["o:errorCode"] == "IDEMPOTENCY_ERROR"
    assert again.headers["Location"].startswith("/services/rest/async/v1/job/")
    assert api.get(f"{RECORD}/customer").json()["totalResults"] == 1
    # the earlier request's job replays its result: the record first created
    job = again.headers["Location"]
    result = api.get(f"{job}/task/1/result")
    assert result.status_code == 204 and result.headers["Location"] == first.headers["Location"]


def test_respond_async_returns_a_job_whose_task_result_is_the_answer(api: httpx.Client) -> None:
    answer = api.post(
        f"{RECORD}/customer",
        json={"companyName": "Async Co", "subsidiary": {"id": "1"}},
        headers={"Prefer": "respond-async", "X-NetSuite-Idempotency-Key": "async-1"},
    )
    assert answer.status_code == 202
    assert answer.headers["Preference-Applied"] == "respond-async"
    job = api.get(answer.headers["Location"]).json()
    assert job["completed"] is True and job["progress"] == "succeeded"
    tasks = api.get(job["task"]["links"][0]["href"]).json()
    task = api.get(tasks["items"][0]["links"][0]["href"]).json()
    result_link = next(link["href"] for link in task["links"] if link["rel"] == "related")
    result = api.get(result_link)
    assert result.status_code == 204
    assert "/record/v1/customer/" in result.headers["Location"]
    failing = api.post(
        f"{RECORD}/customer",
        json={"companyName": "No Subsidiary"},
        headers={"Prefer": "respond-async"},
    )
    failed_job = api.get(failing.headers["Location"]).json()
    assert failed_job["progress"] == "failed"
    replay = api.get(failing.headers["Location"] + "/task/1/result")
    assert replay.status_code == 400 and only_detail(replay)["o:errorPath"] == "subsidiary"


def test_put_by_external_id_upserts(api: httpx.Client) -> None:
    url = f"{RECORD}/customer/eid:crm-001"
    created = api.put(url, json={"companyName": "Upsert Ltd", "subsidiary": {"id": "2"}})
    assert created.status_code == 204
    updated = api.put(url, json={"companyName": "Upsert Limited"})
    assert updated.status_code == 204
    assert created.headers["Location"] == updated.headers["Location"]
    record = api.get(url).json()
    assert record["companyName"] == "Upsert Limited" and record["externalId"] == "crm-001"
    assert api.get(f"{RECORD}/customer").json()["totalResults"] == 1
    by_internal_id = api.put(f"{RECORD}/customer/{record['id']}", json={"companyName": "X"})
    assert by_internal_id.status_code == 400


def test_patching_the_gmbh_adds_a_tax_registration(api: httpx.Client) -> None:
    before = api.get(f"{RECORD}/subsidiary/3").json()["lastModifiedDate"]
    answer = api.patch(
        f"{RECORD}/subsidiary/3",
        json={
            "taxRegistration": {
                "items": [{"nexusCountry": {"id": "DE"}, "taxRegistrationNumber": "DE999999999"}]
            }
        },
    )
    assert answer.status_code == 204
    sub = api.get(f"{RECORD}/subsidiary/3", params={"expandSubResources": "true"}).json()
    (line,) = sub["taxRegistration"]["items"]
    assert line["taxRegistrationNumber"] == "DE999999999"
    assert line["nexus"]["refName"] == "Germany"  # derived from the country's nexus
    assert sub["lastModifiedDate"] > before
    # a second line is added; ?replace= replaces the sublist
    api.patch(
        f"{RECORD}/subsidiary/3",
        json={"taxRegistration": {"items": [{"nexusCountry": "DE", "taxRegistrationNumber": "2"}]}},
    )
    items = api.get(f"{RECORD}/subsidiary/3/taxRegistration").json()["items"]
    assert len(items) == 2
    api.patch(
        f"{RECORD}/subsidiary/3",
        params={"replace": "taxRegistration"},
        json={"taxRegistration": {"items": [{"nexusCountry": "DE", "taxRegistrationNumber": "3"}]}},
    )
    items = api.get(f"{RECORD}/subsidiary/3/taxRegistration").json()["items"]
    assert [i["taxRegistrationNumber"] for i in items] == ["3"]


def test_control_page_form_adds_a_tax_registration(
    standin: RunningStandin, api: httpx.Client
) -> None:
    page = httpx.get(standin.url + "/__standin__/netsuite/")
    assert page.status_code == 200 and "Throughline Demo GmbH" in page.text
    posted = httpx.post(
        standin.url + "/__standin__/netsuite/subsidiary/3/tax-registration",
        data={"nexusCountry": "DE", "taxRegistrationNumber": "DE811111111"},
    )
    assert posted.status_code == 303
    sub = api.get(f"{RECORD}/subsidiary/3", params={"expandSubResources": "true"}).json()
    assert sub["taxRegistration"]["items"][0]["taxRegistrationNumber"] == "DE811111111"


def test_generic_record_editor_edits_are_read_back(
    standin: RunningStandin, api: httpx.Client
) -> None:
    """The shared /__standin__/ editor merges raw JSON; hand-typed lines still render."""
    edit = httpx.post(
        standin.url + "/__standin__/records/subsidiary/3",
        json={"taxRegistration": [{"nexusCountry": "DE", "taxRegistrationNumber": "DE1"}]},
    )
    assert edit.status_code == 200
    sub = api.get(f"{RECORD}/subsidiary/3", params={"expandSubResources": "true"}).json()
    assert sub["taxRegistration"]["items"][0]["id"] == "1"


def test_delete_and_dependent_records(api: httpx.Client) -> None:
    rid = new_customer(api)
    assert api.delete(f"{RECORD}/subsidiary/2").status_code == 400  # customer depends on it
    assert api.delete(f"{RECORD}/customer/{rid}").status_code == 204
    assert api.delete(f"{RECORD}/customer/{rid}").status_code == 404
    assert api.post(f"{RECORD}/currency", json={"symbol": "CHF"}).status_code == 405


def test_list_pages_with_limit_and_offset(api: httpx.Client) -> None:
    ids = [new_customer(api, companyName=f"Customer {n}") for n in range(5)]
    seen: list[str] = []
    offset = 0
    while True:
        page = api.get(f"{RECORD}/customer", params={"limit": 2, "offset": offset}).json()
        assert page["totalResults"] == 5 and page["count"] == len(page["items"])
        seen += [item["id"] for item in page["items"]]
        rels = {link["rel"] for link in page["links"]}
        assert ("next" in rels) == page["hasMore"]
        if not page["hasMore"]:
            break
        offset += page["count"]
    assert seen == ids
    too_big = api.get(f"{RECORD}/customer", params={"limit": 1001})
    assert too_big.status_code == 400
    assert only_detail(too_big)["o:errorQueryParam"] == "limit"


# -- SuiteQL ---------------------------------------------------------------------------------------
def suiteql(api: httpx.Client, q: str, **params: Any) -> httpx.Response:
    return api.post(SUITEQL, json={"q": q}, params=params, headers={"Prefer": "transient"})


def test_suiteql_selects_filters_orders_and_pages(
    standin: RunningStandin, api: httpx.Client
) -> None:
    first = new_customer(api, companyName="Old Customer")
    standin.state.table("customer")[first]["lastModifiedDate"] = "2026-01-01T08:00:00Z"
    second = new_customer(api, companyName="New Customer", isInactive=True)
    standin.state.table("customer")[second]["lastModifiedDate"] = "2026-03-01T08:00:00Z"
    answer = suiteql(
        api,
        "SELECT id, companyname AS name, isinactive, "
        "TO_CHAR(lastmodifieddate, 'YYYY-MM-DD HH24:MI:SS') AS modified, lastmodifieddate "
        "FROM customer WHERE lastmodifieddate > TO_TIMESTAMP('2026-02-01 00:00:00', "
        "'YYYY-MM-DD HH24:MI:SS') AND subsidiary = 2 ORDER BY modified DESC",
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["totalResults"] == 1 and body["hasMore"] is False
    (row,) = body["items"]
    assert row["id"] == second and row["name"] == "New Customer" and row["isinactive"] == "T"
    assert row["modified"] == "2026-03-01 08:00:00" and row["lastmodifieddate"] == "3/1/2026"
    subs = suiteql(api, "SELECT * FROM subsidiary ORDER BY id DESC", limit=2).json()
    assert [r["id"] for r in subs["items"]] == ["3", "2"] and subs["hasMore"] is True
    assert "federalidnumber" not in subs["items"][0]  # null columns are omitted
    rest = suiteql(api, "SELECT * FROM subsidiary ORDER BY id DESC", limit=2, offset=2).json()
    assert [r["id"] for r in rest["items"]] == ["1"]
    euro = suiteql(api, "SELECT id FROM currency WHERE symbol = 'EUR'").json()["items"]
    assert euro == [{"links": [], "id": "4"}]


@pytest.mark.parametrize(
    "query",
    [
        "SELECT id FROM customer c JOIN subsidiary s ON c.subsidiary = s.id",
        "SELECT id FROM salesorder",
        "SELECT nosuchcolumn FROM customer",
        "SELECT id FROM customer WHERE id = 1 OR id = 2",
        "DELETE FROM customer",
    ],
)
def test_suiteql_outside_the_subset_is_a_400(api: httpx.Client, query: str) -> None:
    new_customer(api)
    answer = suiteql(api, query)
    assert answer.status_code == 400
    assert only_detail(answer)["o:errorCode"] == "INVALID_PARAMETER"


def test_suiteql_needs_prefer_transient(api: httpx.Client) -> None:
    answer = api.post(SUITEQL, json={"q": "SELECT id FROM currency"})
    assert answer.status_code == 400 and only_detail(answer)["o:errorHeader"] == "Prefer"


# -- governance, faults ----------------------------------------------------------------------------
def test_concurrency_over_the_limit_answers_429_and_governance_reports_it(
    standin: RunningStandin, api: httpx.Client
) -> None:
    limits = api.get("/services/rest/system/v1/governanceLimits").json()
    assert limits["accountConcurrencyLimit"] == 15
    assert limits["integrationLimitType"] == "accountLimit"
    assert limits["inFlightRequests"] == 1  # this request
    httpx.post(
        standin.url + "/__standin__/netsuite/settings",
        json={"concurrency_limit": 2, "latency_ms": 300},
    )
    statuses: list[int] = []
    bodies: list[Any] = []

    def call() -> None:
        answer = api.get(f"{RECORD}/currency/1")
        statuses.append(answer.status_code)
        bodies.append(answer.json())

    threads = [threading.Thread(target=call) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses.count(200) >= 1 and statuses.count(429) >= 1
    rejected = [b for b in bodies if b.get("status") == 429]
    assert rejected[0]["o:errorDetails"][0]["o:errorCode"] == "CONCURRENCY_LIMIT_EXCEEDED"
    stats = httpx.get(standin.url + "/__standin__/netsuite/governance").json()
    assert stats["peak_in_flight"] >= 3 and stats["rejected"] == statuses.count(429)


def test_a_lost_response_still_commits_the_write(
    standin: RunningStandin, api: httpx.Client
) -> None:
    httpx.post(
        standin.url + "/__standin__/netsuite/lose-responses",
        json={"path": "/record/v1/customer$", "method": "POST", "times": 1},
    )
    lost = api.post(f"{RECORD}/customer", json={"companyName": "Lost", "subsidiary": {"id": "1"}})
    assert lost.status_code == 503
    assert api.get(f"{RECORD}/customer").json()["totalResults"] == 1


def test_injected_faults_use_the_netsuite_error_shape(
    standin: RunningStandin, api: httpx.Client
) -> None:
    standin.state.add_fault(path="/record/v1/subsidiary", status=503, times=1)
    answer = api.get(f"{RECORD}/subsidiary/1")
    assert answer.status_code == 503
    assert only_detail(answer)["o:errorCode"] == "SERVICE_UNAVAILABLE"
    assert api.get(f"{RECORD}/subsidiary/1").status_code == 200
    assert httpx.get(standin.url + "/no/such/path").json()["status"] == 404
