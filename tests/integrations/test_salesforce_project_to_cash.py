"""The Salesforce connector's lead-to-project and project-to-cash calls against the stand-in
over real HTTP: quote and win timestamps from Quote and OpportunityHistory, the billing model,
approved contract amendments, invoice statuses written back, and the demo's control
endpoints - plus the stand-in rules those calls depend on."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import httpx
import pytest

from integrations.canonical.schemas import InvoiceStatus
from integrations.connectors.errors import NotFoundError, ResponseShapeError, ValidationError
from integrations.connectors.salesforce import (
    SalesforceClient,
    amendment_from_salesforce,
    billing_model_from_salesforce,
    invoice_status_to_salesforce,
    parse_salesforce_datetime,
)
from integrations.standins.salesforce import SalesforceState
from integrations.standins.server import RunningStandin

from . import test_salesforce_connector as connector_tests
from .test_salesforce_connector import WON, Harness, fault

# the connector tests' fixtures: a module-scoped stand-in, reset per test, and a client
running = connector_tests.running
sf = connector_tests.sf
harness = connector_tests.harness
client = connector_tests.client

OPP_NORTHWIND, OPP_GLOBEX, OPP_INITECH, OPP_UMBRELLA = WON
OPP_CONTOSO = "0065g00000Tl005AAB"
OPP_RETAINER = "0065g00000Tl006AAB"
QUOTES = ["0Q05g00000Tl001CAB", "0Q05g00000Tl002CAB", "0Q05g00000Tl003CAB", "0Q05g00000Tl004CAB"]
AMENDMENT = "a015g00000Tl001AAB"
GLOBEX_ACCOUNT = "0015g00000Tl002AAB"
CONTROL = "/__standin__/salesforce"


def _seeded(sf: RunningStandin, sobject: str, rid: str) -> dict:
    return sf.state.table(sobject)[rid]


# -- quotes and the win ------------------------------------------------------------------


def test_first_quote_date_is_the_creation_of_the_earliest_quote(
    sf: RunningStandin, client: SalesforceClient
) -> None:
    seeded = parse_salesforce_datetime(_seeded(sf, "Quote", QUOTES[0])["CreatedDate"])
    assert client.first_quote_date(OPP_NORTHWIND) == seeded
    assert seeded.tzinfo is UTC

    later = client.create("Quote", {"Name": "Revised proposal", "OpportunityId": OPP_NORTHWIND})
    assert client.first_quote_date(OPP_NORTHWIND) == seeded  # still the first one
    assert client.get("Quote", later)["Status"] == "Draft"
    assert client.first_quote_date(OPP_CONTOSO) is None
    with pytest.raises(ValueError):
        client.first_quote_date("0065g' OR Id != '")


def test_seeded_quotes_are_accepted_with_the_deal_amount_and_currency(
    client: SalesforceClient,
) -> None:
    rows = list(
        client.query(
            "SELECT Id, Status, QuoteNumber, GrandTotal, CurrencyIsoCode, Opportunity.Name "
            "FROM Quote ORDER BY QuoteNumber"
        )
    )
    assert [r["Id"] for r in rows] == QUOTES
    assert {r["Status"] for r in rows} == {"Accepted"}
    assert [r["QuoteNumber"] for r in rows] == ["00000001", "00000002", "00000003", "00000004"]
    assert [(r["GrandTotal"], r["CurrencyIsoCode"]) for r in rows][2] == (90000.0, "EUR")
    assert rows[0]["Opportunity"]["Name"] == "Finance transformation"


def test_closed_won_at_is_the_win_recorded_in_the_stage_history(
    sf: RunningStandin, client: SalesforceClient
) -> None:
    won_at = client.closed_won_at(OPP_NORTHWIND)
    assert won_at is not None and won_at.tzinfo is UTC
    assert won_at.date().isoformat() == _seeded(sf, "Opportunity", OPP_NORTHWIND)["CloseDate"]
    assert client.first_quote_date(OPP_NORTHWIND) == won_at - timedelta(days=10)
    # a record from the feed works as well as an id
    record = client.get_opportunity(OPP_GLOBEX)
    assert client.closed_won_at(record) == won_at + timedelta(minutes=1)
    assert billing_model_from_salesforce(record) == "time_and_materials"

    assert client.closed_won_at(OPP_CONTOSO) is None
    assert client.closed_won_at(OPP_RETAINER) is None


def test_editing_a_won_deal_keeps_its_win_and_reopening_it_moves_the_win(
    sf: RunningStandin, client: SalesforceClient
) -> None:
    won_at = client.closed_won_at(OPP_NORTHWIND)
    client.update("Opportunity", OPP_NORTHWIND, {"Amount": 125000})
    client.update("Opportunity", OPP_NORTHWIND, {"Name": "Renamed"})  # no history row
    history = list(
        client.query(
            "SELECT StageName, Amount, PrevAmount, Probability, ForecastCategory FROM "
            f"OpportunityHistory WHERE OpportunityId = '{OPP_NORTHWIND}' "
            "ORDER BY CreatedDate ASC, Id ASC"
        )
    )
    assert [r["StageName"] for r in history] == [
        "Prospecting",
        "Proposal/Price Quote",
        "Closed Won",
        "Closed Won",
    ]
    assert history[-1]["Amount"] == 125000.0 and history[-1]["PrevAmount"] == 120000.0
    assert (history[-1]["Probability"], history[-1]["ForecastCategory"]) == (100, "Closed")
    assert client.closed_won_at(OPP_NORTHWIND) == won_at

    client.update("Opportunity", OPP_NORTHWIND, {"StageName": "Negotiation/Review"})
    assert client.closed_won_at(OPP_NORTHWIND) is None
    client.update("Opportunity", OPP_NORTHWIND, {"StageName": "Closed Won"})
    rewon = client.closed_won_at(OPP_NORTHWIND)
    stamp = client.get("Opportunity", OPP_NORTHWIND, ["SystemModstamp"])["SystemModstamp"]
    assert rewon == parse_salesforce_datetime(stamp) and rewon > won_at


def test_a_deal_created_as_won_through_the_api_has_its_win_at_creation(
    client: SalesforceClient,
) -> None:
    opp = client.create(
        "Opportunity",
        {"Name": "Straight win", "StageName": "Closed Won", "CloseDate": "2026-11-20"},
    )
    created = client.get("Opportunity", opp, ["CreatedDate"])["CreatedDate"]
    assert client.closed_won_at(opp) == parse_salesforce_datetime(created)


def test_a_history_row_without_a_usable_date_is_a_shape_error(
    sf: RunningStandin, client: SalesforceClient
) -> None:
    history = sf.state.table("OpportunityHistory")
    row = next(r for r in history.values() if r["OpportunityId"] == OPP_INITECH)
    row["CreatedDate"] = "yesterday"
    with pytest.raises(ResponseShapeError):
        client.closed_won_at(OPP_INITECH)


def test_soql_orders_by_several_fields(client: SalesforceClient) -> None:
    rows = list(
        client.query(
            "SELECT OpportunityId, StageName FROM OpportunityHistory "
            "ORDER BY OpportunityId DESC, CreatedDate ASC, Id"
        )
    )
    assert [r["OpportunityId"] for r in rows[:3]] == [OPP_RETAINER, OPP_CONTOSO, OPP_CONTOSO]
    assert [r["StageName"] for r in rows[1:3]] == ["Prospecting", "Negotiation/Review"]
    assert [r["StageName"] for r in rows[-3:]] == [
        "Prospecting",
        "Proposal/Price Quote",
        "Closed Won",
    ]


def test_opportunity_history_is_query_only_and_long_text_cannot_be_filtered(
    client: SalesforceClient,
) -> None:
    with pytest.raises(ValidationError) as created:
        client.create("OpportunityHistory", {"OpportunityId": OPP_NORTHWIND})
    assert created.value.vendor_code == "INVALID_TYPE_FOR_OPERATION"
    with pytest.raises(ValidationError) as filtered:
        list(client.query("SELECT Id FROM Contract_Amendment__c WHERE Milestone_Plan__c = null"))
    assert filtered.value.vendor_code == "INVALID_FIELD"
    with pytest.raises(ValidationError):
        list(client.query("SELECT Id FROM Contract_Amendment__c ORDER BY Milestone_Plan__c"))


def test_the_feed_carries_the_billing_model_and_picklists_are_restricted(
    client: SalesforceClient,
) -> None:
    models = [billing_model_from_salesforce(r) for r in client.closed_won_opportunities(None)]
    assert models == ["fixed_fee", "time_and_materials", "fixed_fee", "fixed_fee"]
    with pytest.raises(ValidationError) as refused:
        client.update("Opportunity", OPP_CONTOSO, {"Billing_Model__c": "Success Fee"})
    assert refused.value.vendor_code == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"


# -- contract amendments -------------------------------------------------------------------


def test_only_approved_amendments_arrive_and_map_with_their_plan(
    sf: RunningStandin, client: SalesforceClient
) -> None:
    assert client.approved_amendments_since(None) == []  # the seeded one is a Draft

    sf.state.approve_amendment(AMENDMENT)

    [record] = client.approved_amendments_since(None)
    assert record["Id"] == AMENDMENT and record["Name"] == "AMD-00001"
    assert record["CurrencyIsoCode"] == "GBP"
    amendment = amendment_from_salesforce(record, currency="GBP", start=date(2027, 1, 4))
    assert amendment.new_total_value == Decimal("135000.00")
    assert amendment.opportunity_source_id == OPP_NORTHWIND
    assert [(m.name, m.due_date, m.amount) for m in amendment.milestones] == [
        ("Design", date(2027, 2, 3), Decimal("40500.00")),
        ("Build", date(2027, 3, 20), Decimal("67500.00")),
        ("Go-live", date(2027, 5, 4), Decimal("27000.00")),
    ]
    watermark = parse_salesforce_datetime(record["SystemModstamp"])
    assert client.approved_amendments_since(watermark) == []
    assert [r["Id"] for r in client.approved_amendments_since(watermark, inclusive=True)] == [
        AMENDMENT
    ]
    assert client.get_amendment(AMENDMENT)["Status__c"] == "Approved"


def test_amendments_created_through_the_api_take_the_deal_currency(
    client: SalesforceClient,
) -> None:
    body = {
        "Opportunity__c": OPP_GLOBEX,
        "New_Total_Value__c": 260000,
        "Effective_Date__c": "2027-01-01",
        "Status__c": "Approved",
    }
    created = client.create("Contract_Amendment__c", body)
    record = client.get_amendment(created)
    assert (record["CurrencyIsoCode"], record["Name"]) == ("USD", "AMD-00002")
    assert (
        amendment_from_salesforce(record, currency="USD", start=date(2027, 1, 1)).milestones == ()
    )

    with pytest.raises(ValidationError) as other_currency:
        client.create("Contract_Amendment__c", {**body, "CurrencyIsoCode": "EUR"})
    assert other_currency.value.vendor_code == "FIELD_INTEGRITY_EXCEPTION"
    with pytest.raises(ValidationError) as reparent:
        client.update("Contract_Amendment__c", created, {"Opportunity__c": OPP_INITECH})
    assert reparent.value.vendor_code == "INVALID_FIELD_FOR_INSERT_UPDATE"
    with pytest.raises(ValidationError):
        client.update("Contract_Amendment__c", created, {"Status__c": "Rejected"})
    with pytest.raises(NotFoundError):
        client.get_amendment("a015g00000Tl999AAB")


# -- invoices back to the CRM --------------------------------------------------------------


def _status(state: str = "open", **changes: object) -> InvoiceStatus:
    data = {
        "erp_invoice_id": "4711",
        "number": "INV-UK01-000042",
        "total": Decimal("36000.10"),
        "amount_remaining": Decimal("36000.10"),
        "state": state,
        "due_date": date(2026, 12, 31),
    }
    data.update(changes)
    return InvoiceStatus(**data)  # type: ignore[arg-type]


def test_invoice_status_is_upserted_by_its_key_then_updated(
    sf: RunningStandin, client: SalesforceClient, harness: Harness
) -> None:
    key = "INV-UK01-000042"
    fields = invoice_status_to_salesforce(_status(), opportunity_id=OPP_NORTHWIND)
    record_id, created = client.upsert_invoice_status(key, fields)
    assert created is True and record_id is not None and record_id.startswith("a02")

    paid = invoice_status_to_salesforce(
        _status("paid", amount_remaining=Decimal("0.00")),
        opportunity_id=OPP_NORTHWIND,
        currency="GBP",
        paid_on=date(2026, 12, 20),
    )
    assert client.upsert_invoice_status(key, paid) == (record_id, False)
    stored = client.get("Throughline_Invoice__c", record_id)
    assert stored["Status__c"] == "Paid" and stored["Paid_Date__c"] == "2026-12-20"
    assert (stored["Amount__c"], stored["CurrencyIsoCode"]) == (36000.1, "GBP")
    assert stored["Throughline_Key__c"] == key and stored["Invoice_Number__c"] == key
    rows = list(
        client.query(
            "SELECT Id, Opportunity__r.Name FROM Throughline_Invoice__c "
            f"WHERE Opportunity__c = '{OPP_NORTHWIND}'"
        )
    )
    assert rows[0]["Opportunity__r"]["Name"] == "Finance transformation"
    upserts = [
        c for c in harness.calls if c.operation == "salesforce.Throughline_Invoice__c.upsert"
    ]
    assert [c.status for c in upserts] == [201, 200]


def test_an_invoice_in_another_currency_than_its_deal_is_refused(
    client: SalesforceClient,
) -> None:
    fields = invoice_status_to_salesforce(
        _status(), opportunity_id=OPP_GLOBEX, currency="GBP"
    )  # Globex deals in USD
    with pytest.raises(ValidationError) as refused:
        client.upsert_invoice_status("INV-US01-1", fields)
    assert refused.value.vendor_code == "FIELD_INTEGRITY_EXCEPTION"
    with pytest.raises(ValueError):
        client.upsert_invoice_status("INV/US01/1", fields)


def test_invoice_upserts_are_retried_after_a_refusal(
    sf: RunningStandin, client: SalesforceClient
) -> None:
    fault(sf, method="PATCH", path="Throughline_Invoice__c", status=503, times=1)
    fields = invoice_status_to_salesforce(_status(), opportunity_id=OPP_NORTHWIND)
    record_id, created = client.upsert_invoice_status("INV-UK01-000043", fields)
    assert created is True
    assert len(sf.state.table("Throughline_Invoice__c")) == 1
    assert record_id in sf.state.table("Throughline_Invoice__c")


# -- the demo's control endpoints ----------------------------------------------------------


def test_close_deal_creates_a_quoted_deal_and_wins_it(
    sf: RunningStandin, client: SalesforceClient
) -> None:
    response = httpx.post(
        f"{sf.url}{CONTROL}/close-deal",
        json={"account_id": GLOBEX_ACCOUNT[:15], "amount": "75000.50", "template": "TM-STD"},
    )
    assert response.status_code == 201
    opp_id, quote_id = response.json()["id"], response.json()["quote_id"]

    [won] = client.closed_won_opportunities(None, limit=5)[4:]
    assert won["Id"] == opp_id and won["Amount"] == 75000.5
    assert (won["CurrencyIsoCode"], won["Legal_Entity__c"]) == ("USD", "US01")
    assert billing_model_from_salesforce(won) == "time_and_materials"
    won_at = client.closed_won_at(opp_id)
    quoted = client.first_quote_date(opp_id)
    assert won_at is not None and quoted is not None
    # created 21 days ago by default, quoted half-way, won now
    assert timedelta(days=10) <= won_at - quoted < timedelta(days=10, minutes=1)
    assert client.get("Quote", quote_id)["Status"] == "Accepted"


def test_close_deal_defaults_and_refusals(sf: RunningStandin) -> None:
    url = f"{sf.url}{CONTROL}/close-deal"
    default = httpx.post(url)
    assert default.status_code == 201
    record = sf.state.table("Opportunity")[default.json()["id"]]
    assert (record["AccountId"], record["Amount"], record["Legal_Entity__c"]) == (
        "0015g00000Tl001AAB",
        50000.0,
        "UK01",
    )
    assert (record["Project_Template__c"], record["Billing_Model__c"]) == ("FIXED-3", "Fixed Fee")
    assert record["IsWon"] is True

    assert httpx.post(url, json={"account_id": "0015g00000Tl999AAB"}).status_code == 404
    for bad in ({"amount": "12.345"}, {"amount": -5}, {"colour": "red"}, {"sales_cycle_days": -1}):
        refused = httpx.post(url, json=bad)
        assert refused.status_code == 400 and refused.json()["error"]
    assert httpx.post(url, content=b"[1]").status_code == 400


def test_approve_amendment_endpoint(sf: RunningStandin) -> None:
    url = f"{sf.url}{CONTROL}/approve-amendment"
    response = httpx.post(url, json={"id": AMENDMENT[:15]})
    assert response.json() == {"id": AMENDMENT, "Status__c": "Approved"}
    assert httpx.post(url, json={"id": AMENDMENT}).status_code == 200  # already approved
    assert httpx.post(url, json={"id": "a015g00000Tl999AAB"}).status_code == 404
    assert httpx.post(url, json={"id": 7}).status_code == 404
    assert httpx.post(url, content=b"nope").status_code == 400


def test_new_objects_survive_a_snapshot_and_stay_live_records(sf: RunningStandin) -> None:
    sf.state.approve_amendment(AMENDMENT)
    snapshot = sf.state.snapshot()
    restored = SalesforceState()
    restored.restore(snapshot)

    assert restored.collections == sf.state.collections
    opp = restored.table("Opportunity")[OPP_CONTOSO]
    opp.update({"StageName": "Closed Won"})  # the control surface's edit path
    history = [
        r
        for r in restored.table("OpportunityHistory").values()
        if r["OpportunityId"] == OPP_CONTOSO
    ]
    assert history[-1]["StageName"] == "Closed Won"
    assert restored.insert("Quote", {"Name": "Q", "OpportunityId": OPP_CONTOSO})["Id"] == (
        "0Q05g00000Tl005CAB"
    )
    now = datetime.now(UTC)
    assert parse_salesforce_datetime(opp["SystemModstamp"]) <= now
