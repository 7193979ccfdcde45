"""Kantata resource-to-finance over real HTTP: approved time and expenses read incrementally
(a 20,000-entry month end in pages of 200 without quadratic work), cost rates, cost centres
and people from the ERP, assignments and members to the ERP, and contract amendments that
change the budget and the milestone plan idempotently."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from integrations.canonical.schemas import Milestone
from integrations.connectors.errors import (
    ConflictError,
    NotFoundError,
    ResponseShapeError,
    ValidationError,
)
from integrations.connectors.kantata import KantataClient
from integrations.connectors.kantata.mapping import (
    assignment_from_kantata,
    expense_from_kantata,
    story_from_milestone,
    time_entry_from_kantata,
)
from integrations.standins.kantata import DEFAULT_TOKEN, KantataApi, KantataState, create_app
from integrations.standins.server import RunningStandin, start_standin
from tests.integrations.test_kantata_connector import calls, client, fresh, sleeps

__all__ = ["calls", "client", "fresh", "sleeps"]  # fixtures shared with the connector tests

AUTH = {"Authorization": f"Bearer {DEFAULT_TOKEN}"}
LONG_AGO = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def standin() -> Iterator[RunningStandin]:
    running = start_standin("kantata", app=create_app(KantataState()))
    yield running
    running.stop()


@pytest.fixture
def api(standin: RunningStandin) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=standin.url, headers=AUTH, timeout=30) as http:
        yield http


def control(api: httpx.Client, name: str, **body: Any) -> dict:
    answer = api.post(f"/__standin__/kantata/{name}", json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()


def workspace(client: KantataClient, **fields: Any) -> dict:
    defaults = {"title": "Initech cloud", "price": "10000", "require_time_approvals": True,
                "require_expense_approvals": True}  # fmt: skip
    return client.create_workspace({**defaults, **fields})


def expense(client: KantataClient, wid: str, **fields: Any) -> dict:
    body = {"workspace_id": wid, "date": "2026-02-03", "category": "Travel",
            "amount_in_cents": 12_345, **fields}  # fmt: skip
    return client.create("expenses", "expense", body)


# -- time entries ---------------------------------------------------------------------------
def test_only_approved_time_comes_through_and_maps_exactly(
    api: httpx.Client, client: KantataClient
) -> None:
    ws = workspace(client)
    story = client.create("stories", "story", {"workspace_id": ws["id"], "title": "Build"})
    approved = control(api, "time-burst", workspace_id=ws["id"], count=3, approved=True,
                       user_ids=[2], story_id=story["id"], time_in_minutes=50,
                       date_performed="2026-02-27", notes="Design workshop")  # fmt: skip
    control(api, "time-burst", workspace_id=ws["id"], count=2, approved=False)

    entries = list(client.approved_time_entries(LONG_AGO))
    assert len(entries) == 3 and all(e["approved"] is True for e in entries)
    entry = time_entry_from_kantata(entries[0], project_key="OPP-7")
    assert entry.source_id == approved["first_id"] and entry.psa_project_id == ws["id"]
    assert entry.person_id == "2" and entry.task_id == story["id"]
    assert entry.hours == Decimal("0.83")  # 50 minutes, to the canonical hundredth
    assert entry.cost_rate == Decimal("72.50") and entry.currency == "USD"  # user 2's rate
    assert entry.work_date == dt.date(2026, 2, 27) and entry.notes == "Design workshop"

    # a project that needs no approval: Kantata's filter counts its time as approved
    bench = list(client.approved_time_entries(None, workspace_id=4))
    assert bench == []
    control(api, "time-burst", workspace_id=4, count=1, approved=False)
    (bench_entry,) = client.approved_time_entries(None, workspace_id=4)
    assert bench_entry["approved"] is True
    assert time_entry_from_kantata(bench_entry, project_key="BENCH").approved is True


def test_time_read_is_incremental_on_updated_after(
    api: httpx.Client, client: KantataClient
) -> None:
    ws = workspace(client)
    pending = control(api, "time-burst", workspace_id=ws["id"], count=2, approved=False)
    assert list(client.approved_time_entries(LONG_AGO, workspace_id=ws["id"])) == []
    time.sleep(1.05)  # Kantata's timestamps have whole seconds
    watermark = dt.datetime.now(dt.UTC)
    time.sleep(1.05)
    assert list(client.approved_time_entries(watermark)) == []

    result = control(api, "approve", time_entry_ids=[pending["first_id"]])
    assert result["time_entries"] == 1
    (changed,) = client.approved_time_entries(watermark)
    assert changed["id"] == pending["first_id"]
    with pytest.raises(ValueError):
        list(client.approved_time_entries(dt.datetime(2026, 1, 1)))  # naive


def test_a_20000_entry_month_end_reads_in_pages_of_200_without_quadratic_work(
    api: httpx.Client, client: KantataClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = workspace(client)
    burst = control(api, "time-burst", workspace_id=ws["id"], count=20_000, approved=True)
    assert burst["created"] == 20_000

    checks = {"n": 0}
    original = KantataApi._matches

    def counting(self: KantataApi, resource: str, record: dict, query: dict) -> bool:
        checks["n"] += 1
        return original(self, resource, record, query)

    monkeypatch.setattr(KantataApi, "_matches", counting)
    started = time.perf_counter()
    ids = [entry["id"] for entry in client.approved_time_entries(LONG_AGO)]
    elapsed = time.perf_counter() - started
    assert len(ids) == len(set(ids)) == 20_000
    assert ids == sorted(ids, key=int)  # created_at order, ties on the id
    assert checks["n"] <= 20_100  # every entry checked once for 100 pages, not once a page
    assert elapsed < 15, f"reading 20,000 entries took {elapsed:.1f} s"


def test_a_write_between_pages_is_seen_by_the_next_page(
    standin: RunningStandin, api: httpx.Client
) -> None:
    control(api, "time-burst", workspace_id=4, count=5, approved=True)
    params = {"order": "created_at:asc", "per_page": 3, "workspace_id": 4}
    first = api.get("/api/v1/time_entries.json", params={**params, "page": 1}).json()
    assert first["count"] == 5
    control(api, "time-burst", workspace_id=4, count=1, approved=True)
    second = api.get("/api/v1/time_entries.json", params={**params, "page": 2}).json()
    assert second["count"] == 6 and len(second["results"]) == 3

    # an edit in place is seen once the state is touched (control-surface POSTs touch it)
    entry_id = second["results"][-1]["id"]
    api.post(f"/__standin__/records/time_entries/{entry_id}", json={"workspace_id": "999"})
    third = api.get("/api/v1/time_entries.json", params={**params, "page": 2}).json()
    assert third["count"] == 5


def test_time_entry_filters(api: httpx.Client, client: KantataClient) -> None:
    ws = workspace(client)
    control(api, "time-burst", workspace_id=ws["id"], count=2, date_performed="2026-02-01")
    control(api, "time-burst", workspace_id=ws["id"], count=1, date_performed="2026-03-01",
            billable=False)  # fmt: skip

    def count(**params: Any) -> int:
        answer = api.get("/api/v1/time_entries.json", params=params)
        assert answer.status_code == 200, answer.text
        return answer.json()["count"]

    assert count(date_performed_between="2026-02-01:2026-02-28") == 2
    assert count(date_performed_between=":2026-02-28") == 2
    assert count(billable="false") == 1
    assert count(workspace_ids=f"4,{ws['id']}", with_user_ids="1") == 2  # users take turns
    assert count(updated_before="2020-01-01T00:00:00Z") == 0
    assert count(uninvoiced="true") == 3
    client.update("workspaces", "workspace", ws["id"], {"archived": True})
    assert count() == 0
    assert count(from_archived_workspaces="true") == 3
    assert api.get("/api/v1/time_entries.json", params={"updated_after": "soon"}).status_code == 422
    bad_range = {"date_performed_between": "2026-02-01"}
    assert api.get("/api/v1/time_entries.json", params=bad_range).status_code == 422


def test_time_burst_refuses_bad_requests(api: httpx.Client) -> None:
    def status(**body: Any) -> int:
        return api.post("/__standin__/kantata/time-burst", json=body).status_code

    assert status(workspace_id=4, count=0) == 400
    assert status(workspace_id=4, count=100_001) == 400
    assert status(workspace_id=999, count=1) == 400
    assert status(workspace_id=4, count=1, user_ids=[99]) == 400
    assert status(workspace_id=4, count=1, approved="maybe") == 400
    assert status(workspace_id=4, count=1, story_id=999) == 400


# -- expenses -------------------------------------------------------------------------------
def test_expenses_need_approval_and_map_with_receipt_and_exact_money(
    api: httpx.Client, client: KantataClient
) -> None:
    ws = workspace(client, currency="EUR")
    with_receipt = expense(client, ws["id"], receipt_id=501, billable=False, notes="Taxi")
    without = expense(client, ws["id"], amount_in_cents=0, category="Mileage")
    assert with_receipt["currency"] == "EUR" and "receipt_id" not in with_receipt
    assert list(client.approved_expenses(LONG_AGO)) == []

    control(api, "approve", expense_ids=[with_receipt["id"], without["id"]])
    mapped = [expense_from_kantata(e, project_key="OPP-9") for e in client.approved_expenses(None)]
    assert [m.source_id for m in mapped] == [with_receipt["id"], without["id"]]
    first, second = mapped
    assert first.amount == Decimal("123.45") and first.currency == "EUR"
    assert first.receipt_attached is True and second.receipt_attached is False
    assert first.billable is False and first.approved is True and first.notes == "Taxi"
    assert first.category == "Travel" and first.spent_on == dt.date(2026, 2, 3)

    locked = api.put(f"/api/v1/expenses/{with_receipt['id']}.json",
                     json={"expense": {"amount_in_cents": 1}})  # fmt: skip
    assert locked.status_code == 422
    editable = api.put(f"/api/v1/expenses/{without['id']}.json", json={"expense": {"notes": "x"}})
    assert editable.status_code == 422  # approved too


def test_expense_validation(client: KantataClient) -> None:
    ws = workspace(client)
    for fields, field in (
        ({"category": ""}, "category"),
        ({"amount_in_cents": -1}, "amount_in_cents"),
        ({"date": "03/02/2026"}, "date"),
        ({"story_id": 5}, "story_id"),  # a story of another workspace
        ({"receipt_id": "x"}, "receipt_id"),
    ):
        with pytest.raises(ValidationError) as invalid:
            expense(client, ws["id"], **fields)
        assert invalid.value.field == field
    with pytest.raises(ValidationError):
        client.create("expenses", "expense", {"workspace_id": ws["id"], "date": "2026-02-01"})
    too_many = [{"workspace_id": ws["id"], "date": "2026-02-01", "category": "Food",
                 "amount_in_cents": 1}] * 101  # fmt: skip
    assert len(client.create_many("expenses", too_many)) == 101  # chunked at 100


# -- reference data from the ERP ----------------------------------------------------------
def test_users_are_found_by_email(client: KantataClient) -> None:
    user = client.find_user_by_email("  Oliver.Hughes@Throughline-Demo.example ")
    assert user is not None and user["id"] == "2"
    assert client.find_user_by_email("nobody@throughline.demo") is None
    with pytest.raises(ValueError):
        client.find_user_by_email("not-an-address")


def test_cost_rates_are_upserted_per_currency_and_feed_new_time(
    api: httpx.Client, client: KantataClient, calls: list
) -> None:
    effective = dt.date(2026, 1, 1)
    usd = client.upsert_user_cost_rate("3", hourly_cost_cents=9_100, currency="USD",
                                       effective=effective)  # fmt: skip
    assert usd["id"] == "13" and usd["amount_in_subunits"] == 9_100
    posts = sum(c.method == "POST" for c in calls)
    same = client.upsert_user_cost_rate(3, hourly_cost_cents=9_100, currency="USD",
                                        effective=effective)  # fmt: skip
    assert same["id"] == "13" and sum(c.method == "POST" for c in calls) == posts  # no write
    eur = client.upsert_user_cost_rate("3", hourly_cost_cents=8_000, currency="EUR",
                                       effective=effective)  # fmt: skip
    assert eur["currency"] == "EUR" and eur["id"] != "13"

    membership = api.get("/api/v1/account_memberships/8.json").json()["account_memberships"]["8"]
    assert membership["cost_rate_in_cents"] == 9_100  # the account-currency rate
    entry = api.post(
        "/api/v1/time_entries.json",
        json={"time_entry": {"workspace_id": 4, "user_id": 3, "date_performed": "2026-02-02",
                             "time_in_minutes": 60}},
    ).json()  # fmt: skip
    assert next(iter(entry["time_entries"].values()))["cost_rate_in_cents"] == 9_100

    tomorrow = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)
    for bad in (
        {"hourly_cost_cents": 1, "currency": "USD", "effective": tomorrow},
        {"hourly_cost_cents": -1, "currency": "USD", "effective": effective},
        {"hourly_cost_cents": 1.5, "currency": "USD", "effective": effective},
        {"hourly_cost_cents": 1, "currency": "usd", "effective": effective},
    ):
        with pytest.raises(ValueError):
            client.upsert_user_cost_rate("3", **bad)
    with pytest.raises(NotFoundError):
        client.upsert_user_cost_rate("999", hourly_cost_cents=1, currency="USD",
                                     effective=effective)  # fmt: skip


def test_cost_rate_answers_are_checked(standin: RunningStandin, client: KantataClient) -> None:
    wrong = {"count": 1, "results": [{"key": "cost_rates", "id": "50"}],
             "cost_rates": {"50": {"currency": "USD", "amount_in_subunits": 1}}}  # fmt: skip
    standin.state.add_fault(method="POST", path="cost_rates", status=200, body=wrong, times=1)
    with pytest.raises(ResponseShapeError):
        client.upsert_user_cost_rate("2", hourly_cost_cents=5, currency="USD",
                                     effective=dt.date(2026, 1, 1))  # fmt: skip


def test_cost_centres_are_department_organizations(
    api: httpx.Client, client: KantataClient
) -> None:
    created = client.ensure_cost_centre("CC-100", "Delivery")
    assert created["name"] == "CC-100 - Delivery" and created["type"] == "Department"
    assert created["parent_id"] == "9" and created["ancestor_ids"] == ["9"]
    assert client.ensure_cost_centre("CC-100", "Delivery")["id"] == created["id"]
    renamed = client.ensure_cost_centre("CC-100", "Delivery  EMEA")
    assert renamed["id"] == created["id"] and renamed["name"] == "CC-100 - Delivery EMEA"
    other = client.ensure_cost_centre("CC-1000", "Sales")
    assert other["id"] != created["id"]
    with pytest.raises(ValueError):
        client.ensure_cost_centre("CC - 1", "Bad code")
    duplicate = {"organization": {"name": "cc-1000 - sales", "parent_id": 9}}
    taken = api.post("/api/v1/organizations.json", json=duplicate)
    assert taken.status_code == 422


# -- assignments and members to the ERP ----------------------------------------------------
def test_assignments_and_participations_map_to_canonical_assignments(
    client: KantataClient,
) -> None:
    ws = workspace(client)
    story = client.create(
        "stories",
        "story",
        {"workspace_id": ws["id"], "title": "Migrate", "start_date": "2026-03-01",
         "due_date": "2026-03-31"},
    )  # fmt: skip
    made = client.create(
        "assignments",
        "assignment",
        {"story_id": story["id"], "assignee_id": 3, "estimated_minutes": 2_400},
    )
    member = client.create("participations", "participation",
                           {"workspace_id": ws["id"], "user_id": 3})  # fmt: skip

    (listed,) = client.assignments(LONG_AGO)
    mapped = assignment_from_kantata(listed)
    assert mapped.source_id == f"assignment:{made['id']}" and mapped.psa_project_id == ws["id"]
    assert mapped.person_id == "3" and mapped.task_id == story["id"]
    assert mapped.allocated_hours == Decimal("40.00")
    assert mapped.start_date == dt.date(2026, 3, 1) and mapped.end_date == dt.date(2026, 3, 31)

    (participation,) = client.participations(ws["id"], updated_after=LONG_AGO)
    project_level = assignment_from_kantata(participation)
    assert project_level.source_id == f"participation:{member['id']}"
    assert project_level.task_id is None and project_level.allocated_hours is None

    time.sleep(1.05)
    watermark = dt.datetime.now(dt.UTC)
    time.sleep(1.05)
    assert list(client.assignments(watermark)) == []
    client.update("assignments", "assignment", made["id"], {"current": False})
    (ended,) = client.assignments(watermark)
    assert assignment_from_kantata(ended).allocated_hours == Decimal("0.00")
    with pytest.raises(ValidationError):
        client.create("participations", "participation", {"workspace_id": ws["id"], "user_id": 3})


# -- amendments ---------------------------------------------------------------------------
def test_budget_updates_are_exact_and_idempotent(client: KantataClient, calls: list) -> None:
    ws = workspace(client)
    updated = client.update_workspace_budget(ws["id"], price=Decimal("12500.10"), currency="USD")
    assert updated["price_in_cents"] == 1_250_010 and updated["price"] == "$12,500.10"
    puts = sum(c.method == "PUT" for c in calls)
    client.update_workspace_budget(ws["id"], price=Decimal("12500.1"), currency="USD")
    assert sum(c.method == "PUT" for c in calls) == puts
    yen = client.update_workspace_budget(ws["id"], price=Decimal("1500000"), currency="JPY")
    assert yen["price_in_cents"] == 1_500_000 and yen["currency_base_unit"] == 1
    for price, currency in ((Decimal("1.5"), "JPY"), (Decimal("-1"), "USD"),
                            (Decimal("NaN"), "USD"), (1.5, "USD")):  # fmt: skip
        with pytest.raises(ValueError):
            client.update_workspace_budget(ws["id"], price=price, currency=currency)


def test_currency_cannot_change_once_time_is_logged(
    api: httpx.Client, client: KantataClient
) -> None:
    ws = workspace(client)
    control(api, "time-burst", workspace_id=ws["id"], count=1)
    with pytest.raises(ValidationError) as refused:
        client.update_workspace_budget(ws["id"], price=Decimal("10"), currency="EUR")
    assert refused.value.field == "currency"


def plan(*items: tuple[str, str, str], currency: str = "USD") -> list[dict]:
    return [
        story_from_milestone(
            Milestone(name=name, due_date=dt.date.fromisoformat(due), amount=Decimal(amount)),
            currency=currency,
        )
        for name, due, amount in items
    ]


def test_the_milestone_plan_is_replaced_idempotently(
    api: httpx.Client, client: KantataClient, calls: list
) -> None:
    ws = workspace(client)
    original = client.replace_milestone_plan(
        ws["id"],
        plan(
            ("Kick-off", "2026-02-15", "1000"),
            ("Go-live", "2026-09-01", "5000"),
            ("Hypercare", "2026-10-01", "500"),
        ),
    )
    assert [s["title"] for s in original] == ["Kick-off", "Go-live", "Hypercare"]
    control(api, "complete-milestone", story_id=original[0]["id"])

    amended = plan(("Kick-off", "2026-02-15", "1000"), ("go-live", "2026-09-15", "5500.55"),
                   ("Training", "2026-09-20", "750"))  # fmt: skip
    result = client.replace_milestone_plan(ws["id"], amended)
    assert [s["id"] for s in result[:2]] == [original[0]["id"], original[1]["id"]]
    assert result[1]["title"] == "Go-live"  # matched despite case; not renamed
    assert (
        result[1]["due_date"] == "2026-09-15" and result[1]["budget_estimate_in_cents"] == 550_055
    )
    assert result[2]["title"] == "Training"
    stories = {s["title"]: s for s in client.list_milestones(ws["id"])}
    assert stories["Hypercare"]["archived"] is True
    assert stories["Kick-off"]["state"] == "completed" and stories["Kick-off"]["archived"] is False

    writes = sum(c.method in ("POST", "PUT") for c in calls)
    again = client.replace_milestone_plan(ws["id"], amended)
    assert [s["id"] for s in again] == [s["id"] for s in result]
    assert sum(c.method in ("POST", "PUT") for c in calls) == writes  # nothing written

    back = client.replace_milestone_plan(
        ws["id"], [*amended, *plan(("Hypercare", "2026-10-01", "500"))]
    )
    assert back[-1]["id"] == original[2]["id"] and back[-1]["archived"] is False


def test_a_plan_that_rewrites_a_billed_milestone_is_a_conflict(
    api: httpx.Client, client: KantataClient, calls: list
) -> None:
    ws = workspace(client)
    first = client.replace_milestone_plan(
        ws["id"], plan(("Kick-off", "2026-02-15", "1000"), ("Go-live", "2026-09-01", "5000"))
    )
    control(api, "complete-milestone", story_id=first[0]["id"])
    writes = sum(c.method in ("POST", "PUT") for c in calls)
    with pytest.raises(ConflictError) as conflict:
        client.replace_milestone_plan(
            ws["id"], plan(("Kick-off", "2026-02-15", "1200"), ("Launch", "2026-09-01", "5000"))
        )
    assert conflict.value.vendor_code == "milestone_completed"
    assert "Kick-off" in conflict.value.message
    assert sum(c.method in ("POST", "PUT") for c in calls) == writes  # refused before writing
    with pytest.raises(ValueError):
        client.replace_milestone_plan(ws["id"], [{"title": "A"}, {"title": " a "}])
    with pytest.raises(ValueError):
        client.replace_milestone_plan(ws["id"], [{"due_date": "2026-01-01"}])
