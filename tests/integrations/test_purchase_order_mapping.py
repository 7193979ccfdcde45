"""Purchase orders for subcontractors, the mapping alone (no database, no stand-in): the
canonical PurchaseOrder to a NetSuite purchaseOrder body (one item line, hours x rate exact to
the cent), the vendor bill's link to its order, a Kantata member's cost rate in one currency
and Throughline's keys for orders and subcontractors."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import pytest

from integrations.canonical.errors import MappingError
from integrations.canonical.schemas import PurchaseOrder, SubcontractorCharge
from integrations.connectors.kantata.mapping import cost_rate_from_kantata
from integrations.connectors.netsuite.mapping import (
    purchase_order_to_netsuite,
    vendor_bill_from_charge,
)
from integrations.purchase_orders import purchase_order_key, subcontractor_key

ORDER = PurchaseOrder(
    source_id="TL-PO-901",
    vendor_name="apex-data-consulting",
    vendor_key="vendor:apex-data-consulting",
    project_key="PRJ-300",
    amount=Decimal("2227.50"),
    currency="GBP",
    ordered_on=dt.date(2026, 11, 2),
    assignment_id="assignment:901",
    person_id="14",
    hours=Decimal("40.50"),
    rate=Decimal("55.00"),
)
IDS = {
    "vendor_id": "301",
    "job_id": "1002",
    "subsidiary_id": "2",
    "currency_id": "2",
    "item_id": "10",
}


def test_an_order_is_one_item_line_of_hours_at_the_hourly_cost_for_the_job() -> None:
    body = purchase_order_to_netsuite(ORDER, **IDS)
    assert body == {
        "externalId": "TL-PO-901",
        "entity": {"id": "301"},
        "subsidiary": {"id": "2"},
        "currency": {"id": "2"},
        "tranDate": "2026-11-02",
        "memo": "apex-data-consulting: subcontracted hours on project PRJ-300 (assignment:901)",
        "item": {
            "items": [
                {
                    "item": {"id": "10"},
                    "description": "apex-data-consulting: 40.50 h on project PRJ-300",
                    "quantity": 40.5,
                    "rate": 55.0,
                    "amount": 2227.5,
                    "customer": {"id": "1002"},
                    "isClosed": False,
                }
            ]
        },
    }
    (line,) = body["item"]["items"]
    # the numbers read back as exactly the canonical Decimals
    assert Decimal(repr(line["quantity"])) == ORDER.hours
    assert Decimal(repr(line["rate"])) == ORDER.rate
    assert Decimal(repr(line["amount"])) == ORDER.amount
    described = ORDER.model_copy(update={"description": "Data migration, 40.5 h"})
    assert purchase_order_to_netsuite(described, **IDS)["item"]["items"][0]["description"] == (
        "Data migration, 40.5 h"
    )


def test_a_closed_order_keeps_its_line_and_marks_it_closed() -> None:
    closed = ORDER.model_copy(update={"closed": True})
    (line,) = purchase_order_to_netsuite(closed, **IDS)["item"]["items"]
    assert line["isClosed"] is True and line["quantity"] == 40.5


@pytest.mark.parametrize(
    ("change", "ids", "field"),
    [
        ({"hours": Decimal("0")}, {}, "hours"),  # an ended engagement is closed, not ordered
        ({"hours": None}, {}, "hours"),
        ({"rate": None}, {}, "rate"),
        ({"amount": Decimal("2227.49")}, {}, "amount"),  # not hours x rate
        ({"source_id": "TL PO 901"}, {}, "source_id"),  # not a NetSuite external id
        (
            {"hours": Decimal("0.10"), "rate": Decimal("0.10"), "amount": Decimal("0.01")},
            {},
            "no_error",
        ),
        ({}, {"vendor_id": "Apex"}, "vendor_id"),
        ({}, {"job_id": ""}, "job_id"),
        ({}, {"currency_id": "GBP"}, "currency_id"),
        ({}, {"item_id": "Subcontracted Services"}, "item_id"),
    ],
)
def test_the_mapper_refuses_what_netsuite_would(
    change: dict[str, Any], ids: dict[str, str], field: str
) -> None:
    order = ORDER.model_copy(update=change)
    if field == "no_error":  # 0.10 h x 0.10 = 0.01 (half up): exact to the cent
        assert purchase_order_to_netsuite(order, **IDS)["item"]["items"][0]["amount"] == 0.01
        return
    with pytest.raises(MappingError) as caught:
        purchase_order_to_netsuite(order, **{**IDS, **ids})
    assert field in json.dumps(caught.value.problems)


def test_amounts_that_a_double_cannot_hold_are_refused() -> None:
    huge = ORDER.model_copy(
        update={
            "hours": Decimal("9999999999.99"),
            "rate": Decimal("1.00"),
            "amount": Decimal("9999999999.99"),
        }
    )
    assert purchase_order_to_netsuite(huge, **IDS)["item"]["items"][0]["amount"] == 9999999999.99
    odd = ORDER.model_copy(
        update={
            "hours": Decimal("1.00"),
            "rate": Decimal("1234567890123456.78"),
            "amount": Decimal("1234567890123456.78"),
        }
    )
    with pytest.raises(MappingError) as caught:
        purchase_order_to_netsuite(odd, **IDS)
    assert "rate" in json.dumps(caught.value.problems)


def test_a_charge_against_an_order_names_it_on_the_bill() -> None:
    charge = SubcontractorCharge(
        source_id="charge:77",
        vendor_name="apex-data-consulting",
        project_key="PRJ-300",
        amount=Decimal("4200.00"),
        currency="GBP",
        incurred_on=dt.date(2026, 11, 20),
        purchase_order_source_id="TL-PO-901",
    )
    ids = {"vendor_id": "301", "job_id": "1002", "subsidiary_id": "2", "currency_id": "2"}
    body = vendor_bill_from_charge(charge, **ids, purchase_order_id="5003")
    assert body["custbody_tl_po"] == {"id": "5003"}
    assert body["memo"].endswith("(PO TL-PO-901)")
    assert "custbody_tl_po" not in vendor_bill_from_charge(charge, **ids)
    with pytest.raises(MappingError) as caught:
        vendor_bill_from_charge(charge, **ids, purchase_order_id="TL-PO-901")
    assert "purchase_order_id" in json.dumps(caught.value.problems)


def membership(**changes: Any) -> dict[str, Any]:
    return {"id": "16", "user_id": 14, "cost_rate_ids": [18, 30], **changes}


RATES = {
    "18": {"id": "18", "currency": "GBP", "amount_in_subunits": 5500},
    "30": {"id": "30", "currency": "JPY", "amount_in_subunits": 9000},
}


def test_a_members_hourly_cost_in_one_currency_from_kantata() -> None:
    day = dt.date(2026, 11, 26)
    rate = cost_rate_from_kantata(membership(), RATES, currency="GBP", effective_from=day)
    assert rate is not None and rate.hourly_cost == Decimal("55.00")
    assert rate.employee_source_id == "14" and rate.currency == "GBP"
    assert isinstance(rate.hourly_cost, Decimal)
    yen = cost_rate_from_kantata(membership(), RATES, currency="JPY", effective_from=day)
    assert yen is not None and yen.hourly_cost == Decimal("9000")  # zero-decimal currency
    assert cost_rate_from_kantata(membership(), RATES, currency="USD", effective_from=day) is None
    unset = {"18": {**RATES["18"], "amount_in_subunits": 0}}
    assert cost_rate_from_kantata(membership(), unset, currency="GBP", effective_from=day) is None


@pytest.mark.parametrize(
    ("record", "rates", "field"),
    [
        (membership(cost_rate_ids=None), RATES, "cost_rate_ids"),  # read without include
        (membership(user_id=None), RATES, "user_id"),
        (membership(), {"18": {**RATES["18"], "amount_in_subunits": -1}}, "amount_in_subunits"),
        (membership(), {"18": {**RATES["18"], "amount_in_subunits": "lots"}}, "amount_in_subunits"),
        ("membership", RATES, "cost_rate"),
    ],
)
def test_untrusted_cost_rates_are_refused(record: Any, rates: Any, field: str) -> None:
    with pytest.raises(MappingError) as caught:
        cost_rate_from_kantata(record, rates, currency="GBP", effective_from=dt.date(2026, 1, 1))
    assert field in json.dumps(caught.value.problems)


def test_throughline_keys_for_orders_and_subcontractors() -> None:
    assert purchase_order_key("assignment:123") == "TL-PO-123"
    odd = purchase_order_key("assignment:12/3")
    assert odd.startswith("TL-PO-12_3-") and odd == purchase_order_key("assignment:12/3")
    key = subcontractor_key("vendor:apex-data-consulting", "person:priya.nair@apex-data.example")
    assert key.split("/", 1)[0] == "vendor:apex-data-consulting"
