"""Kantata OX (formerly Mavenlink) stand-in: a local copy of the PSA's REST API v1 for tests
and the demo, standing for https://api.mavenlink.com.

Paths (the `.json` suffix is optional, as at Kantata):

* `GET  /api/v1/{resource}.json` - a page of records (filters, `include=`, `order=`, paging).
* `GET  /api/v1/{resource}/{id}.json` - one record; 404 for unknown ids (and for archived
  workspaces unless `include_archived=true`, as at Kantata).
* `POST /api/v1/{resource}.json` - create one (`{"workspace": {...}}`) or many
  (`{"workspaces": [...]}`: at most 100 workspaces, expenses, participations, organizations
  or cost rates, 300 stories or time entries per call; more, or an empty list, is 422). A
  bulk create is all-or-nothing. (Kantata's current OpenAPI says 100 for time entries; the
  shared vendor notes and the first round say 300, which the stand-in keeps.)
* `PUT  /api/v1/{resource}/{id}.json` - update (`{"workspace": {...}}`). As in Rails, a save
  that changes nothing keeps `updated_at` and makes no event.
* `POST /api/v1/external_references/create_or_update.json` - upsert an external reference
  keyed by (subject_type, subject_id, service_name): Kantata allows one reference per
  service name on an object.
* `GET  /api/v1/subscribed_events.json` - the change feed (also served at `/events.json`,
  which is not a Kantata path).

Resources: `workspaces` (list, get, create, update), `stories` (list, get, create, update),
`users` (list, get), `external_references` (list, create_or_update), `time_entries` (list,
get, create), `expenses` (list, get, create, update), `assignments` (list, get, create,
update), `participations` (list, get, create, update), `account_memberships` (list, get),
`cost_rates` (list, get, create-or-override, update), `organizations` (list, get, create,
update), `story_state_changes` (list, get), `subscribed_events` (list). Other verbs answer
405 in Kantata's error shape.

Subscribed Events (Kantata's documented shape: developer.kantata.com "Subscribed Events";
there are no webhooks, consumers poll): every create and every changing update made through
the API or the control routes below records an event `{id, account_id, event_type
("story:updated", "time_entry:created", ...: `<subject>:created|updated`), subject_type
("Story", "TimeEntry", ...), subject_id (integer), subject_changed_at, created_at, user_id
(integer: who made the change - the API user 1 for Throughline's own writes),
context_workspace_id}`. Optional fields (`optional_fields=payload_changes,current_payload,
previous_payload`) come as JSON text, as documented: `payload_changes` is `{field: [old,
new]}`; the payloads are rebuilt from the live record (the stand-in keeps no other history).
Filters `created_after`, `created_before`, `event_types`, `subject_type`, `subject_id`
(needs subject_type), `user_ids`, `only`, `most_recent` / `most_recent_by_event_type`
(mutually exclusive), `include=subject` (`subject_ref`, null once the subject is gone);
order `created_at:asc|desc` (default desc), ties on the id. Events older than 9 days are
dropped, as at Kantata. External references make no events (Kantata has no such subject).

Time and expenses: `approved` on time entries and expenses is processed as true whatever its
value (as documented): entries approved, or in a workspace that does not require approval
(`require_time_approvals` / `require_expense_approvals`). A time entry carries Kantata's
`approved` flag; an expense has no approval field at Kantata (approval lives on expense
report submissions), so the stand-in keeps `submission_status` (unsubmitted, pending,
approved, rejected) as hidden state; an approved expense cannot be changed (422). Without
`cost_rate_in_cents`, a new time entry takes its user's cost rate in the workspace currency.
Expenses carry `amount_in_cents`, `currency` (the workspace's), `category` (free text,
required), `date`, `is_billable` (written as `billable`), `reimbursable`, `notes`,
`story_id`, `user_id`; `receipt_id` shows only with `include=receipt` (attachments are not
modelled: any positive id is accepted). `expense_category_id` and `vendor_id` are accepted and
not kept. Time entries and expenses of archived workspaces are left out unless
`from_archived_workspaces=true`.

Stories: `state` is Kantata's status category (`not started`, `started`, `needs info`,
`completed`; issues also `new`, `reopened`, ...); `percentage_complete` 100 completes a
story. Each state change records a `story_state_changes` row (story_id, state, user_id,
created_at), listed with the required `story_id` filter or included on stories with
`include=story_state_changes` (only together with `only=`, as at Kantata).

People and money: `account_memberships` (one per user; `by_user_id`, `with_user_ids`,
`only_active`; `include=user,cost_rates`), `cost_rates` (`account_membership_id`,
`currency`, `amount_in_subunits`; `POST /cost_rates.json` overrides the rate of an existing
(membership, currency) pair, as documented; there is no effective date at Kantata - a rate
applies to work logged from then on), users `by_email_address` / `by_email_addresses`
(matched case-insensitively here), `include=account_membership`. `organizations` are
Kantata's two trees (Department, Geography): `name` (unique), `parent_id` (required),
`type` and `ancestor_ids` follow the parent; filters `type`, `matching` (name contains).
Assignments link a story and an assignee (`estimated_minutes`, `allocated_minutes` - the
sum of scheduled hours, 0 here - `current`); filters `story_id`, `assignee_id`,
`workspace_id`, `current`, `uncurrent`; assignments of archived stories or workspaces are
left out by default. Participations (workspace members, `role` maven or buyer) need the
`workspace_id` filter, as at Kantata; `by_user`.

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
`story_types`, `only`, `show_archived`, `completed`, `uncompleted`; users `only`;
external_references `subject_type` (required, as at Kantata), `subject_id`, `service_name`,
`service_model`, `service_model_ref`, `status`, `only`; time_entries `workspace_id`,
`workspace_ids`, `user_id`, `with_user_ids`, `story_id`, `approved`, `billable`,
`invoiced`, `uninvoiced`, `date_performed_between`, `only`; expenses the same with
`date_expensed_between`. Every list also takes `created_after`, `created_before`,
`updated_after`, `updated_before` (ISO 8601; strict). Unknown parameters are ignored, like
Kantata does.
Orders: workspaces and stories `created_at|updated_at|title|start_date|due_date:asc|desc`
(default `updated_at:desc`), external_references `created_at|last_synced_at:asc|desc`
(default `last_synced_at:desc`), time_entries `date_performed|created_at|updated_at`,
expenses `date|created_at|amount|category|notes` (no `updated_at`, as at Kantata),
assignments, participations and account memberships `created_at|updated_at`, organizations
`alphabetical|created_at`; ties break on the id. Includes: workspaces `creator`,
`external_references`; stories `workspace`, `creator`, `external_references`,
`story_state_changes`; time_entries `workspace`, `user`, `story`, `external_references`;
expenses the same and `receipt`; assignments `assignee`, `story`, `external_references`;
participations `user`, `workspace`, `external_references`; users `external_references`,
`account_membership`; external_references and subscribed_events `subject`. Foreign keys
such as `creator_id` appear only when their association is included, as documented (the
first round shows `workspace_id`, `user_id`, `story_id` on time entries and expenses always).

Paging cost: a list computes its matching ids once, at page 1 (or offset 0), and keeps them
while nothing changes (the state's `generation`, bumped by every write through the API, the
control routes and any POST under `/__standin__/`), so reading 20,000 time entries in pages
of 200 filters and sorts once; external references are found through an index by subject.
A test that edits records in place mid-read calls `KantataState.touch()`. An edit or a copy
through the generic `/__standin__/records` controls stamps the record's `updated_at` (so
`updated_after` finds it; no event is recorded), a copy takes the next id of the one counter.

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
workspace, a date_performed and a positive time_in_minutes; an expense a workspace, date,
category and amount_in_cents; one current assignment per (story, assignee), one
participation per (workspace, user), organization names unique. A workspace's currency
cannot change once time or expenses are logged on it (a stand-in rule: Kantata's behaviour
here is not documented).

Seed (deterministic; one id counter serves all tables, so an id names one record):

    1  user       Avery Quinn      Resource Manager  (the API user: creator of new records)
    2  user       Oliver Hughes    Resource Manager  (completes milestones, approves time)
    3  user       Ava Thompson     Resource Manager  (2 and 3 are NetSuite employees 104, 101)
    4  workspace  "Internal: bench time"  not budgeted, USD, status 401 Active, by user 1
    5  story      "Bench and training"    a task in workspace 4
    6-8   account memberships of users 1-3 (user 1 administrator, 2 and 3 project leads)
    9  organization "Departments" (the Department root), 10 "Geographies" (Geography root)
    11-13 USD cost rates of memberships 6-8: 6500, 7250, 8000 cents an hour
    14 user       Priya Nair       Subcontractor, Apex Data Consulting (the demo's vendor 1)
    15 user       Marcus Bell      Subcontractor, Blue Ridge Analytics (the demo's vendor 2)
    16-17 account memberships of users 14-15 (collaborators)
    18-19 cost rates of memberships 16-17: GBP 5500 and USD 9000 subunits an hour

New records get ids from 20 on (events and story state changes draw from the same counter).
Seeded timestamps are 2026-01-05T09:00:00+00:00 (the seed makes no events); new ones are the
current UTC time at second precision. Project status keys are an illustrative subset of
Kantata's list (300 Not Started, 401 Active, 410 On Hold, 500 Completed, 501 Cancelled).

Control routes for the demo traffic generator and tests (not Kantata's API; JSON in, JSON
out, 400 `{"error"}` on a bad request):

* `POST /__standin__/kantata/complete-milestone {"story_id", "user_id"?}` - the milestone's
  state becomes completed (by user 2 unless told), with its state change and a
  `story:updated` event; `{"story", "changed"}`; an already completed one is left alone.
* `POST /__standin__/kantata/time-burst {"workspace_id", "count", "approved": true,
  "user_ids"?, "story_id"?, "date_performed"?, "time_in_minutes"? (60), "billable"?,
  "notes"?}` - creates `count` (up to 100,000) time entries at once, users in turn, each
  with its `time_entry:created` event; `{"created", "workspace_id", "first_id", "last_id"}`.
* `POST /__standin__/kantata/approve {"time_entry_ids"?, "expense_ids"?, "approved"?,
  "user_id"?}` - approves (or with `"approved": false` rejects) them, with update events.
"""

