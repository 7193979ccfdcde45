"""Two NetSuite accounts in one process (the legacy ERP of a phased migration beside the new
one), and the stand-in's new records surviving a snapshot and restore."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from collections.abc import Iterator

import httpx
import pytest

from integrations.connectors.errors import AuthError
from integrations.connectors.keys import generate_key_pair
from integrations.connectors.netsuite import NetSuiteClient, NetSuiteM2MAuth, build_client
from integrations.standins.netsuite import (
    CERTIFICATE_ID,
    CLIENT_ID,
    LEGACY_ACCOUNT_ID,
    TOKEN_PATH,
    NetSuiteState,
    create_app,
    create_legacy_app,
)
from integrations.standins.server import RunningStandin, start_standin

DAY = max(dt.datetime.now(dt.UTC).date(), dt.date(2026, 11, 2)).isoformat()
IDS = itertools.count(500)


@pytest.fixture(scope="module")
def keys() -> dict[str, str]:
    private, public = generate_key_pair()
    return {"private": private, "public": public}


@pytest.fixture(scope="module")
def accounts(keys: dict[str, str]) -> Iterator[dict[str, RunningStandin]]:
    running = {
        "new": start_standin(
            "netsuite", app=create_app(NetSuiteState({CERTIFICATE_ID: keys["public"]}))
        ),
        "legacy": start_standin(
            "netsuite", app=create_legacy_app({CERTIFICATE_ID: keys["public"]})
        ),
    }
    yield running
    for standin in running.values():
        standin.stop()


def connect(standin: RunningStandin, account_id: str, keys: dict[str, str]) -> NetSuiteClient:
    return build_client(
        base_url=standin.url,
        settings={"account_id": account_id},
        secrets={
            "client_id": CLIENT_ID,
            "certificate_id": CERTIFICATE_ID,
            "private_key": keys["private"],
        },
        connection_id=next(IDS),
        sleep=lambda seconds: None,
    )


def test_two_accounts_run_side_by_side_with_their_own_records(
    accounts: dict[str, RunningStandin], keys: dict[str, str]
) -> None:
    new, legacy = accounts["new"], accounts["legacy"]
    for standin in accounts.values():
        standin.state.reset()
    NetSuiteM2MAuth.forget()
    assert legacy.state.account_id == LEGACY_ACCOUNT_ID != new.state.account_id
    to_new = connect(new, new.state.account_id, keys)
    to_legacy = connect(legacy, LEGACY_ACCOUNT_ID, keys)
    body = {"companyName": "Acme in the legacy ERP", "subsidiary": {"id": "2"}}
    legacy_id = to_legacy.upsert_by_external_id("customer", "crm-acme", body)
    assert to_new.find_by_external_id("customer", "crm-acme") is None
    new_id = to_new.upsert_by_external_id("customer", "crm-acme", {**body, "companyName": "Acme"})
    assert to_legacy.get_record("customer", legacy_id)["companyName"] == "Acme in the legacy ERP"
    assert to_new.get_record("customer", new_id)["companyName"] == "Acme"
    invoice = {
        "entity": {"id": legacy_id},
        "tranDate": DAY,
        "item": {"items": [{"item": {"id": "1"}, "amount": 100}]},
    }
    to_legacy.upsert_invoice("tl-inv-1", invoice)
    assert len(legacy.state.table("invoice")) == 1 and new.state.table("invoice") == {}
    # a token of one account is no good at the other, nor is the other's token URL
    token = to_new.http.auth.cached().access_token  # type: ignore[union-attr]
    answer = httpx.get(
        legacy.url + "/services/rest/record/v1/currency/1",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 401
    assert token.startswith("tstdrv1234567.") and legacy.state.summary()["account_id"] == (
        LEGACY_ACCOUNT_ID
    )
    to_new.close()
    to_legacy.close()


def test_the_real_account_url_of_one_account_is_not_an_audience_of_the_other(
    accounts: dict[str, RunningStandin], keys: dict[str, str]
) -> None:
    from cryptography.hazmat.primitives import serialization

    from .test_netsuite_standin import assertion, request_token

    key = serialization.load_pem_private_key(keys["private"].encode(), password=None)
    new_url = "https://tstdrv1234567.suitetalk.api.netsuite.com" + TOKEN_PATH
    legacy_url = "https://tstdrv7654321.suitetalk.api.netsuite.com" + TOKEN_PATH
    legacy = accounts["legacy"].url
    assert request_token(legacy, assertion(key, legacy_url)).status_code == 200
    assert request_token(legacy, assertion(key, new_url)).status_code == 400


def test_a_client_for_a_real_account_calls_its_restlet_domain(keys: dict[str, str]) -> None:
    client = build_client(
        base_url="",
        settings={"account_id": LEGACY_ACCOUNT_ID},
        secrets={"client_id": "c", "certificate_id": "k", "private_key": keys["private"]},
    )
    assert client.restlet_url == (
        "https://tstdrv7654321.restlets.api.netsuite.com/app/site/hosting/restlet.nl"
    )
    client.close()
    with pytest.raises(AuthError):
        build_client(base_url="", settings={}, secrets={})


def test_snapshots_keep_the_new_records_counters_index_and_jobs(
    accounts: dict[str, RunningStandin], keys: dict[str, str]
) -> None:
    standin = accounts["new"]
    standin.state.reset()
    NetSuiteM2MAuth.forget()
    client = connect(standin, standin.state.account_id, keys)
    customer = client.create_record(
        "customer", {"companyName": "Keyed", "subsidiary": {"id": "2"}}, idempotency_key="k-1"
    )
    job = client.upsert_job("PRJ-1", {"companyName": "Rollout", "parent": {"id": customer}})
    invoice = client.upsert_invoice(
        "tl-inv-1",
        {
            "entity": {"id": customer},
            "tranDate": DAY,
            "item": {"items": [{"item": {"id": "1"}, "amount": 100}]},
        },
    )
    bill = {
        "externalId": "te-1",
        "employee": {"id": "104"},
        "customer": {"id": job},
        "tranDate": DAY,
        "hours": 2,
    }
    client.post_batch("timeBill", [bill])
    snapshot = json.loads(json.dumps(standin.state.snapshot()))  # JSON-safe

    restarted = NetSuiteState({CERTIFICATE_ID: keys["public"]})
    restarted.restore(snapshot)
    assert restarted.collections == standin.state.collections
    assert restarted.next_id("customer") == str(int(job) + 1)  # entities share one sequence
    assert restarted.next_tran_id("invoice") == "INV-10002"
    assert restarted.by_external_id("timebill", "te-1") is not None
    assert restarted.by_external_id("invoice", "tl-inv-1")["id"] == invoice  # type: ignore[index]
    assert restarted.jobs["1"]["outcome"]["status"] == 204

    legacy = NetSuiteState(account_id=LEGACY_ACCOUNT_ID)
    with pytest.raises(ValueError, match="TSTDRV1234567"):
        legacy.restore(snapshot)

    old_style = dict(snapshot, attrs={"jobs": {}, "idempotency": {}})  # before counters were kept
    older = NetSuiteState()
    older.restore(old_style)
    assert older.next_id("customer") not in older.table("customer")
    assert older.next_id("job") not in older.table("job")
    client.close()
