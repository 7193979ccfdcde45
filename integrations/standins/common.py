"""What every vendor stand-in shares: in-memory state, fault injection, a request log, a
per-window call budget, and the control surface under `/__standin__/`.

A stand-in is a Starlette app that serves one vendor's real paths, auth handshake, paging and
error bodies (see the vendor modules). Its control surface is not part of the vendor's API: it
lets tests, the demo and people inject faults, read the request log, reset state and edit
records (`/__standin__/` is a small HTML page for that).

Fault rules, as JSON posted to `/__standin__/faults`:
    {"method": "POST", "path": "/services/rest/record/v1/customer", "status": 503,
     "times": 2, "delay_ms": 0, "headers": {"Retry-After": "1"}, "body": {...}}
`path` is a regular expression searched in the request path; `times` null means until
cleared; without `body` the vendor's own error shape is used.

Records, as a person edits them in the demo (`{name}` a collection, `{rid}` a record id):
    GET    /__standin__/records/{name}            every record of the collection
    GET    /__standin__/records/{name}/{rid}      one record
    POST   /__standin__/records/{name}/{rid}      merge a JSON object of fields into it
    DELETE /__standin__/records/{name}/{rid}      remove it (`POST .../{rid}/delete` from a form)
    POST   /__standin__/records/{name}/{rid}/copy a duplicate under a new id, with the fields of
                                                  an optional JSON object laid over it (201)
An edit or a copy stamps the record's vendor modification time (NetSuite lastModifiedDate,
Kantata updated_at, Salesforce LastModifiedDate/SystemModstamp), so an incremental read sees
it, unless the edit sets that field itself; a copy also gets what the vendor numbers on create.
Each vendor state says how through three hooks: `stamp_modified`, `prepare_copy` and
`records_changed` (its indexes and caches). Form posts (the HTML page) redirect to the page.
"""

from __future__ import annotations

import asyncio
import copy
import html
import itertools
import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

CONTROL_PREFIX = "/__standin__"

ErrorBody = Callable[[int, str, str], Any]
"""(status, vendor error code, message) -> the vendor's error body."""


@dataclass
class FaultRule:
    """An injected failure: requests matching method and path answer `status`."""

    path: str = ".*"
    method: str = "*"
    status: int = 500
    code: str = ""
    message: str = "Injected fault"
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    times: int | None = None
    delay_ms: int = 0
    id: int = 0
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.times is not None and self.times <= 0:
            return False
        if self.method.upper() not in ("*", method.upper()):
            return False
        return re.search(self.path, path) is not None


def _check_fault(rule: FaultRule) -> None:
    for name in ("path", "method", "code", "message"):
        if not isinstance(getattr(rule, name), str):
            raise TypeError(f"{name} must be a string")
    if not isinstance(rule.status, int) or isinstance(rule.status, bool):
        raise TypeError("status must be an integer")
    if rule.status != 0 and not 200 <= rule.status <= 599:
        raise ValueError("status must be an HTTP status from 200 to 599, or 0 for delay only")
    if rule.times is not None and (not isinstance(rule.times, int) or isinstance(rule.times, bool)):
        raise TypeError("times must be an integer or null")
    delay = rule.delay_ms
    if not isinstance(delay, int | float) or isinstance(delay, bool) or not 0 <= delay <= 600_000:
        raise ValueError("delay_ms must be a number of milliseconds from 0 to 600000")
    if not isinstance(rule.headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in rule.headers.items()
    ):
        raise TypeError("headers must be an object of strings")
    re.compile(rule.path)


