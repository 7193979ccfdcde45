"""Purchase orders in the NetSuite stand-in and connector, over real HTTP: the seeded purchase
item, the `purchaseOrder` record (validation in NetSuite's error shape, upsert by external id
with the item lines replaced, lines closed rather than deleted, no closed-period check for a
non-posting transaction, SuiteQL, dependents, snapshots, the control page) and the vendor
bill's `custbody_tl_po` link to its order."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from integrations.canonical.schemas import PurchaseOrder
from integrations.connectors.errors import ValidationError
from integrations.connectors.netsuite import NetSuiteClient
from integrations.connectors.netsuite.mapping import purchase_order_to_netsuite
from integrations.standins.netsuite import NetSuiteState
from integrations.standins.server import RunningStandin

from . import test_netsuite_connector as shared
from .test_netsuite_vendor_bills import new_job, uk_bill

# the NetSuite fixtures of the connector tests: a stand-in per module, reset for each test
keys, server, standin = shared.keys, shared.server, shared.standin
make_client, client = shared.make_client, shared.client

RECORD = "/services/rest/record/v1"
ORDER = PurchaseOrder(
    source_id="TL-PO-901",
    vendor_name="apex-data-consulting",
    project_key="PRJ-300",
    amount=Decimal("2200.00"),
    currency="GBP",
    ordered_on=dt.date(2026, 11, 2),
    assignment_id="assignment:901",
    hours=Decimal("40.00"),
    rate=Decimal("55.00"),
)


def uk_order(job: str, order: PurchaseOrder = ORDER, **change: Any) -> dict[str, Any]:
    body = purchase_order_to_netsuite(
        order, vendor_id="301", job_id=job, subsidiary_id="2", currency_id="2", item_id="10"
    )
    return {**body, **change}


def orders(standin: RunningStandin) -> list[dict[str, Any]]:
    return list(standin.state.table("purchaseorder").values())


@pytest.fixture
def api(standin: RunningStandin) -> Iterator[httpx.Client]:
    token = standin.state.issue_token()
    with httpx.Client(base_url=standin.url, headers={"Authorization": f"Bearer {token}"}) as c:
        yield c


def test_the_purchase_item_is_seeded(client: NetSuiteClient) -> None:
    item = client.get_record("servicePurchaseItem", "10")
    assert item["itemId"] == "Subcontracted Services"
    assert item["expenseAccount"]["refName"] == "5100 Subcontractor Costs"


def test_upsert_purchase_order_is_idempotent_and_replaces_the_line(
    standin: RunningStandin, client: NetSuiteClient, api: httpx.Client
) -> None:
    job = new_job(client)
    body = uk_order(job)
    first = client.upsert_purchase_order("TL-PO-901", body)
    assert client.upsert_purchase_order("TL-PO-901", body) == first
    assert len(orders(standin)) == 1 and int(first) > 5000  # the transaction id sequence
    answer = api.get(f"{RECORD}/purchaseOrder/{first}", params={"expandSubResources": "true"})
    assert answer.status_code == 200
    order = answer.json()
    assert order["externalId"] == "TL-PO-901" and order["tranId"] == "PO-1001"
    assert order["entity"]["id"] == "301" and order["entity"]["refName"].endswith(
        "Apex Data Consulting"
    )
    assert (order["subsidiary"]["id"], order["currency"]["id"]) == ("2", "2")
    assert order["tranDate"] == "2026-11-02" and "postingPeriod" not in order
    assert order["status"] == {"id": "B", "refName": "Pending Receipt"}
    assert order["total"] == 2200.0 and Decimal(repr(order["total"])) == ORDER.amount
    (line,) = order["item"]["items"]
    assert line["item"] == {"links": line["item"]["links"], "id": "10",
                            "refName": "Subcontracted Services"}  # fmt: skip
    assert (line["quantity"], line["rate"], line["amount"]) == (40.0, 55.0, 2200.0)
    assert line["customer"]["id"] == job and line["isClosed"] is False
    assert line["description"] == body["item"]["items"][0]["description"]
    # without expandSubResources the sublist is a link, as in NetSuite
    assert set(api.get(f"{RECORD}/purchaseOrder/{first}").json()["item"]) == {"links"}

    more = ORDER.model_copy(update={"hours": Decimal("50.00"), "amount": Decimal("2750.00")})
    assert client.upsert_purchase_order("TL-PO-901", uk_order(job, more)) == first
    again = client.get_purchase_order("eid:TL-PO-901")
    assert again["total"] == 2750.0 and len(again["item"]["items"]) == 1
    assert again["item"]["items"][0]["quantity"] == 50.0
    # without replace=item an upsert ADDS the line: what upsert_purchase_order prevents
    client.upsert_by_external_id("purchaseOrder", "TL-PO-901", uk_order(job, more))
    assert client.get_purchase_order(first)["total"] == 5500.0


def test_closing_keeps_the_order_and_its_amounts(
    standin: RunningStandin, client: NetSuiteClient
) -> None:
    job = new_job(client)
    rid = client.upsert_purchase_order("TL-PO-901", uk_order(job))
    assert client.close_purchase_order(rid) == 1
    order = client.get_purchase_order(rid)
    assert order["status"] == {"id": "H", "refName": "Closed"} and order["total"] == 2200.0
    (line,) = order["item"]["items"]
    assert line["isClosed"] is True and line["quantity"] == 40.0
    assert client.close_purchase_order(rid) == 0  # a repeat writes nothing
    assert len(orders(standin)) == 1
    # reopened by an upsert that sends the line open again
    client.upsert_purchase_order("TL-PO-901", uk_order(job))
    assert client.get_purchase_order(rid)["status"]["id"] == "B"


def _line(**change: Any) -> dict[str, Any]:
    line = {"item": {"id": "10"}, "quantity": 2, "rate": 55, "customer": {"id": "1002"}}
    return {"item": {"items": [{**line, **change}]}}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"entity": {"id": "9999"}}, "entity"),  # no such vendor
        ({"entity": {"id": "302"}}, "subsidiary"),  # Blue Ridge is in subsidiary 1
        ({"subsidiary": {"id": "9"}}, "subsidiary"),  # no such subsidiary
        ({"subsidiary": {"id": "1"}}, "subsidiary"),
        ({"currency": {"id": "1"}}, "currency"),  # Apex is billed in GBP
        ({"tranDate": "2/11/2026"}, "tranDate"),
        ({"total": 5}, "total"),  # read-only
        ({"tranId": "PO-9"}, "tranId"),  # numbered by NetSuite
        ({"postingPeriod": {"id": "11"}}, "postingPeriod"),  # not a posting transaction
        ({"expense": {"items": []}}, "expense"),  # not served
        ({"item": {"items": []}}, "item"),
        (_line(customer={"id": "9999"}), "item.items[0].customer"),  # no such job
        (_line(item={"id": "1"}), "item.items[0].item"),  # a sale item, not a purchase item
        (_line(quantity=0), "item.items[0].quantity"),
        (_line(rate=-1), "item.items[0].rate"),
        (_line(amount="lots"), "item.items[0].amount"),
        (_line(isClosed="yes"), "item.items[0].isClosed"),
        (_line(isBillable=True, customer=None), "item.items[0].customer"),
        (_line(account={"id": "1"}), "item.items[0].account"),
        ({"item": {"items": [{"quantity": 2, "rate": 5}]}}, "item.items[0].item"),
    ],
)
def test_the_stand_in_validates_purchase_orders_in_netsuites_shape(
    standin: RunningStandin, client: NetSuiteClient, api: httpx.Client,
    change: dict[str, Any], field: str,
) -> None:  # fmt: skip
    job = new_job(client)
    body = {k: v for k, v in uk_order(job, **change).items() if k != "externalId"}
    assert job == "1002"  # what the lines of `_line` are for
    answer = api.put(f"{RECORD}/purchaseOrder/eid:TL-PO-bad", json=body)
    assert answer.status_code == 400, answer.text
    error = answer.json()
    assert error["status"] == 400 and error["title"]
    (detail,) = error["o:errorDetails"]
    assert detail["o:errorPath"] == field
    assert detail["o:errorCode"] in ("USER_ERROR", "INVALID_FIELD")
    assert detail["detail"]
    with pytest.raises(ValidationError) as caught:  # the connector reads it the same way
        client.upsert_purchase_order("TL-PO-bad", body)
    assert caught.value.field == field and caught.value.status == 400
    assert orders(standin) == []


def test_an_inactive_vendor_or_item_is_refused(
    standin: RunningStandin, client: NetSuiteClient
) -> None:
    job = new_job(client)
    standin.state.table("servicepurchaseitem")["10"]["isInactive"] = True
    with pytest.raises(ValidationError) as caught:
        client.upsert_purchase_order("TL-PO-901", uk_order(job))
    assert caught.value.field == "item.items[0].item"
    standin.state.table("servicepurchaseitem")["10"]["isInactive"] = False
    standin.state.table("vendor")["301"]["isInactive"] = True
    with pytest.raises(ValidationError) as caught:
        client.upsert_purchase_order("TL-PO-901", uk_order(job))
    assert caught.value.field == "entity" and orders(standin) == []


def test_a_closed_period_does_not_stop_a_non_posting_order(
    standin: RunningStandin, client: NetSuiteClient
) -> None:
    job = new_job(client)
    march = ORDER.model_copy(update={"ordered_on": dt.date(2026, 3, 15)})  # a closed period
    rid = client.upsert_purchase_order("TL-PO-901", uk_order(job, march))
    assert client.close_purchase_order(rid) == 1
    assert client.delete_record("purchaseOrder", rid) and orders(standin) == []


def test_orders_in_suiteql_and_as_dependents(
    standin: RunningStandin, client: NetSuiteClient
) -> None:
    job = new_job(client)
    rid = client.upsert_purchase_order("TL-PO-901", uk_order(job))
    rows = list(
        client.suiteql(
            "SELECT id, tranid, externalid, entity, status, foreigntotal FROM transaction "
            "WHERE type = 'PurchOrd'"
        )
    )
    assert rows == [
        {"id": rid, "tranid": "PO-1001", "externalid": "TL-PO-901", "entity": "301",
         "status": "B", "foreigntotal": 2200.0}
    ]  # fmt: skip
    with pytest.raises(ValidationError):
        client.delete_record("job", job)  # the order's line is for the job: a dependent
    # a vendor bill names the order in the firm's custom field
    bill = uk_bill(job, custbody_tl_po={"id": rid})
    bill_id = client.upsert_vendor_bill(bill["externalId"], bill)
    read = client.get_vendor_bill(bill_id)
    assert read["custbody_tl_po"]["id"] == rid and read["custbody_tl_po"]["refName"] == "#PO-1001"
    with pytest.raises(ValidationError):
        client.delete_record("purchaseOrder", rid)  # the bill is billed against it
    with pytest.raises(ValidationError) as caught:
        client.upsert_vendor_bill("sc-2", uk_bill(job, externalId="sc-2",
                                                  custbody_tl_po={"id": "4999"}))  # fmt: skip
    assert caught.value.field == "custbody_tl_po"


def test_orders_survive_a_snapshot_and_show_on_the_control_page(
    standin: RunningStandin, client: NetSuiteClient
) -> None:
    job = new_job(client)
    rid = client.upsert_purchase_order("TL-PO-901", uk_order(job))
    client.close_purchase_order(rid)
    page = httpx.get(standin.url + "/__standin__/netsuite/")
    assert page.status_code == 200
    assert "Purchase orders" in page.text and "TL-PO-901" in page.text
    assert "40.0 x 55.0 = 2200.00 (closed)" in page.text and "Closed" in page.text
    records = httpx.get(standin.url + "/__standin__/records/purchaseorder").json()
    assert rid in json.dumps(records)
    snapshot = json.loads(json.dumps(standin.state.snapshot()))  # JSON-safe
    fresh = NetSuiteState(keys_dir="/nonexistent")
    fresh.restore(snapshot)
    assert fresh.by_external_id("purchaseorder", "TL-PO-901")["id"] == rid
    standin.state.reset()
    standin.state.restore(snapshot)
    assert client.upsert_purchase_order("TL-PO-901", uk_order(job)) == rid
    assert client.get_purchase_order(rid)["tranId"] == "PO-1001"
