"""Kantata OX (formerly Mavenlink) client: REST API v1 calls, envelope unpacking, paging and the
project-provisioning helpers the workflows use.

Vendor facts this client relies on, checked against Kantata's developer documentation
(developer.kantata.com, its published OpenAPI description) and the mavenlink_gem
attribute specification:

* Base `https://api.mavenlink.com/api/v1/{resource}.json`; OAuth 2.0 bearer tokens that do not
  expire (`Authorization: Bearer <token>`).
* Envelope `{count, results: [{key, id}], <key>: {<id>: {...}}, meta: {count, page_count,
  page_number, page_size}}`; `results` is the answer order; ids are strings; `include=`d
  objects sit under their own keys. `count` is the total of the whole query.
* Paging `page` + `per_page` (default 20, max 200) or `limit` + `offset`. Lists default to
  `updated_at:desc`; this client asks for `created_at:asc` on workspaces, stories and external
  references (documented sort values) so records updated while it pages do not move between
  pages, and drops an id it has already yielded.
* Errors `{"errors": [{"type": "oauth|system|validation", "message", "field"?}]}`; 429 when
  rate limited, with no Retry-After documented: the client then waits `rate_limit_delay`
  seconds (2 s by default) before retrying, and honours Retry-After when one is sent.
* Writes: `POST /{resource}.json` with `{"workspace": {...}}`, bulk `{"workspaces": [...]}` -
  Kantata documents at most 100 workspaces and 300 stories per bulk call (the 300 in our vendor
  notes holds for stories, not workspaces); `PUT /{resource}/{id}.json`. Create answers 200.
* A workspace's writable budget is `price` in currency units; `price_in_cents` is read-only.
  Stories carry `budget_estimate_in_cents` (settable on budgeted workspaces only).
* External references: `GET /external_references.json` needs `subject_type`; filters
  `subject_id`, `service_name`, `service_model`, `service_model_ref`. They are written with
  `POST /external_references/create_or_update.json` (there is no plain create), or nested as
  `external_reference` in a workspace create or update; Kantata allows one reference per
  `service_name` on an object. `subject_id` is an integer in answers.
* Archived workspaces are left out of lists and answer 404 unless `include_archived=true`.

Idempotent replays without an idempotency header (Kantata has none; no call here sends an
idempotency header):

1. `find_workspace_by_reference(ref)`: the external reference with service_name
   "throughline" and service_model_ref = Throughline's project key points at the workspace.
2. `find_workspace_by_marker(marker)`: a workspace whose title or description carries
   Throughline's marker - this covers a crash between creating a workspace and recording its
   reference (the marker is written in the same call that creates the workspace).
3. Only then `create_workspace(fields, ref=...)`, which also nests the external reference in
   the create call, so Kantata records workspace and reference together; `add_reference` is
   an upsert (create_or_update) and safe to repeat, which is why the client marks it
   repeatable for the retry policy.

Milestones are keyed by title inside their workspace: `create_milestones` reads the
workspace's milestones first and only creates the missing ones, so a replay never duplicates
them. POSTs are never repeated after an answer that may have done the work (timeouts, 500);
only refusals (429, 503, connection refused) are retried, per ConnectorHttpClient.

Project-to-cash and resource-to-finance (second round), from Kantata's OpenAPI description:

* Change feed: `GET /subscribed_events.json` (Subscribed Events; an add-on readable by
  account administrators; pull only, no webhooks; 9 days kept; at-least-once, `created_at`
  order is not `subject_changed_at` order). There is no cursor parameter: `events()` keeps
  its own cursor `v1|<created_after>|<skip>` over `order=created_at:asc` with `limit` and
  `offset`, and re-bases it on the last-but-one distinct `created_at` of each batch, so
  bursts that share one second page correctly. Events carry `user_id`: Throughline's own
  writes come back with the API user's id, which is how the engine drops its echoes.
* Milestone completion: a story's `state` becomes `completed` (or `percentage_complete`
  100); the moment comes from `story_state_changes` (include on stories with `only=`).
* ERP outcomes go back as Throughline's external reference on the record
  (`set_reference`): Kantata's reference `status` is the sync status (pending, successful,
  failed), so the ERP state (synced, paid, overdue, cancelled) goes in `external_status`,
  "the status of the external object in the external system".
* Time entries `approved` (always processed as true: approved, or in a project without
  time approval), `updated_after`, `workspace_id`, `order=created_at:asc` (a stable order:
  an update does not move a record). Expenses the same (their orders have no updated_at);
  an expense has no approval field, and `receipt_id` shows only with `include=receipt`.
* Cost rates belong to account memberships (`by_user_id`, `include=cost_rates`); `POST
  /cost_rates.json` overrides the rate of (membership, currency); they have no effective
  date. Users are found with `by_email_address`.
* Cost centres are Department organizations named "<code> - <name>" under the Departments
  root (Kantata organizations have a unique name and no code field, and custom field
  choices would need an account-specific custom field; organizations are what Kantata
  offers for departments).
* Assignments (`story_id`, `assignee_id`, `estimated_minutes`, `allocated_minutes`,
  `current`; no project id of their own: include=story gives it) and participations
  (project members; `workspace_id` is required) both have `updated_after`.

Reconciliation: `workspaces_changed` lists every workspace (archived ones too,
`include_archived=true`) changed after a time (`updated_after`, strict) with its external
references included, and names Throughline's reference on each (`throughline_ref`).

Not confirmed from vendor sources (the stand-in follows these choices): the unit of `price` on
write (documented as "integer ... the starting budget"; sent here as an exact decimal string in
currency units), which keys create_or_update matches on, whether a bulk create is atomic,
whether `search` tokenizes punctuation (the client re-checks every marker match itself), the
order of events sharing one `created_at` second (the stand-in breaks ties on the id; the
cursor assumes the vendor's tie order is stable), whether a workspace's currency may change
once time is logged, and whether `by_email_address` is case-sensitive (the client compares
case-insensitively itself). A record that leaves a filtered list while it is being paged
(an approval withdrawn mid-read) can shift a later record past a page boundary; reads are
meant to be reconciled, not trusted as complete.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from itertools import pairwise
from typing import Any

import httpx

from ..auth import BearerTokenAuth
from ..errors import (
    ConflictError,
    ConnectorError,
    NotFoundError,
    RateLimitedError,
    ResponseShapeError,
)
from ..http import ConnectorHttpClient, VendorErrorDetail
from .mapping import currency_base_unit

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.mavenlink.com"
API_PREFIX = "/api/v1"
MAX_PER_PAGE = 200
DEFAULT_BULK_LIMIT = 300
BULK_LIMITS = {
    "workspaces": 100,
    "stories": 300,
    "time_entries": 300,
    "expenses": 100,
    "participations": 100,
    "organizations": 100,
}
STABLE_ORDER = {
    "workspaces": "created_at:asc",
    "stories": "created_at:asc",
    "external_references": "created_at:asc",
    "time_entries": "created_at:asc",
    "expenses": "created_at:asc",
    "assignments": "created_at:asc",
    "participations": "created_at:asc",
    "organizations": "created_at:asc",
}
SERVICE_NAME = "throughline"
SERVICE_MODEL = "Project"
PAGING_PARAMS = frozenset({"page", "per_page", "limit", "offset"})
EVENTS_RESOURCE = "subscribed_events"
#: what Throughline writes into a reference's `external_status` (Kantata's free text for "the
#: status of the external object in the external system"); `status` itself is Kantata's
#: sync status, always "successful" for these writes
EXTERNAL_STATUSES = ("synced", "paid", "overdue", "cancelled")
#: Kantata subject types Throughline puts references on
REFERENCE_SUBJECTS = frozenset(
    {"Workspace", "Story", "TimeEntry", "Expense", "User", "Assignment", "Participation"}
)
#: milestone fields `replace_milestone_plan` compares and writes
PLAN_FIELDS = ("due_date", "start_date", "budget_estimate_in_cents", "billable", "description")
#: plan fields that a completed (billed) milestone must keep
BILLED_FIELDS = frozenset({"due_date", "budget_estimate_in_cents", "billable"})
COST_CENTRE_SEPARATOR = " - "
_CURRENCY = re.compile(r"^[A-Z]{3}$")

_RESOURCE = re.compile(r"^[a-z_]+$")
_ID = re.compile(r"^\d+$")

Record = dict[str, Any]
Records = list[Record]  # the builtin, for annotations inside KantataClient (which has .list)


def _shape_error(message: str, operation: str, body: Any = None) -> ResponseShapeError:
    return ResponseShapeError(
        f"Kantata answer does not have the documented shape: {message}",
        body=body if isinstance(body, dict | list | str | None) else repr(body)[:2000],
        operation=operation,
    )


def unpack_envelope(body: Any, *, key: str | None = None, operation: str = "") -> list[Record]:
    """The primary objects of a Kantata answer, in `results` order.

    Checks the envelope: `results` is a list of `{key, id}`, each naming an object that exists
    under its key (and whose own `id`, when present, agrees). Objects come back as copies with
    `id` set as a string. With `key`, every result must be of that kind.
    """
    if not isinstance(body, dict):
        raise _shape_error("the body is not a JSON object", operation, body)
    results = body.get("results")
    if not isinstance(results, list):
        raise _shape_error("`results` is missing or not a list", operation, body)
    objects: list[Record] = []
    seen: set[tuple[str, str]] = set()
    for position, entry in enumerate(results):
        if not isinstance(entry, dict):
            raise _shape_error(f"results[{position}] is not an object", operation, body)
        entry_key, raw_id = entry.get("key"), entry.get("id")
        if not isinstance(entry_key, str) or not entry_key:
            raise _shape_error(f"results[{position}] has no `key`", operation, body)
        if isinstance(raw_id, bool) or not isinstance(raw_id, str | int) or str(raw_id) == "":
            raise _shape_error(f"results[{position}] has no usable `id`", operation, body)
        rid = str(raw_id)
        if key is not None and entry_key != key:
            raise _shape_error(
                f"results[{position}] is a {entry_key!r}, expected {key!r}", operation, body
            )
        if (entry_key, rid) in seen:
            raise _shape_error(f"results lists {entry_key} {rid} twice", operation, body)
        collection = body.get(entry_key)
        if not isinstance(collection, dict):
            raise _shape_error(f"the `{entry_key}` collection is missing", operation, body)
        obj = collection.get(rid)
        if not isinstance(obj, dict):
            raise _shape_error(f"{entry_key} {rid} is listed but not present", operation, body)
        if "id" in obj and str(obj["id"]) != rid:
            raise _shape_error(f"{entry_key} {rid} carries id {obj['id']!r}", operation, body)
        seen.add((entry_key, rid))
        objects.append({**obj, "id": rid})
    return objects


def _total_pages(body: Record, page_size: int, operation: str) -> int:
    meta = body.get("meta")
    if isinstance(meta, dict):
        page_count = meta.get("page_count")
        if isinstance(page_count, int) and not isinstance(page_count, bool) and page_count >= 0:
            return page_count
    count = body.get("count")
    if isinstance(count, int) and not isinstance(count, bool) and count >= 0:
        return -(-count // page_size)
    raise _shape_error("neither `meta.page_count` nor `count` is a number", operation, body)


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple | set | frozenset):
        return ",".join(str(v) for v in value)
    return str(value)


def _title_key(title: str) -> str:
    return " ".join(title.split()).casefold()


def _check_id(value: Any, what: str) -> str:
    text = str(value) if isinstance(value, int | str) and not isinstance(value, bool) else ""
    if not _ID.match(text):
        raise ValueError(f"{what} must be a Kantata id (digits), got {value!r}")
    return text


def _iso(moment: datetime, what: str) -> str:
    """An aware datetime as Kantata's ISO 8601 filter value, floored to the second (a
    watermark that moves back reads a record twice, never misses one)."""
    if not isinstance(moment, datetime) or moment.tzinfo is None:
        raise ValueError(f"{what} must be a timezone-aware datetime")
    return moment.astimezone(UTC).replace(microsecond=0).isoformat()


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _included(body: Record, key: str, operation: str) -> dict[str, Record]:
    """The `include=`d objects under `key` (an empty dict when none came back)."""
    collection = body.get(key, {})
    if not isinstance(collection, dict) or not all(
        isinstance(v, dict) for v in collection.values()
    ):
        raise _shape_error(f"the included `{key}` collection is malformed", operation, body)
    return {str(k): v for k, v in collection.items()}


def _completed_at(story: Record, changes: dict[str, Record], operation: str) -> str | None:
    """When the story last became completed (ISO 8601), from its included state changes."""
    ids = story.get("story_state_change_ids") or []
    if not isinstance(ids, list):
        raise _shape_error(
            f"story {story.get('id')}: story_state_change_ids is not a list", operation
        )
    completed = [
        moment
        for change in (changes.get(str(i)) for i in ids)
        if change is not None and change.get("state") == "completed"
        for moment in [_parse_time(change.get("created_at"))]
        if moment is not None
    ]
    return max(completed).isoformat() if completed else None


def encode_event_cursor(created_after: str | None, skip: int) -> str:
    """The `events` cursor: events created after `created_after` (all of them when None),
    the first `skip` of which, in created_at/id order, have been read."""
    return f"v1|{created_after or ''}|{skip}"


def decode_event_cursor(cursor: str) -> tuple[str | None, int]:
    parts = cursor.split("|") if isinstance(cursor, str) else []
    if len(parts) != 3 or parts[0] != "v1" or not parts[2].isdigit():
        raise ValueError(f"not a Kantata events cursor: {cursor!r}")
    if parts[1] and _parse_time(parts[1]) is None:
        raise ValueError(f"not a Kantata events cursor: {cursor!r}")
    return parts[1] or None, int(parts[2])


def _check_event(raw: Record, operation: str) -> tuple[Record, datetime]:
    """A Subscribed Event checked (and its JSON-text payload_changes decoded)."""
    event_type, subject_type = raw.get("event_type"), raw.get("subject_type")
    if not isinstance(event_type, str) or ":" not in event_type:
        raise _shape_error(f"event {raw['id']} has no usable event_type", operation)
    if not isinstance(subject_type, str) or not subject_type:
        raise _shape_error(f"event {raw['id']} has no subject_type", operation)
    try:
        subject_id = _check_id(raw.get("subject_id"), "subject_id")
    except ValueError as exc:
        raise _shape_error(f"event {raw['id']}: {exc}", operation) from exc
    created = _parse_time(raw.get("created_at"))
    if created is None:
        raise _shape_error(f"event {raw['id']} has no readable created_at", operation)
    changes = raw.get("payload_changes")
    if isinstance(changes, str):
        try:
            changes = json.loads(changes)
        except ValueError as exc:
            raise _shape_error(
                f"event {raw['id']}: payload_changes is not JSON", operation
            ) from exc
    if changes is not None and not isinstance(changes, dict):
        raise _shape_error(f"event {raw['id']}: payload_changes is not an object", operation)
    return {**raw, "subject_id": subject_id, "payload_changes": changes}, created


def _with_reference(fields: Record, ref: str | None) -> Record:
    """A workspace body carrying Throughline's external reference `ref` (when given)."""
    payload = dict(fields)
    if ref is not None:
        payload["external_reference"] = {
            "service_name": SERVICE_NAME,
            "service_model": SERVICE_MODEL,
            "service_model_ref": ref,
            "status": "successful",
        }
    return payload


