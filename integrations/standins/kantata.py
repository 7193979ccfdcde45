"""Kantata OX (formerly Mavenlink) stand-in: a local copy of the PSA's REST API v1 for tests
and the demo, standing for https://api.mavenlink.com.

Paths (the `.json` suffix is optional, as at Kantata):

* `GET  /api/v1/{resource}.json` - a page of records (filters, `include=`, `order=`, paging).
* `GET  /api/v1/{resource}/{id}.json` - one record; 404 for unknown ids (and for archived
  workspaces unless `include_archived=true`, as at Kantata).
* `POST /api/v1/{resource}.json` - create one (`{"workspace": {...}}`) or many
  (`{"workspaces": [...]}`: at most 100 workspaces, 300 stories or time entries per call, as
  Kantata documents; more, or an empty list, is 422). A bulk create is all-or-nothing.
* `PUT  /api/v1/{resource}/{id}.json` - update (`{"workspace": {...}}`).
* `POST /api/v1/external_references/create_or_update.json` - upsert an external reference
  keyed by (subject_type, subject_id, service_name): Kantata allows one reference per
  service name on an object.

Resources: `workspaces` (list, get, create, update), `stories` (list, get, create, update),
`users` (list, get), `external_references` (list, create_or_update), `time_entries` (list,
get, create). Other verbs answer 405 in Kantata's error shape.

Auth: `Authorization: Bearer <token>`. Tokens never expire; the valid ones are
`KantataState(tokens=...)` (default {"kantata-demo-token"}). Missing, unknown or revoked
(`/__standin__/revoke-tokens`) tokens answer 401 `{"errors": [{"type": "oauth", ...}]}`; a
reset brings the configured tokens back. `POST /__standin__/tokens {"token": "..."}` adds one.

Every answer of the API is Kantata's envelope: `{"count": N, "results": [{"key", "id"}],
"<key>": {"<id>": {...}}, "meta": {"count", "page_count", "page_number", "page_size"}}`.
`results` holds the primary records in answer order; ids are strings; objects asked for with
`include=` sit under their own key (and are not in `results`). `count` is the total of the
whole query. Create and update answer 200 with the same envelope.

Paging: `page` (from 1) and `per_page` (default 20, capped at 200), or `limit` and `offset`;
when both `limit` and `offset` are given, `page` and `per_page` are ignored (Kantata's rule).

Errors: `{"errors": [{"type": "validation"|"system"|"oauth", "message", "field"?}]}`: 422
validation, 404 unknown id or resource, 401 auth, 429 over the rate limit
(`KantataState(rate_limit=N, rate_window=seconds)`, or past `daily_limit`) with no
Retry-After header, as Kantata documents none. Injected faults (`/__standin__/faults`) answer
in the same shape unless the rule carries its own body; rules may add headers such as
Retry-After.

Filters: workspaces `only`, `search` (keywords in id, title, description; also Kantata's
`title:'...'`, `description:'...'` and `status:'...'` forms; every term must match),
`matching` (each word starts a word of the title, stop words ignored), `budgeted`,
`include_archived`, `archived=only|exclude|include`; stories `workspace_id`, `story_type`,
`story_types`, `only`, `show_archived`; users `only`; external_references `subject_type`
(required, as at Kantata), `subject_id`, `service_name`, `service_model`,
`service_model_ref`, `status`, `only`; time_entries `workspace_id`, `user_id`, `story_id`,
`only`. Unknown parameters are ignored, like Kantata does.
Orders: workspaces and stories `created_at|updated_at|title|start_date|due_date:asc|desc`
(default `updated_at:desc`), external_references `created_at|last_synced_at:asc|desc`
(default `last_synced_at:desc`), time_entries `date_performed|created_at:asc|desc`; ties
break on the id. Includes: workspaces `creator`, `external_references`; stories `workspace`,
`creator`, `external_references`; time_entries `workspace`, `user`, `story`; users
`external_references`; external_references `subject`. `creator_id` and
`external_reference_ids` appear only when their association is included, as documented.

Money: a workspace's writable budget is `price` in currency units (an integer, or a decimal
string with at most the currency's minor digits); answers carry `price` formatted
("$12,500.00", or "TBD" when unset) and `price_in_cents` in the currency's subunits
(`currency_base_unit` 100, 1 for JPY-like currencies, 1000 for BHD-like ones). Stories carry
`budget_estimate_in_cents` (only on budgeted workspaces). Writing a read-only or unknown
attribute (such as `price_in_cents`) is 422 here - stricter than Kantata, which ignores
unpermitted attributes, so a connector cannot rely on a field Kantata would drop.

Validation (422): workspace title required, at most 255 characters; dates ISO 8601; due_date
on or after start_date; currency a 3-letter code; creator_role one of maven, buyer,
consultant, client; a story's workspace must exist, its type is task, deliverable, milestone
or issue, its description shorter than 1000 characters; a time entry needs an existing
workspace, a date_performed and a positive time_in_minutes.

Seed (deterministic; one id counter serves all tables, so an id names one record):

    1  user       Avery Quinn      Resource Manager  (the API user: creator of new records)
    2  user       Jordan Lee       Resource Manager
    3  user       Priya Natarajan  Resource Manager
    4  workspace  "Internal: bench time"  not budgeted, USD, status 401 Active, by user 1
    5  story      "Bench and training"    a task in workspace 4

New records get ids from 6 on. Seeded timestamps are 2026-01-05T09:00:00+00:00; new ones are
the current UTC time at second precision. Project status keys are an illustrative subset of
Kantata's list (300 Not Started, 401 Active, 410 On Hold, 500 Completed, 501 Cancelled).
"""

from __future__ import annotations

import math
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from .common import CONTROL_PREFIX, StandinState, bearer_token, build_app, json_body

