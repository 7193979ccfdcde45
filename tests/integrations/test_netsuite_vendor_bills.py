"""Subcontractor charges as NetSuite vendor bills: the stand-in's seeded `vendor` records and
its `vendorBill` record (validation, upsert by external id with the expense lines replaced,
closed and A/P-locked periods, SuiteQL, snapshots) over real HTTP, the client's
`find_vendor`/`upsert_vendor_bill` and the mapper `vendor_bill_from_charge`."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import pytest

from integrations.canonical.errors import MappingError
from integrations.canonical.schemas import SubcontractorCharge
from integrations.connectors.errors import ConnectorError, ValidationError
from integrations.connectors.netsuite import NetSuiteClient
from integrations.connectors.netsuite.mapping import netsuite_external_id, vendor_bill_from_charge
from integrations.standins.netsuite import NetSuiteState
from integrations.standins.server import RunningStandin

from . import test_netsuite_connector as shared

# the NetSuite fixtures of the connector tests: a stand-in per module, reset for each test
keys, server, standin = shared.keys, shared.server, shared.standin
make_client, client = shared.make_client, shared.client

CHARGE = SubcontractorCharge(
    source_id="charge:8801",
    vendor_name="Apex Data Consulting",
    project_key="PRJ-300",
    amount=Decimal("1234.56"),
    currency="GBP",
    incurred_on=dt.date(2026, 10, 15),
    purchase_order_source_id="po-77",
)
UK_VENDOR, US_VENDOR = "301", "302"


def new_job(client: NetSuiteClient, key: str = "PRJ-300", subsidiary: str = "2") -> str:
    customer = client.upsert_by_external_id(
        "customer",
        f"crm-{key}",
        {"companyName": f"Customer {key}", "subsidiary": {"id": subsidiary}},
    )
    return client.upsert_job(
        key,
        {"companyName": f"Project {key}", "parent": {"id": customer}, "startDate": "2026-10-01"},
    )


def bills(standin: RunningStandin) -> list[dict[str, Any]]:
    return list(standin.state.table("vendorbill").values())


def uk_bill(job: str, **change: Any) -> dict[str, Any]:
    body = vendor_bill_from_charge(
        CHARGE, vendor_id=UK_VENDOR, job_id=job, subsidiary_id="2", currency_id="2"
    )
    return {**body, **change}


# -- mapper ---------------------------------------------------------------------------------
def test_a_charge_becomes_a_bill_with_one_expense_line_for_the_job() -> None:
    body = vendor_bill_from_charge(
        CHARGE, vendor_id="301", job_id="1002", subsidiary_id="2", currency_id="2"
    )
    memo = "Apex Data Consulting: charge charge:8801 to project PRJ-300 (PO po-77)"
    assert body == {
        "externalId": netsuite_external_id("charge:8801"),
        "entity": {"id": "301"},
        "subsidiary": {"id": "2"},
        "currency": {"id": "2"},
        "tranDate": "2026-10-15",
        "memo": memo,
        "expense": {"items": [{"amount": 1234.56, "memo": memo, "customer": {"id": "1002"}}]},
    }
    assert body["externalId"].startswith("charge_8801-")  # NetSuite-safe, deterministic
    assert Decimal(repr(body["expense"]["items"][0]["amount"])) == CHARGE.amount
    no_po = CHARGE.model_copy(update={"purchase_order_source_id": None, "source_id": "sc-1"})
    plain = vendor_bill_from_charge(
        no_po, vendor_id="301", job_id="1002", subsidiary_id="2", currency_id="2", account_id="1"
    )
    assert plain["externalId"] == "sc-1" and "PO" not in plain["memo"]
    assert plain["expense"]["items"][0]["account"] == {"id": "1"}


@pytest.mark.parametrize(
    ("change", "ids", "field"),
    [
        ({"amount": Decimal("0")}, {}, "amount"),
        ({"amount": Decimal("1234567890123456.78")}, {}, "amount"),  # not exact as a double
        ({}, {"vendor_id": "Apex"}, "vendor_id"),
        ({}, {"job_id": ""}, "job_id"),
        ({}, {"currency_id": "GBP"}, "currency_id"),
        ({}, {"account_id": "5100-x"}, "account_id"),
    ],
)
def test_the_mapper_refuses_what_netsuite_would(
    change: dict[str, Any], ids: dict[str, str], field: str
) -> None:
    charge = CHARGE.model_copy(update=change)
    ids = {"vendor_id": "301", "job_id": "1", "subsidiary_id": "2", "currency_id": "2", **ids}
    with pytest.raises(MappingError) as caught:
        vendor_bill_from_charge(charge, **ids)
    assert field in json.dumps(caught.value.problems)


# -- vendors ----------------------------------------------------------------------------------
def test_the_seeded_subcontractors_are_found_by_external_id(client: NetSuiteClient) -> None:
    apex = client.find_vendor("TL-VENDOR-301")
    assert apex is not None and apex["id"] == "301"
    assert apex["companyName"] == "Apex Data Consulting"
    assert apex["subsidiary"]["id"] == "2" and apex["currency"]["id"] == "2"
    assert apex["subsidiary"]["refName"] == "Throughline Demo UK Ltd"
    assert apex["email"] == "accounts@apex-data.example"
    assert apex["expenseAccount"] == {
        "links": apex["expenseAccount"]["links"],
        "id": "1",
        "refName": "5100 Subcontractor Costs",
    }
    ridge = client.find_vendor("TL-VENDOR-302")
    assert ridge is not None and ridge["companyName"] == "Blue Ridge Analytics"
    assert (ridge["subsidiary"]["id"], ridge["currency"]["id"]) == ("1", "1")
    assert client.find_vendor("TL-VENDOR-999") is None
    with pytest.raises(ValueError):
        client.find_vendor("TL VENDOR 301")
    with pytest.raises(ConnectorError) as caught:  # read-only in the stand-in
        client.upsert_by_external_id("vendor", "TL-VENDOR-303", {"companyName": "New"})
    assert caught.value.status == 405


# -- vendor bills -----------------------------------------------------------------------------
def test_upsert_vendor_bill_is_idempotent_and_replaces_the_expense_line(
    standin: RunningStandin, client: NetSuiteClient
) -> None:
    job = new_job(client)
    body = uk_bill(job)
    first = client.upsert_vendor_bill(body["externalId"], body)
    assert client.upsert_vendor_bill(body["externalId"], body) == first
    assert len(bills(standin)) == 1 and int(first) > 5000  # the transaction id sequence
    bill = client.get_vendor_bill(first)
    assert bill["externalId"] == body["externalId"] and "tranId" not in bill
    assert (
        bill["entity"]["id"] == "301"
        and bill["entity"]["refName"] == "VEND301 Apex Data Consulting"
    )
    assert bill["subsidiary"]["id"] == "2" and bill["currency"]["id"] == "2"
    assert bill["tranDate"] == "2026-10-15" and bill["dueDate"] == "2026-10-15"
    assert bill["postingPeriod"]["refName"] == "Oct 2026"
    assert bill["status"] == {"id": "A", "refName": "Open"} and bill["total"] == 1234.56
    (line,) = bill["expense"]["items"]
    assert line["amount"] == 1234.56 and line["customer"]["id"] == job
    assert line["account"]["id"] == "1"  # the vendor's default expense account
    assert line["isBillable"] is False and line["memo"] == body["memo"]

    more = CHARGE.model_copy(update={"amount": Decimal("1500.05")})
    changed = vendor_bill_from_charge(
        more, vendor_id=UK_VENDOR, job_id=job, subsidiary_id="2", currency_id="2"
    )
    assert client.upsert_vendor_bill(changed["externalId"], changed) == first
    again = client.get_vendor_bill(f"eid:{body['externalId']}")
    assert again["total"] == 1500.05 and len(again["expense"]["items"]) == 1
    assert len(bills(standin)) == 1
    # without replace=expense an upsert ADDS the line: what upsert_vendor_bill prevents
    client.upsert_by_external_id("vendorBill", body["externalId"], changed)
    assert client.get_vendor_bill(first)["total"] == 3000.10


def test_a_us_bill_with_an_explicit_account_and_a_billable_line(
    standin: RunningStandin, client: NetSuiteClient
) -> None:
    job = new_job(client, "PRJ-301", subsidiary="1")
    charge = CHARGE.model_copy(update={"source_id": "sc-2", "currency": "USD"})
    body = vendor_bill_from_charge(
        charge, vendor_id=US_VENDOR, job_id=job, subsidiary_id="1", currency_id="1", account_id="1"
    )
    body["tranId"] = "BR-INV-0042"  # the vendor's own invoice number
    body["expense"]["items"][0]["isBillable"] = True
    rid = client.upsert_vendor_bill("sc-2", body)
    bill = client.get_vendor_bill(rid)
    assert bill["tranId"] == "BR-INV-0042" and bill["entity"]["id"] == "302"
    assert bill["expense"]["items"][0]["isBillable"] is True
    rows = list(
        client.suiteql(
            "SELECT id, externalid, entity, status, foreigntotal FROM transaction "
            "WHERE type = 'VendBill'"
        )
    )
    assert rows == [
        {"id": rid, "externalid": "sc-2", "entity": "302", "status": "A", "foreigntotal": 1234.56}
    ]
    vendors = list(client.suiteql("SELECT id, externalid, subsidiary FROM vendor ORDER BY id"))
    assert [(v["id"], v["externalid"], v["subsidiary"]) for v in vendors] == [
        ("301", "TL-VENDOR-301", "2"),
        ("302", "TL-VENDOR-302", "1"),
    ]


def _line(**change: Any) -> dict[str, Any]:
    return {"expense": {"items": [{"amount": 100, "memo": "x", **change}]}}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"entity": {"id": "9999"}}, "entity"),
        ({"entity": {"id": "302"}}, "subsidiary"),  # Blue Ridge is in subsidiary 1
        ({"subsidiary": {"id": "1"}}, "subsidiary"),
        ({"currency": {"id": "1"}}, "currency"),  # Apex bills in GBP
        ({"tranDate": "2026-03-15"}, "tranDate"),  # a closed period
        ({"tranDate": "2025-12-01"}, "tranDate"),  # before the first period
        ({"tranDate": "15/10/2026"}, "tranDate"),
        ({"postingPeriod": {"id": "11"}}, "postingPeriod"),
        ({"total": 5}, "total"),  # read-only
        ({"item": {"items": []}}, "item"),  # the item sublist is not served
        ({"expense": {"items": []}}, "expense"),
        (_line(customer={"id": "9999"}), "expense.items[0].customer"),
        (_line(account={"id": "2"}), "expense.items[0].account"),  # inactive account
        (_line(account={"id": "77"}), "expense.items[0].account"),
        (_line(amount=0), "expense.items[0].amount"),
        (_line(amount="lots"), "expense.items[0].amount"),
        (_line(isBillable=True), "expense.items[0].customer"),  # billable needs a customer
        (_line(isBillable="yes"), "expense.items[0].isBillable"),
        (_line(category={"id": "1"}), "expense.items[0].category"),
        ({"expense": {"items": [{"memo": "no amount"}]}}, "expense.items[0].amount"),
    ],
)
def test_the_stand_in_validates_vendor_bills(
    standin: RunningStandin, client: NetSuiteClient, change: dict[str, Any], field: str
) -> None:
    body = uk_bill(new_job(client), **change)
    with pytest.raises(ValidationError) as caught:
        client.upsert_vendor_bill("sc-bad", body)
    assert caught.value.field == field and caught.value.status == 400
    assert bills(standin) == []


def test_vendor_and_account_defaults_are_checked(
    standin: RunningStandin, client: NetSuiteClient
) -> None:
    job = new_job(client)
    standin.state.table("vendor")[UK_VENDOR]["expenseAccount"] = None
    with pytest.raises(ValidationError) as caught:
        client.upsert_vendor_bill("sc-1", uk_bill(job))
    assert caught.value.field == "expense.items[0].account"
    standin.state.table("vendor")[UK_VENDOR]["isInactive"] = True
    with pytest.raises(ValidationError) as caught:
        client.upsert_vendor_bill("sc-1", uk_bill(job))
    assert caught.value.field == "entity" and bills(standin) == []


def test_closed_and_ap_locked_periods_keep_bills_as_they_are(
    standin: RunningStandin, client: NetSuiteClient
) -> None:
    job = new_job(client)
    body = uk_bill(job)
    rid = client.upsert_vendor_bill(body["externalId"], body)
    with pytest.raises(ValidationError):
        client.delete_record("job", job)  # the bill's line charges the job: a dependent
    october = standin.state.table("accountingperiod")["10"]
    october["apLocked"] = True  # A/P locked, the period itself still open
    with pytest.raises(ValidationError) as caught:
        client.upsert_vendor_bill(body["externalId"], body)
    assert caught.value.field == "tranDate" and "locked for A/P" in str(caught.value)
    with pytest.raises(ValidationError):
        client.upsert_vendor_bill("sc-new", uk_bill(job, externalId="sc-new"))
    with pytest.raises(ValidationError):
        client.delete_record("vendorBill", rid)
    october["apLocked"], october["closed"] = False, True
    with pytest.raises(ValidationError) as caught:
        client.update_record("vendorBill", rid, {"tranDate": "2026-11-02"})
    assert caught.value.field == "tranDate"
    october["closed"] = False
    client.update_record("vendorBill", rid, {"memo": "reopened"})
    assert client.get_vendor_bill(rid)["memo"] == "reopened"
    assert client.delete_record("vendorBill", rid) and bills(standin) == []


def test_vendor_bills_survive_a_snapshot(standin: RunningStandin, client: NetSuiteClient) -> None:
    job = new_job(client)
    body = uk_bill(job)
    rid = client.upsert_vendor_bill(body["externalId"], body)
    snapshot = json.loads(json.dumps(standin.state.snapshot()))  # JSON-safe
    standin.state.reset()
    assert bills(standin) == [] and standin.state.table("vendor")[UK_VENDOR]
    standin.state.restore(snapshot)
    assert client.upsert_vendor_bill(body["externalId"], body) == rid
    fresh = NetSuiteState(keys_dir="/nonexistent")
    fresh.restore(snapshot)
    assert fresh.by_external_id("vendorbill", body["externalId"])["id"] == rid
    assert fresh.by_external_id("vendor", "TL-VENDOR-302")["companyName"] == "Blue Ridge Analytics"