from __future__ import annotations

import json
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
from starlette.types import ASGIApp, Receive, Scope, Send

from .common import CONTROL_PREFIX, StandinState, bearer_token, build_app, json_body

API_PREFIX = "/api/v1"
DEFAULT_TOKEN = "kantata-demo-token"
API_USER_ID = "1"
ACCOUNT_ID = 1001
DEFAULT_PER_PAGE = 20
MAX_PER_PAGE = 200
BULK_LIMITS = {
    "workspaces": 100, "stories": 300, "time_entries": 300, "expenses": 100,
    "participations": 100, "cost_rates": 100, "organizations": 100, "assignments": 1,
}  # fmt: skip
SEED_TIME = "2026-01-05T09:00:00+00:00"

SINGULAR = {
    "workspaces": "workspace",
    "stories": "story",
    "users": "user",
    "external_references": "external_reference",
    "time_entries": "time_entry",
    "expenses": "expense",
    "assignments": "assignment",
    "participations": "participation",
    "account_memberships": "account_membership",
    "cost_rates": "cost_rate",
    "organizations": "organization",
    "story_state_changes": "story_state_change",
    "subscribed_events": "subscribed_event",
}
#: external reference subject types the stand-in models -> their collection
SUBJECT_TABLES = {
    "Workspace": "workspaces",
    "Story": "stories",
    "User": "users",
    "TimeEntry": "time_entries",
    "Expense": "expenses",
    "Assignment": "assignments",
    "Participation": "participations",
}
#: collection -> (Subscribed Events subject_type, event type prefix)
EVENT_SUBJECTS = {
    "workspaces": ("Workspace", "workspace"),
    "stories": ("Story", "story"),
    "users": ("User", "user"),
    "time_entries": ("TimeEntry", "time_entry"),
    "expenses": ("Expense", "expense"),
    "assignments": ("Assignment", "assignment"),
    "participations": ("Participation", "participation"),
    "account_memberships": ("AccountMembership", "account_membership"),
    "cost_rates": ("CostRate", "cost_rate"),
    "organizations": ("Organization", "organization"),
}
EVENT_SUBJECT_TABLES = {subject: table for table, (subject, _p) in EVENT_SUBJECTS.items()}
EVENT_RETENTION_SECONDS = 9 * 24 * 3600  # Kantata keeps 9 days of Subscribed Events
EVENT_OPTIONAL_FIELDS = ("previous_payload", "current_payload", "payload_changes")
#: resources created with POST /{resource}.json, and updated with PUT /{resource}/{id}.json
CREATABLE = frozenset({"workspaces", "stories", "time_entries", "expenses", "assignments",
                       "participations", "cost_rates", "organizations"})  # fmt: skip
UPDATABLE = frozenset({"workspaces", "stories", "expenses", "assignments", "participations",
                       "cost_rates", "organizations"})  # fmt: skip
#: list filters that are required, as at Kantata
REQUIRED_FILTERS = {
    "external_references": "subject_type",
    "participations": "workspace_id",
    "story_state_changes": "story_id",
}
EXPENSE_SUBMISSION_STATES = ("unsubmitted", "pending", "approved", "rejected")
PARTICIPATION_ROLES = ("maven", "buyer")
ORGANIZATION_TYPES = ("Department", "Geography")
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
TIMESTAMP_FILTERS = ("created_after", "created_before", "updated_after", "updated_before")
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
STORY_UPDATE = (STORY_CREATE - {"workspace_id"}) | {"percentage_complete"}
TIME_ENTRY_CREATE = frozenset({
    "workspace_id", "date_performed", "time_in_minutes", "billable", "notes", "rate_in_cents",
    "cost_rate_in_cents", "story_id", "user_id", "external_reference", "location",
})  # fmt: skip
EXPENSE_CREATE = frozenset({
    "workspace_id", "date", "expense_category_id", "category", "amount_in_cents", "user_id",
    "notes", "billable", "receipt_id", "story_id", "reimbursable", "vendor_id",
    "external_reference",
})  # fmt: skip
EXPENSE_UPDATE = EXPENSE_CREATE - {"workspace_id", "user_id"}
ASSIGNMENT_CREATE = frozenset({"story_id", "assignee_id", "estimated_minutes", "current",
                               "external_reference"})  # fmt: skip
ASSIGNMENT_UPDATE = frozenset({"estimated_minutes", "current", "external_reference"})
PARTICIPATION_CREATE = frozenset({"workspace_id", "user_id", "role", "external_reference"})
PARTICIPATION_UPDATE = frozenset({"role", "external_reference"})
COST_RATE_CREATE = frozenset({"account_membership_id", "currency", "amount_in_subunits"})
COST_RATE_UPDATE = frozenset({"amount_in_subunits"})
ORGANIZATION_CREATE = frozenset({"name", "parent_id"})
ORGANIZATION_UPDATE = ORGANIZATION_CREATE
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
    "time_entries": ({"date_performed", "created_at", "updated_at"}, "date_performed:desc"),
    "expenses": ({"date", "created_at", "amount_in_cents", "category", "notes"}, "date:desc"),
    "assignments": ({"created_at", "updated_at"}, "created_at:desc"),
    "participations": ({"created_at", "updated_at"}, "created_at:asc"),
    "account_memberships": ({"created_at", "updated_at"}, "created_at:desc"),
    "cost_rates": ({"created_at"}, "created_at:asc"),
    "organizations": ({"created_at", "name"}, "name:asc"),
    "story_state_changes": ({"created_at"}, "created_at:asc"),
    "subscribed_events": ({"created_at"}, "created_at:desc"),
    "users": (set(), ""),
}  # fmt: skip
#: order aliases Kantata documents under another name (`alphabetical` sorts by name)
ORDER_ALIASES = {
    ("organizations", "alphabetical"): "name",
    ("expenses", "amount"): "amount_in_cents",
}

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
    "users": {
        "external_references": ("external_references", "external_reference_ids", True),
        "account_membership": ("account_memberships", "account_membership_id", False),
    },
    "external_references": {"subject": ("", "subject_ref", False)},
    "expenses": {
        "workspace": ("workspaces", "workspace_id", False),
        "user": ("users", "user_id", False),
        "story": ("stories", "story_id", False),
        "external_references": ("external_references", "external_reference_ids", True),
        "receipt": ("", "receipt_id", False),
    },
    "assignments": {
        "assignee": ("users", "assignee_id", False),
        "story": ("stories", "story_id", False),
        "external_references": ("external_references", "external_reference_ids", True),
    },
    "participations": {
        "user": ("users", "user_id", False),
        "workspace": ("workspaces", "workspace_id", False),
        "external_references": ("external_references", "external_reference_ids", True),
    },
    "account_memberships": {
        "user": ("users", "user_id", False),
        "cost_rates": ("cost_rates", "cost_rate_ids", True),
    },
    "cost_rates": {"account_membership": ("account_memberships", "account_membership_id", False)},
    "story_state_changes": {
        "story": ("stories", "story_id", False),
        "user": ("users", "user_id", False),
    },
    "subscribed_events": {"subject": ("", "subject_ref", False)},
    "organizations": {},
}
INCLUDES["stories"]["story_state_changes"] = ("story_state_changes", "story_state_change_ids", True)
INCLUDES["time_entries"]["external_references"] = INCLUDES["expenses"]["external_references"]
#: fields Kantata shows only when their association is included (or never: internal state)
HIDDEN_KEYS = {
    "workspaces": ("creator_id",),
    "stories": ("creator_id",),
    "users": ("account_membership_id",),
    "expenses": ("receipt_id", "submission_status"),
    "account_memberships": ("user_id",),
    "subscribed_events": ("payload_changes", "previous_values"),
}
#: includes Kantata allows only together with `only=`
ONLY_WITH_ONLY = {"stories": ("story_state_changes",)}
#: resource -> (fields allowed on create, fields allowed on update)
ALLOWED_FIELDS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "workspaces": (WORKSPACE_CREATE, WORKSPACE_UPDATE),
    "stories": (STORY_CREATE, STORY_UPDATE),
    "time_entries": (TIME_ENTRY_CREATE, frozenset()),
    "expenses": (EXPENSE_CREATE, EXPENSE_UPDATE),
    "assignments": (ASSIGNMENT_CREATE, ASSIGNMENT_UPDATE),
    "participations": (PARTICIPATION_CREATE, PARTICIPATION_UPDATE),
    "cost_rates": (COST_RATE_CREATE, COST_RATE_UPDATE),
    "organizations": (ORGANIZATION_CREATE, ORGANIZATION_UPDATE),
}
#: `/api/v1/events.json` is not Kantata's path (it is `/subscribed_events.json`); served too
RESOURCE_ALIASES = {"events": "subscribed_events"}
#: query parameters that shape the answer but not which records match
PRESENTATION_PARAMS = frozenset(
    {"page", "per_page", "limit", "offset", "include", "optional_fields", "optional_fields[]"}
)
LIST_CACHE_SIZE = 64
ACCOUNT_CURRENCY = "USD"  # the account's default currency (its `default cost rate`)
PM_USER_ID = "2"  # who completes milestones and approves time in the control routes
MAX_BURST = 100_000

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


