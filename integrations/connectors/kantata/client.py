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

Not confirmed from vendor sources (the stand-in follows these choices): the unit of `price` on
write (documented as "integer ... the starting budget"; sent here as an exact decimal string in
currency units), which keys create_or_update matches on, whether a bulk create is atomic, and
whether `search` tokenizes punctuation (the client re-checks every marker match itself).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from typing import Any

import httpx

from ..auth import BearerTokenAuth
from ..errors import ConflictError, ConnectorError, RateLimitedError, ResponseShapeError
from ..http import ConnectorHttpClient, VendorErrorDetail

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.mavenlink.com"
API_PREFIX = "/api/v1"
MAX_PER_PAGE = 200
DEFAULT_BULK_LIMIT = 300
BULK_LIMITS = {"workspaces": 100, "stories": 300, "time_entries": 300}
STABLE_ORDER = {
    "workspaces": "created_at:asc",
    "stories": "created_at:asc",
    "external_references": "created_at:asc",
}
SERVICE_NAME = "throughline"
SERVICE_MODEL = "Project"
PAGING_PARAMS = frozenset({"page", "per_page", "limit", "offset"})

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
            for obj in objects:
                if obj["id"] not in seen:
                    seen.add(obj["id"])
                    yield obj
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
        payload = dict(fields)
        if ref is not None:
            payload["external_reference"] = {
                "service_name": SERVICE_NAME,
                "service_model": SERVICE_MODEL,
                "service_model_ref": ref,
                "status": "successful",
            }
        workspace = self.create("workspaces", "workspace", payload)
        logger.info("kantata: created workspace %s (ref %s)", workspace["id"], ref)
        return workspace

    def add_reference(self, workspace_id: str | int, ref: str) -> Record:
        """Record Throughline's reference on a workspace (an upsert: safe to repeat)."""
        wid = _check_id(workspace_id, "workspace_id")
        operation = "kantata.external_references.create_or_update"
        body = {
            "external_reference": {
                "subject_type": "Workspace",
                "subject_id": int(wid),
                "service_name": SERVICE_NAME,
                "service_model": SERVICE_MODEL,
                "service_model_ref": ref,
                "status": "successful",
            }
        }
        response = self.request(
            "POST",
            f"{API_PREFIX}/external_references/create_or_update.json",
            operation=operation,
            json=body,
            # Not sent (Kantata has no idempotency header): it marks the upsert repeatable.
            idempotency_key=f"kantata:external_reference:Workspace:{wid}:{SERVICE_NAME}",
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
