"""The Salesforce client's batched calls over httpx.MockTransport: the SOQL they build, how
they chunk, how answers are keyed, and how sObject Collections results become errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from integrations.connectors.errors import (
    ConnectorError,
    NotFoundError,
    RateLimitedError,
    ResponseShapeError,
    TransientError,
    ValidationError,
)
from integrations.connectors.http import CallRecord
from integrations.connectors.salesforce import OPPORTUNITY_FIELDS, SalesforceClient

BASE = "https://acme.my.salesforce.com"
V = "/services/data/v62.0"


def opp_id(n: int) -> str:
    """An 18-char Opportunity id (the suffix is not a real checksum: the client never checks)."""
    return f"0065g0000{n:06d}AAA"


class Org:
    """A scripted Salesforce: answers each request with `answer(request)` and keeps them."""

    def __init__(self, answer: Callable[[httpx.Request], httpx.Response]) -> None:
        self.answer = answer
        self.requests: list[httpx.Request] = []
        self.calls: list[CallRecord] = []
        self.client = SalesforceClient(
            BASE,
            transport=httpx.MockTransport(self.handle),
            on_call=self.calls.append,
            sleep=lambda seconds: None,
            max_attempts=3,
        )

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answer(request)

    def soql(self) -> list[str]:
        return [parse_qs(urlsplit(str(r.url)).query)["q"][0] for r in self.requests]

    def bodies(self) -> list[Any]:
        return [json.loads(r.content) for r in self.requests]


def query_answer(records: list[dict[str, Any]]) -> httpx.Response:
    return httpx.Response(200, json={"totalSize": len(records), "done": True, "records": records})


def in_list(soql: str) -> list[str]:
    inside = soql.split(" IN (", 1)[1].split(")", 1)[0]
    return [item.strip().strip("'") for item in inside.split(",")]


def rows_for(rows: list[dict[str, Any]]) -> Callable[[httpx.Request], httpx.Response]:
    """Answer a query with the rows whose OpportunityId it asks for, in the given order."""

    def answer(request: httpx.Request) -> httpx.Response:
        wanted = in_list(parse_qs(urlsplit(str(request.url)).query)["q"][0])
        return query_answer([row for row in rows if row.get("OpportunityId") in wanted])

    return answer


def saved(request: httpx.Request) -> httpx.Response:
    """Every record of a collections request updated."""
    records = json.loads(request.content)["records"]
    return httpx.Response(
        200, json=[{"id": r["id"], "success": True, "errors": []} for r in records]
    )


# -- reads: one SOQL IN (...) per 200 ids -------------------------------------------------


def test_get_opportunities_runs_one_query_per_200_ids() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        soql = parse_qs(urlsplit(str(request.url)).query)["q"][0]
        return query_answer([{"Id": rid, "Name": rid} for rid in in_list(soql)])

    org = Org(answer)
    ids = [opp_id(n) for n in range(450)]

    found = org.client.get_opportunities([*ids, ids[0]])  # a repeat is asked for once

    assert list(found) == ids and found[ids[7]]["Name"] == ids[7]
    soql = org.soql()
    assert [len(in_list(q)) for q in soql] == [200, 200, 50]
    assert soql[0] == (
        f"SELECT {', '.join(OPPORTUNITY_FIELDS)} FROM Opportunity WHERE Id IN ("
        + ", ".join(f"'{rid}'" for rid in ids[:200])
        + ")"
    )
    assert [in_list(q) for q in soql] == [ids[:200], ids[200:400], ids[400:]]
    assert all(r.url.path == f"{V}/query" and r.method == "GET" for r in org.requests)


def test_ids_are_checked_before_anything_is_sent() -> None:
    org = Org(lambda request: query_answer([]))

    with pytest.raises(ValueError):
        org.client.get_opportunities([opp_id(1), "006' OR Name != '"])
    with pytest.raises(TypeError):
        org.client.first_quote_dates(opp_id(1))  # one id, not a list of them
    with pytest.raises(ValueError):
        org.client.closed_won_times([opp_id(1), None])  # type: ignore[list-item]
    assert org.requests == []
    assert org.client.get_opportunities([]) == {}
    assert org.client.closed_won_times([]) == {}
    assert org.requests == []


def test_answers_are_keyed_by_the_ids_as_given() -> None:
    full = opp_id(1)
    org = Org(lambda request: query_answer([{"Id": full, "Name": "Deal"}]))

    found = org.client.get_opportunities([full[:15], full])

    assert found == {full[:15]: {"Id": full, "Name": "Deal"}, full: {"Id": full, "Name": "Deal"}}
    assert in_list(org.soql()[0]) == [full[:15], full]


def test_a_record_nobody_asked_for_is_a_response_shape_error() -> None:
    org = Org(lambda request: query_answer([{"Id": opp_id(2)}]))
    with pytest.raises(ResponseShapeError):
        org.client.get_opportunities([opp_id(1)])


def test_get_opportunity_is_the_batched_read_with_one_id() -> None:
    org = Org(lambda request: query_answer([]))

    with pytest.raises(NotFoundError) as info:
        org.client.get_opportunity(opp_id(1))

    assert info.value.vendor_code == "NOT_FOUND"
    assert org.soql()[0].endswith(f"FROM Opportunity WHERE Id IN ('{opp_id(1)}')")


def test_first_quote_dates_keep_the_earliest_quote_per_opportunity() -> None:
    a, b, c = opp_id(1), opp_id(2), opp_id(3)
    rows = [
        {"Id": "0Q05g000000001AAA", "OpportunityId": b, "CreatedDate": "2026-01-01T09:00:00Z"},
        {"Id": "0Q05g000000002AAA", "OpportunityId": a, "CreatedDate": "2026-02-01T09:00:00Z"},
        {"Id": "0Q05g000000003AAA", "OpportunityId": b, "CreatedDate": "2026-03-01T09:00:00Z"},
    ]
    org = Org(rows_for(rows))

    first = org.client.first_quote_dates([a, b, c])

    assert first == {
        a: datetime(2026, 2, 1, 9, tzinfo=UTC),
        b: datetime(2026, 1, 1, 9, tzinfo=UTC),
    }
    assert org.soql() == [
        "SELECT Id, OpportunityId, CreatedDate FROM Quote "
        f"WHERE OpportunityId IN ('{a}', '{b}', '{c}') ORDER BY CreatedDate ASC, Id ASC"
    ]
    assert org.client.first_quote_date(c) is None


def test_closed_won_times_take_the_first_row_of_the_last_won_run() -> None:
    a, b, c = opp_id(1), opp_id(2), opp_id(3)

    def row(opp: str, stage: str, day: int) -> dict[str, Any]:
        return {
            "Id": f"0085g0000{day:06d}AAA",
            "OpportunityId": opp,
            "StageName": stage,
            "CreatedDate": f"2026-05-{day:02d}T12:00:00.000+0000",
        }

    rows = [
        row(a, "Prospecting", 1),
        row(b, "Prospecting", 2),
        row(a, "Closed Won", 3),
        row(b, "Closed Won", 4),
        row(a, "Closed Lost", 5),
        row(b, "Closed Won", 6),  # an Amount edit after the win: still won since the 4th
        row(a, "Closed Won", 7),
        row(a, "Closed Won", 8),
        row(c, "Closed Won", 9),
        row(c, "Negotiation/Review", 10),
    ]
    org = Org(rows_for(rows))

    won = org.client.closed_won_times([a, b, c, opp_id(4)])

    assert won == {
        a: datetime(2026, 5, 7, 12, tzinfo=UTC),
        b: datetime(2026, 5, 4, 12, tzinfo=UTC),
        c: None,
        opp_id(4): None,
    }
    assert org.soql()[0] == (
        "SELECT Id, OpportunityId, StageName, CreatedDate FROM OpportunityHistory "
        f"WHERE OpportunityId IN ('{a}', '{b}', '{c}', '{opp_id(4)}') "
        "ORDER BY CreatedDate ASC, Id ASC"
    )
    assert org.client.closed_won_at({"Id": a}) == won[a]


def test_history_rows_without_their_opportunity_are_a_response_shape_error() -> None:
    row = {
        "Id": "0085g0000000001AAA",
        "StageName": "Closed Won",
        "CreatedDate": "2026-05-01T12:00:00.000+0000",
    }
    org = Org(lambda request: query_answer([row]))
    with pytest.raises(ResponseShapeError):
        org.client.closed_won_times([opp_id(1)])


# -- writes: sObject Collections, 200 records per call -------------------------------------


def test_update_many_sends_chunks_of_200_in_order() -> None:
    org = Org(saved)
    updates = [(opp_id(n), {"Throughline_Key__c": f"K-{n}"}) for n in range(450)]

    results = org.client.update_many("Opportunity", updates, all_or_none=True)

    assert results == [None] * 450
    bodies = org.bodies()
    assert [len(b["records"]) for b in bodies] == [200, 200, 50]
    assert all(b["allOrNone"] is True for b in bodies)
    assert bodies[0]["records"][0] == {
        "attributes": {"type": "Opportunity"},
        "id": opp_id(0),
        "Throughline_Key__c": "K-0",
    }
    assert [r["id"] for b in bodies for r in b["records"]] == [rid for rid, _ in updates]
    assert all(
        r.method == "PATCH" and r.url.path == f"{V}/composite/sobjects" for r in org.requests
    )
    assert [c.operation for c in org.calls] == ["salesforce.Opportunity.update_many"] * 3
    keys = [c.idempotency_key for c in org.calls]
    assert all(keys) and len(set(keys)) == 3


def test_update_many_is_repeatable_so_a_server_error_is_retried() -> None:
    answers = iter(
        [httpx.Response(500, json=[{"message": "boom", "errorCode": "UNKNOWN_EXCEPTION"}])]
    )

    def answer(request: httpx.Request) -> httpx.Response:
        return next(answers, None) or saved(request)

    org = Org(answer)
    assert org.client.update_many("Opportunity", [(opp_id(1), {"Name": "A"})]) == [None]
    assert [c.attempts for c in org.calls] == [2]

    again = Org(saved)
    again.client.update_many("Opportunity", [(opp_id(1), {"Name": "A"})])
    assert again.calls[0].idempotency_key == org.calls[0].idempotency_key  # same values


def test_each_record_error_is_classified_like_a_single_patch() -> None:
    def failure(code: str, message: str, fields: list[str]) -> dict[str, Any]:
        return {
            "success": False,
            "errors": [{"statusCode": code, "message": message, "fields": fields}],
        }

    ids = [opp_id(n) for n in range(6)]
    bad_value = "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    answer = [
        {"id": ids[0], "success": True, "errors": []},
        {"id": ids[1], **failure(bad_value, "Billing_Model__c: bad value", ["Billing_Model__c"])},
        failure("ENTITY_IS_DELETED", "entity is deleted", []),
        {"id": ids[3], **failure("UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access", [])},
        {"id": ids[4], **failure("ALL_OR_NONE_OPERATION_ROLLED_BACK", "Record rolled back", [])},
        {"id": ids[5], **failure("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.", [])},
    ]  # fmt: skip
    org = Org(lambda request: httpx.Response(200, json=answer))

    results = org.client.update_many("Opportunity", [(rid, {"Name": "x"}) for rid in ids])

    ok, picklist, deleted, locked, rolled_back, limited = results
    assert ok is None
    assert isinstance(picklist, ValidationError) and picklist.field == "Billing_Model__c"
    assert picklist.vendor_code == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert picklist.message == "Billing_Model__c: bad value" and picklist.body == answer[1]
    assert picklist.status is None and picklist.operation == "salesforce.Opportunity.update_many"
    assert isinstance(deleted, NotFoundError) and deleted.vendor_code == "ENTITY_IS_DELETED"
    assert isinstance(locked, TransientError) and locked.vendor_code == "UNABLE_TO_LOCK_ROW"
    assert isinstance(rolled_back, TransientError)
    assert rolled_back.vendor_code == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert isinstance(limited, RateLimitedError)
    assert [c.attempts for c in org.calls] == [1]  # record errors are answers, not retried


@pytest.mark.parametrize(
    "answer",
    [
        {"not": "a list"},
        [{"id": opp_id(0), "success": True, "errors": []}],  # one result for two records
        [{"id": opp_id(1), "success": True}, {"id": opp_id(0), "success": True}],  # swapped
        [{"id": opp_id(0), "errors": []}, {"id": opp_id(1), "success": True}],  # no success
    ],
)
def test_collections_answers_that_do_not_fit_are_response_shape_errors(answer: Any) -> None:
    org = Org(lambda request: httpx.Response(200, json=answer))
    with pytest.raises(ResponseShapeError):
        org.client.update_many("Opportunity", [(opp_id(0), {"A": 1}), (opp_id(1), {"A": 2})])


def test_a_collections_call_refused_as_a_whole_raises() -> None:
    body = [{"message": "record limit reached", "errorCode": "EXCEEDED_ID_LIMIT"}]
    org = Org(lambda request: httpx.Response(400, json=body))
    with pytest.raises(ValidationError) as info:
        org.client.update_many("Opportunity", [(opp_id(0), {"Name": "x"})])
    assert info.value.status == 400 and info.value.vendor_code == "EXCEEDED_ID_LIMIT"


@pytest.mark.parametrize(
    "updates",
    [
        [(opp_id(0), {"Id": opp_id(0)})],
        [(opp_id(0), {"attributes": {"type": "Account"}})],
        [("not an id", {"Name": "x"})],
        [(opp_id(0), ["Name"])],
        [(opp_id(0),)],
    ],
)
def test_update_many_checks_its_input_before_sending(updates: Any) -> None:
    org = Org(saved)
    with pytest.raises(ValueError):
        org.client.update_many("Opportunity", updates)
    assert org.requests == []


def test_update_many_of_nothing_sends_nothing() -> None:
    org = Org(saved)
    assert org.client.update_many("Opportunity", []) == []
    with pytest.raises(ValueError):
        org.client.update_many("Bad Name", [])
    assert org.requests == []


def test_errors_are_connector_errors() -> None:
    # callers may handle any result with `isinstance(result, ConnectorError)`
    org = Org(
        lambda request: httpx.Response(
            200, json=[{"success": False, "errors": [{"statusCode": "X", "message": ""}]}]
        )
    )
    [result] = org.client.update_many("Opportunity", [(opp_id(0), {"Name": "x"})])
    assert isinstance(result, ConnectorError) and result.vendor_code == "X"
    assert result.message == "Salesforce refused the record without a reason"