API_PREFIX = "/api/v1"
DEFAULT_TOKEN = "kantata-demo-token"
API_USER_ID = "1"
ACCOUNT_ID = 1001
DEFAULT_PER_PAGE = 20
MAX_PER_PAGE = 200
BULK_LIMITS = {"workspaces": 100, "stories": 300, "time_entries": 300}
SEED_TIME = "2026-01-05T09:00:00+00:00"

SINGULAR = {
    "workspaces": "workspace",
    "stories": "story",
    "users": "user",
    "external_references": "external_reference",
    "time_entries": "time_entry",
}
SUBJECT_TABLES = {
    "Workspace": "workspaces",
    "Story": "stories",
    "User": "users",
    "TimeEntry": "time_entries",
}
ZERO_DECIMAL = frozenset({"BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF",
                          "UGX", "VND", "VUV", "XAF", "XOF", "XPF"})  # fmt: skip
THREE_DECIMAL = frozenset({"BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"})
SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "CAD": "$", "AUD": "$"}
STATUSES = {
    300: ("gray", "Not Started"),
    401: ("yellow", "Active"),
    410: ("yellow", "On Hold"),
    500: ("green", "Completed"),
    501: ("red", "Cancelled"),
}
STORY_TYPES = ("task", "deliverable", "milestone", "issue")
STORY_STATES = ("not started", "started", "needs info", "completed")
ISSUE_STATES = ("new", "reopened", "in progress", "blocked", "fixed", "duplicate",
                "can't repro", "resolved", "won't fix")  # fmt: skip
REFERENCE_STATUSES = ("pending", "successful", "failed")
STOP_WORDS = frozenset({
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is",
    "it", "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there",
    "these", "they", "this", "to", "was", "with",
})  # fmt: skip

WORKSPACE_CREATE = frozenset({
    "title", "description", "budgeted", "currency", "price", "start_date", "due_date",
    "creator_role", "client_role_name", "consultant_role_name", "access_level", "status_key",
    "external_reference", "change_orders", "change_orders_enabled", "expenses_in_burn_rate",
    "posts_require_privacy_decision", "stories_are_fixed_fee_by_default",
    "tasks_default_non_billable", "require_expense_approvals", "require_time_approvals",
    "target_margin", "rate_card_id", "approver_id", "workspace_group_ids", "custom_fields",
    "project_tracker_template_id", "primary_maven_id", "time_trackable", "stage",
})  # fmt: skip
WORKSPACE_UPDATE = (WORKSPACE_CREATE - {"creator_role"}) | {"archived"}
WORKSPACE_FLAGS = (
    "change_orders_enabled", "expenses_in_burn_rate", "posts_require_privacy_decision",
    "stories_are_fixed_fee_by_default", "tasks_default_non_billable",
    "require_expense_approvals", "require_time_approvals", "time_trackable",
)  # fmt: skip
STORY_CREATE = frozenset({
    "workspace_id", "title", "story_type", "description", "start_date", "due_date", "state",
    "status", "parent_id", "archived", "assignee_ids", "budget_estimate_in_cents",
    "time_estimate_in_minutes", "billable", "fixed_fee", "weight", "external_reference",
})  # fmt: skip
STORY_UPDATE = STORY_CREATE - {"workspace_id"}
TIME_ENTRY_CREATE = frozenset({
    "workspace_id", "date_performed", "time_in_minutes", "billable", "notes", "rate_in_cents",
    "cost_rate_in_cents", "story_id", "user_id", "external_reference", "location",
})  # fmt: skip
REFERENCE_FIELDS = frozenset({
    "subject_type", "subject_id", "service_name", "service_model", "service_model_ref",
    "status", "external_link", "external_status", "external_message", "locked",
})  # fmt: skip

ORDERS = {
    "workspaces": ({"created_at", "updated_at", "title", "start_date", "due_date"},
                   "updated_at:desc"),
    "stories": ({"created_at", "updated_at", "title", "start_date", "due_date"},
                "updated_at:desc"),
    "external_references": ({"created_at", "last_synced_at"}, "last_synced_at:desc"),
    "time_entries": ({"date_performed", "created_at"}, "date_performed:desc"),
    "users": (set(), ""),
}  # fmt: skip

#: association -> (collection, foreign key, many?) per resource
INCLUDES: dict[str, dict[str, tuple[str, str, bool]]] = {
    "workspaces": {
        "creator": ("users", "creator_id", False),
        "external_references": ("external_references", "external_reference_ids", True),
    },
    "stories": {
        "workspace": ("workspaces", "workspace_id", False),
        "creator": ("users", "creator_id", False),
        "external_references": ("external_references", "external_reference_ids", True),
    },
    "time_entries": {
        "workspace": ("workspaces", "workspace_id", False),
        "user": ("users", "user_id", False),
        "story": ("stories", "story_id", False),
    },
    "users": {"external_references": ("external_references", "external_reference_ids", True)},
    "external_references": {"subject": ("", "subject_ref", False)},
}
#: foreign keys Kantata shows only when their association is included
HIDDEN_KEYS = {"workspaces": ("creator_id",), "stories": ("creator_id",)}

Payload = dict[str, Any]


