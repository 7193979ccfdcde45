"""Salesforce pushes a won deal to Throughline's webhook: the signature is checked, the deal
is handed over once however often it is delivered, and polling finds nothing left to do."""

from __future__ import annotations

import json
import time

import httpx
from django.test import Client

from integrations.choices import RunStatus
from integrations.connectors.salesforce.webhooks import compute_signature
from integrations.models import Connection, InboundEvent, SyncRun
from integrations.polling import poll_closed_won

SECRET = "whsec-test-1234567890"


def _crm() -> Connection:
    crm = Connection.objects.get(vendor="salesforce")
    crm.update_secrets({"webhook_secret": SECRET})
    crm.save()
    return crm


def test_a_deal_won_in_salesforce_arrives_by_webhook_and_is_provisioned(demo, live_server):
    crm = _crm()
    salesforce = demo["salesforce"].url
    configured = httpx.post(
        f"{salesforce}/__standin__/salesforce/webhooks",
        json={"url": f"{live_server.url}/webhooks/salesforce/{crm.pk}/", "secret": SECRET},
    )
    assert configured.status_code in (200, 201), configured.text
    deal = httpx.post(
        f"{salesforce}/__standin__/salesforce/close-deal",
        json={"legal_entity": "UK01", "template": "FIXED-3", "amount": "42000.00"},
    ).json()["id"]

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        run = SyncRun.objects.filter(correlation_id=f"deal:{deal}").first()
        if run is not None and run.status in (RunStatus.SUCCEEDED, RunStatus.FAILED):
            break
        time.sleep(0.1)
    assert run is not None, "the webhook never arrived"
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.trigger == "api"
    assert InboundEvent.objects.filter(run=run, source__startswith="webhook:").count() == 1

    poll_closed_won(crm)  # the backstop finds the deal, and starts nothing new
    assert SyncRun.objects.filter(correlation_id=f"deal:{deal}").count() == 1


def test_unsigned_stale_or_malformed_deliveries_are_refused(demo):
    crm = _crm()
    url = f"/webhooks/salesforce/{crm.pk}/"
    body = json.dumps(
        {
            "event": "opportunity.closed_won",
            "sobject": "Opportunity",
            "id": "0065g00000Tl001AAB",
            "systemModstamp": "2026-11-25T10:22:00.000+0000",
            "occurredAt": "2026-11-25T10:22:01.000Z",
        }
    ).encode()
    client = Client()
    unsigned = client.post(url, body, content_type="application/json")
    assert unsigned.status_code == 401
    stale = str(int(time.time()) - 3600)
    old = client.post(
        url,
        body,
        content_type="application/json",
        headers={
            "X-Throughline-Timestamp": stale,
            "X-Throughline-Signature": compute_signature(SECRET, stale, body),
        },
    )
    assert old.status_code == 401
    now = str(int(time.time()))
    garbage = b'{"event": "opportunity.closed_won"}'
    bad = client.post(
        url,
        garbage,
        content_type="application/json",
        headers={
            "X-Throughline-Timestamp": now,
            "X-Throughline-Signature": compute_signature(SECRET, now, garbage),
        },
    )
    assert bad.status_code == 400
    signed = {
        "X-Throughline-Timestamp": now,
        "X-Throughline-Signature": compute_signature(SECRET, now, body),
    }
    first = client.post(url, body, content_type="application/json", headers=signed)
    again = client.post(url, body, content_type="application/json", headers=signed)
    assert (first.status_code, again.status_code) == (202, 200)
    assert SyncRun.objects.count() == 1


def test_an_approved_amendment_pushed_by_salesforce_replans_the_project(demo):
    crm = _crm()
    poll_closed_won(crm)
    body = json.dumps(
        {
            "event": "contract_amendment.approved",
            "sobject": "Contract_Amendment__c",
            "id": "a015g00000Tl001AAB",
            "systemModstamp": "2026-11-26T10:22:00.000+0000",
            "occurredAt": "2026-11-26T10:22:01.000Z",
        }
    ).encode()
    httpx.post(
        f"{demo['salesforce'].url}/__standin__/salesforce/approve-amendment",
        json={"id": "a015g00000Tl001AAB"},
    ).raise_for_status()
    now = str(int(time.time()))
    answer = Client().post(
        f"/webhooks/salesforce/{crm.pk}/",
        body,
        content_type="application/json",
        headers={
            "X-Throughline-Timestamp": now,
            "X-Throughline-Signature": compute_signature(SECRET, now, body),
        },
    )
    assert answer.status_code == 202, answer.content
    run = SyncRun.objects.get(workflow="update_billing_plan")
    assert run.status == RunStatus.SUCCEEDED, run.error
