"""The Kantata stand-in over real HTTP: auth, envelope, paging, filters, writes, validation,
external references, faults and rate limiting behave like Kantata's documented API."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from integrations.standins.kantata import DEFAULT_TOKEN, KantataState, create_app
from integrations.standins.server import RunningStandin, start_standin

AUTH = {"Authorization": f"Bearer {DEFAULT_TOKEN}"}


@pytest.fixture(scope="module")
def standin() -> Iterator[RunningStandin]:
    running = start_standin("kantata", app=create_app(KantataState()))
    yield running
    running.stop()


@pytest.fixture(autouse=True)
def fresh(standin: RunningStandin) -> None:
    standin.state.reset()


@pytest.fixture
def api(standin: RunningStandin) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=standin.url, headers=AUTH, timeout=10) as client:
        yield client


def make_workspaces(api: httpx.Client, count: int, prefix: str = "Project") -> list[str]:
    items = [{"title": f"{prefix} {i:03d}", "start_date": "2026-02-01"} for i in range(count)]
    answer = api.post("/api/v1/workspaces.json", json={"workspaces": items})
    assert answer.status_code == 200, answer.text
    return [r["id"] for r in answer.json()["results"]]


def test_seed_is_deterministic_and_answers_in_the_kantata_envelope(api: httpx.Client) -> None:
    users = api.get("/api/v1/users.json").json()
    assert [r["id"] for r in users["results"]] == ["1", "2", "3", "14", "15"]
    assert users["users"]["1"]["full_name"] == "Avery Quinn"
    assert {u["headline"] for u in users["users"].values()} == {
        "Resource Manager",
        "Subcontractor, Apex Data Consulting",
        "Subcontractor, Blue Ridge Analytics",
    }

    body = api.get("/api/v1/workspaces.json").json()
    assert body["count"] == 1
    assert body["results"] == [{"key": "workspaces", "id": "4"}]
    assert body["workspaces"]["4"]["title"] == "Internal: bench time"
    assert body["meta"] == {"count": 1, "page_count": 1, "page_number": 1, "page_size": 20}
    stories = api.get("/api/v1/stories", params={"workspace_id": "4"}).json()  # no .json suffix
    assert stories["results"] == [{"key": "stories", "id": "5"}]


def test_missing_bad_and_revoked_tokens_answer_401_oauth(
    standin: RunningStandin, api: httpx.Client
) -> None:
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        answer = httpx.get(f"{standin.url}/api/v1/workspaces.json", headers=headers)
        assert answer.status_code == 401
        assert answer.json()["errors"][0]["type"] == "oauth"

    assert api.post("/__standin__/revoke-tokens").status_code == 200
    assert api.get("/api/v1/workspaces.json").status_code == 401
    api.post("/__standin__/reset")
    assert api.get("/api/v1/workspaces.json").status_code == 200

    api.post("/__standin__/tokens", json={"token": "second-token"})
    other = httpx.get(
        f"{standin.url}/api/v1/users.json", headers={"Authorization": "Bearer second-token"}
    )
    assert other.status_code == 200


def test_only_configured_tokens_are_valid() -> None:
    running = start_standin("kantata", app=create_app(KantataState(tokens={"custom"})))
    try:
        url = f"{running.url}/api/v1/users.json"
        assert httpx.get(url, headers=AUTH).status_code == 401
        assert httpx.get(url, headers={"Authorization": "Bearer custom"}).status_code == 200
    finally:
        running.stop()


def test_paging_with_page_and_per_page_returns_every_record_once(api: httpx.Client) -> None:
    created = make_workspaces(api, 45)
    seen: list[str] = []
    for page in (1, 2, 3):
        body = api.get(
            "/api/v1/workspaces.json",
            params={"page": page, "per_page": 20, "order": "created_at:asc"},
        ).json()
        assert body["count"] == 46
        assert body["meta"] == {"count": 46, "page_count": 3, "page_number": page, "page_size": 20}
        seen += [r["id"] for r in body["results"]]
    assert seen == ["4", *created]

    capped = api.get("/api/v1/workspaces.json", params={"per_page": 500}).json()
    assert capped["meta"]["page_size"] == 200
    assert len(capped["results"]) == 46


def test_limit_and_offset_override_page(api: httpx.Client) -> None:
    created = make_workspaces(api, 10)
    body = api.get(
        "/api/v1/workspaces.json",
        params={"limit": 3, "offset": 4, "page": 9, "order": "created_at:asc"},
    ).json()
    assert [r["id"] for r in body["results"]] == created[3:6]
    assert body["meta"]["page_size"] == 3
    bad = api.get("/api/v1/workspaces.json", params={"per_page": "lots"})
    assert bad.status_code == 422


def test_results_follow_the_requested_order(api: httpx.Client) -> None:
    api.post(
        "/api/v1/workspaces.json",
        json={"workspaces": [{"title": "Bravo"}, {"title": "alpha"}, {"title": "Charlie"}]},
    )
    body = api.get("/api/v1/workspaces.json", params={"order": "title:desc"}).json()
    titles = [body["workspaces"][r["id"]]["title"] for r in body["results"]]
    assert titles == ["Internal: bench time", "Charlie", "Bravo", "alpha"]
    assert api.get("/api/v1/workspaces.json", params={"order": "colour:asc"}).status_code == 422


def test_workspace_filters_search_matching_and_only(api: httpx.Client) -> None:
    api.post(
        "/api/v1/workspaces.json",
        json={
            "workspaces": [
                {"title": "Globex ERP rollout", "description": "marker [throughline OPP-7]"},
                {"title": "Initech cloud migration", "description": "lift and shift"},
            ]
        },
    )

    def titles(**params: str) -> list[str]:
        body = api.get("/api/v1/workspaces.json", params=params).json()
        return sorted(body["workspaces"][r["id"]]["title"] for r in body["results"])

    assert titles(search="[throughline OPP-7]") == ["Globex ERP rollout"]
    assert titles(search="description:'lift and'") == ["Initech cloud migration"]
    assert titles(search="title:'rollout' globex") == ["Globex ERP rollout"]
    assert titles(search="nothing-like-this") == []
    assert titles(matching="glob roll") == ["Globex ERP rollout"]
    assert titles(matching="the cloud") == ["Initech cloud migration"]  # stop words ignored
    assert titles(matching="lobex") == []  # words must start with the term
    assert titles(only="4") == ["Internal: bench time"]
    assert api.get("/api/v1/workspaces.json", params={"only": "4,x"}).status_code == 422


def test_story_filters_by_workspace_and_type(api: httpx.Client) -> None:
    (wid,) = make_workspaces(api, 1)
    stories = [
        {"workspace_id": int(wid), "title": "Kick-off", "story_type": "milestone"},
        {"workspace_id": wid, "title": "Build", "story_type": "task"},
        {"workspace_id": wid, "title": "Go-live", "story_type": "milestone"},
    ]
    assert api.post("/api/v1/stories.json", json={"stories": stories}).status_code == 200
    body = api.get(
        "/api/v1/stories.json", params={"workspace_id": wid, "story_type": "milestone"}
    ).json()
    assert sorted(body["stories"][r["id"]]["title"] for r in body["results"]) == [
        "Go-live",
        "Kick-off",
    ]
    assert all(s["workspace_id"] == wid for s in body["stories"].values())
    assert api.get("/api/v1/stories.json", params={"story_type": "task"}).json()["count"] == 2


def test_create_answers_the_new_records_in_request_order(api: httpx.Client) -> None:
    single = api.post(
        "/api/v1/workspaces.json",
        json={
            "workspace": {
                "title": "Acme website",
                "price": "12500.50",
                "currency": "EUR",
                "start_date": "2026-02-01",
                "due_date": "2026-06-30",
                "client_role_name": "Acme GmbH",
                "creator_role": "maven",
            }
        },
    )
    assert single.status_code == 200
    body = single.json()
    (entry,) = body["results"]
    workspace = body["workspaces"][entry["id"]]
    assert workspace["price_in_cents"] == 1_250_050
    assert workspace["price"] == "€12,500.50"
    assert workspace["currency_base_unit"] == 100
    assert workspace["client_role_name"] == "Acme GmbH"
    assert isinstance(entry["id"], str)

    ids = make_workspaces(api, 5, prefix="Bulk")
    body = api.get("/api/v1/workspaces.json", params={"only": ",".join(ids)}).json()
    assert sorted(w["title"] for w in body["workspaces"].values()) == [
        f"Bulk {i:03d}" for i in range(5)
    ]
    assert [int(i) for i in ids] == sorted(int(i) for i in ids)


def test_bulk_create_limits_and_atomicity(standin: RunningStandin, api: httpx.Client) -> None:
    too_many = [{"title": f"W{i}"} for i in range(101)]
    answer = api.post("/api/v1/workspaces.json", json={"workspaces": too_many})
    assert answer.status_code == 422
    assert "at most 100" in answer.json()["errors"][0]["message"]

    one_bad = [{"title": "fine"}, {"title": ""}, {"title": "also fine"}]
    answer = api.post("/api/v1/workspaces.json", json={"workspaces": one_bad})
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["message"].startswith("workspaces[1]:")
    assert len(standin.state.table("workspaces")) == 1  # nothing created

    assert api.post("/api/v1/workspaces.json", json={"workspaces": []}).status_code == 422
    (wid,) = make_workspaces(api, 1)
    stories = [{"workspace_id": wid, "title": f"S{i}"} for i in range(300)]
    assert api.post("/api/v1/stories.json", json={"stories": stories}).status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"workspace": {"description": "no title"}}, "title"),
        ({"workspace": {"title": "x" * 256}}, "title"),
        ({"workspace": {"title": "T", "start_date": "2026-05-01", "due_date": "2026-04-30"}},
         "due_date"),
        ({"workspace": {"title": "T", "start_date": "01/05/2026"}}, "start_date"),
        ({"workspace": {"title": "T", "price_in_cents": 100}}, "price_in_cents"),
        ({"workspace": {"title": "T", "currency": "usd"}}, "currency"),
        ({"workspace": {"title": "T", "price": "10.005"}}, "price"),
        ({"workspace": {"title": "T", "creator_role": "boss"}}, "creator_role"),
    ],
)  # fmt: skip
def test_workspace_validation_answers_422_naming_the_field(
    api: httpx.Client, body: dict, field: str
) -> None:
    answer = api.post("/api/v1/workspaces.json", json=body)
    assert answer.status_code == 422
    (error,) = answer.json()["errors"]
    assert error["type"] == "validation"
    assert error["field"] == field


def test_story_validation(api: httpx.Client) -> None:
    def error(story: dict) -> dict:
        answer = api.post("/api/v1/stories.json", json={"story": story})
        assert answer.status_code == 422
        return answer.json()["errors"][0]

    assert error({"workspace_id": 999, "title": "Orphan"})["field"] == "workspace_id"
    assert error({"title": "No workspace"})["field"] == "workspace_id"
    assert error({"workspace_id": 4, "title": "T", "story_type": "epic"})["field"] == "story_type"
    assert error({"workspace_id": 4, "title": ""})["field"] == "title"
    # the seeded bench workspace is not budgeted
    bench_budget = {"workspace_id": 4, "title": "T", "budget_estimate_in_cents": 100}
    assert error(bench_budget)["field"] == "budget_estimate_in_cents"
    dates = {"workspace_id": 4, "title": "T", "start_date": "2026-03-02", "due_date": "2026-03-01"}
    assert error(dates)["field"] == "due_date"


def test_put_updates_and_archived_workspaces_hide(api: httpx.Client) -> None:
    (wid,) = make_workspaces(api, 1)
    answer = api.put(f"/api/v1/workspaces/{wid}.json", json={"workspace": {"title": "Renamed"}})
    assert answer.status_code == 200
    assert answer.json()["workspaces"][wid]["title"] == "Renamed"
    bad = api.put(f"/api/v1/workspaces/{wid}.json", json={"workspace": {"due_date": "2020-01-01"}})
    assert bad.status_code == 422

    api.put(f"/api/v1/workspaces/{wid}.json", json={"workspace": {"archived": True}})
    assert api.get(f"/api/v1/workspaces/{wid}.json").status_code == 404
    shown = api.get(f"/api/v1/workspaces/{wid}.json", params={"include_archived": "true"})
    assert shown.json()["workspaces"][wid]["archived"] is True
    listed = api.get("/api/v1/workspaces.json").json()
    assert wid not in listed["workspaces"]
    listed = api.get("/api/v1/workspaces.json", params={"include_archived": "true"}).json()
    assert wid in listed["workspaces"]


def test_unknown_ids_and_resources_answer_404(api: httpx.Client) -> None:
    for path in ("/api/v1/workspaces/999.json", "/api/v1/stories/abc.json", "/api/v1/nope.json"):
        answer = api.get(path)
        assert answer.status_code == 404
        assert answer.json()["errors"][0]["message"]
    assert api.put("/api/v1/workspaces/999.json", json={"workspace": {}}).status_code == 404
    assert api.post("/api/v1/users.json", json={"user": {}}).status_code == 405


def test_include_puts_related_objects_under_their_own_key(api: httpx.Client) -> None:
    plain = api.get("/api/v1/workspaces/4.json").json()
    assert "creator_id" not in plain["workspaces"]["4"]
    body = api.get("/api/v1/workspaces/4.json", params={"include": "creator"}).json()
    assert body["workspaces"]["4"]["creator_id"] == "1"
    assert body["users"]["1"]["full_name"] == "Avery Quinn"
    assert body["results"] == [{"key": "workspaces", "id": "4"}]
    story = api.get("/api/v1/stories/5.json", params={"include": "workspace"}).json()
    assert story["workspaces"]["4"]["title"] == "Internal: bench time"
    assert api.get("/api/v1/workspaces.json", params={"include": "bogus"}).status_code == 422


def test_external_references_upsert_and_filter(api: httpx.Client) -> None:
    (wid,) = make_workspaces(api, 1)
    path = "/api/v1/external_references/create_or_update.json"
    reference = {
        "subject_type": "Workspace",
        "subject_id": int(wid),
        "service_name": "throughline",
        "service_model": "Project",
        "service_model_ref": "OPP-1",
    }
    first = api.post(path, json={"external_reference": reference}).json()
    second = api.post(
        path, json={"external_reference": {**reference, "service_model_ref": "OPP-1b"}}
    ).json()
    assert first["results"] == second["results"]  # one reference per service on an object
    (rid,) = [r["id"] for r in second["results"]]
    assert second["external_references"][rid]["service_model_ref"] == "OPP-1b"
    assert second["external_references"][rid]["subject_id"] == int(wid)

    assert api.get("/api/v1/external_references.json").status_code == 422  # subject_type needed
    found = api.get(
        "/api/v1/external_references.json",
        params={"subject_type": "Workspace", "service_name": "throughline",
                "service_model_ref": "OPP-1b", "include": "subject"},
    ).json()  # fmt: skip
    assert [r["id"] for r in found["results"]] == [rid]
    assert found["external_references"][rid]["subject_ref"] == {"key": "workspaces", "id": wid}
    assert wid in found["workspaces"]
    none = api.get(
        "/api/v1/external_references.json",
        params={"subject_type": "Workspace", "service_model_ref": "OPP-1"},
    ).json()
    assert none["count"] == 0

    missing = api.post(path, json={"external_reference": {**reference, "subject_id": 999}})
    assert missing.status_code == 422
    assert api.post("/api/v1/external_references.json", json={}).status_code == 405


def test_workspace_create_can_carry_its_external_reference(api: httpx.Client) -> None:
    answer = api.post(
        "/api/v1/workspaces.json",
        json={
            "workspace": {
                "title": "With reference",
                "external_reference": {
                    "service_name": "throughline",
                    "service_model": "Project",
                    "service_model_ref": "OPP-9",
                },
            }
        },
    )
    wid = answer.json()["results"][0]["id"]
    found = api.get(
        "/api/v1/external_references.json",
        params={"subject_type": "Workspace", "subject_id": wid},
    ).json()
    (reference,) = found["external_references"].values()
    assert reference["service_model_ref"] == "OPP-9"
    bad = api.post(
        "/api/v1/workspaces.json",
        json={"workspace": {"title": "x", "external_reference": {"service_name": "t"}}},
    )
    assert bad.status_code == 422


def test_time_entries_list_and_create(api: httpx.Client) -> None:
    assert api.get("/api/v1/time_entries.json").json()["count"] == 0
    entry = {
        "workspace_id": 4,
        "story_id": 5,
        "user_id": 2,
        "date_performed": "2026-02-02",
        "time_in_minutes": 90,
        "billable": False,
    }
    created = api.post("/api/v1/time_entries.json", json={"time_entry": entry}).json()
    (te,) = created["time_entries"].values()
    assert te["workspace_id"] == "4" and te["user_id"] == "2" and te["story_id"] == "5"
    assert te["time_in_minutes"] == 90 and te["approved"] is False and te["currency"] == "USD"
    listed = api.get("/api/v1/time_entries.json", params={"workspace_id": "4"}).json()
    assert listed["count"] == 1
    bad = api.post(
        "/api/v1/time_entries.json",
        json={"time_entry": {**entry, "time_in_minutes": 0}},
    )
    assert bad.json()["errors"][0]["field"] == "time_in_minutes"


def test_injected_faults_use_the_kantata_error_shape(api: httpx.Client) -> None:
    api.post(
        "/__standin__/faults",
        json={"method": "GET", "path": "/workspaces", "status": 429, "times": 1,
              "headers": {"Retry-After": "3"}},
    )  # fmt: skip
    answer = api.get("/api/v1/workspaces.json")
    assert answer.status_code == 429
    assert answer.headers["Retry-After"] == "3"
    assert answer.json()["errors"][0]["type"] == "system"
    assert api.get("/api/v1/workspaces.json").status_code == 200


def test_rate_limit_answers_429_without_retry_after() -> None:
    running = start_standin("kantata", app=create_app(KantataState(rate_limit=2)))
    try:
        url = f"{running.url}/api/v1/users.json"
        statuses = [httpx.get(url, headers=AUTH) for _ in range(3)]
        assert [a.status_code for a in statuses] == [200, 200, 429]
        assert "Retry-After" not in statuses[2].headers
        assert statuses[2].json()["errors"][0]["type"] == "system"
    finally:
        running.stop()
