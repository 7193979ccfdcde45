"""The shared stand-in machinery: fault injection, the request log and `/__standin__/`."""

from __future__ import annotations

import time

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from integrations.connectors.errors import TransientError
from integrations.connectors.http import ConnectorHttpClient
from integrations.standins.common import FaultRule, StandinState, build_app, json_body
from integrations.standins.server import start_standin


class TinyState(StandinState):
    vendor = "tiny"

    def seed(self) -> None:
        self.table("widgets")["w1"] = {"id": "w1", "name": "Sprocket", "qty": 1}


def tiny_error(status: int, code: str, message: str) -> dict:
    return {"errors": [{"status": status, "code": code or "TINY_ERROR", "detail": message}]}


def tiny_routes(state: TinyState) -> list:
    async def list_widgets(request: Request):
        return JSONResponse({"items": list(state.table("widgets").values())})

    async def create_widget(request: Request):
        try:
            body = await json_body(request)
        except ValueError as exc:
            return JSONResponse(tiny_error(400, "BAD_JSON", str(exc)), status_code=400)
        wid = f"w{state.next_number() + 100}"
        state.table("widgets")[wid] = {"id": wid, **body}
        return JSONResponse(state.table("widgets")[wid], status_code=201)

    async def get_widget(request: Request):
        found = state.table("widgets").get(request.path_params["wid"])
        if found is None:
            return JSONResponse(tiny_error(404, "NOT_FOUND", "no widget"), status_code=404)
        return JSONResponse(found)

    return [
        Route("/api/widgets", list_widgets, methods=["GET"]),
        Route("/api/widgets", create_widget, methods=["POST"]),
        Route("/api/widgets/{wid}", get_widget, methods=["GET"]),
    ]


@pytest.fixture
def state():
    return TinyState()


@pytest.fixture
def client(state):
    with TestClient(build_app(state, tiny_routes(state), tiny_error)) as test_client:
        yield test_client


def add_fault(client, **rule):
    response = client.post("/__standin__/faults", json=rule)
    assert response.status_code == 201, response.text
    return response.json()


# -- fault rules ------------------------------------------------------------------------


def test_fault_matches_method_and_path_and_counts_down(client):
    rule = add_fault(client, method="POST", path="^/api/widgets$", status=503, times=2)
    assert rule["id"] == 1 and rule["times"] == 2 and rule["hits"] == 0

    assert client.get("/api/widgets").status_code == 200  # other method: untouched
    for _ in range(2):
        failed = client.post("/api/widgets", json={"name": "Cog"})
        assert failed.status_code == 503
        assert failed.json() == {
            "errors": [{"status": 503, "code": "TINY_ERROR", "detail": "Injected fault"}]
        }
    assert client.post("/api/widgets", json={"name": "Cog"}).status_code == 201

    [listed] = client.get("/__standin__/faults").json()["faults"]
    assert listed["times"] == 0 and listed["hits"] == 2


def test_fault_path_is_a_regex_searched_in_the_path(client):
    add_fault(client, path=r"widgets/w\d+$", status=404, code="GONE", message="vanished")
    assert client.get("/api/widgets").status_code == 200
    answer = client.get("/api/widgets/w1")
    assert answer.status_code == 404
    assert answer.json()["errors"][0] == {"status": 404, "code": "GONE", "detail": "vanished"}


def test_fault_method_is_case_insensitive(client):
    add_fault(client, method="post", path="/api/widgets", status=500)
    assert client.post("/api/widgets", json={}).status_code == 500
    assert client.get("/api/widgets").status_code == 200


def test_fault_without_times_lasts_until_cleared(client):
    add_fault(client, status=500)  # any method, any path
    for _ in range(3):
        assert client.get("/api/widgets").status_code == 500
    assert client.delete("/__standin__/faults").json() == {"faults": []}
    assert client.get("/api/widgets").status_code == 200
    assert client.get("/__standin__/faults").json() == {"faults": []}