def _epoch(stamp: Any) -> float:
    """A record's ISO 8601 timestamp as epoch seconds (naive ones are UTC); 0 if unreadable."""
    if not isinstance(stamp, str):
        return 0.0
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return 0.0
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _time_param(raw: str, field: str) -> float:
    """A datetime filter (`updated_after=...`): ISO 8601, or a date meaning its midnight UTC."""
    text = raw.strip().replace("Z", "+00:00").replace(" ", "+")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise _invalid(f"{field} must be a datetime in ISO 8601 format", field) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _date_range(raw: str, field: str) -> tuple[str | None, str | None]:
    """`2026-01-01:2026-01-31`; either end may be empty."""
    low, sep, high = raw.partition(":")
    if not sep:
        raise _invalid(f"{field} takes two dates separated by a colon", field)
    return _date(low or None, field), _date(high or None, field)


def _param_items(params: Any) -> list[tuple[str, str]]:
    if hasattr(params, "multi_items"):
        return list(params.multi_items())
    return [(str(k), str(v)) for k, v in dict(params).items()]


def _optional_fields(params: Any) -> set[str]:
    """`optional_fields=a,b` or `optional_fields[]=a&optional_fields[]=b`."""
    names: set[str] = set()
    for key, value in _param_items(params):
        if key in ("optional_fields", "optional_fields[]"):
            names |= {v.strip() for v in value.split(",") if v.strip()}
    unknown = sorted(names - set(EVENT_OPTIONAL_FIELDS))
    if unknown:
        raise _invalid(f"optional_fields does not know {', '.join(unknown)}", "optional_fields")
    return names