class StandinState:
    """Records by collection, plus faults, the request log and the call budget.

    Vendor states subclass this and implement `seed()`; `reset()` brings the seed back.
    Every mutation happens under `lock`, so the stand-in is safe under uvicorn's threads.
    """

    vendor = "standin"

    def __init__(self, *, daily_limit: int = 100_000) -> None:
        self.lock = threading.RLock()
        self.daily_limit = daily_limit
        self.reset()

    # -- lifecycle ------------------------------------------------------------------------
    def reset(self) -> None:
        with self.lock:
            self.collections: dict[str, dict[str, dict[str, Any]]] = {}
            self.faults: list[FaultRule] = []
            self.calls: deque[dict[str, Any]] = deque(maxlen=2000)
            self.api_usage = 0
            self.tokens: dict[str, float] = {}
            self._next_id = 1
            self._fault_ids = itertools.count(1)
            self.seed()

    def seed(self) -> None:
        """Load the vendor's starting records; subclasses override."""

    # -- records --------------------------------------------------------------------------
    def table(self, name: str) -> dict[str, dict[str, Any]]:
        return self.collections.setdefault(name, {})

    def next_number(self) -> int:
        with self.lock:
            number = self._next_id
            self._next_id += 1
            return number

    # -- hooks of the control surface's record edits (see `control_routes`) -----------------
    def stamp_modified(self, name: str, record: dict[str, Any]) -> None:
        """Set `record`'s vendor modification time (collection `name`) to now, so an
        incremental read sees a control edit; vendors override (the default stamps nothing)."""

    def prepare_copy(self, name: str, record: dict[str, Any]) -> str:
        """Give a control copy of a record its new id, and whatever else the vendor numbers
        on create; return the id (the default: the next number, in `id`)."""
        rid = str(self.next_number())
        record["id"] = rid
        return rid

    def records_changed(
        self, name: str, before: dict[str, Any] | None, after: dict[str, Any] | None
    ) -> None:
        """Keep derived state (indexes, caches) in step with a control edit (`before` and
        `after`), copy (`before` None) or deletion (`after` None). Called under `lock`."""

    # -- persistence (the demo keeps its stand-ins' data across restarts) -----------------
    #: vendor attributes beyond the collections that a restart must keep (JSON-safe values)
    persistent_attrs: tuple[str, ...] = ()

    def snapshot(self) -> dict[str, Any]:
        """The records and counters, as JSON-safe data (see `restore`)."""
        with self.lock:
            return json.loads(
                json.dumps(
                    {
                        "vendor": self.vendor,
                        "collections": self.collections,
                        "next_id": self._next_id,
                        "attrs": {name: getattr(self, name) for name in self.persistent_attrs},
                    }
                )
            )

    def restore(self, data: dict[str, Any]) -> None:
        """Take back a snapshot of the same vendor; faults, tokens and the log start empty."""
        if data.get("vendor") != self.vendor:
            raise ValueError(f"snapshot of {data.get('vendor')!r}, not {self.vendor!r}")
        with self.lock:
            self.collections = data["collections"]
            self._next_id = int(data["next_id"])
            for name, value in data.get("attrs", {}).items():
                if name in self.persistent_attrs:
                    setattr(self, name, value)

    # -- tokens -----------------------------------------------------------------------------
    def issue_token(self, lifetime: float = 3600.0) -> str:
        token = f"{self.vendor}-tok-{self.next_number()}-{int(time.time() * 1000)}"
        with self.lock:
            self.tokens[token] = time.time() + lifetime
        return token

    def token_valid(self, token: str | None) -> bool:
        if not token:
            return False
        with self.lock:
            expires = self.tokens.get(token)
        return expires is not None and expires > time.time()

    def revoke_tokens(self) -> None:
        with self.lock:
            self.tokens.clear()

    # -- faults -----------------------------------------------------------------------------
    def add_fault(self, **spec: Any) -> FaultRule:
        """Add a rule; raise TypeError, ValueError or re.error for a malformed one, so a bad
        rule is refused up front instead of breaking every later request."""
        unknown = sorted(set(spec) - set(FaultRule.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown fields {', '.join(unknown)}")
        allowed = dict(spec)
        allowed.pop("id", None)
        allowed.pop("hits", None)
        rule = FaultRule(**allowed)
        _check_fault(rule)
        with self.lock:
            rule.id = next(self._fault_ids)
            self.faults.append(rule)
        return rule

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    def take_fault(self, method: str, path: str) -> FaultRule | None:
        with self.lock:
            for rule in self.faults:
                if rule.matches(method, path):
                    rule.hits += 1
                    if rule.times is not None:
                        rule.times -= 1
                    return rule
        return None

    # -- request log and budget ---------------------------------------------------------
    def record_call(self, method: str, path: str, status: int, headers: dict[str, str]) -> None:
        with self.lock:
            self.calls.append(
                {
                    "at": time.time(),
                    "method": method,
                    "path": path,
                    "status": status,
                    "headers": headers,
                }
            )

    def count_call(self) -> int:
        """Count one API call against the daily budget; return the usage so far."""
        with self.lock:
            self.api_usage += 1
            return self.api_usage

    def over_limit(self) -> bool:
        return self.api_usage > self.daily_limit

    def summary(self) -> dict[str, Any]:
        with self.lock:
            return {
                "vendor": self.vendor,
                "collections": {k: len(v) for k, v in self.collections.items()},
                "faults": [asdict(f) for f in self.faults],
                "api_usage": self.api_usage,
                "daily_limit": self.daily_limit,
                "calls": len(self.calls),
            }


class FaultInjectionMiddleware:
    """Answers a request from a matching fault rule instead of the vendor routes, and logs
    every answered request (method, path, status, the headers that matter for tests)."""

    logged_headers = (
        "authorization",
        "content-type",
        "if-match",
        "x-csrf-token",
        "x-netsuite-idempotency-key",
        "prefer",
    )

    def __init__(self, app: ASGIApp, state: StandinState, error_body: ErrorBody) -> None:
        self.app = app
        self.state = state
        self.error_body = error_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(CONTROL_PREFIX):
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        req_headers = {
            k.decode().lower(): v.decode()
            for k, v in scope.get("headers", [])
            if k.decode().lower() in self.logged_headers
        }

        # The call is logged when its answer starts, before the client can read it, so a
        # test that reads the log right after a call always finds the call there.
        async def logging_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                self.state.record_call(method, path, message["status"], req_headers)
            await send(message)

        rule = self.state.take_fault(method, path)
        if rule is not None:
            if rule.delay_ms:
                await asyncio.sleep(rule.delay_ms / 1000)
            if rule.status:
                body = (
                    rule.body
                    if rule.body is not None
                    else self.error_body(rule.status, rule.code, rule.message)
                )
                response = JSONResponse(body, status_code=rule.status, headers=rule.headers)
                await response(scope, receive, logging_send)
                return
        await self.app(scope, receive, logging_send)


def control_routes(state: StandinState) -> list[BaseRoute]:
    """The `/__standin__/` control surface shared by every stand-in."""

    async def summary(request: Request) -> Response:
        return JSONResponse(state.summary())

    async def faults(request: Request) -> Response:
        if request.method == "DELETE":
            state.clear_faults()
            return JSONResponse({"faults": []})
        if request.method == "GET":
            return JSONResponse({"faults": [asdict(f) for f in state.faults]})
        try:
            spec = await request.json()
            if not isinstance(spec, dict):
                raise TypeError("a fault is a JSON object")
            rule = state.add_fault(**spec)
        except (ValueError, TypeError, re.error) as exc:
            return JSONResponse({"error": f"bad fault rule: {exc}"}, status_code=400)
        return JSONResponse(asdict(rule), status_code=201)

    async def calls(request: Request) -> Response:
        with state.lock:
            return JSONResponse({"calls": list(state.calls)})

    async def reset(request: Request) -> Response:
        state.reset()
        return JSONResponse(state.summary())

    async def revoke(request: Request) -> Response:
        state.revoke_tokens()
        return JSONResponse({"revoked": True})

    async def collection(request: Request) -> Response:
        name = request.path_params["name"]
        with state.lock:  # reading must not create the collection
            return JSONResponse({"records": list(state.collections.get(name, {}).values())})

    async def record(request: Request) -> Response:
        """GET a record as JSON; POST (JSON or a form's `json` field) merges fields into it
        and stamps its vendor modification time; DELETE removes it."""
        name, rid = request.path_params["name"], request.path_params["rid"]
        with state.lock:
            current = state.collections.get(name, {}).get(rid)
        if current is None:
            return JSONResponse({"error": "no such record"}, status_code=404)
        if request.method == "GET":
            return JSONResponse(current)
        if request.method == "DELETE":
            return _delete(name, rid, is_form=False)
        is_form = _is_form(request)
        try:
            changes = await _changes(request, is_form, required=True)
        except ValueError as exc:
            return JSONResponse({"error": f"bad JSON: {exc}"}, status_code=400)
        with state.lock:
            before = dict(current)
            current.update(changes)
            state.stamp_modified(name, current)
            dict.update(current, changes)  # a modification time set by hand wins the stamp
            state.records_changed(name, before, current)
        if is_form:
            return RedirectResponse(f"{CONTROL_PREFIX}/", status_code=303)
        return JSONResponse(current)

    async def delete_form(request: Request) -> Response:
        """The page's way to delete (an HTML form cannot send DELETE)."""
        return _delete(request.path_params["name"], request.path_params["rid"], is_form=True)

    def _delete(name: str, rid: str, *, is_form: bool) -> Response:
        with state.lock:
            removed = state.collections.get(name, {}).pop(rid, None)
            if removed is not None:
                state.records_changed(name, dict(removed), None)
        if removed is None:
            return JSONResponse({"error": "no such record"}, status_code=404)
        if is_form:
            return RedirectResponse(f"{CONTROL_PREFIX}/", status_code=303)
        return JSONResponse({"deleted": {"collection": name, "id": rid}})

    async def copy_record(request: Request) -> Response:
        """POST: a duplicate of the record under a new id, with the fields of an optional
        JSON object laid over it; answers the copy (201)."""
        name, rid = request.path_params["name"], request.path_params["rid"]
        is_form = _is_form(request)
        try:
            changes = await _changes(request, is_form, required=False)
            if {"id", "Id"} & changes.keys():
                raise ValueError("the copy's id is given by the stand-in")
        except ValueError as exc:
            return JSONResponse({"error": f"bad JSON: {exc}"}, status_code=400)
        with state.lock:
            original = state.collections.get(name, {}).get(rid)
            if original is None:
                return JSONResponse({"error": "no such record"}, status_code=404)
            duplicate = _clone(original)
            new_id = state.prepare_copy(name, duplicate)
            table = state.table(name)
            if new_id in table:
                return JSONResponse(
                    {"error": f"the new id {new_id} is taken in {name}"}, status_code=409
                )
            dict.update(duplicate, changes)
            state.stamp_modified(name, duplicate)
            dict.update(duplicate, changes)
            table[new_id] = duplicate
            state.records_changed(name, None, duplicate)
        if is_form:
            return RedirectResponse(f"{CONTROL_PREFIX}/", status_code=303)
        return JSONResponse(duplicate, status_code=201)

    async def page(request: Request) -> Response:
        return HTMLResponse(_render_page(state))

    return [
        Route(f"{CONTROL_PREFIX}/", page),
        Route(f"{CONTROL_PREFIX}/state", summary),
        Route(f"{CONTROL_PREFIX}/faults", faults, methods=["GET", "POST", "DELETE"]),
        Route(f"{CONTROL_PREFIX}/calls", calls),
        Route(f"{CONTROL_PREFIX}/reset", reset, methods=["POST"]),
        Route(f"{CONTROL_PREFIX}/revoke-tokens", revoke, methods=["POST"]),
        Route(f"{CONTROL_PREFIX}/records/{{name}}", collection),
        Route(
            f"{CONTROL_PREFIX}/records/{{name}}/{{rid}}", record, methods=["GET", "POST", "DELETE"]
        ),
        Route(f"{CONTROL_PREFIX}/records/{{name}}/{{rid}}/copy", copy_record, methods=["POST"]),
        Route(f"{CONTROL_PREFIX}/records/{{name}}/{{rid}}/delete", delete_form, methods=["POST"]),
    ]


def _is_form(request: Request) -> bool:
    return request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    )


async def _changes(request: Request, is_form: bool, *, required: bool) -> dict[str, Any]:
    """The JSON object of fields a control edit sends (a form sends it in its `json` field);
    ValueError when it is not one. An empty body is no changes, unless `required`."""
    if is_form:
        text = await _form_field(request, "json")
    else:
        text = (await request.body()).decode("utf-8", errors="replace")
    if not text.strip() and not required:
        return {}
    changes = json.loads(text)
    if not isinstance(changes, dict):
        raise ValueError("send a JSON object of fields to change")
    return changes


def _clone(record: dict[str, Any]) -> dict[str, Any]:
    """A copy of a record of the same class (a vendor's record type), nothing nested shared."""
    clone = copy.copy(record)
    for key, value in record.items():
        dict.__setitem__(clone, key, copy.deepcopy(value))
    return clone


def _render_page(state: StandinState) -> str:
    esc = html.escape
    parts = [
        "<!doctype html><meta charset=utf-8>",
        f"<title>{esc(state.vendor)} stand-in</title>",
        "<style>body{font:14px system-ui;margin:2rem}textarea{width:40rem;height:6rem}"
        "td,th{vertical-align:top;padding:.3rem;border-bottom:1px solid #ddd}</style>",
        f"<h1>{esc(state.vendor)} stand-in</h1>",
        "<p>A local copy of the vendor API for tests and the demo. Edit a record's fields as "
        "JSON and save, copy it or delete it; the change is live for the next API call.</p>",
    ]
    with state.lock:
        snapshot = {k: dict(v) for k, v in state.collections.items()}
    for name, rows in snapshot.items():
        parts.append(f"<h2>{esc(name)} ({len(rows)})</h2><table>")
        for rid, row in list(rows.items())[:50]:
            body = esc(json.dumps(row, indent=1, default=str))
            action = f"{CONTROL_PREFIX}/records/{esc(name)}/{esc(rid)}"
            parts.append(
                f"<tr><th>{esc(rid)}</th><td><pre>{body}</pre></td><td>"
                f"<form method=post action='{action}'>"
                f"<textarea name=json aria-label='changes to {esc(name)} {esc(rid)}'>{{}}"
                "</textarea><br><button>Save changes</button></form>"
                f"<form method=post action='{action}/copy'><button>Copy</button></form>"
                f"<form method=post action='{action}/delete'><button>Delete</button></form>"
                "</td></tr>"
            )
        parts.append("</table>")
    return "".join(parts)


def build_app(state: StandinState, routes: list[BaseRoute], error_body: ErrorBody) -> Starlette:
    """Assemble a stand-in: vendor routes, the control surface, fault injection."""
    app = Starlette(
        routes=[*control_routes(state), *routes],
        middleware=[Middleware(FaultInjectionMiddleware, state=state, error_body=error_body)],
    )
    app.state.standin = state
    return app


async def _form_field(request: Request, name: str) -> str:
    """One field of a posted form. The page's urlencoded forms are parsed here, since
    Starlette's `request.form()` needs python-multipart, which is not a dependency."""
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        try:
            text = (await request.body()).decode()
        except UnicodeDecodeError as exc:
            raise ValueError("the form is not UTF-8") from exc
        return (parse_qs(text).get(name) or [""])[0]
    form = await request.form()  # multipart/form-data
    return str(form.get(name, ""))


def bearer_token(request: Request) -> str | None:
    value = request.headers.get("authorization", "")
    if value.lower().startswith("bearer "):
        return value[7:].strip()
    return None


async def json_body(request: Request) -> Any:
    """The request's JSON body, or raise ValueError with a readable reason."""
    raw = await request.body()
    if not raw:
        raise ValueError("empty body")
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"malformed JSON: {exc.msg} at position {exc.pos}") from exc