def test_first_matching_rule_wins_then_the_next(client):
    add_fault(client, path="/api/widgets", status=429, times=1)
    add_fault(client, path="/api/widgets", status=502, times=1)
    statuses = [client.get("/api/widgets").status_code for _ in range(3)]
    assert statuses == [429, 502, 200]


def test_fault_custom_body_and_headers(client):
    add_fault(
        client,
        path="/api/widgets",
        status=503,
        headers={"Retry-After": "2", "X-Trace": "abc"},
        body=[{"errorCode": "SERVER_UNAVAILABLE"}],
    )
    answer = client.get("/api/widgets")
    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == "2"
    assert answer.headers["X-Trace"] == "abc"
    assert answer.json() == [{"errorCode": "SERVER_UNAVAILABLE"}]


def test_fault_can_answer_a_2xx_with_a_wrong_shape(client):
    add_fault(client, path="/api/widgets", status=200, body="not the documented shape")
    answer = client.get("/api/widgets")
    assert answer.status_code == 200
    assert answer.json() == "not the documented shape"


def test_fault_delay_then_error(client):
    add_fault(client, path="/api/widgets", status=504, delay_ms=150, times=1)
    t0 = time.perf_counter()
    assert client.get("/api/widgets").status_code == 504
    assert time.perf_counter() - t0 >= 0.14


def test_fault_with_status_zero_only_delays(client):
    add_fault(client, path="/api/widgets", status=0, delay_ms=120, times=1)
    t0 = time.perf_counter()
    answer = client.get("/api/widgets")
    assert answer.status_code == 200
    assert answer.json()["items"][0]["id"] == "w1"
    assert time.perf_counter() - t0 >= 0.11
    t0 = time.perf_counter()
    client.get("/api/widgets")
    assert time.perf_counter() - t0 < 0.1  # times ran out


def test_control_routes_are_never_faulted(client):
    add_fault(client, status=500)
    assert client.get("/__standin__/state").status_code == 200
    assert client.delete("/__standin__/faults").status_code == 200


