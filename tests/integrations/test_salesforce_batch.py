"""The Salesforce client's batched calls against the stand-in over real HTTP: sObject
Collections updates (per-record results, allOrNone rollback, chunks of 200) and the SOQL
`IN (...)` reads that serve many deals with a few calls."""

from __future__ import annotations

from typing import Any

import pytest

from integrations.connectors.errors import (
    NotFoundError,
    TransientError,
    ValidationError,
)
from integrations.connectors.salesforce import SalesforceClient, parse_salesforce_datetime
from integrations.standins.salesforce import ROLLED_BACK, SalesforceState
from integrations.standins.server import RunningStandin
from tests.integrations import test_salesforce_connector as connector_tests
from tests.integrations.test_salesforce_connector import WON, Harness, fault

# the connector tests' fixtures: a module-scoped stand-in, reset per test, and a client
running = connector_tests.running
sf = connector_tests.sf
harness = connector_tests.harness
client = connector_tests.client

OPP_CONTOSO = "0065g00000Tl005AAB"
OPP_RETAINER = "0065g00000Tl006AAB"
ALL_SEEDED = [*WON, OPP_CONTOSO, OPP_RETAINER]
NORTHWIND_ACCOUNT = "0015g00000Tl001AAB"
UPDATE_MANY = "salesforce.Opportunity.update_many"


def operations(harness: Harness, name: str) -> list[Any]:
    return [c for c in harness.calls if c.operation == name]


def add_opportunities(state: SalesforceState, count: int) -> list[str]:
    """`count` more open Opportunities in the stand-in (straight into its state)."""
    return [
        state.insert(
            "Opportunity",
            {
                "Name": f"Bulk deal {n}",
                "StageName": "Prospecting",
                "CloseDate": "2027-01-31",
                "AccountId": NORTHWIND_ACCOUNT,
                "Billing_Model__c": "Fixed Fee",
            },
            notify=False,
        )["Id"]
        for n in range(count)
    ]


def history_rows(state: SalesforceState) -> int:
    with state.lock:
        return len(state.table("OpportunityHistory"))


# -- sObject Collections update ------------------------------------------------------------


def test_update_many_answers_per_record_in_order_and_writes_the_good_ones(
    sf: RunningStandin, client: SalesforceClient, harness: Harness
) -> None:
    before = client.get_opportunities(WON[:3])
    usage = sf.state.api_usage

    results = client.update_many(
        "Opportunity",
        [
            (WON[0], {"Throughline_ERP_Customer_Id__c": "CUS-1"}),
            (WON[1], {"Billing_Model__c": "Pay As You Go"}),
            (WON[2], {"Throughline_ERP_Customer_Id__c": "CUS-3", "Billing_Model__c": "Retainer"}),
        ],
    )

    assert results[0] is None and results[2] is None
    error = results[1]
    assert isinstance(error, ValidationError)
    assert error.vendor_code == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert error.field == "Billing_Model__c" and "Pay As You Go" in error.message
    assert error.operation == UPDATE_MANY and error.body["success"] is False
    # one API call, counted once by the stand-in's daily budget
    assert sf.state.api_usage == usage + 1
    [call] = operations(harness, UPDATE_MANY)
    assert call.method == "PATCH" and call.path == "/services/data/v62.0/composite/sobjects"
    assert call.status == 200 and call.idempotency_key

    after = client.get_opportunities(WON[:3])
    assert after[WON[0]]["Throughline_ERP_Customer_Id__c"] == "CUS-1"
    assert (after[WON[2]]["Throughline_ERP_Customer_Id__c"], after[WON[2]]["Billing_Model__c"]) == (
        "CUS-3",
        "Retainer",
    )
    assert after[WON[1]] == before[WON[1]]  # the refused record is untouched
    for changed in (WON[0], WON[2]):
        assert parse_salesforce_datetime(after[changed]["SystemModstamp"]) > (
            parse_salesforce_datetime(before[changed]["SystemModstamp"])
        )


def test_all_or_none_rolls_everything_back(
    sf: RunningStandin, client: SalesforceClient, harness: Harness
) -> None:
    before = client.get_opportunities(WON[:3])
    rows = history_rows(sf.state)

    results = client.update_many(
        "Opportunity",
        [
            (WON[0], {"Throughline_ERP_Customer_Id__c": "CUS-1", "Amount": 1.0}),
            (WON[1], {"Billing_Model__c": "Pay As You Go"}),
            (WON[2], {"Throughline_ERP_Customer_Id__c": "CUS-3"}),
        ],
        all_or_none=True,
    )

    first, bad, last = results
    assert isinstance(bad, ValidationError)
    assert bad.vendor_code == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    for rolled_back in (first, last):
        # nothing wrong with these two: sending them again without the bad one may succeed
        assert isinstance(rolled_back, TransientError)
        assert rolled_back.vendor_code == ROLLED_BACK
    assert client.get_opportunities(WON[:3]) == before  # not even SystemModstamp moved
    assert history_rows(sf.state) == rows  # and no stage-history row for the Amount change