class KantataApiError(Exception):
    """An answer in Kantata's error shape."""

    def __init__(
        self, status: int, message: str, *, kind: str = "validation", field: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.field = field

    def response(self) -> JSONResponse:
        error: dict[str, Any] = {"type": self.kind, "message": self.message}
        if self.field:
            error["field"] = self.field
        return JSONResponse({"errors": [error]}, status_code=self.status)


def error_body(status: int, code: str, message: str) -> Payload:
    """The body of an injected fault: Kantata's error list."""
    kind = code or (
        "oauth" if status == 401 else "validation" if status in (400, 422) else "system"
    )
    return {"errors": [{"type": kind, "message": message}]}


def _invalid(message: str, field: str | None = None) -> KantataApiError:
    return KantataApiError(422, message, field=field)


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def base_unit(currency: str) -> int:
    """Subunits in one unit of `currency` (Kantata's `currency_base_unit`)."""
    if currency in ZERO_DECIMAL:
        return 1
    if currency in THREE_DECIMAL:
        return 1000
    return 100


def format_price(cents: int | None, currency: str) -> str:
    if cents is None:
        return "TBD"
    unit = base_unit(currency)
    digits = round(math.log10(unit))
    amount = Decimal(cents).scaleb(-digits)
    symbol = SYMBOLS.get(currency, f"{currency} ")
    return f"{symbol}{amount:,.{digits}f}"


# -- value checks -------------------------------------------------------------------------
def _text(value: Any, field: str, *, max_length: int | None = None, required: bool = False) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise _invalid(f"{field} must be a string", field)
    text = value.strip()
    if required and not text:
        raise _invalid(f"{field} can't be blank", field)
    if max_length is not None and len(text) > max_length:
        raise _invalid(f"{field} is too long (maximum is {max_length} characters)", field)
    return text


def _date(value: Any, field: str) -> str | None:
    if value in (None, ""):
        return None
    if isinstance(value, str):
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError:
            pass
    raise _invalid(f"{field} must be a date in ISO 8601 format (YYYY-MM-DD)", field)


def _bool(value: Any, field: str) -> bool:
    if isinstance(value, bool):
        return value
    if value in ("true", "1", 1):
        return True
    if value in ("false", "0", 0):
        return False
    raise _invalid(f"{field} must be true or false", field)


def _int(value: Any, field: str, *, minimum: int | None = 0) -> int:
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        number = int(value)
    if number is None:
        raise _invalid(f"{field} must be an integer", field)
    if minimum is not None and number < minimum:
        raise _invalid(f"{field} must be greater than or equal to {minimum}", field)
    return number


def _record_id(value: Any, field: str) -> str:
    return str(_int(value, field, minimum=1))


def _choice(value: Any, field: str, choices: Iterable[str]) -> str:
    options = tuple(choices)
    if value not in options:
        raise _invalid(f"{field} must be one of: {', '.join(options)}", field)
    return str(value)


def _query_bool(params: Any, name: str, default: bool = False) -> bool:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    raise _invalid(f"{name} must be true or false", name)


def _id_list(raw: str, field: str) -> set[str]:
    ids = {part.strip() for part in raw.split(",") if part.strip()}
    for rid in ids:
        if not rid.isdigit():
            raise _invalid(f"{field} takes a comma-separated list of ids", field)
    return ids


class KantataState(StandinState):
    """Kantata's records (workspaces, stories, users, external references, time entries)."""

    vendor = "kantata"

    def __init__(
        self,
        *,
        tokens: set[str] | None = None,
        daily_limit: int = 100_000,
        rate_limit: int | None = None,
        rate_window: float = 60.0,
    ) -> None:
        self.configured_tokens = set(tokens) if tokens is not None else {DEFAULT_TOKEN}
        self.rate_limit = rate_limit
        self.rate_window = rate_window
        self._window: deque[float] = deque()
        super().__init__(daily_limit=daily_limit)

    def reset(self) -> None:
        super().reset()
        with self.lock:
            for token in self.configured_tokens:
                self.tokens[token] = math.inf
            self._window = deque()

    def add_token(self, token: str) -> None:
        """Make `token` valid from now on (it survives resets)."""
        with self.lock:
            self.configured_tokens.add(token)
            self.tokens[token] = math.inf

    def allow_call(self) -> bool:
        """Count one call in the rate window; False when the window is full."""
        if self.rate_limit is None:
            return True
        now = time.monotonic()
        with self.lock:
            while self._window and self._window[0] <= now - self.rate_window:
                self._window.popleft()
            if len(self._window) >= self.rate_limit:
                return False
            self._window.append(now)
            return True

    def seed(self) -> None:
        users = [
            ("Avery Quinn", "avery.quinn@throughline.demo"),
            ("Jordan Lee", "jordan.lee@throughline.demo"),
            ("Priya Natarajan", "priya.natarajan@throughline.demo"),
        ]
        for full_name, email in users:
            uid = str(self.next_number())
            self.table("users")[uid] = {
                "id": uid,
                "full_name": full_name,
                "email_address": email,
                "headline": "Resource Manager",
                "photo_path": f"https://app.mavenlink.com/images/avatars/{uid}.png",
                "account_id": ACCOUNT_ID,
                "disabled": False,
                "generic": False,
                "created_at": SEED_TIME,
                "updated_at": SEED_TIME,
            }
        wid = str(self.next_number())
        self.table("workspaces")[wid] = new_workspace(
            wid,
            {
                "title": "Internal: bench time",
                "description": "Time between client projects: training, pre-sales, admin.",
                "budgeted": False,
                "currency": "USD",
                "start_date": "2026-01-01",
                "status_key": 401,
                "client_role_name": "Internal",
                "consultant_role_name": "Delivery",
            },
            creator_id=API_USER_ID,
            stamp=SEED_TIME,
        )
        sid = str(self.next_number())
        self.table("stories")[sid] = {
            **story_defaults(),
            "id": sid,
            "workspace_id": wid,
            "title": "Bench and training",
            "story_type": "task",
            "start_date": "2026-01-01",
            "position": 1,
            "creator_id": API_USER_ID,
            "created_at": SEED_TIME,
            "updated_at": SEED_TIME,
        }


def new_workspace(wid: str, data: Payload, *, creator_id: str, stamp: str) -> Payload:
    """A workspace record with Kantata's defaults, then `data` applied (already checked)."""
    record: Payload = {
        "id": wid,
        "title": "",
        "description": "",
        "archived": False,
        "budgeted": True,
        "start_date": None,
        "due_date": None,
        "effective_due_date": None,
        "currency": "USD",
        "price_in_cents": None,
        "client_role_name": "Clients",
        "consultant_role_name": "Providers",
        "access_level": "invitation",
        "status_key": 300,
        "percentage_complete": 0,
        "account_id": ACCOUNT_ID,
        "can_create_line_items": True,
        "can_invite": True,
        "has_budget_access": True,
        "over_budget": False,
        "target_margin": None,
        "change_orders_enabled": False,
        "expenses_in_burn_rate": True,
        "posts_require_privacy_decision": False,
        "stories_are_fixed_fee_by_default": False,
        "tasks_default_non_billable": False,
        "require_expense_approvals": False,
        "require_time_approvals": False,
        "time_trackable": True,
        "creator_id": creator_id,
        "created_at": stamp,
        "updated_at": stamp,
    }
    record.update(data)
    return finish_workspace(record)


def finish_workspace(record: Payload) -> Payload:
    """Derive the read-only fields (price text, currency units, status hash)."""
    currency = record["currency"]
    record["currency_symbol"] = SYMBOLS.get(currency, currency)
    record["currency_base_unit"] = base_unit(currency)
    record["price"] = format_price(record.get("price_in_cents"), currency)
    record["effective_due_date"] = record.get("due_date")
    color, message = STATUSES[record["status_key"]]
    record["status"] = {"color": color, "key": record["status_key"], "message": message}
    return record


def story_defaults() -> Payload:
    return {
        "description": "",
        "story_type": "task",
        "state": "not started",
        "status": "not started",
        "start_date": None,
        "due_date": None,
        "budget_estimate_in_cents": None,
        "time_estimate_in_minutes": None,
        "billable": True,
        "fixed_fee": False,
        "archived": False,
        "deleted_at": None,
        "percentage_complete": 0,
        "ancestry_depth": 0,
        "sub_story_count": 0,
        "parent_id": None,
        "weight": None,
    }


class KantataApi:
    """The vendor routes over a KantataState."""

    def __init__(self, state: KantataState) -> None:
        self.state = state

    # -- plumbing -----------------------------------------------------------------------
    def routes(self) -> list[BaseRoute]:
        methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
        upsert = self._endpoint(self.upsert_reference)
        return [
            Route(
                f"{API_PREFIX}/external_references/create_or_update.json", upsert, methods=methods
            ),
            Route(f"{API_PREFIX}/external_references/create_or_update", upsert, methods=methods),
            Route(f"{API_PREFIX}/{{resource}}", self._endpoint(self.collection), methods=methods),
            Route(
                f"{API_PREFIX}/{{resource}}/{{rid}}", self._endpoint(self.member), methods=methods
            ),
            Route(f"{CONTROL_PREFIX}/tokens", self.add_token, methods=["POST"]),
        ]

    def _endpoint(
        self, handler: Callable[[Request], Awaitable[Payload]]
    ) -> Callable[[Request], Awaitable[Response]]:
        state = self.state

        async def endpoint(request: Request) -> Response:
            try:
                if not state.token_valid(bearer_token(request)):
                    raise KantataApiError(
                        401, "Invalid OAuth 2 Request: token missing or not valid", kind="oauth"
                    )
                state.count_call()
                if state.over_limit() or not state.allow_call():
                    raise KantataApiError(
                        429, "Rate limit exceeded. Retry after a short delay.", kind="system"
                    )
                return JSONResponse(await handler(request))
            except KantataApiError as exc:
                return exc.response()

        return endpoint

    async def add_token(self, request: Request) -> Response:
        try:
            spec = await json_body(request)
            token = spec.get("token") if isinstance(spec, dict) else None
            if not isinstance(token, str) or not token.strip():
                raise ValueError('send {"token": "<token>"}')
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        self.state.add_token(token.strip())
        return JSONResponse({"token": token.strip()}, status_code=201)

    @staticmethod
    def _resource(request: Request) -> str:
        name = request.path_params["resource"].removesuffix(".json")
        if name not in SINGULAR:
            raise KantataApiError(404, f"Unknown resource: {name}", kind="system")
        return name

    @staticmethod
    def _rid(request: Request) -> str:
        rid = request.path_params["rid"].removesuffix(".json")
        if not rid.isdigit():
            raise KantataApiError(404, "Record not found", kind="system")
        return rid

    @staticmethod
    async def _body(request: Request) -> Any:
        try:
            return await json_body(request)
        except ValueError as exc:
            raise KantataApiError(400, f"Request body is not valid JSON: {exc}") from exc

    # -- dispatch -----------------------------------------------------------------------
    async def collection(self, request: Request) -> Payload:
        resource = self._resource(request)
        if request.method == "GET":
            return self.list(resource, request.query_params)
        if request.method == "POST" and resource in ("workspaces", "stories", "time_entries"):
            return self.create(resource, await self._body(request), request.query_params)
        raise KantataApiError(405, f"{request.method} is not allowed on {resource}", kind="system")

    async def member(self, request: Request) -> Payload:
        resource, rid = self._resource(request), self._rid(request)
        params = request.query_params
        if request.method == "GET" and resource != "external_references":
            with self.state.lock:
                record = self._find(resource, rid, params)
                return self._envelope(resource, [record], params, total=1)
        if request.method == "PUT" and resource in ("workspaces", "stories"):
            return self.update(resource, rid, await self._body(request), params)
        raise KantataApiError(405, f"{request.method} is not allowed on {resource}", kind="system")

    def _find(self, resource: str, rid: str, params: Any) -> Payload:
        record = self.state.table(resource).get(rid)
        if record is None or (
            resource == "workspaces"
            and record["archived"]
            and not _query_bool(params, "include_archived")
        ):
            raise KantataApiError(404, "Record not found", kind="system")
        return record

    # -- reading ------------------------------------------------------------------------
    def list(self, resource: str, params: Any) -> Payload:
        if resource == "external_references" and not params.get("subject_type"):
            raise _invalid("subject_type is required", "subject_type")
        with self.state.lock:
            records = list(self.state.table(resource).values())
            records = [r for r in records if self._matches(resource, r, params)]
            if "only" in params:
                only = _id_list(params["only"], "only")
                records = [r for r in records if r["id"] in only]
            records = self._sort(resource, records, params.get("order"))
            start, size, page_number = self._paging(params)
            page = records[start : start + size]
            body = self._envelope(resource, page, params, total=len(records))
            body["meta"].update(
                page_count=math.ceil(len(records) / size), page_number=page_number, page_size=size
            )
            return body

    def _matches(self, resource: str, record: Payload, params: Any) -> bool:
        if resource == "workspaces":
            return self._workspace_matches(record, params)
        if resource == "stories":
            if "workspace_id" in params and record["workspace_id"] != params["workspace_id"]:
                return False
            types: set[str] = set()
            if params.get("story_type"):
                types.add(params["story_type"])
            if params.get("story_types"):
                types |= {t.strip() for t in params["story_types"].split(",")}
            if types and record["story_type"] not in types:
                return False
            return not record["archived"] or _query_bool(params, "show_archived")
        if resource == "external_references":
            checks = (
                "subject_type",
                "subject_id",
                "service_name",
                "service_model",
                "service_model_ref",
                "status",
            )
            return all(str(record.get(name)) == params[name] for name in checks if name in params)
        if resource == "time_entries":
            return all(
                record.get(name) == params[name]
                for name in ("workspace_id", "user_id", "story_id")
                if name in params
            )
        return True

    def _workspace_matches(self, record: Payload, params: Any) -> bool:
        archived = params.get("archived")
        if archived:
            mode = _choice(archived, "archived", ("only", "exclude", "include"))
        else:
            mode = "include" if _query_bool(params, "include_archived") else "exclude"
        if (mode == "exclude" and record["archived"]) or (
            mode == "only" and not record["archived"]
        ):
            return False
        if "budgeted" in params and record["budgeted"] != _query_bool(params, "budgeted"):
            return False
        if params.get("matching") and not _title_matches(record["title"], params["matching"]):
            return False
        return not params.get("search") or _search_matches(record, params["search"])

    @staticmethod
    def _sort(resource: str, records: list[Payload], order: str | None) -> list[Payload]:
        fields, default = ORDERS[resource]
        order = order or default
        if not order:
            return sorted(records, key=lambda r: int(r["id"]))
        field, _, direction = order.partition(":")
        if field not in fields or direction not in ("asc", "desc"):
            raise _invalid(f"order must be one of {sorted(fields)} with :asc or :desc", "order")

        def key(record: Payload) -> tuple[bool, str, int]:
            value = record.get(field)
            return (value is None, str(value or "").lower(), int(record["id"]))

        return sorted(records, key=key, reverse=direction == "desc")

    @staticmethod
    def _paging(params: Any) -> tuple[int, int, int]:
        """(start index, page size, page number) from page/per_page or limit/offset."""
        if params.get("limit") is not None and params.get("offset") is not None:
            limit = min(_int(params["limit"], "limit", minimum=1), MAX_PER_PAGE)
            offset = _int(params["offset"], "offset", minimum=0)
            return offset, limit, offset // limit + 1
        page = _int(params.get("page", "1"), "page", minimum=1)
        per_page = min(
            _int(params.get("per_page", DEFAULT_PER_PAGE), "per_page", minimum=1), MAX_PER_PAGE
        )
        return (page - 1) * per_page, per_page, page

    # -- presenting ---------------------------------------------------------------------
    def _envelope(
        self, resource: str, records: list[Payload], params: Any, *, total: int
    ) -> Payload:
        includes = self._includes(resource, params)
        included: dict[str, dict[str, Payload]] = {}
        objects: dict[str, Payload] = {}
        for record in records:
            objects[record["id"]] = self._present(resource, record, includes, included)
        body: Payload = {
            "count": total,
            "results": [{"key": resource, "id": r["id"]} for r in records],
            resource: objects,
            "meta": {
                "count": total,
                "page_count": 1,
                "page_number": 1,
                "page_size": max(len(records), 1),
            },
        }
        for key, extra in included.items():
            body.setdefault(key, {})
            for rid, obj in extra.items():
                body[key].setdefault(rid, obj)
        return body

    @staticmethod
    def _includes(resource: str, params: Any) -> list[str]:
        raw = params.get("include") or ""
        names = [n.strip() for n in raw.split(",") if n.strip()]
        known = INCLUDES.get(resource, {})
        for name in names:
            if name not in known:
                raise _invalid(
                    f"include '{name}' is not supported on {resource} (supported: "
                    f"{', '.join(sorted(known)) or 'none'})",
                    "include",
                )
        return names

    def _present(
        self,
        resource: str,
        record: Payload,
        includes: list[str],
        included: dict[str, dict[str, Payload]],
    ) -> Payload:
        obj = {k: v for k, v in record.items() if k not in HIDDEN_KEYS.get(resource, ())}
        for name in includes:
            collection, fk, many = INCLUDES[resource][name]
            if name == "subject":
                table = SUBJECT_TABLES[record["subject_type"]]
                sid = str(record["subject_id"])
                subject = self.state.table(table).get(sid)
                if subject is not None:
                    obj["subject_ref"] = {"key": table, "id": sid}
                    included.setdefault(table, {})[sid] = self._present(table, subject, [], {})
                continue
            if name == "external_references":
                subject_type = {v: k for k, v in SUBJECT_TABLES.items()}[resource]
                refs = [
                    ref
                    for ref in self.state.table("external_references").values()
                    if ref["subject_type"] == subject_type
                    and str(ref["subject_id"]) == record["id"]
                ]
                obj[fk] = [ref["id"] for ref in refs]
                for ref in refs:
                    included.setdefault(collection, {})[ref["id"]] = dict(ref)
                continue
            target_id = record.get(fk)
            obj[fk] = target_id
            target = self.state.table(collection).get(target_id) if target_id else None
            if target is not None and not many:
                included.setdefault(collection, {})[target_id] = self._present(
                    collection, target, [], {}
                )
        return obj

    # -- writing ------------------------------------------------------------------------
    def _items(self, resource: str, body: Any) -> list[tuple[str, Payload]]:
        """The objects of a create body: [(label for errors, fields)]."""
        singular = SINGULAR[resource]
        if not isinstance(body, dict):
            raise _invalid(f'Send {{"{singular}": {{...}}}} or {{"{resource}": [...]}}')
        if resource in body and singular in body:
            raise _invalid(f"Send either {singular} or {resource}, not both")
        if resource in body:
            items = body[resource]
            limit = BULK_LIMITS[resource]
            if not isinstance(items, list) or not items:
                raise _invalid(f"{resource} must be a non-empty list", resource)
            if len(items) > limit:
                raise _invalid(
                    f"Bulk create accepts at most {limit} {resource}; got {len(items)}", resource
                )
            labelled = [(f"{resource}[{i}]", item) for i, item in enumerate(items)]
        elif singular in body:
            labelled = [(singular, body[singular])]
        else:
            raise _invalid(f'Send {{"{singular}": {{...}}}} or {{"{resource}": [...]}}')
        for label, item in labelled:
            if not isinstance(item, dict):
                raise _invalid(f"{label} must be an object", label)
        return labelled

    def create(self, resource: str, body: Any, params: Any) -> Payload:
        state = self.state
        labelled = self._items(resource, body)
        with state.lock:
            built: list[tuple[Payload, Payload | None]] = []
            for label, fields in labelled:
                try:
                    built.append(self._build(resource, fields, None))
                except KantataApiError as exc:
                    if label != SINGULAR[resource]:
                        exc.message = f"{label}: {exc.message}"
                    raise
            created = []
            stamp = _now()
            for record, reference in built:
                rid = str(state.next_number())
                record.update(id=rid, created_at=stamp, updated_at=stamp)
                if resource == "stories":
                    siblings = [
                        s["position"]
                        for s in state.table("stories").values()
                        if s["workspace_id"] == record["workspace_id"]
                    ]
                    record["position"] = max(siblings, default=0) + 1
                state.table(resource)[rid] = record
                if reference is not None:
                    self._save_reference(
                        {
                            **reference,
                            "subject_type": _subject_type(resource),
                            "subject_id": int(rid),
                        }
                    )
                created.append(record)
            return self._envelope(resource, created, params, total=len(created))

    def update(self, resource: str, rid: str, body: Any, params: Any) -> Payload:
        singular = SINGULAR[resource]
        if not isinstance(body, dict) or not isinstance(body.get(singular), dict):
            raise _invalid(f'Send {{"{singular}": {{...}}}}', singular)
        with self.state.lock:
            current = self._find(resource, rid, {"include_archived": "true"})
            record, reference = self._build(resource, body[singular], current)
            record["updated_at"] = _now()
            self.state.table(resource)[rid] = record
            if reference is not None:
                self._save_reference(
                    {**reference, "subject_type": _subject_type(resource), "subject_id": int(rid)}
                )
            return self._envelope(resource, [record], params, total=1)

    def _build(
        self, resource: str, fields: Payload, current: Payload | None
    ) -> tuple[Payload, Payload | None]:
        """Check `fields` and return (the new record, a nested external_reference or None)."""
        if resource == "workspaces":
            allowed = WORKSPACE_CREATE if current is None else WORKSPACE_UPDATE
        elif resource == "stories":
            allowed = STORY_CREATE if current is None else STORY_UPDATE
        else:
            allowed = TIME_ENTRY_CREATE
        unknown = sorted(set(fields) - allowed)
        if unknown:
            raise _invalid(
                f"Unknown or read-only attribute for {resource}: {', '.join(unknown)}", unknown[0]
            )
        reference = None
        if fields.get("external_reference") is not None:
            reference = _check_reference(fields["external_reference"], nested=True)
        if resource == "workspaces":
            return self._build_workspace(fields, current), reference
        if resource == "stories":
            return self._build_story(fields, current), reference
        return self._build_time_entry(fields), reference

    def _build_workspace(self, fields: Payload, current: Payload | None) -> Payload:
        data: Payload = {}
        if current is None or "title" in fields:
            data["title"] = _text(fields.get("title"), "title", max_length=255, required=True)
        if "description" in fields:
            data["description"] = _text(fields["description"], "description")
        for name in ("client_role_name", "consultant_role_name"):
            if name in fields:
                data[name] = _text(fields[name], name, max_length=255, required=True)
        for name in ("budgeted", "archived", *WORKSPACE_FLAGS):
            if name in fields:
                data[name] = _bool(fields[name], name)
        if "change_orders" in fields:
            data["change_orders_enabled"] = _bool(fields["change_orders"], "change_orders")
        if "creator_role" in fields:
            _choice(
                fields["creator_role"], "creator_role", ("maven", "buyer", "consultant", "client")
            )
        if "access_level" in fields:
            data["access_level"] = _choice(
                fields["access_level"], "access_level", ("invitation", "open", "admins", "admin")
            )
        if "status_key" in fields:
            key = _int(fields["status_key"], "status_key")
            if key not in STATUSES:
                raise _invalid(f"status_key must be one of {sorted(STATUSES)}", "status_key")
            data["status_key"] = key
        if "target_margin" in fields:
            data["target_margin"] = _int(fields["target_margin"], "target_margin", minimum=None)
        currency = (current or {}).get("currency", "USD")
        if "currency" in fields:
            currency = fields["currency"]
            if not isinstance(currency, str) or not re.fullmatch(r"[A-Z]{3}", currency):
                raise _invalid("currency must be a 3-letter ISO code such as USD", "currency")
            data["currency"] = currency
        if "price" in fields:
            data["price_in_cents"] = _price_in_subunits(fields["price"], currency)
        for name in ("start_date", "due_date"):
            if name in fields:
                data[name] = _date(fields[name], name)
        start = data.get("start_date", (current or {}).get("start_date"))
        due = data.get("due_date", (current or {}).get("due_date"))
        if start and due and due < start:
            raise _invalid("due_date must be on or after start_date", "due_date")
        if current is None:
            return new_workspace("", data, creator_id=API_USER_ID, stamp="")
        return finish_workspace({**current, **data})

    def _build_story(self, fields: Payload, current: Payload | None) -> Payload:
        record: Payload = (
            dict(current) if current else {**story_defaults(), "creator_id": API_USER_ID}
        )
        if current is None:
            if fields.get("workspace_id") in (None, ""):
                raise _invalid("workspace_id can't be blank", "workspace_id")
            wid = _record_id(fields["workspace_id"], "workspace_id")
            if wid not in self.state.table("workspaces"):
                raise _invalid(f"Workspace {wid} does not exist", "workspace_id")
            record["workspace_id"] = wid
            workspace = self.state.table("workspaces")[wid]
            record["billable"] = not workspace["tasks_default_non_billable"]
            record["fixed_fee"] = workspace["stories_are_fixed_fee_by_default"]
        workspace = self.state.table("workspaces")[record["workspace_id"]]
        if current is None or "title" in fields:
            record["title"] = _text(fields.get("title"), "title", max_length=255, required=True)
        if "story_type" in fields:
            record["story_type"] = _choice(fields["story_type"], "story_type", STORY_TYPES)
        if "description" in fields:
            record["description"] = _text(fields["description"], "description", max_length=999)
        states = ISSUE_STATES + STORY_STATES if record["story_type"] == "issue" else STORY_STATES
        if "status" in fields:
            record["state"] = _choice(fields["status"], "status", STORY_STATES)
        elif "state" in fields:
            record["state"] = _choice(fields["state"], "state", states)
        record["status"] = record["state"]
        for name in ("start_date", "due_date"):
            if name in fields:
                record[name] = _date(fields[name], name)
        if (
            record["start_date"]
            and record["due_date"]
            and record["due_date"] < record["start_date"]
        ):
            raise _invalid("due_date must be on or after start_date", "due_date")
        if fields.get("budget_estimate_in_cents") is not None:
            if not workspace["budgeted"]:
                raise _invalid(
                    "budget_estimate_in_cents can only be set on a budgeted workspace",
                    "budget_estimate_in_cents",
                )
            record["budget_estimate_in_cents"] = _int(
                fields["budget_estimate_in_cents"], "budget_estimate_in_cents"
            )
        for name in ("time_estimate_in_minutes", "weight"):
            if fields.get(name) is not None:
                record[name] = _int(fields[name], name)
        for name in ("billable", "fixed_fee", "archived"):
            if name in fields:
                record[name] = _bool(fields[name], name)
        if fields.get("parent_id") is not None:
            parent_id = _record_id(fields["parent_id"], "parent_id")
            parent = self.state.table("stories").get(parent_id)
            if parent is None or parent["workspace_id"] != record["workspace_id"]:
                raise _invalid("parent_id must be a story in the same workspace", "parent_id")
            record["parent_id"] = parent_id
        return record

    def _build_time_entry(self, fields: Payload) -> Payload:
        if fields.get("workspace_id") in (None, ""):
            raise _invalid("workspace_id can't be blank", "workspace_id")
        wid = _record_id(fields["workspace_id"], "workspace_id")
        workspace = self.state.table("workspaces").get(wid)
        if workspace is None:
            raise _invalid(f"Workspace {wid} does not exist", "workspace_id")
        performed = _date(fields.get("date_performed"), "date_performed")
        if performed is None:
            raise _invalid("date_performed can't be blank", "date_performed")
        if fields.get("time_in_minutes") is None:
            raise _invalid("time_in_minutes can't be blank", "time_in_minutes")
        user_id = API_USER_ID
        if fields.get("user_id") is not None:
            user_id = _record_id(fields["user_id"], "user_id")
            if user_id not in self.state.table("users"):
                raise _invalid(f"User {user_id} does not exist", "user_id")
        story_id = None
        if fields.get("story_id") is not None:
            story_id = _record_id(fields["story_id"], "story_id")
            story = self.state.table("stories").get(story_id)
            if story is None or story["workspace_id"] != wid:
                raise _invalid("story_id must be a story in the same workspace", "story_id")
        currency = workspace["currency"]
        return {
            "workspace_id": wid,
            "user_id": user_id,
            "story_id": story_id,
            "date_performed": performed,
            "time_in_minutes": _int(fields["time_in_minutes"], "time_in_minutes", minimum=1),
            "billable": _bool(fields.get("billable", True), "billable"),
            "notes": _text(fields.get("notes"), "notes"),
            "rate_in_cents": _int(fields.get("rate_in_cents", 0), "rate_in_cents"),
            "cost_rate_in_cents": _int(fields.get("cost_rate_in_cents", 0), "cost_rate_in_cents"),
            "currency": currency,
            "currency_symbol": SYMBOLS.get(currency, currency),
            "currency_base_unit": base_unit(currency),
            "approved": False,
            "is_invoiced": False,
            "taxable": False,
            "location": fields.get("location"),
        }

    # -- external references ----------------------------------------------------------
    async def upsert_reference(self, request: Request) -> Payload:
        if request.method != "POST":
            raise KantataApiError(405, f"{request.method} is not allowed here", kind="system")
        body = await self._body(request)
        if not isinstance(body, dict) or not isinstance(body.get("external_reference"), dict):
            raise _invalid('Send {"external_reference": {...}}', "external_reference")
        fields = _check_reference(body["external_reference"], nested=False)
        with self.state.lock:
            reference = self._save_reference(fields)
            return self._envelope("external_references", [reference], request.query_params, total=1)

    def _save_reference(self, fields: Payload) -> Payload:
        """Create or update the reference of (subject_type, subject_id, service_name)."""
        state = self.state
        table = SUBJECT_TABLES.get(fields["subject_type"])
        if table is None:
            raise _invalid(
                f"subject_type {fields['subject_type']!r} is not supported by the stand-in "
                f"(supported: {', '.join(SUBJECT_TABLES)})",
                "subject_type",
            )
        if str(fields["subject_id"]) not in state.table(table):
            raise _invalid(
                f"{fields['subject_type']} {fields['subject_id']} does not exist", "subject_id"
            )
        stamp = _now()
        for reference in state.table("external_references").values():
            if (
                reference["subject_type"] == fields["subject_type"]
                and reference["subject_id"] == fields["subject_id"]
                and reference["service_name"] == fields["service_name"]
            ):
                reference.update(fields, updated_at=stamp, last_synced_at=stamp)
                return reference
        rid = str(state.next_number())
        reference = {
            "id": rid,
            "status": None,
            "external_link": None,
            "external_status": None,
            "external_message": None,
            "locked": False,
            **fields,
            "created_at": stamp,
            "updated_at": stamp,
            "last_synced_at": stamp,
        }
        state.table("external_references")[rid] = reference
        return reference


def _subject_type(resource: str) -> str:
    return {v: k for k, v in SUBJECT_TABLES.items()}[resource]


def _check_reference(data: Any, *, nested: bool) -> Payload:
    """Validate an external reference body; nested ones (inside a workspace, story or time
    entry) take their subject from the record they ride on."""
    prefix = "external_reference."
    if not isinstance(data, dict):
        raise _invalid("external_reference must be an object", "external_reference")
    allowed = REFERENCE_FIELDS - ({"subject_type", "subject_id"} if nested else set())
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise _invalid(
            f"Unknown attribute for external_reference: {', '.join(unknown)}", prefix + unknown[0]
        )
    required = ["service_name", "service_model", "service_model_ref"]
    if not nested:
        required = ["subject_type", "subject_id", *required]
    fields: Payload = {}
    for name in required:
        if name == "subject_id":
            fields[name] = _int(data.get(name), prefix + name, minimum=1)
        else:
            fields[name] = _text(data.get(name), prefix + name, max_length=255, required=True)
    if data.get("status") is not None:
        fields["status"] = _choice(data["status"], prefix + "status", REFERENCE_STATUSES)
    for name in ("external_link", "external_status", "external_message"):
        if data.get(name) is not None:
            fields[name] = _text(data[name], prefix + name)
    if "locked" in data:
        fields["locked"] = _bool(data["locked"], prefix + "locked")
    return fields


def _price_in_subunits(value: Any, currency: str) -> int:
    """`price` (currency units: int, decimal string or number) as exact subunits."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _invalid("price must be a number of currency units", "price")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise _invalid("price must be a number of currency units", "price") from exc
    if not amount.is_finite() or amount < 0:
        raise _invalid("price must be zero or more", "price")
    subunits = amount * base_unit(currency)
    if subunits != subunits.to_integral_value():
        raise _invalid(f"price has more decimals than {currency} allows", "price")
    return int(subunits)


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def _title_matches(title: str, query: str) -> bool:
    """Kantata's `matching`: every non-stop word of the query starts a word of the title."""
    title_words = _words(title)
    wanted = [w for w in _words(query) if w not in STOP_WORDS]
    return all(any(t.startswith(w) for t in title_words) for w in wanted)


_FIELD_TERM = re.compile(r"\b(title|description|status|group|custom_field_value):'([^']*)'")


def _search_matches(record: Payload, query: str) -> bool:
    """Kantata's `search`: field terms (`title:'acme'`) and keywords, all of which must match
    (case-insensitive substrings; keywords look at the id, title and description)."""
    for field, value in _FIELD_TERM.findall(query):
        needle = value.strip().lower()
        if field == "status":
            if record["status"]["message"].lower() != needle:
                return False
        elif field in ("title", "description"):
            if needle not in str(record.get(field) or "").lower():
                return False
        else:  # groups and custom fields are not modelled: nothing matches
            return False
    haystack = " ".join((record["id"], record["title"], record["description"] or "")).lower()
    keywords = _FIELD_TERM.sub(" ", query).split()
    return all(word.lower() in haystack for word in keywords)


def create_app(state: KantataState | None = None) -> Starlette:
    """The Kantata stand-in app: vendor routes plus the shared control surface."""
    state = state or KantataState()
    return build_app(state, KantataApi(state).routes(), error_body)
