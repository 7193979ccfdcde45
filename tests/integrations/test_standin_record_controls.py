"""The stand-ins' record controls, as a person uses them for "manual edits" in the demo: edit,
copy and delete a record under `/__standin__/records/...`; an edit or a copy stamps the
vendor's modification time, so the connectors' incremental reads see it."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest
from starlette.testclient import TestClient

from integrations.connectors.registry import build_client
from integrations.models import Connection
from integrations.standins.common import StandinState, build_app

OLD = "2025-01-02T09:00:00Z"


class TinyState(StandinState):
    vendor = "tiny"

    def seed(self) -> None:
        self.table("widgets")["w1"] = {"id": "w1", "name": "Sprocket", "parts": [{"n": 1}]}


@pytest.fixture
def tiny() -> TestClient:
    state = TinyState()
    with TestClient(build_app(state, [], lambda status, code, message: {})) as client:
        yield client


def records(client: TestClient, name: str = "widgets") -> list[dict]:
    return client.get(f"/__standin__/records/{name}").json()["records"]


# -- the generic controls ----------------------------------------------------------------------


def test_delete_removes_the_record_and_a_second_delete_is_404(tiny: TestClient) -> None:
    answer = tiny.delete("/__standin__/records/widgets/w1")
    assert answer.status_code == 200
    assert answer.json() == {"deleted": {"collection": "widgets", "id": "w1"}}
    assert records(tiny) == []
    assert tiny.delete("/__standin__/records/widgets/w1").status_code == 404
    assert tiny.delete("/__standin__/records/ghosts/1").status_code == 404


def test_the_page_deletes_and_copies_through_forms(tiny: TestClient) -> None:
    page = tiny.get("/__standin__/").text
    assert "action='/__standin__/records/widgets/w1/copy'" in page
    assert "action='/__standin__/records/widgets/w1/delete'" in page
    form = {"content": b"", "headers": {"Content-Type": "application/x-www-form-urlencoded"}}
    copied = tiny.post("/__standin__/records/widgets/w1/copy", follow_redirects=False, **form)
    assert copied.status_code == 303 and copied.headers["location"] == "/__standin__/"
    assert len(records(tiny)) == 2
    gone = tiny.post("/__standin__/records/widgets/w1/delete", follow_redirects=False, **form)
    assert gone.status_code == 303
    assert [r["name"] for r in records(tiny)] == ["Sprocket"]
    assert all(r["id"] != "w1" for r in records(tiny))


def test_a_copy_gets_a_new_id_the_changes_asked_for_and_shares_nothing(tiny: TestClient) -> None:
    answer = tiny.post("/__standin__/records/widgets/w1/copy", json={"name": "Cog"})
    assert answer.status_code == 201
    copy = answer.json()
    assert copy["id"] != "w1" and copy["name"] == "Cog" and copy["parts"] == [{"n": 1}]
    assert tiny.get(f"/__standin__/records/widgets/{copy['id']}").json() == copy
    # nested values are the copy's own
    tiny.post(f"/__standin__/records/widgets/{copy['id']}", json={"parts": [{"n": 2}]})
    assert tiny.get("/__standin__/records/widgets/w1").json()["parts"] == [{"n": 1}]
    plain = tiny.post("/__standin__/records/widgets/w1/copy")  # no body: an exact copy
    assert plain.status_code == 201 and plain.json()["name"] == "Sprocket"


@pytest.mark.parametrize("body", [b"[1]", b"{oops", b'{"id": "w9"}'])
def test_a_copy_with_bad_changes_is_refused(tiny: TestClient, body: bytes) -> None:
    answer = tiny.post(
        "/__standin__/records/widgets/w1/copy",
        content=body,
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 400
    assert answer.json()["error"].startswith("bad JSON")
    assert len(records(tiny)) == 1


def test_copying_a_missing_record_is_404(tiny: TestClient) -> None:
    assert tiny.post("/__standin__/records/widgets/nope/copy").status_code == 404


# -- each vendor: the modification time, the new id, its indexes ----------------------------


def _connection(vendor: str) -> Connection:
    if vendor == "netsuite":
        return Connection.objects.get(name="NetSuite (demo)")
    return Connection.objects.get(vendor=vendor)


def test_netsuite_edit_is_seen_by_an_incremental_read_and_a_copy_keeps_the_upsert_on_the_original(
    demo,
) -> None:
    url = demo["netsuite"].url
    client = build_client(_connection("netsuite"))
    created = client.upsert_by_external_id("customer", "TL-CTRL-1", _customer_body())
    state = demo["netsuite"].state
    state.table("customer")[created]["lastModifiedDate"] = OLD
    since = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
    query = (
        "SELECT id FROM customer WHERE lastmodifieddate >= "
        f"TO_TIMESTAMP('{since:%Y-%m-%d %H:%M:%S}', 'YYYY-MM-DD HH24:MI:SS')"
    )
    assert [r["id"] for r in client.suiteql(query) if str(r["id"]) == created] == []

    edited = httpx.post(f"{url}/__standin__/records/customer/{created}", json={"phone": "123"})
    assert edited.json()["lastModifiedDate"] > OLD
    assert [str(r["id"]) for r in client.suiteql(query) if str(r["id"]) == created] == [created]

    # a modification time set by hand is kept
    httpx.post(f"{url}/__standin__/records/customer/{created}", json={"lastModifiedDate": OLD})
    assert state.table("customer")[created]["lastModifiedDate"] == OLD

    copy = httpx.post(f"{url}/__standin__/records/customer/{created}/copy").json()
    assert int(copy["id"]) > int(created)  # the entity sequence
    assert copy["externalId"] == "TL-CTRL-1" and copy["lastModifiedDate"] > OLD
    # the external id still names the original: an upsert updates it, not the copy
    client.upsert_by_external_id("customer", "TL-CTRL-1", {"phone": "456"})
    assert state.table("customer")[created]["phone"] == "456"
    assert state.table("customer")[copy["id"]]["phone"] == "123"
    # once the original is deleted, the copy answers for the external id
    assert httpx.delete(f"{url}/__standin__/records/customer/{created}").is_success
    assert client.find_by_external_id("customer", "TL-CTRL-1")["id"] == copy["id"]
    client.close()


def test_netsuite_copy_of_a_transaction_gets_a_new_number(demo) -> None:
    state = demo["netsuite"].state
    state.table("invoice")["5001"] = {
        "id": "5001",
        "tranId": "INV-9999",
        "externalId": "TL-INV-X",
        "createdDate": OLD,
        "lastModifiedDate": OLD,
    }
    state.records_changed("invoice", None, state.table("invoice")["5001"])
    copy = httpx.post(f"{demo['netsuite'].url}/__standin__/records/invoice/5001/copy").json()
    assert copy["id"] == "5002"
    assert copy["tranId"] != "INV-9999" and copy["tranId"].startswith("INV-")
    assert copy["createdDate"] > OLD and copy["externalId"] == "TL-INV-X"
    assert state.by_external_id("invoice", "TL-INV-X")["id"] == "5001"


def test_kantata_edit_moves_updated_at_so_updated_after_finds_it(demo) -> None:
    url = demo["kantata"].url
    state = demo["kantata"].state
    stamp_before = state.table("users")["2"]["updated_at"]
    client = build_client(_connection("kantata"))
    since = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    assert list(client.list("users", updated_after=since.isoformat())) == []

    httpx.post(f"{url}/__standin__/records/users/2", json={"headline": "Lead"}).raise_for_status()
    assert state.table("users")["2"]["updated_at"] > stamp_before
    assert [u["id"] for u in client.list("users", updated_after=since.isoformat())] == ["2"]

    copy = httpx.post(f"{url}/__standin__/records/users/3/copy", json={"full_name": "Eve"})
    assert copy.status_code == 201
    new_id = copy.json()["id"]
    assert int(new_id) >= 20  # the one counter
    assert client.get("users", new_id)["full_name"] == "Eve"
    assert httpx.delete(f"{url}/__standin__/records/users/{new_id}").is_success
    assert new_id not in {u["id"] for u in client.list("users")}
    client.close()


def test_salesforce_copy_is_a_record_of_its_type_with_a_new_id_and_stamps(demo) -> None:
    url = demo["salesforce"].url
    state = demo["salesforce"].state
    account = next(iter(state.table("Account")))
    answer = httpx.post(
        f"{url}/__standin__/records/Account/{account}/copy", json={"Name": "Northwind (copy)"}
    )
    assert answer.status_code == 201
    copy = answer.json()
    assert copy["Id"].startswith("001") and len(copy["Id"]) == 18 and copy["Id"] != account
    client = build_client(_connection("salesforce"))
    [found] = client.query(
        f"SELECT Id, Name, SystemModstamp FROM Account WHERE Id = '{copy['Id']}'"
    )
    assert found["Name"] == "Northwind (copy)"
    assert found["SystemModstamp"] == copy["SystemModstamp"] == copy["LastModifiedDate"]
    assert copy["CreatedDate"] == copy["SystemModstamp"]
    # an edit through the controls stamps the copy like any record
    state.table("Account")[copy["Id"]]["SystemModstamp"] = "2025-01-02T09:00:00.000+0000"
    edited = httpx.post(f"{url}/__standin__/records/Account/{copy['Id']}", json={"Phone": "1"})
    assert edited.json()["SystemModstamp"] > "2025-01-02T09:00:00.000+0000"
    assert httpx.delete(f"{url}/__standin__/records/Account/{copy['Id']}").is_success
    assert copy["Id"] not in state.table("Account")
    client.close()


def _customer_body() -> dict:
    return {
        "companyName": "Control Test Ltd",
        "subsidiary": {"id": "2"},
        "currency": {"id": "2"},
    }