def test_collections_stage_change_writes_history_like_a_single_patch(
    sf: RunningStandin, client: SalesforceClient
) -> None:
    assert client.closed_won_times([OPP_CONTOSO]) == {OPP_CONTOSO: None}

    assert client.update_many("Opportunity", [(OPP_CONTOSO, {"StageName": "Closed Won"})]) == [None]

    record = client.get_opportunity(OPP_CONTOSO)
    assert record["IsWon"] is True and record["IsClosed"] is True
    won = client.closed_won_times([OPP_CONTOSO])[OPP_CONTOSO]
    assert won == parse_salesforce_datetime(record["SystemModstamp"])


def test_missing_and_malformed_records_fail_alone(client: SalesforceClient) -> None:
    results = client.update_many(
        "Opportunity",
        [
            ("006000000000000AAA", {"Throughline_ERP_Customer_Id__c": "CUS-X"}),
            (NORTHWIND_ACCOUNT, {"Throughline_ERP_Customer_Id__c": "CUS-Y"}),
            (WON[0], {"IsWon": False}),
            (WON[1], {"Throughline_ERP_Customer_Id__c": "CUS-2"}),
        ],
    )

    missing, wrong_type, read_only, fine = results
    assert isinstance(missing, NotFoundError) and missing.vendor_code == "ENTITY_IS_DELETED"
    assert isinstance(wrong_type, ValidationError) and wrong_type.vendor_code == "MALFORMED_ID"
    assert isinstance(read_only, ValidationError) and read_only.field == "IsWon"
    assert read_only.vendor_code == "INVALID_FIELD_FOR_INSERT_UPDATE"
    assert fine is None
    assert client.get_opportunity(WON[1])["Throughline_ERP_Customer_Id__c"] == "CUS-2"


def test_more_than_200_records_go_in_chunks_of_200(
    sf: RunningStandin, client: SalesforceClient, harness: Harness
) -> None:
    ids = add_opportunities(sf.state, 250)

    results = client.update_many(
        "Opportunity",
        [(rid, {"Throughline_PSA_Project_Id__c": f"K-{n}"}) for n, rid in enumerate(ids)],
    )

    assert results == [None] * 250
    calls = operations(harness, UPDATE_MANY)
    assert len(calls) == 2 and calls[0].idempotency_key != calls[1].idempotency_key
    found = client.get_opportunities(ids)
    assert [found[rid]["Throughline_PSA_Project_Id__c"] for rid in ids] == [
        f"K-{n}" for n in range(250)
    ]


def test_the_stand_in_refuses_more_than_200_records_like_salesforce(
    sf: RunningStandin, client: SalesforceClient
) -> None:
    ids = add_opportunities(sf.state, 201)
    body = {
        "allOrNone": False,
        "records": [{"attributes": {"type": "Opportunity"}, "id": rid} for rid in ids],
    }

    with pytest.raises(ValidationError) as info:
        client.request(
            "PATCH", client.data_path("composite", "sobjects"), json=body, operation="test"
        )
    assert info.value.status == 400 and info.value.vendor_code == "EXCEEDED_ID_LIMIT"
    assert "cannot submit more than 200 records" in info.value.message


def test_the_stand_in_answers_salesforce_save_results(client: SalesforceClient) -> None:
    path = client.data_path("composite", "sobjects")
    records = [
        {"attributes": {"type": "Opportunity"}, "id": WON[0][:15], "Throughline_Key__c": "K"},
        {"attributes": {"type": "Opportunity"}, "id": WON[1], "Billing_Model__c": "Barter"},
        {"attributes": {"type": "Opportunity"}, "Throughline_Key__c": "no id"},
        {"attributes": {"type": "Account"}, "Id": NORTHWIND_ACCOUNT, "BillingCity": "Leeds"},
    ]

    response = client.request("PATCH", path, json={"records": records}, operation="test")

    assert response.status_code == 200 and response.json() == [
        {"id": WON[0], "success": True, "errors": []},
        {
            "id": WON[1],
            "success": False,
            "errors": [
                {
                    "statusCode": "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                    "message": "Billing_Model__c: bad value for restricted picklist field: Barter",
                    "fields": ["Billing_Model__c"],
                }
            ],
        },
        {
            "success": False,
            "errors": [
                {
                    "statusCode": "MISSING_ARGUMENT",
                    "message": "Id not specified in an update call",
                    "fields": [],
                }
            ],
        },
        {"id": NORTHWIND_ACCOUNT, "success": True, "errors": []},  # several types in one call
    ]
    untyped = [{"id": WON[0], "Throughline_Key__c": "K"}]
    with pytest.raises(ValidationError) as info:
        client.request("PATCH", path, json={"records": untyped}, operation="test")
    assert info.value.vendor_code == "INVALID_TYPE"