@pytest.mark.parametrize(
    "rule",
    [
        {"path": "(unclosed"},
        {"times": "2"},
        {"status": "503"},
        {"status": 99},
        {"status": 600},
        {"delay_ms": -1},
        {"delay_ms": "slow"},
        {"headers": ["Retry-After", "1"]},
        {"headers": {"Retry-After": 1}},
        {"method": 5},
        {"path": 5},
        {"stauts": 503},
    ],
    ids=repr,
)
def test_bad_fault_rule_is_refused_and_nothing_breaks(client, rule):
    answer = client.post("/__standin__/faults", json=rule)
    assert answer.status_code == 400
    assert answer.json()["error"].startswith("bad fault rule")
    assert client.get("/__standin__/faults").json() == {"faults": []}
    assert client.get("/api/widgets").status_code == 200


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b'"503"', b""])
def test_fault_body_that_is_not_a_json_object_is_refused(client, raw):
    answer = client.post(
        "/__standin__/faults", content=raw, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 400
    assert client.get("/__standin__/faults").json() == {"faults": []}


def test_reposting_a_listed_rule_gets_a_new_id_and_no_hits(client):
    add_fault(client, path="/api/widgets", status=500, times=1)
    client.get("/api/widgets")
    [listed] = client.get("/__standin__/faults").json()["faults"]
    again = add_fault(client, **{**listed, "times": 1})
    assert again["id"] == 2 and again["hits"] == 0


def test_fault_rule_matches_unit():
    rule = FaultRule(path="^/a/", method="GET", times=1)
    assert rule.matches("get", "/a/1")
    assert not rule.matches("POST", "/a/1")
    assert not rule.matches("GET", "/b/a/1")
    rule.times = 0
    assert not rule.matches("GET", "/a/1")


# -- request log, state, reset ----------------------------------------------------------


def test_calls_log_records_requests_with_the_headers_that_matter(client):
    add_fault(client, path="/api/widgets/w9", status=500, times=1)
    client.get("/api/widgets", headers={"Authorization": "Bearer t1", "X-Unrelated": "secret-ish"})
    client.get("/api/widgets/w9")
    client.post("/api/widgets", json={"name": "Cog"})
    client.get("/__standin__/state")  # control calls are not logged

    calls = client.get("/__standin__/calls").json()["calls"]
    assert [(c["method"], c["path"], c["status"]) for c in calls] == [
        ("GET", "/api/widgets", 200),
        ("GET", "/api/widgets/w9", 500),
        ("POST", "/api/widgets", 201),
    ]
    assert calls[0]["headers"]["authorization"] == "Bearer t1"
    assert "x-unrelated" not in calls[0]["headers"]
    assert calls[2]["headers"]["content-type"] == "application/json"
    assert all(isinstance(c["at"], float) for c in calls)


def test_state_summary(client):
    add_fault(client, path="/x", status=500)
    client.get("/api/widgets")
    summary = client.get("/__standin__/state").json()
    assert summary["vendor"] == "tiny"
    assert summary["collections"] == {"widgets": 1}
    assert summary["calls"] == 1
    assert [f["path"] for f in summary["faults"]] == ["/x"]
    assert summary["daily_limit"] == 100_000


def test_reset_restores_the_seed_and_clears_faults_and_calls(client, state):
    client.post("/api/widgets", json={"name": "Cog"})
    client.post("/__standin__/records/widgets/w1", json={"name": "Changed"})
    add_fault(client, path="/nothing", status=500)

    summary = client.post("/__standin__/reset").json()

    assert summary["collections"] == {"widgets": 1}
    assert summary["faults"] == [] and summary["calls"] == 0
    assert client.get("/api/widgets/w1").json()["name"] == "Sprocket"
    assert add_fault(client, status=500, path="/nothing")["id"] == 1  # ids start over
    assert client.get("/__standin__/reset").status_code == 405  # reset only by POST


def test_tokens_issue_and_revoke(client, state):
    token = state.issue_token()
    assert token.startswith("tiny-tok-")
    assert state.token_valid(token)
    assert not state.token_valid(None)
    assert not state.token_valid("forged")
    assert not state.token_valid(state.issue_token(lifetime=-1))
    assert client.post("/__standin__/revoke-tokens").json() == {"revoked": True}
    assert not state.token_valid(token)


# -- records ----------------------------------------------------------------------------


def test_records_read(client):
    assert client.get("/__standin__/records/widgets").json() == {
        "records": [{"id": "w1", "name": "Sprocket", "qty": 1}]
    }
    assert client.get("/__standin__/records/widgets/w1").json()["name"] == "Sprocket"
    missing = client.get("/__standin__/records/widgets/nope")
    assert missing.status_code == 404


def test_reading_an_unknown_collection_does_not_create_it(client):
    assert client.get("/__standin__/records/ghosts").json() == {"records": []}
    assert client.get("/__standin__/records/ghosts/1").status_code == 404
    assert client.get("/__standin__/state").json()["collections"] == {"widgets": 1}
    assert "ghosts" not in client.get("/__standin__/").text


def test_record_post_json_merges_fields(client):
    answer = client.post("/__standin__/records/widgets/w1", json={"qty": 5, "colour": "red"})
    assert answer.status_code == 200
    assert answer.json() == {"id": "w1", "name": "Sprocket", "qty": 5, "colour": "red"}
    # live for the next vendor API call
    assert client.get("/api/widgets/w1").json()["colour"] == "red"


@pytest.mark.parametrize("raw", [b"[1]", b"{bad json", b'"text"'])
def test_record_post_bad_json_is_refused(client, raw):
    answer = client.post(
        "/__standin__/records/widgets/w1",
        content=raw,
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 400
    assert answer.json()["error"].startswith("bad JSON")
    assert client.get("/api/widgets/w1").json()["qty"] == 1


def test_record_post_to_missing_record_is_404(client):
    answer = client.post("/__standin__/records/widgets/nope", json={"qty": 1})
    assert answer.status_code == 404


def test_record_form_post_merges_and_redirects_to_the_page(client):
    answer = client.post(
        "/__standin__/records/widgets/w1",
        data={"json": '{"name": "Gear & Co", "qty": 3}'},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/__standin__/"
    assert client.get("/api/widgets/w1").json()["name"] == "Gear & Co"


@pytest.mark.parametrize("value", ["not json", "[]", ""])
def test_record_form_post_with_bad_json_is_refused(client, value):
    answer = client.post(
        "/__standin__/records/widgets/w1", data={"json": value}, follow_redirects=False
    )
    assert answer.status_code == 400
    assert client.get("/api/widgets/w1").json()["name"] == "Sprocket"


def test_html_page_escapes_record_content(client, state):
    evil = "<script>alert('x')</script>"
    state.table("widgets")["w'><img src=x>"] = {"id": "evil", "name": evil}
    state.table("<b>notes</b>")["n1"] = {"text": "a & b"}

    page = client.get("/__standin__/")

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    text = page.text
    assert "<script>" not in text
    assert "<img" not in text
    assert "<b>notes</b>" not in text
    assert "&lt;script&gt;" in text
    assert "&lt;b&gt;notes&lt;/b&gt; (1)" in text
    assert "widgets (2)" in text
    assert "action='/__standin__/records/widgets/w1'" in text
    assert "tiny stand-in" in text


def test_json_body_helper_reasons(client):
    empty = client.post("/api/widgets", content=b"")
    assert empty.status_code == 400
    assert "empty body" in empty.json()["errors"][0]["detail"]
    bad = client.post("/api/widgets", content=b"{oops")
    assert "malformed JSON" in bad.json()["errors"][0]["detail"]


# -- over real HTTP ---------------------------------------------------------------------


def test_start_standin_on_free_port_serves_faults_and_stops():
    state = TinyState()
    running = start_standin("tiny", app=build_app(state, tiny_routes(state), tiny_error))
    other = start_standin("tiny", app=build_app(TinyState(), [], tiny_error))
    try:
        assert running.url.startswith("http://127.0.0.1:")
        assert running.url != other.url
        assert running.state is state
        with httpx.Client(base_url=running.url, timeout=5) as http:
            assert http.get("/api/widgets").json()["items"][0]["id"] == "w1"
            created = http.post(
                "/__standin__/faults",
                json={"path": "/api/widgets", "status": 503, "times": 1},
            )
            assert created.status_code == 201
            assert http.get("/api/widgets").status_code == 503
            assert http.get("/api/widgets").status_code == 200
    finally:
        running.stop()
        other.stop()
    assert not running.thread.is_alive()
    with pytest.raises(httpx.ConnectError):
        httpx.get(running.url + "/api/widgets", timeout=2)


def test_connector_client_rides_out_injected_503_with_retry_after():
    state = TinyState()
    running = start_standin("tiny", app=build_app(state, tiny_routes(state), tiny_error))
    waits: list[float] = []
    try:
        state.add_fault(path="/api/widgets", status=503, times=2, headers={"Retry-After": "1"})
        with ConnectorHttpClient(running.url, sleep=waits.append) as client:
            assert client.get_json("/api/widgets", operation="tiny.list")["items"]
        assert waits == [1.0, 1.0]

        state.add_fault(path="/api/widgets", status=500)
        with (
            ConnectorHttpClient(running.url, sleep=waits.append) as client,
            pytest.raises(TransientError) as excinfo,
        ):
            client.request("POST", "/api/widgets", operation="tiny.create", json={})
        assert excinfo.value.body["errors"][0]["detail"] == "Injected fault"
        assert [c["method"] for c in state.calls][-1:] == ["POST"]
        assert sum(c["method"] == "POST" for c in state.calls) == 1
    finally:
        running.stop()
