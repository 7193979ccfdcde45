"""Kantata's change feed and milestone billing over real HTTP: Subscribed Events fed by every
write, the client's cursor (bursts that share a second included), milestone completion by a
project manager, and ERP outcomes written back as external references."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from integrations.canonical.errors import MappingError
from integrations.connectors.errors import NotFoundError, ResponseShapeError
from integrations.connectors.kantata import KantataClient
from integrations.connectors.kantata.client import decode_event_cursor, encode_event_cursor
from integrations.connectors.kantata.mapping import milestone_completion_from_story
from integrations.standins.kantata import DEFAULT_TOKEN, KantataState, create_app
from integrations.standins.server import RunningStandin, start_standin
from tests.integrations.test_kantata_connector import Sleeps, calls, client, fresh, sleeps

__all__ = ["calls", "client", "fresh", "sleeps"]  # fixtures shared with the connector tests

AUTH = {"Authorization": f"Bearer {DEFAULT_TOKEN}"}


@pytest.fixture(scope="module")
def standin() -> Iterator[RunningStandin]:
    running = start_standin("kantata", app=create_app(KantataState()))
    yield running
    running.stop()


@pytest.fixture
def api(standin: RunningStandin) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=standin.url, headers=AUTH, timeout=10) as http:
        yield http


def control(api: httpx.Client, name: str, **body: Any) -> httpx.Response:
    return api.post(f"/__standin__/kantata/{name}", json=body)


def project(client: KantataClient, **fields: Any) -> tuple[dict, list[dict]]:
    """A budgeted USD workspace with two milestones (1,500.00 and 2,500.50)."""
    workspace = client.create_workspace({"title": "Globex rollout", "price": "4000", **fields})
    stories = client.create_milestones(
        workspace["id"],
        [
            {"title": "Kick-off", "due_date": "2026-02-15", "budget_estimate_in_cents": 150_000},
            {"title": "Go-live", "due_date": "2026-09-01", "budget_estimate_in_cents": 250_050},
        ],
    )
    return workspace, stories


def drain(client: KantataClient, cursor: str | None, limit: int = 200) -> tuple[list, str | None]:
    events: list[dict] = []
    while True:
        batch, cursor = client.events(cursor, limit=limit)
        if not batch:
            return events, cursor
        events += batch


# -- the feed at the stand-in --------------------------------------------------------------
def test_every_write_lands_in_the_feed_in_kantatas_shape(
    api: httpx.Client, client: KantataClient
) -> None:
    workspace, (kickoff, _golive) = project(client)
    client.update("stories", "story", kickoff["id"], {"title": "Kick-off workshop"})
    client.update("stories", "story", kickoff["id"], {"title": "Kick-off workshop"})  # no-op

    body = api.get(
        "/api/v1/subscribed_events.json",
        params={"order": "created_at:asc", "optional_fields": "payload_changes,current_payload"},
    ).json()
    events = [body["subscribed_events"][r["id"]] for r in body["results"]]
    assert [e["event_type"] for e in events] == [
        "workspace:created",
        "story:created",
        "story:created",
        "story:updated",  # the repeated save changed nothing: no second event
    ]
    update = events[-1]
    assert update["subject_type"] == "Story" and update["subject_id"] == int(kickoff["id"])
    assert update["user_id"] == 1 and update["account_id"] == 1001
    assert update["context_workspace_id"] == workspace["id"]
    assert json.loads(update["payload_changes"]) == {"title": ["Kick-off", "Kick-off workshop"]}
    assert json.loads(update["current_payload"])["title"] == "Kick-off workshop"
    plain = api.get("/api/v1/subscribed_events.json").json()
    assert "payload_changes" not in next(iter(plain["subscribed_events"].values()))
    assert plain["results"][0]["id"] == update["id"]  # default order: newest first
    # the non-Kantata alias serves the same feed
    assert api.get("/api/v1/events.json").json()["count"] == 4


def test_feed_filters_collapse_and_subject_include(
    standin: RunningStandin, api: httpx.Client, client: KantataClient
) -> None:
    workspace, (kickoff, golive) = project(client)
    for title in ("A", "B"):
        client.update("stories", "story", golive["id"], {"title": title})

    def ids(**params: str) -> list[str]:
        body = api.get("/api/v1/subscribed_events.json", params=params).json()
        return [body["subscribed_events"][r["id"]]["event_type"] for r in body["results"]]

    assert ids(event_types="story:updated") == ["story:updated", "story:updated"]
    assert ids(subject_type="Story", subject_id=kickoff["id"]) == ["story:created"]
    assert ids(subject_type="Story", subject_id=golive["id"], most_recent="true") == [
        "story:updated"
    ]
    assert sorted(ids(subject_type="Story", most_recent_by_event_type="true")) == [
        "story:created",
        "story:created",
        "story:updated",
    ]
    assert ids(user_ids="2") == []
    assert (
        api.get("/api/v1/subscribed_events.json", params={"subject_id": kickoff["id"]}).status_code
        == 422
    )
    both = {"most_recent": "true", "most_recent_by_event_type": "true"}
    assert api.get("/api/v1/subscribed_events.json", params=both).status_code == 422
    assert (
        api.get(
            "/api/v1/subscribed_events.json", params={"optional_fields": "everything"}
        ).status_code
        == 422
    )

    with_subject = api.get(
        "/api/v1/subscribed_events.json",
        params={"include": "subject", "event_types": "workspace:created"},
    ).json()
    (event,) = with_subject["subscribed_events"].values()
    assert event["subject_ref"] == {"key": "workspaces", "id": workspace["id"]}
    assert with_subject["workspaces"][workspace["id"]]["title"] == "Globex rollout"
    del standin.state.table("workspaces")[workspace["id"]]
    standin.state.touch()
    gone = api.get(
        "/api/v1/subscribed_events.json",
        params={"include": "subject", "event_types": "workspace:created"},
    ).json()
    assert next(iter(gone["subscribed_events"].values()))["subject_ref"] is None


def test_events_older_than_nine_days_are_gone(
    standin: RunningStandin, api: httpx.Client, client: KantataClient
) -> None:
    project(client)
    old = (dt.datetime.now(dt.UTC) - dt.timedelta(days=10)).replace(microsecond=0).isoformat()
    first = next(iter(standin.state.table("subscribed_events").values()))
    first["created_at"] = old
    standin.state.touch()
    assert api.get("/api/v1/subscribed_events.json").json()["count"] == 2
    client.create("stories", "story", {"workspace_id": 4, "title": "Prunes the feed"})
    assert first["id"] not in standin.state.table("subscribed_events")


# -- the client's cursor ------------------------------------------------------------------
def test_the_cursor_reads_every_event_once_across_a_one_second_burst(
    api: httpx.Client, client: KantataClient
) -> None:
    workspace, _stories = project(client)
    burst = control(api, "time-burst", workspace_id=workspace["id"], count=450, approved=True)
    assert burst.status_code == 200 and burst.json()["created"] == 450

    events, cursor = drain(client, None, limit=200)
    assert len(events) == 453 and len({e["id"] for e in events}) == 453
    assert events[0]["event_type"] == "workspace:created"
    assert {e["event_type"] for e in events[3:]} == {"time_entry:created"}
    assert [e["subject_id"] for e in events[3:6]] == [
        str(int(burst.json()["first_id"]) + i) for i in (0, 2, 4)
    ]  # entry ids interleave with their events' ids
    again, same = client.events(cursor)
    assert again == [] and same == cursor

    client.update("workspaces", "workspace", workspace["id"], {"title": "Renamed"})
    (renamed,), _next = client.events(cursor)
    assert renamed["event_type"] == "workspace:updated"
    assert renamed["payload_changes"] == {"title": ["Globex rollout", "Renamed"]}


def test_the_cursor_moves_past_earlier_seconds(
    standin: RunningStandin, client: KantataClient
) -> None:
    project(client)
    events = list(standin.state.table("subscribed_events").values())
    base = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=5)
    for event, second in zip(events, (0, 1, 1), strict=True):  # three events, two seconds
        event["created_at"] = (base + dt.timedelta(seconds=second)).isoformat()
    standin.state.touch()
    batch, cursor = client.events(None, limit=2)
    assert len(batch) == 2
    since, skip = decode_event_cursor(cursor)
    assert since == events[0]["created_at"] and skip == 1  # re-based on the earlier second
    rest, _cursor = client.events(cursor)
    assert [e["id"] for e in rest] == [events[2]["id"]]


def test_bad_cursors_and_limits_are_refused(client: KantataClient) -> None:
    for cursor in ("", "v2||0", "v1|yesterday|0", "v1||x"):
        with pytest.raises(ValueError):
            client.events(cursor)
    for limit in (0, 201, True):
        with pytest.raises(ValueError):
            client.events(None, limit=limit)
    assert decode_event_cursor(encode_event_cursor(None, 7)) == (None, 7)


@pytest.mark.parametrize(
    "event",
    [
        {"event_type": "no-colon", "subject_type": "Story", "subject_id": 5,
         "created_at": "2026-03-01T10:00:00+00:00"},
        {"event_type": "story:updated", "subject_type": "Story", "subject_id": "x",
         "created_at": "2026-03-01T10:00:00+00:00"},
        {"event_type": "story:updated", "subject_type": "Story", "subject_id": 5,
         "created_at": "soon"},
        {"event_type": "story:updated", "subject_type": "Story", "subject_id": 5,
         "created_at": "2026-03-01T10:00:00+00:00", "payload_changes": "{not json"},
        {"event_type": "story:updated", "subject_type": "", "subject_id": 5,
         "created_at": "2026-03-01T10:00:00+00:00"},
    ],
)  # fmt: skip
def test_a_malformed_event_is_a_response_shape_error(
    standin: RunningStandin, client: KantataClient, event: dict
) -> None:
    body = {"count": 1, "results": [{"key": "subscribed_events", "id": "90"}],
            "subscribed_events": {"90": event}, "meta": {"page_count": 1}}  # fmt: skip
    standin.state.add_fault(path="subscribed_events", status=200, body=body, times=1)
    with pytest.raises(ResponseShapeError):
        client.events(None)


def test_events_out_of_created_at_order_are_refused(
    standin: RunningStandin, client: KantataClient
) -> None:
    def event(second: int) -> dict:
        return {"event_type": "story:updated", "subject_type": "Story", "subject_id": 5,
                "created_at": f"2026-03-01T10:00:0{second}+00:00"}  # fmt: skip

    body = {"count": 2, "results": [{"key": "subscribed_events", "id": "1"},
                                    {"key": "subscribed_events", "id": "2"}],
            "subscribed_events": {"1": event(5), "2": event(3)}}  # fmt: skip
    standin.state.add_fault(path="subscribed_events", status=200, body=body, times=1)
    with pytest.raises(ResponseShapeError):
        client.events(None)


# -- milestone completion ---------------------------------------------------------------
def test_a_completed_milestone_becomes_a_milestone_completion(
    api: httpx.Client, client: KantataClient
) -> None:
    workspace, (_kickoff, golive) = project(client)
    _events, cursor = drain(client, None)

    done = control(api, "complete-milestone", story_id=golive["id"])
    assert done.status_code == 200 and done.json()["changed"] is True
    story = done.json()["story"]
    assert story["state"] == "completed" and story["percentage_complete"] == 100
    assert control(api, "complete-milestone", story_id=golive["id"]).json()["changed"] is False

    (event,), _cursor = client.events(cursor)
    assert event["event_type"] == "story:updated" and event["user_id"] == 2  # not our write
    assert event["payload_changes"]["state"] == ["not started", "completed"]

    fetched = client.milestone_story(event["subject_id"])
    completion = milestone_completion_from_story(
        fetched, client.get("workspaces", workspace["id"]), project_key="OPP-1001"
    )
    assert completion.amount == Decimal("2500.50") and completion.currency == "USD"
    assert completion.psa_milestone_id == golive["id"]
    assert completion.psa_project_id == workspace["id"]
    assert completion.name == "Go-live"
    assert completion.completed_on == dt.datetime.fromisoformat(fetched["completed_at"]).date()

    changes = api.get("/api/v1/story_state_changes.json", params={"story_id": golive["id"]})
    (change,) = changes.json()["story_state_changes"].values()
    assert change["state"] == "completed" and change["user_id"] == "2"
    assert api.get("/api/v1/story_state_changes.json").status_code == 422
    unrestricted = {"include": "story_state_changes"}
    assert api.get("/api/v1/stories.json", params=unrestricted).status_code == 422


def test_stories_complete_through_the_api_too(client: KantataClient) -> None:
    _workspace, (kickoff, _golive) = project(client)
    started = client.update("stories", "story", kickoff["id"], {"percentage_complete": 40})
    assert started["state"] == "started"
    done = client.update("stories", "story", kickoff["id"], {"percentage_complete": 100})
    assert done["state"] == "completed" and done["status"] == "completed"
    assert client.milestone_story(kickoff["id"])["completed_at"] is not None
    never = client.create("stories", "story", {"workspace_id": 4, "title": "Open"})
    assert client.milestone_story(never["id"])["completed_at"] is None
    with pytest.raises(NotFoundError):
        client.milestone_story(99_999)


def test_complete_milestone_control_refuses_bad_requests(api: httpx.Client) -> None:
    assert control(api, "complete-milestone", story_id=5).status_code == 400  # a task
    assert control(api, "complete-milestone", story_id=9999).status_code == 400
    assert control(api, "complete-milestone").status_code == 400
    assert api.post("/__standin__/kantata/complete-milestone", content=b"[").status_code == 400


def test_only_a_completed_milestone_of_that_workspace_maps(client: KantataClient) -> None:
    workspace, (kickoff, _golive) = project(client)
    fetched = client.milestone_story(kickoff["id"])
    with pytest.raises(MappingError, match="state"):
        milestone_completion_from_story(fetched, workspace, project_key="OPP-1")
    done = {**fetched, "state": "completed"}
    with pytest.raises(MappingError, match="workspace_id"):
        milestone_completion_from_story(done, {**workspace, "id": "4"}, project_key="OPP-1")


# -- ERP outcomes back on PSA records -----------------------------------------------------
def test_invoice_number_and_payment_state_go_onto_the_milestone(
    standin: RunningStandin, api: httpx.Client, client: KantataClient
) -> None:
    _workspace, (kickoff, _golive) = project(client)
    _events, cursor = drain(client, None)
    first = client.set_story_reference(
        kickoff["id"], ref="INV-1001", model="Invoice", status="synced"
    )
    again = client.set_story_reference(
        kickoff["id"], ref="INV-1001", model="Invoice", status="synced"
    )
    paid = client.set_story_reference(kickoff["id"], ref="INV-1001", model="Invoice", status="paid")
    assert first["id"] == again["id"] == paid["id"]
    assert paid["status"] == "successful" and paid["external_status"] == "paid"
    assert paid["service_name"] == "throughline" and paid["service_model"] == "Invoice"
    assert len(standin.state.table("external_references")) == 1
    assert client.events(cursor)[0] == []  # references make no events: no echo to drop

    story = api.get(
        f"/api/v1/stories/{kickoff['id']}.json", params={"include": "external_references"}
    ).json()
    (ref_id,) = story["stories"][kickoff["id"]]["external_reference_ids"]
    assert story["external_references"][ref_id]["service_model_ref"] == "INV-1001"


def test_posted_time_and_expenses_carry_the_erp_reference(
    api: httpx.Client, client: KantataClient
) -> None:
    workspace, _stories = project(client)
    burst = control(api, "time-burst", workspace_id=workspace["id"], count=1).json()
    expense = client.create(
        "expenses",
        "expense",
        {"workspace_id": workspace["id"], "date": "2026-02-02", "category": "Travel",
         "amount_in_cents": 4200},
    )  # fmt: skip
    entry_ref = client.set_reference(
        "TimeEntry", burst["first_id"], ref="TB-77", model="TimeBill", status="synced"
    )
    expense_ref = client.set_reference(
        "Expense", expense["id"], ref="ER-12", model="ExpenseReport", status="synced"
    )
    assert entry_ref["subject_type"] == "TimeEntry" and expense_ref["subject_id"] == int(
        expense["id"]
    )
    found = api.get(
        "/api/v1/external_references.json",
        params={"subject_type": "Expense", "service_model_ref": "ER-12"},
    ).json()
    assert found["count"] == 1


def test_set_reference_refuses_bad_input_and_a_wrong_answer(
    standin: RunningStandin, client: KantataClient
) -> None:
    _workspace, (kickoff, _golive) = project(client)
    with pytest.raises(ValueError):
        client.set_reference("Invoice", 1, ref="X", model="Invoice", status="synced")
    with pytest.raises(ValueError):
        client.set_story_reference(kickoff["id"], ref="X", model="Invoice", status="late")
    with pytest.raises(ValueError):
        client.set_story_reference(kickoff["id"], ref=" ", model="Invoice", status="paid")
    with pytest.raises(ValueError):
        client.set_story_reference("abc", ref="X", model="Invoice", status="paid")
    wrong = {"count": 1, "results": [{"key": "external_references", "id": "70"}],
             "external_references": {"70": {"subject_type": "Story", "subject_id": 1,
                                            "service_model_ref": "OTHER",
                                            "external_status": "paid"}}}  # fmt: skip
    standin.state.add_fault(path="create_or_update", status=200, body=wrong, times=1)
    with pytest.raises(ResponseShapeError):
        client.set_story_reference(kickoff["id"], ref="X", model="Invoice", status="paid")


def test_a_500_on_the_reference_upsert_is_retried(
    standin: RunningStandin, client: KantataClient, sleeps: Sleeps
) -> None:
    _workspace, (kickoff, _golive) = project(client)
    standin.state.add_fault(method="POST", path="create_or_update", status=500, times=1)
    ref = client.set_story_reference(kickoff["id"], ref="INV-9", model="Invoice", status="overdue")
    assert ref["external_status"] == "overdue" and len(sleeps) == 1


# -- persistence ------------------------------------------------------------------------
def test_events_and_new_records_survive_snapshot_and_restore(
    standin: RunningStandin, client: KantataClient
) -> None:
    _workspace, (kickoff, _golive) = project(client)
    client.set_story_reference(kickoff["id"], ref="INV-1", model="Invoice", status="synced")
    snapshot = json.loads(json.dumps(standin.state.snapshot()))

    restored = KantataState()
    restored.restore(snapshot)
    assert restored.table("subscribed_events") == standin.state.table("subscribed_events")
    (ref_id,) = restored.references_of("Story", kickoff["id"]).values()
    assert restored.table("external_references")[ref_id]["service_model_ref"] == "INV-1"
    running = start_standin("kantata", app=create_app(restored))
    try:
        with KantataClient(running.url, token=DEFAULT_TOKEN, sleep=lambda s: None) as other:
            again = other.set_story_reference(
                kickoff["id"], ref="INV-1", model="Invoice", status="paid"
            )
            assert again["external_status"] == "paid"
            events, _cursor = drain(other, None)
            assert len(events) == 3
    finally:
        running.stop()
    assert len(restored.table("external_references")) == 1  # updated, not duplicated


def test_a_first_round_snapshot_gets_memberships_and_organization_roots(
    standin: RunningStandin,
) -> None:
    snapshot = json.loads(json.dumps(standin.state.snapshot()))
    for table in ("account_memberships", "organizations", "cost_rates"):
        del snapshot["collections"][table]
    for uid in ("14", "15"):  # the subcontractors came later
        del snapshot["collections"]["users"][uid]
    for user in snapshot["collections"]["users"].values():
        del user["account_membership_id"]
    restored = KantataState()
    restored.restore(snapshot)
    memberships = restored.table("account_memberships")
    assert sorted(m["user_id"] for m in memberships.values()) == ["1", "2", "3"]
    assert all(int(mid) >= snapshot["next_id"] for mid in memberships)  # no id reused
    roots = sorted(o["type"] for o in restored.table("organizations").values())
    assert roots == ["Department", "Geography"]
    restored.restore(json.loads(json.dumps(restored.snapshot())))  # nothing added twice
    assert len(restored.table("account_memberships")) == 3