def _subunits(amount: Decimal, currency: str) -> int:
    """`amount` in the currency's subunits, exactly, or ValueError."""
    if isinstance(amount, bool) or not isinstance(amount, Decimal) or not amount.is_finite():
        raise ValueError("price must be a finite Decimal")
    if amount < 0:
        raise ValueError("price must be zero or more")
    subunits = amount * currency_base_unit(currency)
    if subunits != subunits.to_integral_value():
        raise ValueError(f"price {amount} has more decimals than {currency} allows")
    return int(subunits)


def _cost_centre_code(name: Any) -> str | None:
    if not isinstance(name, str):
        return None
    code, sep, _rest = name.partition(COST_CENTRE_SEPARATOR)
    return code.strip() if sep else name.strip()


class KantataClient(ConnectorHttpClient):
    """Kantata OX REST API v1 over the shared HTTP client (bearer token auth)."""

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        token: str,
        page_size: int = MAX_PER_PAGE,
        rate_limit_delay: float = 2.0,
        **kwargs: Any,
    ) -> None:
        if not 1 <= page_size <= MAX_PER_PAGE:
            raise ValueError(f"page_size must be between 1 and {MAX_PER_PAGE}")
        root = (base_url or DEFAULT_BASE_URL).rstrip("/").removesuffix(API_PREFIX)
        super().__init__(root, auth=BearerTokenAuth(token), **kwargs)
        self.page_size = page_size
        self.rate_limit_delay = rate_limit_delay

    # -- vendor hooks -------------------------------------------------------------------
    def describe_error(self, response: httpx.Response) -> VendorErrorDetail:
        """Read `errors[0]`: message, type (as the vendor code) and field."""
        try:
            body = response.json()
        except ValueError:
            return super().describe_error(response)
        errors = body.get("errors") if isinstance(body, dict) else None
        if not isinstance(errors, list) or not errors:
            return super().describe_error(response)
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        if not isinstance(first, dict):
            return VendorErrorDetail(f"{first}{more}"[:500])
        message = first.get("message") or first.get("type") or response.reason_phrase
        kind, field = first.get("type"), first.get("field")
        return VendorErrorDetail(
            f"{message}{more}"[:500],
            str(kind) if kind else None,
            str(field) if field else None,
        )

    def _error_from(self, response: httpx.Response, operation: str) -> ConnectorError:
        error = super()._error_from(response, operation)
        if isinstance(error, RateLimitedError) and error.retry_after is None:
            # Kantata documents no Retry-After: "retry after a short delay".
            error.retry_after = self.rate_limit_delay
        return error

    # -- paths and envelopes ------------------------------------------------------------
    @staticmethod
    def path(resource: str, rid: str | int | None = None) -> str:
        if not _RESOURCE.match(resource):
            raise ValueError(f"not a Kantata resource name: {resource!r}")
        if rid is None:
            return f"{API_PREFIX}/{resource}.json"
        return f"{API_PREFIX}/{resource}/{_check_id(rid, f'{resource} id')}.json"

    def unpack(self, body: Any, *, operation: str, key: str | None = None) -> Records:
        """See `unpack_envelope`."""
        return unpack_envelope(body, key=key, operation=operation)

    def _one(self, response: httpx.Response, resource: str, operation: str) -> Record:
        body = self.decode(response, operation)
        objects = self.unpack(body, operation=operation, key=resource)
        if len(objects) != 1:
            raise _shape_error(f"expected one {resource} object, got {len(objects)}", operation)
        return objects[0]

    # -- generic calls ------------------------------------------------------------------
    def list(self, resource: str, **filters: Any) -> Iterator[Record]:
        """Every record of `resource` matching `filters`, following all pages."""
        for objects, _body in self.pages(resource, **filters):
            yield from objects

    def pages(self, resource: str, **filters: Any) -> Iterator[tuple[Records, Record]]:
        """Each page of a query as (its new primary records, the whole answer), so callers
        can read `include=`d objects. A record already yielded on an earlier page (the list
        shifted while paging) is dropped."""
        if PAGING_PARAMS & filters.keys():
            raise ValueError("list() pages by itself; do not pass page, per_page, limit, offset")
        operation = f"kantata.{resource}.list"
        params = {name: _param(value) for name, value in filters.items() if value is not None}
        if resource in STABLE_ORDER:
            params.setdefault("order", STABLE_ORDER[resource])
        seen: set[str] = set()
        page = 1
        while True:
            params.update(page=str(page), per_page=str(self.page_size))
            body = self.get_json(self.path(resource), operation=operation, params=params)
            objects = self.unpack(body, operation=operation, key=resource)
            total_pages = _total_pages(body, self.page_size, operation)
            fresh = [obj for obj in objects if obj["id"] not in seen]
            seen.update(obj["id"] for obj in fresh)
            yield fresh, body
            if not objects or page >= total_pages:
                return
            page += 1

    def get(self, resource: str, rid: str | int, **params: Any) -> Record:
        """One record; NotFoundError when Kantata does not know the id."""
        operation = f"kantata.{resource}.get"
        response = self.request(
            "GET",
            self.path(resource, rid),
            operation=operation,
            params={k: _param(v) for k, v in params.items()} or None,
        )
        record = self._one(response, resource, operation)
        if record["id"] != str(rid):
            raise _shape_error(f"asked for {resource} {rid}, got {record['id']}", operation)
        return record

    def create(self, resource: str, singular: str, fields: Record) -> Record:
        """Create one record (`{"<singular>": fields}`)."""
        operation = f"kantata.{resource}.create"
        response = self.request(
            "POST", self.path(resource), operation=operation, json={singular: fields}
        )
        return self._one(response, resource, operation)

    def create_many(self, resource: str, items: Iterable[Record]) -> Records:
        """Bulk-create, in chunks of Kantata's per-call limit; answers in input order.

        Each chunk is one call; if a later chunk fails, the earlier ones stay created.
        """
        pending = [dict(item) for item in items]
        limit = BULK_LIMITS.get(resource, DEFAULT_BULK_LIMIT)
        operation = f"kantata.{resource}.bulk_create"
        created: list[Record] = []
        for start in range(0, len(pending), limit):
            chunk = pending[start : start + limit]
            response = self.request(
                "POST", self.path(resource), operation=operation, json={resource: chunk}
            )
            objects = self.unpack(
                self.decode(response, operation), operation=operation, key=resource
            )
            if len(objects) != len(chunk):
                raise _shape_error(
                    f"sent {len(chunk)} {resource}, Kantata answered {len(objects)}", operation
                )
            created.extend(objects)
        return created

    def update(self, resource: str, singular: str, rid: str | int, fields: Record) -> Record:
        """Update one record (`PUT` with `{"<singular>": fields}`)."""
        operation = f"kantata.{resource}.update"
        response = self.request(
            "PUT", self.path(resource, rid), operation=operation, json={singular: fields}
        )
        return self._one(response, resource, operation)

    # -- workflow-facing ----------------------------------------------------------------
    def find_workspace_by_reference(self, ref: str) -> Record | None:
        """The workspace Throughline's external reference `ref` points at, or None.

        Archived workspaces count (a replay must not recreate them). References to
        workspaces that no longer exist are ignored; two live workspaces carrying the same
        reference are a ConflictError.
        """
        ref = ref.strip()
        if not ref:
            raise ValueError("a Throughline reference is required")
        operation = "kantata.external_references.list"
        subject_ids: set[str] = set()
        for reference in self.list(
            "external_references",
            subject_type="Workspace",
            service_name=SERVICE_NAME,
            service_model_ref=ref,
        ):
            if (
                reference.get("subject_type") != "Workspace"
                or reference.get("service_name") != SERVICE_NAME
                or reference.get("service_model_ref") != ref
            ):
                continue  # a vendor-side filter we do not rely on
            try:
                subject_ids.add(_check_id(reference.get("subject_id"), "subject_id"))
            except ValueError as exc:
                raise _shape_error(str(exc), operation) from exc
        if not subject_ids:
            return None
        workspaces = [
            w
            for w in self.list(
                "workspaces", only=sorted(subject_ids, key=int), include_archived=True
            )
            if w["id"] in subject_ids
        ]
        if len(workspaces) > 1:
            raise ConflictError(
                f"{len(workspaces)} Kantata workspaces carry Throughline reference {ref}: "
                + ", ".join(w["id"] for w in workspaces),
                vendor_code="duplicate_reference",
                operation="kantata.find_workspace_by_reference",
            )
        return workspaces[0] if workspaces else None

    def find_workspace_by_marker(self, marker: str) -> Record | None:
        """The oldest workspace whose title or description contains `marker`, or None."""
        marker = marker.strip()
        if not marker:
            raise ValueError("a marker is required")
        matches = [
            w
            for w in self.list("workspaces", search=marker, include_archived=True)
            if marker in str(w.get("title") or "") or marker in str(w.get("description") or "")
        ]
        if not matches:
            return None
        matches.sort(key=lambda w: int(w["id"]) if w["id"].isdigit() else 0)
        if len(matches) > 1:
            logger.warning(
                "kantata: %d workspaces carry marker %s; using the oldest, %s",
                len(matches),
                marker,
                matches[0]["id"],
            )
        return matches[0]

    def create_workspace(self, fields: Record, *, ref: str | None = None) -> Record:
        """Create a workspace; with `ref`, its Throughline reference rides in the same call."""
        workspace = self.create("workspaces", "workspace", _with_reference(fields, ref))
        logger.info("kantata: created workspace %s (ref %s)", workspace["id"], ref)
        return workspace

    def create_workspaces(self, items: list[tuple[Record, str]]) -> Records:
        """Create several workspaces, each with its Throughline reference, in bulk calls of
        at most 100 (answers in input order). Each call is all-or-nothing at Kantata: one
        invalid workspace refuses its whole chunk (a ValidationError) and creates none."""
        workspaces = self.create_many(
            "workspaces", [_with_reference(fields, ref) for fields, ref in items]
        )
        logger.info("kantata: created %d workspaces in bulk", len(workspaces))
        return workspaces

    def add_reference(self, workspace_id: str | int, ref: str) -> Record:
        """Record Throughline's reference on a workspace (an upsert: safe to repeat)."""
        wid = _check_id(workspace_id, "workspace_id")
        return self._upsert_reference(
            {
                "subject_type": "Workspace",
                "subject_id": int(wid),
                "service_name": SERVICE_NAME,
                "service_model": SERVICE_MODEL,
                "service_model_ref": ref,
                "status": "successful",
            }
        )

    def _upsert_reference(self, fields: Record) -> Record:
        """`create_or_update` one external reference, keyed by (subject, service_name)."""
        operation = "kantata.external_references.create_or_update"
        key = f"{fields['subject_type']}:{fields['subject_id']}:{fields['service_name']}"
        response = self.request(
            "POST",
            f"{API_PREFIX}/external_references/create_or_update.json",
            operation=operation,
            json={"external_reference": fields},
            # Not sent (Kantata has no idempotency header): it marks the upsert repeatable.
            idempotency_key=f"kantata:external_reference:{key}",
        )
        return self._one(response, "external_references", operation)

    def list_milestones(self, workspace_id: str | int, *, include_archived: bool = True) -> Records:
        """The workspace's milestone stories (archived ones too, by default)."""
        wid = _check_id(workspace_id, "workspace_id")
        filters: dict[str, Any] = {"workspace_id": wid, "story_type": "milestone"}
        if include_archived:
            filters["show_archived"] = True
        milestones = []
        for story in self.list("stories", **filters):
            owner = story.get("workspace_id")
            if owner is not None and str(owner) != wid:
                raise _shape_error(
                    f"asked for stories of workspace {wid}, got one of {owner}",
                    "kantata.stories.list",
                )
            if story.get("story_type") == "milestone":
                milestones.append(story)
        return milestones

    def create_milestones(self, workspace_id: str | int, stories: Iterable[Record]) -> Records:
        """Create the milestone stories the workspace lacks (matched by title, ignoring case
        and spacing); answers one story per input, existing or new, in input order."""
        wid = _check_id(workspace_id, "workspace_id")
        existing: dict[str, Record] = {}
        for story in self.list_milestones(wid):
            title = story.get("title")
            if isinstance(title, str):
                existing.setdefault(_title_key(title), story)
        wanted = [dict(s) for s in stories]
        to_create: dict[str, Record] = {}
        for story in wanted:
            title = story.get("title")
            if not isinstance(title, str) or not title.strip():
                raise ValueError("every milestone story needs a title")
            key = _title_key(title)
            if key not in existing and key not in to_create:
                to_create[key] = {**story, "workspace_id": int(wid), "story_type": "milestone"}
        created = self.create_many("stories", to_create.values()) if to_create else []
        by_key = dict(existing)
        by_key.update(zip(to_create, created, strict=True))
        logger.info(
            "kantata: workspace %s milestones: %d created, %d already present",
            wid,
            len(created),
            len(wanted) - len(created),
        )
        return [by_key[_title_key(s["title"])] for s in wanted]

    # -- change feed (Subscribed Events) --------------------------------------------------
    def events(self, after: str | None = None, limit: int = 200) -> tuple[Records, str | None]:
        """The next `limit` events after cursor `after` (None: the oldest Kantata still
        keeps), oldest first, with `payload_changes` decoded; and the cursor to pass next
        time (unchanged when nothing new came). Events are at-least-once: the same event id
        may come twice, and `subject_changed_at` order is not `created_at` order."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PER_PAGE:
            raise ValueError(f"limit must be between 1 and {MAX_PER_PAGE}")
        since, skip = decode_event_cursor(after) if after is not None else (None, 0)
        operation = "kantata.subscribed_events.list"
        params = {
            "order": "created_at:asc",
            "limit": str(limit),
            "offset": str(skip),
            "optional_fields": "payload_changes",
        }
        if since is not None:
            params["created_after"] = since
        body = self.get_json(self.path(EVENTS_RESOURCE), operation=operation, params=params)
        raw = self.unpack(body, operation=operation, key=EVENTS_RESOURCE)
        if len(raw) > limit:
            raise _shape_error(f"asked for {limit} events, got {len(raw)}", operation)
        checked = [_check_event(event, operation) for event in raw]
        stamps = [created for _event, created in checked]
        if any(later < earlier for earlier, later in pairwise(stamps)):
            raise _shape_error("events are not in created_at order", operation)
        if not checked:
            return [], after
        # Move the cursor on: events created after the last-but-one distinct created_at,
        # skipping those read here (several events share one second).
        last = stamps[-1]
        earlier = [i for i, created in enumerate(stamps) if created < last]
        if earlier:
            pivot = earlier[-1]
            cursor = encode_event_cursor(checked[pivot][0]["created_at"], len(raw) - pivot - 1)
        else:
            cursor = encode_event_cursor(since, skip + len(raw))
        events: Records = []
        seen: set[str] = set()
        for event, _created in checked:
            if event["id"] not in seen:
                seen.add(event["id"])
                events.append(event)
        return events, cursor

    def milestone_story(self, story_id: str | int) -> Record:
        """A story (archived too) with `completed_at`: when it last became completed,
        from its story state changes (None if never). `completed_at` is added by this
        client; Kantata's story has no such field."""
        sid = _check_id(story_id, "story_id")
        operation = "kantata.stories.get"
        params = {"only": sid, "include": "story_state_changes", "show_archived": "true"}
        body = self.get_json(self.path("stories"), operation=operation, params=params)
        stories = [
            s for s in self.unpack(body, operation=operation, key="stories") if s["id"] == sid
        ]
        if not stories:
            raise NotFoundError(f"Kantata has no story {sid}", status=404, operation=operation)
        story = stories[0]
        changes = _included(body, "story_state_changes", operation)
        return {**story, "completed_at": _completed_at(story, changes, operation)}

    # -- ERP outcomes back onto PSA records ---------------------------------------------
    def set_reference(
        self,
        subject_type: str,
        subject_id: str | int,
        *,
        ref: str,
        model: str,
        status: str,
    ) -> Record:
        """Put the ERP's id and state on a Kantata record: Throughline's external reference
        (service_name "throughline") with service_model `model`, service_model_ref `ref`,
        Kantata sync `status` "successful" and `external_status` = `status` (synced, paid,
        overdue, cancelled). An upsert: repeating it changes nothing but last_synced_at.
        Kantata keeps one reference per service name on an object, so this replaces any
        other Throughline reference on the same record."""
        if subject_type not in REFERENCE_SUBJECTS:
            raise ValueError(f"subject_type must be one of {sorted(REFERENCE_SUBJECTS)}")
        sid = _check_id(subject_id, f"{subject_type} id")
        if status not in EXTERNAL_STATUSES:
            raise ValueError(f"status must be one of {', '.join(EXTERNAL_STATUSES)}")
        for what, value in (("ref", ref), ("model", model)):
            if not isinstance(value, str) or not value.strip() or len(value.strip()) > 255:
                raise ValueError(f"{what} must be 1-255 characters")
        reference = self._upsert_reference(
            {
                "subject_type": subject_type,
                "subject_id": int(sid),
                "service_name": SERVICE_NAME,
                "service_model": model.strip(),
                "service_model_ref": ref.strip(),
                "status": "successful",
                "external_status": status,
            }
        )
        if (
            reference.get("subject_type") != subject_type
            or str(reference.get("subject_id")) != sid
            or reference.get("service_model_ref") != ref.strip()
            or reference.get("external_status") != status
        ):
            raise _shape_error(
                f"the reference answered is not the one written on {subject_type} {sid}",
                "kantata.external_references.create_or_update",
            )
        return reference

    def set_story_reference(
        self, story_id: str | int, *, ref: str, model: str, status: str
    ) -> Record:
        """`set_reference` on a milestone story: e.g. model "Invoice", ref the invoice
        number, status "synced", later "paid" or "overdue"."""
        return self.set_reference("Story", story_id, ref=ref, model=model, status=status)

    # -- time and expenses (PSA -> ERP) -------------------------------------------------
    def approved_time_entries(
        self,
        updated_after: datetime | None = None,
        *,
        workspace_id: str | int | None = None,
        only: Iterable[str | int] | None = None,
    ) -> Iterator[Record]:
        """Time entries Kantata counts as approved (on an approved timesheet, or in a
        project that needs no time approval), changed after `updated_after`, oldest first,
        200 a page; with `only`, just those ids (at most 200). Each comes with `approved` set
        to True: Kantata's own flag stays false in projects without time approval, but the
        `approved` filter vouches for them."""
        filters: dict[str, Any] = {"approved": True}
        if updated_after is not None:
            filters["updated_after"] = _iso(updated_after, "updated_after")
        if workspace_id is not None:
            filters["workspace_id"] = _check_id(workspace_id, "workspace_id")
        if only is not None:
            ids = [_check_id(rid, "time entry id") for rid in only]
            if not 1 <= len(ids) <= MAX_PER_PAGE:
                raise ValueError(f"only takes 1 to {MAX_PER_PAGE} ids")
            filters["only"] = ",".join(ids)
        for entry in self.list("time_entries", **filters):
            yield {**entry, "approved": True}

    def approved_expenses(
        self, updated_after: datetime | None = None, *, workspace_id: str | int | None = None
    ) -> Iterator[Record]:
        """Expenses Kantata counts as approved (on an approved expense report, or in a
        project that needs no expense approval), changed after `updated_after`, oldest
        first, with `receipt_id` (include=receipt) and `approved` = True added the same way
        as for time entries (Kantata's expense has no approval field of its own)."""
        filters: dict[str, Any] = {"approved": True, "include": "receipt"}
        if updated_after is not None:
            filters["updated_after"] = _iso(updated_after, "updated_after")
        if workspace_id is not None:
            filters["workspace_id"] = _check_id(workspace_id, "workspace_id")
        for expense in self.list("expenses", **filters):
            yield {**expense, "approved": True}

    # -- billing milestones, for reconciliation -------------------------------------------
    def milestone_stories(self, updated_after: datetime | None = None) -> Iterator[Record]:
        """Milestone stories (archived ones too), changed after `updated_after` (all when
        None), oldest first, 200 a page. Each carries what this client adds: `completed_at`
        (when it last became completed, as `milestone_story`; None if never), `currency`
        (its workspace's) and `throughline_reference` (Throughline's external reference on
        it, or None). Two calls a page: the list (include=workspace,external_references)
        and the page's state changes (include=story_state_changes needs only=, as at
        Kantata). With `updated_after`, stories whose Throughline reference changed after it
        come too: writing a reference leaves the story's own updated_at alone."""
        filters: dict[str, Any] = {
            "story_type": "milestone",
            "show_archived": True,
            "include": "workspace,external_references",
        }
        if updated_after is not None:
            filters["updated_after"] = _iso(updated_after, "updated_after")
        seen: set[str] = set()
        for objects, body in self.pages("stories", **filters):
            seen.update(story["id"] for story in objects)
            yield from self._milestone_details(objects, body)
        if updated_after is None:
            return
        changed = [
            str(reference.get("subject_id"))
            for reference in self.list(
                "external_references",
                subject_type="Story",
                service_name=SERVICE_NAME,
                updated_after=_iso(updated_after, "updated_after"),
            )
        ]
        fresh = sorted({sid for sid in changed if sid.isdigit() and sid not in seen}, key=int)
        for start in range(0, len(fresh), MAX_PER_PAGE):
            only = ",".join(fresh[start : start + MAX_PER_PAGE])
            filters = {
                "only": only,
                "show_archived": True,
                "include": "workspace,external_references",
            }
            for objects, body in self.pages("stories", **filters):
                milestones = [s for s in objects if s.get("story_type") == "milestone"]
                yield from self._milestone_details(milestones, body)

    def _milestone_details(self, stories: Records, body: Record) -> Iterator[Record]:
        """The page's stories with completed_at, currency and throughline_reference."""
        operation = "kantata.stories.list"
        if not stories:
            return
        workspaces = _included(body, "workspaces", operation)
        references = _included(body, "external_references", operation)
        params = {
            "only": ",".join(story["id"] for story in stories),
            "include": "story_state_changes",
            "show_archived": "true",
            "per_page": str(MAX_PER_PAGE),
        }
        answer = self.get_json(self.path("stories"), operation=operation, params=params)
        with_changes = {s["id"]: s for s in self.unpack(answer, operation=operation)}
        changes = _included(answer, "story_state_changes", operation)
        for story in stories:
            if story.get("story_type") != "milestone":
                raise _shape_error(f"story {story['id']} is not a milestone", operation)
            workspace = workspaces.get(str(story.get("workspace_id")))
            if workspace is None:
                raise _shape_error(
                    f"story {story['id']}: its workspace was not included", operation
                )
            ids = story.get("external_reference_ids") or []
            if not isinstance(ids, list):
                raise _shape_error(
                    f"story {story['id']}: external_reference_ids is not a list", operation
                )
            ours = [
                references[str(rid)]
                for rid in ids
                if references.get(str(rid), {}).get("service_name") == SERVICE_NAME
            ]
            completed = _completed_at(with_changes.get(story["id"], {}), changes, operation)
            yield {
                **story,
                "completed_at": completed,
                "currency": workspace.get("currency"),
                "throughline_reference": ours[0] if ours else None,
            }

    # -- reference data (ERP -> PSA) ----------------------------------------------------
    def find_user_by_email(self, email: str) -> Record | None:
        """The account member with this email address (case-insensitive), or None."""
        if not isinstance(email, str) or "@" not in email.strip():
            raise ValueError(f"not an email address: {email!r}")
        wanted = email.strip().casefold()
        matches = [
            user
            for user in self.list("users", by_email_address=email.strip(), on_my_account=True)
            if str(user.get("email_address") or "").strip().casefold() == wanted
        ]
        if len(matches) > 1:
            raise ConflictError(
                f"{len(matches)} Kantata users have the email address {email.strip()}",
                vendor_code="duplicate_email",
                operation="kantata.users.find_by_email",
            )
        return matches[0] if matches else None

    def upsert_user_cost_rate(
        self, user_id: str | int, *, hourly_cost_cents: int, currency: str, effective: date
    ) -> Record:
        """Set a member's hourly cost (in `currency` subunits) through their account
        membership's cost rate for that currency; answers the cost rate. Unchanged rates are
        not written. Kantata cost rates carry no effective date: a new rate applies to work
        logged from now on, so a rate effective in the future is refused (ValueError) and
        must be applied on its date."""
        uid = _check_id(user_id, "user_id")
        if isinstance(hourly_cost_cents, bool) or not isinstance(hourly_cost_cents, int):
            raise ValueError("hourly_cost_cents must be an integer")
        if hourly_cost_cents < 0:
            raise ValueError("hourly_cost_cents must be zero or more")
        if not isinstance(currency, str) or not _CURRENCY.match(currency):
            raise ValueError("currency must be a 3-letter ISO code")
        if isinstance(effective, datetime) or not isinstance(effective, date):
            raise ValueError("effective must be a date")
        today = datetime.now(UTC).date()
        if effective > today:
            raise ValueError(
                f"Kantata cost rates apply from now on; apply this one on {effective.isoformat()}"
            )
        operation = "kantata.cost_rates.upsert"
        memberships: list[tuple[Record, dict[str, Record]]] = []
        for objects, body in self.pages(
            "account_memberships", by_user_id=uid, include="user,cost_rates"
        ):
            rates = _included(body, "cost_rates", operation)
            memberships += [(m, rates) for m in objects if str(m.get("user_id")) == uid]
        if not memberships:
            raise NotFoundError(
                f"Kantata user {uid} has no account membership",
                vendor_code="no_membership",
                operation=operation,
            )
        if len(memberships) > 1:
            raise ConflictError(
                f"Kantata user {uid} has {len(memberships)} account memberships",
                operation=operation,
            )
        membership, rates = memberships[0]
        rate_ids = membership.get("cost_rate_ids") or []
        if not isinstance(rate_ids, list):
            raise _shape_error("cost_rate_ids is not a list", operation)
        for rid in rate_ids:
            rate = rates.get(str(rid))
            if (
                rate is not None
                and rate.get("currency") == currency
                and rate.get("amount_in_subunits") == hourly_cost_cents
            ):
                return {**rate, "id": str(rid)}
        response = self.request(
            "POST",
            self.path("cost_rates"),
            operation=operation,
            json={
                "cost_rate": {
                    "account_membership_id": int(membership["id"]),
                    "currency": currency,
                    "amount_in_subunits": hourly_cost_cents,
                }
            },
            # Not sent: POST /cost_rates overrides the rate of (membership, currency).
            idempotency_key=f"kantata:cost_rate:{membership['id']}:{currency}",
        )
        rate = self._one(response, "cost_rates", operation)
        if rate.get("currency") != currency or rate.get("amount_in_subunits") != hourly_cost_cents:
            raise _shape_error("the cost rate answered is not the one written", operation)
        logger.info("kantata: user %s cost rate %s %s", uid, hourly_cost_cents, currency)
        return rate

    def ensure_cost_centre(self, code: str, name: str) -> Record:
        """The Department organization of cost centre `code`, named "<code> - <name>",
        created under the Departments root or renamed when the name changed."""
        code = code.strip() if isinstance(code, str) else ""
        name = " ".join(name.split()) if isinstance(name, str) else ""
        if not code or COST_CENTRE_SEPARATOR in code or not name:
            raise ValueError("a cost centre needs a code (without ' - ') and a name")
        label = f"{code}{COST_CENTRE_SEPARATOR}{name}"
        departments = list(self.list("organizations", type="Department"))
        matches = [
            org
            for org in departments
            if org.get("parent_id") is not None and _cost_centre_code(org.get("name")) == code
        ]
        if len(matches) > 1:
            raise ConflictError(
                f"{len(matches)} Kantata departments carry cost centre code {code}",
                vendor_code="duplicate_cost_centre",
                operation="kantata.organizations.ensure",
            )
        if matches:
            found = matches[0]
            if found.get("name") == label:
                return found
            return self.update("organizations", "organization", found["id"], {"name": label})
        roots = [o for o in departments if o.get("parent_id") is None]
        if len(roots) != 1:
            raise _shape_error(
                f"expected one root Department organization, found {len(roots)}",
                "kantata.organizations.ensure",
            )
        created = self.create(
            "organizations", "organization", {"name": label, "parent_id": int(roots[0]["id"])}
        )
        logger.info("kantata: created cost centre %s as organization %s", code, created["id"])
        return created

    # -- resources (PSA -> ERP) ---------------------------------------------------------
    def assignments(self, updated_after: datetime | None = None) -> Iterator[Record]:
        """Task assignments changed after `updated_after` (current and ended ones, in
        unarchived tasks and projects), oldest first. Each carries its task under `story`
        and the task's `workspace_id` (Kantata's assignment has no project id of its own;
        both are added by this client from include=story)."""
        filters: dict[str, Any] = {"include": "story"}
        if updated_after is not None:
            filters["updated_after"] = _iso(updated_after, "updated_after")
        operation = "kantata.assignments.list"
        for objects, body in self.pages("assignments", **filters):
            stories = _included(body, "stories", operation)
            for assignment in objects:
                story = stories.get(str(assignment.get("story_id")))
                workspace_id = story.get("workspace_id") if story is not None else None
                yield {**assignment, "story": story, "workspace_id": workspace_id}

    def participations(
        self, workspace_id: str | int, *, updated_after: datetime | None = None
    ) -> Iterator[Record]:
        """The project's members (Kantata requires the project), changed after
        `updated_after`."""
        filters: dict[str, Any] = {"workspace_id": _check_id(workspace_id, "workspace_id")}
        if updated_after is not None:
            filters["updated_after"] = _iso(updated_after, "updated_after")
        yield from self.list("participations", **filters)

    # -- reconciliation reads -------------------------------------------------------------
    def workspaces_changed(self, updated_after: datetime | None = None) -> Iterator[Record]:
        """Every workspace, archived ones too, changed after `updated_after` (all of them
        when None), oldest first, 200 a page. Each carries `throughline_ref`: the
        `service_model_ref` of Throughline's external reference on it (include=
        external_references), or None when it has none."""
        filters: dict[str, Any] = {"include_archived": True, "include": "external_references"}
        if updated_after is not None:
            filters["updated_after"] = _iso(updated_after, "updated_after")
        operation = "kantata.workspaces.list"
        for objects, body in self.pages("workspaces", **filters):
            references = _included(body, "external_references", operation)
            for workspace in objects:
                ids = workspace.get("external_reference_ids") or []
                if not isinstance(ids, list):
                    raise _shape_error("external_reference_ids is not a list", operation, body)
                refs = [
                    references[str(rid)].get("service_model_ref")
                    for rid in ids
                    if str(rid) in references
                    and references[str(rid)].get("service_name") == SERVICE_NAME
                ]
                ref = refs[0] if refs and isinstance(refs[0], str) else None
                yield {**workspace, "throughline_ref": ref}

    # -- amendments -----------------------------------------------------------------------
    def update_workspace_budget(
        self, workspace_id: str | int, *, price: Decimal, currency: str
    ) -> Record:
        """Set the project's budget (`price`, in currency units, written exactly); a budget
        that is already so is not written again."""
        wid = _check_id(workspace_id, "workspace_id")
        if not isinstance(currency, str) or not _CURRENCY.match(currency):
            raise ValueError("currency must be a 3-letter ISO code")
        subunits = _subunits(price, currency)
        current = self.get("workspaces", wid, include_archived=True)
        if (
            current.get("currency") == currency
            and current.get("price_in_cents") == subunits
            and current.get("budgeted") is True
        ):
            return current
        digits = {1: 0, 100: 2, 1000: 3}[currency_base_unit(currency)]
        fields: Record = {
            "budgeted": True,
            "currency": currency,
            "price": format(Decimal(subunits).scaleb(-digits), f".{digits}f"),
        }
        updated = self.update("workspaces", "workspace", wid, fields)
        if updated.get("price_in_cents") != subunits or updated.get("currency") != currency:
            raise _shape_error(
                f"workspace {wid} answered a budget other than the one written",
                "kantata.workspaces.update",
            )
        logger.info("kantata: workspace %s budget %s %s", wid, price, currency)
        return updated

    def replace_milestone_plan(self, workspace_id: str | int, milestones: list[Record]) -> Records:
        """Make the project's milestones the plan: add the new ones, update changed dates
        and amounts, archive those no longer planned unless completed. Milestones match by
        title (ignoring case and spacing). A completed milestone is billed: a plan that
        changes its date, amount or billability is a ConflictError, raised before anything
        is written. Answers one story per planned milestone, in plan order; a repeat
        writes nothing."""
        wid = _check_id(workspace_id, "workspace_id")
        wanted: dict[str, Record] = {}
        for item in milestones:
            title = item.get("title") if isinstance(item, dict) else None
            if not isinstance(title, str) or not title.strip():
                raise ValueError("every milestone needs a title")
            key = _title_key(title)
            if key in wanted:
                raise ValueError(f"the plan names milestone {title!r} twice")
            wanted[key] = dict(item)
        stories = self.list_milestones(wid, include_archived=True)
        existing: dict[str, Record] = {}
        for story in sorted(stories, key=lambda s: (bool(s.get("archived")), int(s["id"]))):
            title = story.get("title")
            if isinstance(title, str):
                existing.setdefault(_title_key(title), story)
        updates: list[tuple[Record, Record]] = []
        conflicts: list[str] = []
        for key, item in wanted.items():
            story = existing.get(key)
            if story is None:
                continue
            changes = {f: item[f] for f in PLAN_FIELDS if f in item and story.get(f) != item[f]}
            if story.get("archived"):
                changes["archived"] = False
            if story.get("state") == "completed" and BILLED_FIELDS & changes.keys():
                conflicts.append(f"{story['title']} ({', '.join(sorted(changes))})")
            elif changes:
                updates.append((story, changes))
        retired = [
            story
            for key, story in existing.items()
            if key not in wanted and not story.get("archived") and story.get("state") != "completed"
        ]
        if conflicts:
            raise ConflictError(
                f"the plan changes completed milestones of workspace {wid}: "
                + "; ".join(conflicts),
                vendor_code="milestone_completed",
                operation="kantata.milestones.replace_plan",
            )
        result = {key: story for key, story in existing.items() if key in wanted}
        for story, changes in updates:
            result[_title_key(story["title"])] = self.update(
                "stories", "story", story["id"], changes
            )
        for story in retired:
            self.update("stories", "story", story["id"], {"archived": True})
        new = [key for key in wanted if key not in existing]
        payloads = [
            {**{k: v for k, v in wanted[key].items() if k != "story_type"},
             "workspace_id": int(wid), "story_type": "milestone"}
            for key in new
        ]  # fmt: skip
        created = self.create_many("stories", payloads) if payloads else []
        result.update(zip(new, created, strict=True))
        logger.info(
            "kantata: workspace %s plan: %d added, %d updated, %d archived",
            wid,
            len(created),
            len(updates),
            len(retired),
        )
        return [result[key] for key in wanted]