def _json_text(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _collapse_events(events: list[Payload], params: Any) -> list[Payload]:
    """`most_recent` (one event per subject) or `most_recent_by_event_type` (one per subject
    and event type): the latest by created_at, then id."""
    if _query_bool(params, "most_recent"):
        group = lambda e: (e["subject_type"], e["subject_id"])  # noqa: E731
    elif _query_bool(params, "most_recent_by_event_type"):
        group = lambda e: (e["subject_type"], e["subject_id"], e["event_type"])  # noqa: E731
    else:
        return events
    latest: dict[tuple[Any, ...], Payload] = {}
    for event in events:
        key = group(event)
        held = latest.get(key)
        if held is None or (_epoch(event["created_at"]), int(event["id"])) > (
            _epoch(held["created_at"]),
            int(held["id"]),
        ):
            latest[key] = event
    return list(latest.values())


class KantataState(StandinState):
    """Kantata's records: workspaces, stories, users, external references, time entries,
    expenses, assignments, participations, account memberships, cost rates, organizations,
    story state changes and the Subscribed Events feed.

    Besides the records (all JSON-safe, in `collections`, so snapshots keep them) the state
    holds derived, rebuildable helpers that are never persisted: `generation` (bumped by
    every write the stand-in makes, see `touch`), a cache of list results keyed by query and
    generation, and an index of external references by subject.
    """

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
        self._reset_derived()
        super().reset()
        with self.lock:
            for token in self.configured_tokens:
                self.tokens[token] = math.inf
            self._window = deque()
            self._reset_derived()

    def restore(self, data: dict[str, Any]) -> None:
        super().restore(data)
        with self.lock:
            self._reset_derived()
            self._backfill()

    def _backfill(self) -> None:
        """Give a snapshot from before memberships and organizations existed (the first
        round's demo data) what the seed would have: a membership for each user and the two
        organization roots, with new ids."""
        memberships = self.table("account_memberships")
        for uid, user in sorted(self.table("users").items(), key=lambda kv: int(kv[0])):
            if str(user.get("account_membership_id")) in memberships:
                continue
            mid = str(self.next_number())
            memberships[mid] = {
                "id": mid,
                "user_id": uid,
                "permission": "administrator" if uid == API_USER_ID else "project_lead",
                "is_administrator": uid == API_USER_ID,
                "is_project_lead": True,
                "is_owner": uid == API_USER_ID,
                "bill_rate_in_cents": None,
                "cost_rate_in_cents": None,
                "disabled_at": None,
                "created_at": SEED_TIME,
                "updated_at": SEED_TIME,
            }
            user["account_membership_id"] = mid
        organizations = self.table("organizations")
        for name, kind in (("Departments", "Department"), ("Geographies", "Geography")):
            if any(o["type"] == kind and o["parent_id"] is None for o in organizations.values()):
                continue
            oid = str(self.next_number())
            organizations[oid] = {
                "id": oid,
                "name": name,
                "type": kind,
                "parent_id": None,
                "ancestor_ids": [],
                "created_at": SEED_TIME,
                "updated_at": SEED_TIME,
            }

    def _reset_derived(self) -> None:
        self.generation = 0
        self.list_cache: dict[tuple[Any, ...], tuple[int, list[str]]] = {}
        self._ref_index: dict[tuple[str, str], dict[str, str]] = {}
        self._ref_index_size = -1

    def touch(self) -> None:
        """Note a change made outside the stand-in's own write paths (a test editing a
        record in place): cached list results are dropped. Every API write, control
        endpoint and `/__standin__/` POST already does this."""
        with self.lock:
            self.generation += 1

    # -- the control surface's record edits (see standins.common) --------------------------
    def stamp_modified(self, name: str, record: dict[str, Any]) -> None:
        if "updated_at" in record:
            record["updated_at"] = _now()

    def records_changed(
        self, name: str, before: dict[str, Any] | None, after: dict[str, Any] | None
    ) -> None:
        self._ref_index_size = -1  # rebuilt at the next lookup
        if (
            name == "workspaces"
            and after is not None
            and after.get("status_key") in STATUSES
            and isinstance(after.get("currency"), str)
        ):
            finish_workspace(after)  # an edited status_key shows in `status`, as after a PUT
        self.touch()

    # -- external reference index ---------------------------------------------------------
    def references_of(self, subject_type: str, subject_id: str) -> dict[str, str]:
        """{service_name: reference id} for one subject (from an index kept in step)."""
        with self.lock:
            if self._ref_index_size != len(self.table("external_references")):
                self._rebuild_ref_index()
            return dict(self._ref_index.get((subject_type, str(subject_id)), {}))

    def _rebuild_ref_index(self) -> None:
        index: dict[tuple[str, str], dict[str, str]] = {}
        for rid, ref in self.table("external_references").items():
            key = (str(ref.get("subject_type")), str(ref.get("subject_id")))
            index.setdefault(key, {})[str(ref.get("service_name"))] = rid
        self._ref_index = index
        self._ref_index_size = len(self.table("external_references"))

    def index_reference(self, reference: Payload) -> None:
        key = (reference["subject_type"], str(reference["subject_id"]))
        self._ref_index.setdefault(key, {})[reference["service_name"]] = reference["id"]
        self._ref_index_size = len(self.table("external_references"))

    # -- Subscribed Events ----------------------------------------------------------------
    def emit_event(
        self,
        resource: str,
        record: Payload,
        kind: str,
        *,
        previous: Payload | None = None,
        user_id: str = API_USER_ID,
    ) -> Payload | None:
        """Record `<subject>:<kind>` for `record`; for updates, the changed fields (none
        changed: no event). Events older than Kantata's 9-day retention are dropped."""
        if resource not in EVENT_SUBJECTS:
            return None
        subject_type, prefix = EVENT_SUBJECTS[resource]
        changes: dict[str, list[Any]] = {}
        if previous is not None:
            for name in sorted(set(previous) | set(record)):
                if name != "updated_at" and previous.get(name) != record.get(name):
                    changes[name] = [previous.get(name), record.get(name)]
            if not changes:
                return None
        with self.lock:
            stamp = _now()
            events = self.table("subscribed_events")
            eid = str(self.next_number())
            event = {
                "id": eid,
                "account_id": ACCOUNT_ID,
                "event_type": f"{prefix}:{kind}",
                "subject_type": subject_type,
                "subject_id": int(record["id"]),
                "subject_changed_at": record.get("updated_at") or stamp,
                "created_at": stamp,
                "user_id": int(user_id),
                "context_workspace_id": self._context_workspace(resource, record),
                "payload_changes": changes or None,
            }
            events[eid] = event
            self._prune_events(events)
            self.generation += 1
            return event

    def _context_workspace(self, resource: str, record: Payload) -> str | None:
        if resource == "workspaces":
            return str(record["id"])
        if record.get("workspace_id") is not None:
            return str(record["workspace_id"])
        if resource == "assignments":
            story = self.table("stories").get(str(record.get("story_id")))
            return str(story["workspace_id"]) if story else None
        return None

    @staticmethod
    def _prune_events(events: dict[str, Payload]) -> None:
        horizon = time.time() - EVENT_RETENTION_SECONDS
        while events:
            first = next(iter(events))
            if _epoch(events[first].get("created_at")) >= horizon:
                return
            del events[first]

    def cost_rate_of(self, user_id: str, currency: str) -> int | None:
        """The member's hourly cost in `currency` subunits, if Kantata holds one."""
        user = self.table("users").get(str(user_id))
        mid = str(user.get("account_membership_id")) if user else None
        for rate in self.table("cost_rates").values():
            if str(rate["account_membership_id"]) == mid and rate["currency"] == currency:
                return int(rate["amount_in_subunits"])
        return None

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
            # the same people as NetSuite's employees 104 and 101 (matched by e-mail)
            ("Oliver Hughes", "oliver.hughes@throughline-demo.example"),
            ("Ava Thompson", "ava.thompson@throughline-demo.example"),
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
        # account memberships (6-8) of users 1-3; the API user is the administrator
        for uid, permission in (("1", "administrator"), ("2", "project_lead"),
                                ("3", "project_lead")):  # fmt: skip
            mid = str(self.next_number())
            self.table("account_memberships")[mid] = {
                "id": mid,
                "user_id": uid,
                "permission": permission,
                "is_administrator": permission == "administrator",
                "is_project_lead": True,
                "is_owner": uid == API_USER_ID,
                "bill_rate_in_cents": None,
                "cost_rate_in_cents": None,
                "disabled_at": None,
                "created_at": SEED_TIME,
                "updated_at": SEED_TIME,
            }
            self.table("users")[uid]["account_membership_id"] = mid
        # the two organization trees' roots (9 Departments, 10 Geographies)
        for name, kind in (("Departments", "Department"), ("Geographies", "Geography")):
            oid = str(self.next_number())
            self.table("organizations")[oid] = {
                "id": oid,
                "name": name,
                "type": kind,
                "parent_id": None,
                "ancestor_ids": [],
                "created_at": SEED_TIME,
                "updated_at": SEED_TIME,
            }
        # USD cost rates (11-13) of the three members: $65.00, $72.50, $80.00 an hour
        for mid, cents in (("6", 6500), ("7", 7250), ("8", 8000)):
            cid = str(self.next_number())
            self.table("cost_rates")[cid] = {
                "id": cid,
                "account_membership_id": int(mid),
                "currency": "USD",
                "amount_in_subunits": cents,
                "in_use": True,
                "created_at": SEED_TIME,
                "updated_at": SEED_TIME,
            }
            self.table("account_memberships")[mid]["cost_rate_in_cents"] = cents
        self._seed_subcontractors()

    def _seed_subcontractors(self) -> None:
        """Users 14-15: people of the demo's subcontractor firms (Apex Data Consulting in
        GBP, Blue Ridge Analytics in USD), with memberships 16-17 (collaborators) and their
        hourly cost as cost rates 18-19: GBP 55.00 and USD 90.00."""
        people = [
            ("Priya Nair", "priya.nair@apex-data.example", "Apex Data Consulting", "GBP", 5500),
            ("Marcus Bell", "marcus.bell@blueridge-analytics.example", "Blue Ridge Analytics",
             "USD", 9000),
        ]  # fmt: skip
        users = []
        for full_name, email, firm, _currency, _cents in people:
            uid = str(self.next_number())
            self.table("users")[uid] = {
                "id": uid,
                "full_name": full_name,
                "email_address": email,
                "headline": f"Subcontractor, {firm}",
                "photo_path": f"https://app.mavenlink.com/images/avatars/{uid}.png",
                "account_id": ACCOUNT_ID,
                "disabled": False,
                "generic": False,
                "created_at": SEED_TIME,
                "updated_at": SEED_TIME,
            }
            users.append(uid)
        memberships = []
        for uid in users:
            mid = str(self.next_number())
            self.table("account_memberships")[mid] = {
                "id": mid,
                "user_id": uid,
                "permission": "collaborator",
                "is_administrator": False,
                "is_project_lead": False,
                "is_owner": False,
                "bill_rate_in_cents": None,
                "cost_rate_in_cents": None,
                "disabled_at": None,
                "created_at": SEED_TIME,
                "updated_at": SEED_TIME,
            }
            self.table("users")[uid]["account_membership_id"] = mid
            memberships.append(mid)
        for mid, (_name, _email, _firm, currency, cents) in zip(memberships, people, strict=True):
            cid = str(self.next_number())
            self.table("cost_rates")[cid] = {
                "id": cid,
                "account_membership_id": int(mid),
                "currency": currency,
                "amount_in_subunits": cents,
                "in_use": True,
                "created_at": SEED_TIME,
                "updated_at": SEED_TIME,
            }
            if currency == "USD":  # the membership's default: its rate in the account currency
                self.table("account_memberships")[mid]["cost_rate_in_cents"] = cents


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
    """The vendor routes over a KantataState, plus the stand-in's Kantata control routes."""

    def __init__(self, state: KantataState) -> None:
        self.state = state

    # -- plumbing -----------------------------------------------------------------------
    def routes(self) -> list[BaseRoute]:
        methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
        upsert = self._endpoint(self.upsert_reference)
        control = f"{CONTROL_PREFIX}/kantata"
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
            Route(
                f"{control}/complete-milestone",
                self._control(self.complete_milestone),
                methods=["POST"],
            ),
            Route(f"{control}/time-burst", self._control(self.time_burst), methods=["POST"]),
            Route(f"{control}/approve", self._control(self.approve), methods=["POST"]),
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

    def _control(
        self, handler: Callable[[Any], Payload]
    ) -> Callable[[Request], Awaitable[Response]]:
        """A `/__standin__/kantata/...` route: JSON in, JSON out, 400 `{"error"}` on a bad
        request (these are not Kantata's API, so they answer in the control surface's shape)."""

        async def endpoint(request: Request) -> Response:
            try:
                body = await json_body(request)
                if not isinstance(body, dict):
                    raise ValueError("send a JSON object")
                return JSONResponse(handler(body))
            except ValueError as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
            except KantataApiError as exc:
                return JSONResponse({"error": exc.message}, status_code=400)

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
        name = RESOURCE_ALIASES.get(name, name)
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
        if request.method == "POST" and resource in CREATABLE:
            body = await self._body(request)
            if resource == "cost_rates":
                return self.upsert_cost_rates(body, request.query_params)
            return self.create(resource, body, request.query_params)
        raise KantataApiError(405, f"{request.method} is not allowed on {resource}", kind="system")

    async def member(self, request: Request) -> Payload:
        resource, rid = self._resource(request), self._rid(request)
        params = request.query_params
        if request.method == "GET" and resource not in ("external_references", "subscribed_events"):
            with self.state.lock:
                record = self._find(resource, rid, params)
                return self._envelope(resource, [record], params, total=1)
        if request.method == "PUT" and resource in UPDATABLE:
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
        """One page of a query. The matching ids are computed for page 1 (or offset 0) and
        kept while nothing changes, so paging through a large result costs one filter and
        sort, not one per page; any write through the stand-in drops the kept result."""
        required = REQUIRED_FILTERS.get(resource)
        if required and not params.get(required):
            raise _invalid(f"{required} is required", required)
        with self.state.lock:
            start, size, page_number = self._paging(params)
            ids = self._query_ids(resource, params, reuse=start > 0)
            table = self.state.table(resource)
            page = [table[rid] for rid in ids[start : start + size] if rid in table]
            body = self._envelope(resource, page, params, total=len(ids))
            body["meta"].update(
                page_count=math.ceil(len(ids) / size), page_number=page_number, page_size=size
            )
            return body

    def _query_ids(self, resource: str, params: Any, *, reuse: bool) -> list[str]:
        state = self.state
        key = (
            resource,
            tuple(sorted((k, v) for k, v in _param_items(params) if k not in PRESENTATION_PARAMS)),
        )
        cached = state.list_cache.get(key)
        if reuse and cached is not None and cached[0] == state.generation:
            return cached[1]
        query = self._query(resource, params)
        records = [r for r in state.table(resource).values() if self._matches(resource, r, query)]
        if "only" in params:
            only = _id_list(params["only"], "only")
            records = [r for r in records if r["id"] in only]
        if resource == "subscribed_events":
            records = _collapse_events(records, params)
        records = self._sort(resource, records, params.get("order"))
        ids = [r["id"] for r in records]
        if len(state.list_cache) >= LIST_CACHE_SIZE:
            state.list_cache.pop(next(iter(state.list_cache)))
        state.list_cache[key] = (state.generation, ids)
        return ids

    def _query(self, resource: str, params: Any) -> Payload:
        """The query's filters, parsed and checked once (not once per record)."""
        query: Payload = {"params": params}
        for name in TIMESTAMP_FILTERS:
            if params.get(name):
                query[name] = _time_param(params[name], name)
        if resource == "time_entries" and params.get("date_performed_between"):
            query["between"] = _date_range(
                params["date_performed_between"], "date_performed_between"
            )
        if resource == "expenses" and params.get("date_expensed_between"):
            query["between"] = _date_range(params["date_expensed_between"], "date_expensed_between")
        for name in (
            "workspace_ids",
            "with_user_ids",
            "user_ids",
            "subject_id",
            "by_email_addresses",
        ):
            if params.get(name):
                query[name] = {p.strip().lower() for p in params[name].split(",") if p.strip()}
        if params.get("event_types"):
            query["event_types"] = {
                t.strip() for t in params["event_types"].split(",") if t.strip()
            }
        if resource == "subscribed_events":
            if params.get("subject_id") and not params.get("subject_type"):
                raise _invalid("subject_id needs a subject_type", "subject_id")
            if _query_bool(params, "most_recent") and _query_bool(
                params, "most_recent_by_event_type"
            ):
                raise _invalid(
                    "most_recent cannot be combined with most_recent_by_event_type", "most_recent"
                )
            query["horizon"] = time.time() - EVENT_RETENTION_SECONDS
        return query

    def _matches(self, resource: str, record: Payload, query: Payload) -> bool:
        params = query["params"]
        for name in TIMESTAMP_FILTERS:
            bound = query.get(name)
            if bound is None:
                continue
            stamp_field = "created_at" if name.startswith("created") else "updated_at"
            value = _epoch(record.get(stamp_field))
            if name.endswith("_after") and not value > bound:
                return False
            if name.endswith("_before") and not value < bound:
                return False
        if resource == "workspaces":
            return self._workspace_matches(record, params)
        if resource == "stories":
            return self._story_matches(record, params)
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
            return self._line_item_matches(record, query, "time_entries")
        if resource == "expenses":
            return self._line_item_matches(record, query, "expenses")
        if resource == "assignments":
            return self._assignment_matches(record, params)
        if resource == "participations":
            if record["workspace_id"] != params.get("workspace_id"):
                return False
            return not params.get("by_user") or record["user_id"] == params["by_user"]
        if resource == "account_memberships":
            if params.get("by_user_id") and record["user_id"] != params["by_user_id"]:
                return False
            if "with_user_ids" in query and record["user_id"] not in query["with_user_ids"]:
                return False
            return not (_query_bool(params, "only_active") and record.get("disabled_at"))
        if resource == "users":
            email = str(record.get("email_address") or "").lower()
            if params.get("by_email_address") and email != params["by_email_address"].lower():
                return False
            return "by_email_addresses" not in query or email in query["by_email_addresses"]
        if resource == "organizations":
            if params.get("type") and record["type"] != params["type"]:
                return False
            return (
                not params.get("matching") or params["matching"].lower() in record["name"].lower()
            )
        if resource == "story_state_changes":
            return record["story_id"] == params.get("story_id")
        if resource == "subscribed_events":
            return self._event_matches(record, query)
        return True

    def _story_matches(self, record: Payload, params: Any) -> bool:
        if "workspace_id" in params and record["workspace_id"] != params["workspace_id"]:
            return False
        types: set[str] = set()
        if params.get("story_type"):
            types.add(params["story_type"])
        if params.get("story_types"):
            types |= {t.strip() for t in params["story_types"].split(",")}
        if types and record["story_type"] not in types:
            return False
        if _query_bool(params, "completed") and record["state"] != "completed":
            return False
        if _query_bool(params, "uncompleted") and record["state"] == "completed":
            return False
        return not record["archived"] or _query_bool(params, "show_archived")

    def _line_item_matches(self, record: Payload, query: Payload, resource: str) -> bool:
        """Time entries and expenses: project, person, task, dates, approval."""
        params = query["params"]
        for name in ("workspace_id", "user_id", "story_id"):
            if name in params and record.get(name) != params[name]:
                return False
        if "workspace_ids" in query and record["workspace_id"] not in query["workspace_ids"]:
            return False
        if "with_user_ids" in query and record["user_id"] not in query["with_user_ids"]:
            return False
        workspace = self.state.table("workspaces").get(record["workspace_id"])
        if workspace is None:
            return False
        if workspace["archived"] and not _query_bool(params, "from_archived_workspaces"):
            return False
        day_field = "date_performed" if resource == "time_entries" else "date"
        between = query.get("between")
        if between is not None:
            low, high = between
            if (low and record[day_field] < low) or (high and record[day_field] > high):
                return False
        if "billable" in params:
            flag = record["billable"] if resource == "time_entries" else record["is_billable"]
            if flag != _query_bool(params, "billable"):
                return False
        if "uninvoiced" in params and record["is_invoiced"]:
            return False
        if "invoiced" in params and not record["is_invoiced"]:
            return False
        if "approved" in params:  # Kantata: "always processed as true", whatever the value
            return self._approved(record, resource, workspace)
        return True

    @staticmethod
    def _approved(record: Payload, resource: str, workspace: Payload) -> bool:
        """Kantata's `approved` filter: approved, or in a project that needs no approval."""
        if resource == "time_entries":
            return bool(record["approved"]) or not workspace["require_time_approvals"]
        return (
            record.get("submission_status") == "approved"
            or not workspace["require_expense_approvals"]
        )

    def _assignment_matches(self, record: Payload, params: Any) -> bool:
        for name in ("story_id", "assignee_id"):
            if name in params and record.get(name) != params[name]:
                return False
        if _query_bool(params, "current") and not record["current"]:
            return False
        if _query_bool(params, "uncurrent") and record["current"]:
            return False
        story = self.state.table("stories").get(record["story_id"])
        if story is None:
            return False
        if "workspace_id" in params and story["workspace_id"] != params["workspace_id"]:
            return False
        if story["archived"] and _query_bool(params, "in_unarchived_stories", True):
            return False
        workspace = self.state.table("workspaces").get(story["workspace_id"])
        return not (
            workspace is not None
            and workspace["archived"]
            and _query_bool(params, "in_unarchived_workspaces", True)
        )

    @staticmethod
    def _event_matches(record: Payload, query: Payload) -> bool:
        params = query["params"]
        if _epoch(record.get("created_at")) < query["horizon"]:
            return False
        if "event_types" in query and record["event_type"] not in query["event_types"]:
            return False
        if params.get("subject_type") and record["subject_type"] != params["subject_type"]:
            return False
        if "subject_id" in query and str(record["subject_id"]) not in query["subject_id"]:
            return False
        return "user_ids" not in query or str(record["user_id"]) in query["user_ids"]

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
        field = ORDER_ALIASES.get((resource, field), field)
        if field not in fields or direction not in ("asc", "desc"):
            raise _invalid(f"order must be one of {sorted(fields)} with :asc or :desc", "order")
        numeric = field == "amount_in_cents"

        def key(record: Payload) -> tuple[bool, Any, int]:
            value = record.get(field)
            if numeric:
                return (value is None, value or 0, int(record["id"]))
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
        optional = _optional_fields(params) if resource == "subscribed_events" else set()
        included: dict[str, dict[str, Payload]] = {}
        objects: dict[str, Payload] = {}
        for record in records:
            obj = self._present(resource, record, includes, included)
            if optional:
                obj.update(self._event_payloads(record, optional))
            objects[record["id"]] = obj
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
            if name in ONLY_WITH_ONLY.get(resource, ()) and not params.get("only"):
                raise _invalid(f"include '{name}' must be used with the only parameter", "include")
        return names

    def _present(
        self,
        resource: str,
        record: Payload,
        includes: list[str],
        included: dict[str, dict[str, Payload]],
    ) -> Payload:
        state = self.state
        obj = {k: v for k, v in record.items() if k not in HIDDEN_KEYS.get(resource, ())}
        for name in includes:
            collection, fk, many = INCLUDES[resource][name]
            if name == "subject":
                tables = (
                    SUBJECT_TABLES if resource == "external_references" else EVENT_SUBJECT_TABLES
                )
                table = tables.get(record["subject_type"], "")
                sid = str(record["subject_id"])
                subject = state.table(table).get(sid) if table else None
                if subject is not None:
                    obj["subject_ref"] = {"key": table, "id": sid}
                    included.setdefault(table, {})[sid] = self._present(table, subject, [], {})
                elif resource == "subscribed_events":
                    obj["subject_ref"] = None  # deleted, or moved to another account
                continue
            if name == "receipt":  # attachments are not modelled: the id only
                obj["receipt_id"] = record.get("receipt_id")
                continue
            if many:
                related = self._related(resource, name, record)
                obj[fk] = [r["id"] for r in related]
                for item in related:
                    included.setdefault(collection, {})[item["id"]] = self._present(
                        collection, item, [], {}
                    )
                continue
            target_id = record.get(fk)
            target_id = str(target_id) if target_id is not None else None
            obj.setdefault(fk, target_id)  # a visible key keeps its documented type
            target = state.table(collection).get(target_id) if target_id else None
            if target is not None:
                included.setdefault(collection, {})[target_id] = self._present(
                    collection, target, [], {}
                )
        return obj

    def _related(self, resource: str, name: str, record: Payload) -> list[Payload]:
        """The records of a to-many include."""
        state = self.state
        if name == "external_references":
            refs = state.table("external_references")
            ids = state.references_of(_subject_type(resource), record["id"]).values()
            return [refs[rid] for rid in sorted(ids, key=int) if rid in refs]
        if name == "cost_rates":
            return [
                rate
                for rate in state.table("cost_rates").values()
                if str(rate["account_membership_id"]) == record["id"]
            ]
        if name == "story_state_changes":
            return [
                change
                for change in state.table("story_state_changes").values()
                if change["story_id"] == record["id"]
            ]
        return []

    def _event_payloads(self, event: Payload, optional: set[str]) -> Payload:
        """Kantata's optional event fields, JSON text as documented. The current payload is
        the subject as it is now (the stand-in keeps no history beyond the changed fields)."""
        table = EVENT_SUBJECT_TABLES.get(event["subject_type"], "")
        subject = self.state.table(table).get(str(event["subject_id"])) if table else None
        current = self._present(table, subject, [], {}) if subject is not None else None
        changes = event.get("payload_changes") or {}
        out: Payload = {}
        if "payload_changes" in optional:
            out["payload_changes"] = _json_text(changes)
        if "current_payload" in optional:
            out["current_payload"] = _json_text(current) if current is not None else None
        if "previous_payload" in optional:
            previous = None
            if current is not None and not event["event_type"].endswith(":created"):
                previous = {**current, **{k: v[0] for k, v in changes.items()}}
            out["previous_payload"] = _json_text(previous) if previous is not None else None
        return out

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
        """Create one record or a bulk of them; a bulk create is all-or-nothing."""
        state = self.state
        labelled = self._items(resource, body)
        with state.lock:
            built: list[tuple[Payload, Payload | None]] = []
            batch: list[Payload] = []  # built so far, for uniqueness checks inside the bulk
            for label, fields in labelled:
                try:
                    record, reference = self._build(resource, fields, None, batch=batch)
                except KantataApiError as exc:
                    if label != SINGULAR[resource]:
                        exc.message = f"{label}: {exc.message}"
                    raise
                built.append((record, reference))
                batch.append(record)
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
            for record in created:
                state.emit_event(resource, record, "created")
            state.touch()
            return self._envelope(resource, created, params, total=len(created))

    def update(
        self,
        resource: str,
        rid: str,
        body: Any,
        params: Any,
        *,
        user_id: str = API_USER_ID,
    ) -> Payload:
        """Update one record. As in Rails, a save that changes nothing keeps `updated_at`
        and makes no event."""
        singular = SINGULAR[resource]
        if not isinstance(body, dict) or not isinstance(body.get(singular), dict):
            raise _invalid(f'Send {{"{singular}": {{...}}}}', singular)
        state = self.state
        with state.lock:
            current = self._find(resource, rid, {"include_archived": "true"})
            record, reference = self._build(resource, body[singular], current)
            changed = record != current
            if changed:
                record["updated_at"] = _now()
            state.table(resource)[rid] = record
            if reference is not None:
                self._save_reference(
                    {**reference, "subject_type": _subject_type(resource), "subject_id": int(rid)}
                )
            if changed:
                self._after_update(resource, current, record, user_id)
            state.touch()
            return self._envelope(resource, [record], params, total=1)

    def _after_update(
        self, resource: str, previous: Payload, record: Payload, user_id: str
    ) -> None:
        state = self.state
        if resource == "stories" and previous["state"] != record["state"]:
            cid = str(state.next_number())
            stamp = record["updated_at"]
            state.table("story_state_changes")[cid] = {
                "id": cid,
                "story_id": record["id"],
                "state": record["state"],
                "user_id": user_id,
                "created_at": stamp,
                "updated_at": stamp,
            }
        if resource == "cost_rates":
            self._sync_default_cost_rate(record)
        state.emit_event(resource, record, "updated", previous=previous, user_id=user_id)

    def _build(
        self,
        resource: str,
        fields: Payload,
        current: Payload | None,
        *,
        batch: list[Payload] | None = None,
    ) -> tuple[Payload, Payload | None]:
        """Check `fields` and return (the new record, a nested external_reference or None)."""
        allowed = ALLOWED_FIELDS[resource][0 if current is None else 1]
        unknown = sorted(set(fields) - allowed)
        if unknown:
            raise _invalid(
                f"Unknown or read-only attribute for {resource}: {', '.join(unknown)}", unknown[0]
            )
        reference = None
        if fields.get("external_reference") is not None:
            reference = _check_reference(fields["external_reference"], nested=True)
        builders: dict[str, Callable[..., Payload]] = {
            "workspaces": self._build_workspace,
            "stories": self._build_story,
            "time_entries": self._build_time_entry,
            "expenses": self._build_expense,
            "assignments": self._build_assignment,
            "participations": self._build_participation,
            "organizations": self._build_organization,
            "cost_rates": self._build_cost_rate,
        }
        if resource in ("assignments", "participations", "organizations"):
            return builders[resource](fields, current, batch or []), reference
        return builders[resource](fields, current), reference

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
            if (
                current is not None
                and currency != current["currency"]
                and self._has_line_items(current["id"])
            ):
                raise _invalid(
                    "currency cannot change once time or expenses are logged on the project",
                    "currency",
                )
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
        if fields.get("percentage_complete") is not None:
            percent = _int(fields["percentage_complete"], "percentage_complete")
            if percent > 100:
                raise _invalid(
                    "percentage_complete must be between 0 and 100", "percentage_complete"
                )
            record["percentage_complete"] = percent
            if percent == 100:  # "setting to 100 completes the story"
                record["state"] = "completed"
            elif percent > 0 and record["state"] == "not started":
                record["state"] = "started"
        elif record["state"] == "completed":
            record["percentage_complete"] = 100
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

    def _build_time_entry(self, fields: Payload, current: Payload | None = None) -> Payload:
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
        if fields.get("cost_rate_in_cents") is not None:
            cost_rate = _int(fields["cost_rate_in_cents"], "cost_rate_in_cents")
        else:  # Kantata takes the member's cost rate in the project's currency
            cost_rate = self.state.cost_rate_of(user_id, currency) or 0
        return {
            "workspace_id": wid,
            "user_id": user_id,
            "story_id": story_id,
            "date_performed": performed,
            "time_in_minutes": _int(fields["time_in_minutes"], "time_in_minutes", minimum=1),
            "billable": _bool(fields.get("billable", True), "billable"),
            "notes": _text(fields.get("notes"), "notes"),
            "rate_in_cents": _int(fields.get("rate_in_cents", 0), "rate_in_cents"),
            "cost_rate_in_cents": cost_rate,
            "currency": currency,
            "currency_symbol": SYMBOLS.get(currency, currency),
            "currency_base_unit": base_unit(currency),
            "approved": False,
            "is_invoiced": False,
            "taxable": False,
            "location": fields.get("location"),
        }

    def _has_line_items(self, workspace_id: str) -> bool:
        return any(
            r["workspace_id"] == workspace_id
            for name in ("time_entries", "expenses")
            for r in self.state.table(name).values()
        )

    def _workspace_of(self, fields: Payload) -> tuple[str, Payload]:
        if fields.get("workspace_id") in (None, ""):
            raise _invalid("workspace_id can't be blank", "workspace_id")
        wid = _record_id(fields["workspace_id"], "workspace_id")
        workspace = self.state.table("workspaces").get(wid)
        if workspace is None:
            raise _invalid(f"Workspace {wid} does not exist", "workspace_id")
        return wid, workspace

    def _user_of(self, value: Any, field: str) -> str:
        uid = _record_id(value, field)
        if uid not in self.state.table("users"):
            raise _invalid(f"User {uid} does not exist", field)
        return uid

    def _story_in(self, value: Any, workspace_id: str) -> str | None:
        if value is None:
            return None
        sid = _record_id(value, "story_id")
        story = self.state.table("stories").get(sid)
        if story is None or story["workspace_id"] != workspace_id:
            raise _invalid("story_id must be a story in the same workspace", "story_id")
        return sid

    def _build_expense(self, fields: Payload, current: Payload | None) -> Payload:
        """An expense. Approval is internal state (`submission_status`, set through expense
        report approval at Kantata; here by `/__standin__/kantata/approve`): an approved
        expense is locked."""
        if current is not None:
            if current.get("submission_status") == "approved":
                raise _invalid("An approved expense cannot be changed", "expense")
            record = dict(current)
            workspace_id = record["workspace_id"]
        else:
            workspace_id, workspace = self._workspace_of(fields)
            for name in ("date", "category", "amount_in_cents"):
                if fields.get(name) in (None, ""):
                    raise _invalid(f"{name} can't be blank", name)
            currency = workspace["currency"]
            record = {
                "workspace_id": workspace_id,
                "user_id": self._user_of(fields.get("user_id", API_USER_ID), "user_id"),
                "story_id": None,
                "currency": currency,
                "currency_symbol": SYMBOLS.get(currency, currency),
                "currency_base_unit": base_unit(currency),
                "is_billable": True,
                "is_invoiced": False,
                "reimbursable": False,
                "taxable": False,
                "notes": "",
                "receipt_id": None,
                "submission_status": "unsubmitted",
            }
        if "date" in fields:
            day = _date(fields["date"], "date")
            if day is None:
                raise _invalid("date can't be blank", "date")
            record["date"] = day
        if "category" in fields:
            record["category"] = _text(
                fields["category"], "category", max_length=255, required=True
            )
        if "amount_in_cents" in fields:
            record["amount_in_cents"] = _int(fields["amount_in_cents"], "amount_in_cents")
        if "notes" in fields:
            record["notes"] = _text(fields["notes"], "notes")
        if "billable" in fields:
            record["is_billable"] = _bool(fields["billable"], "billable")
        if "reimbursable" in fields:
            record["reimbursable"] = _bool(fields["reimbursable"], "reimbursable")
        if "receipt_id" in fields:
            rid = fields["receipt_id"]
            record["receipt_id"] = None if rid is None else _record_id(rid, "receipt_id")
        if "story_id" in fields:
            record["story_id"] = self._story_in(fields["story_id"], workspace_id)
        if fields.get("expense_category_id") is not None:  # accepted; not modelled
            _record_id(fields["expense_category_id"], "expense_category_id")
        if "vendor_id" in fields:  # the subcontractor a charge is from
            vid = fields["vendor_id"]
            record["vendor_id"] = None if vid is None else _record_id(vid, "vendor_id")
        return record

    def _build_assignment(
        self, fields: Payload, current: Payload | None, batch: list[Payload]
    ) -> Payload:
        if current is None:
            if fields.get("story_id") is None:
                raise _invalid("story_id can't be blank", "story_id")
            sid = _record_id(fields["story_id"], "story_id")
            if sid not in self.state.table("stories"):
                raise _invalid(f"Story {sid} does not exist", "story_id")
            if fields.get("assignee_id") is None:
                raise _invalid("assignee_id can't be blank", "assignee_id")
            uid = self._user_of(fields["assignee_id"], "assignee_id")
            for other in [*self.state.table("assignments").values(), *batch]:
                if other["story_id"] == sid and other["assignee_id"] == uid and other["current"]:
                    raise _invalid("The user is already assigned to this task", "assignee_id")
            record: Payload = {
                "story_id": sid,
                "assignee_id": uid,
                "resource_id": None,
                "current": True,
                "estimated_minutes": None,
                "allocated_minutes": 0,
            }
        else:
            record = dict(current)
        if fields.get("estimated_minutes") is not None:
            record["estimated_minutes"] = _int(fields["estimated_minutes"], "estimated_minutes")
        if "current" in fields:
            record["current"] = _bool(fields["current"], "current")
        return record

    def _build_participation(
        self, fields: Payload, current: Payload | None, batch: list[Payload]
    ) -> Payload:
        if current is None:
            wid, _workspace = self._workspace_of(fields)
            if fields.get("user_id") is None:
                raise _invalid("user_id can't be blank", "user_id")
            uid = self._user_of(fields["user_id"], "user_id")
            for other in [*self.state.table("participations").values(), *batch]:
                if other["workspace_id"] == wid and other["user_id"] == uid:
                    raise _invalid("The user already participates in this project", "user_id")
            record: Payload = {"workspace_id": wid, "user_id": uid, "role": "maven"}
        else:
            record = dict(current)
        if "role" in fields:
            record["role"] = _choice(fields["role"], "role", PARTICIPATION_ROLES)
        return record

    def _build_organization(
        self, fields: Payload, current: Payload | None, batch: list[Payload]
    ) -> Payload:
        record: Payload = dict(current) if current else {}
        if current is None or "name" in fields:
            name = _text(fields.get("name"), "name", max_length=255, required=True)
            for other in [*self.state.table("organizations").values(), *batch]:
                if other.get("id") != record.get("id") and other["name"].lower() == name.lower():
                    raise _invalid("Name has already been taken", "name")
            record["name"] = name
        if current is None or "parent_id" in fields:
            if fields.get("parent_id") is None:
                raise _invalid("parent_id can't be blank", "parent_id")
            pid = _record_id(fields["parent_id"], "parent_id")
            parent = self.state.table("organizations").get(pid)
            if parent is None or pid == record.get("id"):
                raise _invalid(f"Organization {pid} cannot be the parent", "parent_id")
            record.update(
                parent_id=pid, type=parent["type"], ancestor_ids=[*parent["ancestor_ids"], pid]
            )
        return record

    def _build_cost_rate(self, fields: Payload, current: Payload | None) -> Payload:
        if current is None:
            raise _invalid("cost rates are created with POST /cost_rates.json", "cost_rate")
        record = dict(current)
        if fields.get("amount_in_subunits") is None:
            raise _invalid("amount_in_subunits can't be blank", "amount_in_subunits")
        record["amount_in_subunits"] = _int(fields["amount_in_subunits"], "amount_in_subunits")
        return record

    # -- cost rates: POST creates or overrides the rate of (membership, currency) ------------
    def upsert_cost_rates(self, body: Any, params: Any) -> Payload:
        state = self.state
        labelled = self._items("cost_rates", body)
        with state.lock:
            checked: list[tuple[str, str, int]] = []
            for label, fields in labelled:
                try:
                    checked.append(self._check_cost_rate(fields))
                except KantataApiError as exc:
                    if label != "cost_rate":
                        exc.message = f"{label}: {exc.message}"
                    raise
            answered = []
            for mid, currency, amount in checked:
                existing = next(
                    (
                        rate
                        for rate in state.table("cost_rates").values()
                        if str(rate["account_membership_id"]) == mid
                        and rate["currency"] == currency
                    ),
                    None,
                )
                if existing is not None:
                    if existing["amount_in_subunits"] != amount:
                        previous = dict(existing)
                        record = {**existing, "amount_in_subunits": amount, "updated_at": _now()}
                        state.table("cost_rates")[record["id"]] = record
                        self._after_update("cost_rates", previous, record, API_USER_ID)
                        existing = record
                    answered.append(existing)
                    continue
                cid = str(state.next_number())
                stamp = _now()
                record = {
                    "id": cid,
                    "account_membership_id": int(mid),
                    "currency": currency,
                    "amount_in_subunits": amount,
                    "in_use": True,
                    "created_at": stamp,
                    "updated_at": stamp,
                }
                state.table("cost_rates")[cid] = record
                self._sync_default_cost_rate(record)
                state.emit_event("cost_rates", record, "created")
                answered.append(record)
            state.touch()
            return self._envelope("cost_rates", answered, params, total=len(answered))

    def _check_cost_rate(self, fields: Payload) -> tuple[str, str, int]:
        unknown = sorted(set(fields) - COST_RATE_CREATE)
        if unknown:
            raise _invalid(f"Unknown attribute for cost_rates: {', '.join(unknown)}", unknown[0])
        for name in ("account_membership_id", "currency", "amount_in_subunits"):
            if fields.get(name) is None:
                raise _invalid(f"{name} can't be blank", name)
        mid = _record_id(fields["account_membership_id"], "account_membership_id")
        if mid not in self.state.table("account_memberships"):
            raise _invalid(f"Account membership {mid} does not exist", "account_membership_id")
        currency = fields["currency"]
        if not isinstance(currency, str) or not re.fullmatch(r"[A-Z]{3}", currency):
            raise _invalid("currency must be a 3-letter ISO code such as USD", "currency")
        return mid, currency, _int(fields["amount_in_subunits"], "amount_in_subunits")

    def _sync_default_cost_rate(self, rate: Payload) -> None:
        """The membership's `cost_rate_in_cents` is its rate in the account currency (USD)."""
        if rate["currency"] == ACCOUNT_CURRENCY:
            membership = self.state.table("account_memberships").get(
                str(rate["account_membership_id"])
            )
            if membership is not None:
                membership["cost_rate_in_cents"] = rate["amount_in_subunits"]

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
            self.state.touch()
            return self._envelope("external_references", [reference], request.query_params, total=1)

    def _save_reference(self, fields: Payload) -> Payload:
        """Create or update the reference of (subject_type, subject_id, service_name), found
        through the state's index (no scan of every reference)."""
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
        references = state.table("external_references")
        rid = state.references_of(fields["subject_type"], str(fields["subject_id"])).get(
            fields["service_name"]
        )
        reference = references.get(rid) if rid else None
        if reference is not None and (
            reference["subject_type"] == fields["subject_type"]
            and str(reference["subject_id"]) == str(fields["subject_id"])
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
        references[rid] = reference
        state.index_reference(reference)
        return reference

    # -- control routes for the demo traffic generator and tests ------------------------
    def complete_milestone(self, body: Payload) -> Payload:
        """Mark a milestone story completed as a project manager would (default user 2), so
        the change feed shows a `story:updated` event that is not Throughline's own write."""
        state = self.state
        sid = _record_id(body.get("story_id"), "story_id")
        user_id = self._user_of(body.get("user_id", PM_USER_ID), "user_id")
        with state.lock:
            story = state.table("stories").get(sid)
            if story is None:
                raise ValueError(f"story {sid} does not exist")
            if story["story_type"] != "milestone":
                raise ValueError(f"story {sid} is a {story['story_type']}, not a milestone")
            if story["state"] == "completed":
                return {"story": dict(story), "changed": False}
            answer = self.update(
                "stories", sid, {"story": {"state": "completed"}}, {}, user_id=user_id
            )
            return {"story": answer["stories"][sid], "changed": True}

    def time_burst(self, body: Payload) -> Payload:
        """Create `count` time entries at once (the month-end bench), each with its
        `time_entry:created` event. Optional: approved (default true), user_ids (default the
        seeded members, in turn), story_id, date_performed (default today, UTC),
        time_in_minutes (default 60), billable (default true), notes."""
        state = self.state
        count = _int(body.get("count"), "count", minimum=1)
        if count > MAX_BURST:
            raise ValueError(f"count must be at most {MAX_BURST}")
        approved = _bool(body.get("approved", True), "approved")
        with state.lock:
            wid, workspace = self._workspace_of(body)
            raw_users = body.get("user_ids") or sorted(
                (m["user_id"] for m in state.table("account_memberships").values()), key=int
            )
            if not isinstance(raw_users, list) or not raw_users:
                raise ValueError("user_ids must be a non-empty list")
            user_ids = [self._user_of(u, "user_ids") for u in raw_users]
            story_id = self._story_in(body.get("story_id"), wid)
            performed = _date(body.get("date_performed"), "date_performed") or (
                datetime.now(UTC).date().isoformat()
            )
            minutes = _int(body.get("time_in_minutes", 60), "time_in_minutes", minimum=1)
            billable = _bool(body.get("billable", True), "billable")
            notes = _text(body.get("notes"), "notes")
            currency = workspace["currency"]
            rates = {uid: state.cost_rate_of(uid, currency) or 0 for uid in set(user_ids)}
            table = state.table("time_entries")
            stamp = _now()
            first = last = ""
            for i in range(count):
                uid = user_ids[i % len(user_ids)]
                rid = str(state.next_number())
                record = {
                    "id": rid,
                    "workspace_id": wid,
                    "user_id": uid,
                    "story_id": story_id,
                    "date_performed": performed,
                    "time_in_minutes": minutes,
                    "billable": billable,
                    "notes": notes,
                    "rate_in_cents": 0,
                    "cost_rate_in_cents": rates[uid],
                    "currency": currency,
                    "currency_symbol": SYMBOLS.get(currency, currency),
                    "currency_base_unit": base_unit(currency),
                    "approved": approved,
                    "is_invoiced": False,
                    "taxable": False,
                    "location": None,
                    "created_at": stamp,
                    "updated_at": stamp,
                }
                table[rid] = record
                state.emit_event("time_entries", record, "created", user_id=uid)
                first = first or rid
                last = rid
            state.touch()
            return {"created": count, "workspace_id": wid, "first_id": first, "last_id": last}

    def approve(self, body: Payload) -> Payload:
        """Approve (or, with `"approved": false`, reject) time entries and expenses as an
        approver would (default user 2): `{"time_entry_ids": [...], "expense_ids": [...]}`.
        Each change is a `time_entry:updated` / `expense:updated` event."""
        state = self.state
        approved = _bool(body.get("approved", True), "approved")
        user_id = self._user_of(body.get("user_id", PM_USER_ID), "user_id")
        counts = {"time_entries": 0, "expenses": 0}
        with state.lock:
            for resource, key in (("time_entries", "time_entry_ids"), ("expenses", "expense_ids")):
                raw = body.get(key) or []
                if not isinstance(raw, list):
                    raise ValueError(f"{key} must be a list of ids")
                table = state.table(resource)
                for value in raw:
                    rid = _record_id(value, key)
                    current = table.get(rid)
                    if current is None:
                        raise ValueError(f"{SINGULAR[resource]} {rid} does not exist")
                    record = dict(current)
                    if resource == "time_entries":
                        record["approved"] = approved
                    else:
                        record["submission_status"] = "approved" if approved else "rejected"
                    if record == current:
                        continue
                    record["updated_at"] = _now()
                    table[rid] = record
                    state.emit_event(resource, record, "updated", previous=current, user_id=user_id)
                    counts[resource] += 1
            state.touch()
        return {"approved": approved, **counts}


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


class _TouchOnControlWrites:
    """Drops cached list results after any write to the control surface (such as a record
    edited through `/__standin__/records/...`), which bypasses the stand-in's write paths."""

    def __init__(self, app: ASGIApp, state: KantataState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        control_write = (
            scope["type"] == "http"
            and scope["path"].startswith(CONTROL_PREFIX)
            and scope["method"] != "GET"
        )
        try:
            await self.app(scope, receive, send)
        finally:
            if control_write:
                self.state.touch()


def create_app(state: KantataState | None = None) -> Starlette:
    """The Kantata stand-in app: vendor routes plus the shared control surface."""
    state = state or KantataState()
    app = build_app(state, KantataApi(state).routes(), error_body)
    app.add_middleware(_TouchOnControlWrites, state=state)
    return app
