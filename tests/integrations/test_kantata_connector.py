"""The Kantata client against the Kantata stand-in over real HTTP: paging, classified errors,
safe retries, untrusted bodies, and idempotent project provisioning (reference, then marker,
then create) that never duplicates workspaces or milestones on replay."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from integrations.canonical.schemas import Budget, Milestone, Project
from integrations.connectors.errors import (
    AuthError,
    ConflictError,
    NotFoundError,
    RateLimitedError,
    ResponseShapeError,
    TransientError,
    ValidationError,
)
from integrations.connectors.http import CallRecord
from integrations.connectors.kantata import KantataClient, build_client, unpack_envelope
from integrations.connectors.kantata.mapping import (
    make_marker,
    milestones_from_stories,
    project_ref,
    story_from_milestone,
    workspace_from_project,
)
from integrations.standins.kantata import DEFAULT_TOKEN, KantataState, create_app
from integrations.standins.server import RunningStandin, start_standin


@pytest.fixture(scope="module")
def standin() -> Iterator[RunningStandin]:
    running = start_standin("kantata", app=create_app(KantataState()))
    yield running
    running.stop()


@pytest.fixture(autouse=True)
def fresh(standin: RunningStandin) -> None:
    standin.state.reset()


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def calls() -> list[CallRecord]:
    return []


@pytest.fixture
def client(
    standin: RunningStandin, sleeps: Sleeps, calls: list[CallRecord]
) -> Iterator[KantataClient]:
    with KantataClient(
        standin.url, token=DEFAULT_TOKEN, sleep=sleeps, on_call=calls.append, timeout=5
    ) as c:
        yield c


def fault(standin: RunningStandin, **rule: Any) -> None:
    standin.state.add_fault(**rule)


def api_calls(standin: RunningStandin, method: str, path: str, expected: int) -> int:
    """How many logged calls match, waiting up to 2 s for `expected`: the stand-in logs a
    request after its answer has gone out, so the log can trail the client by a moment."""

    def count() -> int:
        with standin.state.lock:
            return sum(c["method"] == method and path in c["path"] for c in standin.state.calls)

    deadline = time.monotonic() + 2
    while count() < expected and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)  # let a surplus call, if any, reach the log too
    return count()


PROJECT = Project(
    key="OPP-1001",
    name="Globex ERP rollout",
    customer_name="Globex Corporation",
    legal_entity_code="US01",
    start_date=dt.date(2026, 2, 1),
    end_date=dt.date(2026, 9, 30),
    budget=Budget(amount=Decimal("250000.10"), currency="USD", hours=Decimal("1200")),
    milestones=(
        Milestone(name="Kick-off", due_date=dt.date(2026, 2, 15), amount=Decimal("25000.05")),
        Milestone(name="Go-live", due_date=dt.date(2026, 9, 1), amount=Decimal("200000.05")),
        Milestone(name="Hypercare", due_date=dt.date(2026, 9, 30), amount=Decimal("25000.00"),
                  billable=False),
    ),
)  # fmt: skip


def provision(client: KantataClient, project: Project) -> dict[str, Any]:
    """What the provisioning workflow does with the client: look up, then create once."""
    marker = make_marker(project.key)
    workspace = client.find_workspace_by_reference(project.key)
    if workspace is None:
        workspace = client.find_workspace_by_marker(marker)
        if workspace is None:
            workspace = client.create_workspace(
                workspace_from_project(project, marker=marker), ref=project.key
            )
        client.add_reference(workspace["id"], project.key)
    currency = project.budget.currency
    client.create_milestones(
        workspace["id"], [story_from_milestone(m, currency=currency) for m in project.milestones]
    )
    return workspace


# -- generic calls --------------------------------------------------------------------------
def test_list_follows_every_page_and_yields_each_record_once(
    standin: RunningStandin, client: KantataClient
) -> None:
    created = client.create_many("workspaces", [{"title": f"Project {i}"} for i in range(30)])
    small_pages = KantataClient(standin.url, token=DEFAULT_TOKEN, page_size=7)
    with small_pages:
        listed = list(small_pages.list("workspaces"))
    assert [w["id"] for w in listed] == ["4", *(w["id"] for w in created)]
    assert api_calls(standin, "GET", "/api/v1/workspaces.json", 5) == 5  # 31 records / 7


def test_create_get_update_round_trip(client: KantataClient) -> None:
    workspace = client.create("workspaces", "workspace", {"title": "Acme", "price": 1500})
    assert workspace["price_in_cents"] == 150_000
    fetched = client.get("workspaces", workspace["id"], include="creator")
    assert fetched["title"] == "Acme" and fetched["creator_id"] == "1"
    updated = client.update("workspaces", "workspace", workspace["id"], {"title": "Acme 2"})
    assert updated["title"] == "Acme 2"
    assert client.get("workspaces", workspace["id"])["title"] == "Acme 2"


def test_errors_are_classified_with_the_vendor_detail(
    standin: RunningStandin, client: KantataClient
) -> None:
    with pytest.raises(NotFoundError) as missing:
        client.get("workspaces", 999)
    assert missing.value.status == 404

    with pytest.raises(ValidationError) as invalid:
        client.create("workspaces", "workspace", {"title": "T", "due_date": "2020-01-01",
                                                  "start_date": "2020-02-01"})  # fmt: skip
    assert invalid.value.field == "due_date"
    assert invalid.value.vendor_code == "validation"
    assert "on or after" in invalid.value.message

    bad = KantataClient(standin.url, token="wrong", sleep=lambda s: None)
    with bad, pytest.raises(AuthError) as denied:
        list(bad.list("users"))
    assert denied.value.vendor_code == "oauth"

    standin.state.revoke_tokens()
    with pytest.raises(AuthError):
        client.get("users", 1)


def test_a_503_on_create_is_retried_and_creates_exactly_one_workspace(
    standin: RunningStandin, client: KantataClient, calls: list[CallRecord]
) -> None:
    fault(standin, method="POST", path=r"/workspaces\.json$", status=503, times=1)
    workspace = client.create_workspace({"title": "Retried once"}, ref="OPP-503")
    titles = [w["title"] for w in standin.state.table("workspaces").values()]
    assert titles.count("Retried once") == 1
    assert api_calls(standin, "POST", "/workspaces.json", 2) == 2
    assert calls[-1].attempts == 2 and calls[-1].operation == "kantata.workspaces.create"
    assert client.find_workspace_by_reference("OPP-503")["id"] == workspace["id"]


def test_a_500_on_create_is_not_blindly_repeated(
    standin: RunningStandin, client: KantataClient
) -> None:
    fault(standin, method="POST", path=r"/workspaces\.json$", status=500, times=1)
    with pytest.raises(TransientError):
        client.create_workspace({"title": "Maybe created"})
    assert api_calls(standin, "POST", "/workspaces.json", 1) == 1


def test_a_repeatable_upsert_is_retried_after_a_500(
    standin: RunningStandin, client: KantataClient
) -> None:
    (wid,) = [w["id"] for w in client.create_many("workspaces", [{"title": "W"}])]
    fault(standin, method="POST", path="create_or_update", status=500, times=1)
    reference = client.add_reference(wid, "OPP-2")
    assert reference["service_model_ref"] == "OPP-2"
    assert api_calls(standin, "POST", "create_or_update", 2) == 2
    assert all("idempotency" not in str(c["headers"]).lower() for c in standin.state.calls)


def test_429_without_retry_after_waits_the_short_default_delay(
    standin: RunningStandin, client: KantataClient, sleeps: Sleeps
) -> None:
    fault(standin, method="GET", path="/users", status=429, times=2)
    assert [u["id"] for u in client.list("users")] == ["1", "2", "3", "14", "15"]
    assert sleeps == [2.0, 2.0]


def test_429_honours_retry_after_when_sent(
    standin: RunningStandin, client: KantataClient, sleeps: Sleeps
) -> None:
    fault(standin, method="GET", path="/users", status=429, times=1,
          headers={"Retry-After": "3"})  # fmt: skip
    client.get("users", 2)
    assert sleeps == [3.0]

    fault(standin, method="GET", path="/users", status=429, times=10)
    with pytest.raises(RateLimitedError) as limited:
        client.get("users", 2)
    assert limited.value.retry_after == 2.0


@pytest.mark.parametrize(
    "body",
    [
        "not an object",
        {"count": 1, "meta": {"page_count": 1}},
        {"count": 1, "results": [{"key": "workspaces", "id": "9"}], "workspaces": {}},
        {"count": 1, "results": [{"key": "workspaces"}], "workspaces": {}},
        {"count": 1, "results": [{"key": "workspaces", "id": "9"}],
         "workspaces": {"9": {"id": "10", "title": "x"}}},
        {"count": 1, "results": [{"key": "users", "id": "1"}], "users": {"1": {}}},
        {"count": "many", "results": [{"key": "workspaces", "id": "9"}],
         "workspaces": {"9": {"title": "x"}}},
    ],
)  # fmt: skip
def test_a_malformed_answer_is_a_response_shape_error(
    standin: RunningStandin, client: KantataClient, body: Any
) -> None:
    fault(standin, method="GET", path="/workspaces", status=200, body=body, times=1)
    with pytest.raises(ResponseShapeError):
        list(client.list("workspaces"))


def test_a_body_that_is_not_json_is_a_response_shape_error() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, text="<html>oops"))
    client = KantataClient("https://api.mavenlink.com", token="t", transport=transport)
    with client, pytest.raises(ResponseShapeError):
        client.get("workspaces", 1)


def test_unpack_keeps_the_results_order_not_the_object_order() -> None:
    body = {
        "count": 2,
        "results": [{"key": "stories", "id": "20"}, {"key": "stories", "id": 10}],
        "stories": {"10": {"title": "second"}, "20": {"id": "20", "title": "first"}},
        "workspaces": {"1": {"title": "included, not a result"}},
    }
    objects = unpack_envelope(body, key="stories")
    assert [(o["id"], o["title"]) for o in objects] == [("20", "first"), ("10", "second")]


def test_telemetry_names_each_operation(client: KantataClient, calls: list[CallRecord]) -> None:
    list(client.list("users"))
    client.create_workspace({"title": "T"})
    assert [c.operation for c in calls] == ["kantata.users.list", "kantata.workspaces.create"]
    assert calls[0].path == "/api/v1/users.json" and calls[0].status == 200


def test_bulk_creates_are_chunked_at_kantatas_limits(
    standin: RunningStandin, client: KantataClient
) -> None:
    workspaces = client.create_many("workspaces", [{"title": f"W{i}"} for i in range(101)])
    assert len(workspaces) == 101
    assert api_calls(standin, "POST", "/workspaces.json", 2) == 2
    stories = client.create_many(
        "stories", [{"workspace_id": 4, "title": f"S{i}"} for i in range(301)]
    )
    assert [s["title"] for s in stories] == [f"S{i}" for i in range(301)]
    assert api_calls(standin, "POST", "/stories.json", 2) == 2


# -- provisioning -----------------------------------------------------------------------
def test_provisioning_twice_creates_one_workspace_and_one_set_of_milestones(
    standin: RunningStandin, client: KantataClient
) -> None:
    first = provision(client, PROJECT)
    second = provision(client, PROJECT)
    assert first["id"] == second["id"]
    assert first["price_in_cents"] == 25_000_010  # Decimal 250000.10 exactly
    assert first["currency"] == "USD" and first["due_date"] == "2026-09-30"
    assert len(standin.state.table("workspaces")) == 2  # the bench workspace and this one
    assert len(standin.state.table("external_references")) == 1

    stories = client.list_milestones(first["id"])
    milestones = milestones_from_stories(stories, currency="USD")
    assert sorted(milestones, key=lambda m: m.due_date) == list(PROJECT.milestones)
    assert project_ref(first) == first["id"]


def test_a_crash_before_the_reference_is_recovered_through_the_marker(
    standin: RunningStandin, client: KantataClient
) -> None:
    marker = make_marker(PROJECT.key)
    orphan = client.create_workspace(workspace_from_project(PROJECT, marker=marker))
    assert client.find_workspace_by_reference(PROJECT.key) is None  # the crash window

    recovered = provision(client, PROJECT)
    assert recovered["id"] == orphan["id"]
    assert client.find_workspace_by_reference(PROJECT.key)["id"] == orphan["id"]
    assert len(standin.state.table("workspaces")) == 2


def test_marker_lookup_checks_the_text_itself_and_prefers_the_oldest(
    client: KantataClient,
) -> None:
    client.create_many(
        "workspaces",
        [
            {"title": "Near miss", "description": "[throughline OPP-1] is not OPP-10"},
            {"title": "Holder", "description": "Provisioned by Throughline [throughline OPP-10]"},
            {"title": "Late duplicate", "description": "[throughline OPP-10]"},
        ],
    )
    found = client.find_workspace_by_marker("[throughline OPP-10]")
    assert found is not None and found["title"] == "Holder"
    assert client.find_workspace_by_marker("[throughline OPP-404]") is None


def test_reference_lookup_sees_archived_workspaces_and_ignores_deleted_ones(
    standin: RunningStandin, client: KantataClient
) -> None:
    workspace = client.create_workspace({"title": "Archived later"}, ref="OPP-A")
    client.update("workspaces", "workspace", workspace["id"], {"archived": True})
    assert client.find_workspace_by_reference("OPP-A")["id"] == workspace["id"]

    del standin.state.table("workspaces")[workspace["id"]]  # deleted in Kantata
    assert client.find_workspace_by_reference("OPP-A") is None


def test_two_live_workspaces_with_one_reference_are_a_conflict(client: KantataClient) -> None:
    a = client.create_workspace({"title": "A"}, ref="OPP-X")
    b = client.create_workspace({"title": "B"})
    client.add_reference(b["id"], "OPP-X")
    with pytest.raises(ConflictError) as conflict:
        client.find_workspace_by_reference("OPP-X")
    assert a["id"] in conflict.value.message and b["id"] in conflict.value.message


def test_add_reference_is_an_upsert(standin: RunningStandin, client: KantataClient) -> None:
    workspace = client.create_workspace({"title": "Ref twice"})
    first = client.add_reference(workspace["id"], "OPP-R")
    second = client.add_reference(workspace["id"], "OPP-R")
    assert first["id"] == second["id"]
    assert len(standin.state.table("external_references")) == 1


def test_create_milestones_only_adds_the_missing_ones(
    standin: RunningStandin, client: KantataClient
) -> None:
    workspace = client.create_workspace({"title": "Milestones", "price": 100})
    wid = workspace["id"]
    first = client.create_milestones(
        wid, [{"title": "Kick-off", "due_date": "2026-02-15"}, {"title": "Go-live"}]
    )
    again = client.create_milestones(
        wid,
        [{"title": " go-live "}, {"title": "Hypercare"}, {"title": "Kick-off"},
         {"title": "Hypercare"}],
    )  # fmt: skip
    assert [s["id"] for s in again][::2] == [first[1]["id"], first[0]["id"]]
    assert again[1]["id"] == again[3]["id"]
    titles = sorted(s["title"] for s in client.list_milestones(wid))
    assert titles == ["Go-live", "Hypercare", "Kick-off"]
    assert all(s["story_type"] == "milestone" for s in again)
    # a task with a milestone's title does not count as the milestone
    client.create("stories", "story", {"workspace_id": wid, "title": "Sign-off"})
    (signoff,) = client.create_milestones(wid, [{"title": "Sign-off"}])
    assert signoff["story_type"] == "milestone"


# -- building from a stored connection ----------------------------------------------------
def test_build_client_uses_the_access_token_secret(standin: RunningStandin) -> None:
    client = build_client(
        base_url=f"{standin.url}/api/v1/",
        settings={"page_size": "50", "timeout": "5"},
        secrets={"access_token": DEFAULT_TOKEN},
        connection_id=7,
    )
    with client:
        assert client.page_size == 50 and client.connection_id == 7
        assert [u["id"] for u in client.list("users")] == ["1", "2", "3", "14", "15"]

    with pytest.raises(AuthError):
        build_client(base_url=standin.url, settings={}, secrets={})