def test_a_collections_call_that_failed_on_the_server_is_repeated(
    sf: RunningStandin, client: SalesforceClient, harness: Harness
) -> None:
    # PATCHing the same values twice is harmless, so the shared client may repeat the call
    fault(sf, method="PATCH", path="/composite/sobjects$", status=500, times=1)

    assert client.update_many(
        "Opportunity", [(WON[0], {"Throughline_PSA_Project_Id__c": "K"})]
    ) == [None]

    [call] = operations(harness, UPDATE_MANY)
    assert call.attempts == 2 and call.status == 200
    assert client.get_opportunity(WON[0])["Throughline_PSA_Project_Id__c"] == "K"


def test_a_collections_call_refused_as_a_whole_raises(
    sf: RunningStandin, client: SalesforceClient
) -> None:
    fault(sf, method="PATCH", path="/composite/sobjects$", status=400, code="JSON_PARSER_ERROR")
    with pytest.raises(ValidationError) as info:
        client.update_many("Opportunity", [(WON[0], {"Throughline_Key__c": "K"})])
    assert info.value.vendor_code == "JSON_PARSER_ERROR"


# -- batched reads ---------------------------------------------------------------------------


def test_get_opportunities_for_250_ids_takes_two_queries(
    sf: RunningStandin, client: SalesforceClient, harness: Harness
) -> None:
    ids = add_opportunities(sf.state, 248)
    wanted = [*ids, WON[0], "006000000000000AAA"]  # 250 ids, one of no record

    found = client.get_opportunities(wanted)

    assert len(found) == 249 and "006000000000000AAA" not in found
    assert all(found[rid]["Id"] == rid for rid in found)
    assert found[WON[0]]["Account"]["Name"] == "Northwind Consulting Ltd"
    assert [c.operation for c in harness.calls] == ["salesforce.query"] * 2


def test_ids_are_keys_as_given_including_15_char_ones(client: SalesforceClient) -> None:
    short = WON[1][:15]

    found = client.get_opportunities([short, WON[0]])

    assert set(found) == {short, WON[0]}
    assert found[short]["Id"] == WON[1]  # the record keeps its 18-char Id
    assert client.first_quote_dates([short]).keys() == {short}
    assert client.closed_won_times([short])[short] == client.closed_won_at(WON[1])


def test_batched_timestamps_equal_the_single_answers(
    client: SalesforceClient, harness: Harness
) -> None:
    ids = [*ALL_SEEDED, "006000000000000AAA"]

    won = client.closed_won_times(ids)
    quoted = client.first_quote_dates(ids)

    assert [c.operation for c in harness.calls] == ["salesforce.query"] * 2
    assert won == {rid: client.closed_won_at(rid) for rid in ids}
    assert set(quoted) == set(WON)  # the open deals and the unknown id have no quote
    assert quoted == {rid: client.first_quote_date(rid) for rid in WON}
    assert all(won[rid] is not None for rid in WON)
    assert won[OPP_CONTOSO] is None and won[OPP_RETAINER] is None


def test_a_deal_won_again_after_a_lost_spell_counts_from_the_last_win(
    client: SalesforceClient,
) -> None:
    client.update_many("Opportunity", [(WON[0], {"StageName": "Closed Lost"})])
    assert client.closed_won_times([WON[0]]) == {WON[0]: None}
    client.update_many("Opportunity", [(WON[0], {"StageName": "Closed Won"})])
    client.update_many("Opportunity", [(WON[0], {"Amount": 125000.0})])  # another Won row

    won = client.closed_won_times([WON[0], WON[1]])

    record = client.get_opportunity(WON[0])
    assert won[WON[0]] is not None and won[WON[0]] <= parse_salesforce_datetime(
        record["SystemModstamp"]
    )
    assert won == {WON[0]: client.closed_won_at(WON[0]), WON[1]: client.closed_won_at(WON[1])}
