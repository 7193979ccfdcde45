"""Salesforce REST client: SOQL queries with paging, sObject reads and writes, upserts by
external id, org limits, and the closed-won Opportunity feed the CRM workflows poll.

Vendor facts this client relies on (Salesforce REST API Developer Guide):
* Paths are `/services/data/vNN.N/...` on the token's `instance_url` (see auth.py).
* `GET /query?q=SOQL` answers `{totalSize, done, records, nextRecordsUrl}`; while `done` is
  false, `GET nextRecordsUrl` (a path like `/services/data/v62.0/query/01gD...-2000`) gives the
  next batch. Each record has `attributes {type, url}`; a parent relationship field such as
  `Account.Name` comes back nested (`"Account": {"attributes": ..., "Name": ...}` or null).
* SOQL string literals are single-quoted; `\\'`, `\\"`, `\\\\`, `\\n`, `\\r`, `\\t`, `\\b`,
  `\\f` are the escapes; datetime literals are unquoted (`2026-11-26T10:00:00Z`).
* `POST /sobjects/{Object}` answers 201 `{id, success, errors}`; `PATCH /sobjects/{Object}/
  {Id}` answers 204; upsert `PATCH /sobjects/{Object}/{ExtIdField}/{value}` answers 201
  (created) or 200 (updated; `created: false`, API 46.0+), 300 with the matching records' URLs
  when several match; `?updateOnly=true` forbids creating. An upsert can be repeated safely,
  so this client retries it like an idempotent call (a repeat after a lost 201 answers 200).
  A create (POST) is retried only when Salesforce refused it outright (503).
* Errors are a JSON array of `{message, errorCode, fields}`. 401 INVALID_SESSION_ID means the
  session expired (the auth re-signs and retries once); 403 REQUEST_LIMIT_EXCEEDED is the
  daily or concurrent API limit (here: RateLimitedError); 400 UNABLE_TO_LOCK_ROW is row-lock
  contention and worth retrying later (TransientError).
* Every answer carries `Sforce-Limit-Info: api-usage=N/LIMIT` (kept in call telemetry);
  `GET /limits` gives `DailyApiRequests {Max, Remaining}`.
* sObject Collections update (REST API Developer Guide, "Update Records Using sObject
  Collections"): `PATCH /composite/sobjects` with `{"allOrNone": bool, "records": [{
  "attributes": {"type": ...}, "id": ..., <fields>}]}`, at most 200 records (more answer 400
  EXCEEDED_ID_LIMIT "record limit reached. cannot submit more than 200 records into this
  call": seen in public client libraries' bug reports, not in the guide), records updated in
  order; a well-formed request answers 200 with one SaveResult per record in the same order,
  `{id, success, errors: [{statusCode, message, fields}]}` (note `statusCode`, not the
  `errorCode` of a whole-call error); a malformed one answers 400 with the usual error array.
  `allOrNone` (default false) rolls the whole request back when any record fails; the records
  that were fine then answer ALL_OR_NONE_OPERATION_ROLLED_BACK ("Record rolled back because
  not all records were valid and the request was using AllOrNone header", from public client
  code). The result order is the only link to the input: `id` may be missing on a failure.
  One request counts as one API call, whatever the number of records.
* Change feeds: CDC and Platform Events use the gRPC Pub/Sub API; this client polls SOQL on
  `SystemModstamp` instead. SystemModstamp has whole-second precision, so a strict `>`
  watermark can miss a record written in the same second as the last one seen: pass
  `inclusive=True` (`>=`) and drop already-processed (Id, SystemModstamp) pairs when that
  matters.
* CurrencyIsoCode exists only in multi-currency orgs; a single-currency org would answer
  INVALID_FIELD to the feed's SOQL (not handled: the field list is fixed).

Business timestamps and the project-to-cash objects:
* `Quote` (standard; `OpportunityId`, `Status`, `QuoteNumber`, `GrandTotal`, `CreatedDate`):
  `first_quote_date` is the CreatedDate of an Opportunity's first Quote, whatever its status.
* `OpportunityHistory` (standard, query-only) is "the stage history of an opportunity":
  Salesforce writes a row on creation and whenever StageName, Amount, CloseDate, Probability
  or ForecastCategory changes; its CreatedDate is when. (`OpportunityFieldHistory` holds
  Field/OldValue/NewValue only for fields with field history tracking switched on, so it is
  not relied on.) A won deal whose Amount is edited later gets another row with StageName
  Closed Won, so `closed_won_at` is the CreatedDate of the first row of the last unbroken run
  of Closed Won rows (ordered by CreatedDate, then Id): None when the deal is not won now.
* The Throughline managed package (see the stand-in's docstring): `Opportunity.
  Billing_Model__c` and `Planned_Margin__c` (a percent field: the margin the deal was sold
  at, optional; project margin variance compares with it), `Contract_Amendment__c` (polled
  by SystemModstamp like the won-deal feed; the long text `Milestone_Plan__c` cannot be
  filtered, and is not) and
  `Throughline_Invoice__c`, upserted by its external id `Throughline_Key__c`. Its
  `Opportunity__c` is master-detail with reparenting allowed, so an upsert that updates may
  carry it (Salesforce refuses non-updateable fields in an update body).
* Outbound events: see webhooks.py.

Batched reads and writes (so that one workflow run can serve many deals with few calls):
`get_opportunities`, `first_quote_dates` and `closed_won_times` run one SOQL `... IN (...)`
per 200 ids (more pages only when the answer holds more than a page of rows, e.g. long stage
histories); `update_many` sends one sObject Collections PATCH per 200 records. The single-id
methods (`get_opportunity`, `first_quote_date`, `closed_won_at`) are these with one id.
Answers are keyed by the ids exactly as the caller gave them: a 15-char id finds the record
whose 18-char Id starts with it (Salesforce answers 18-char Ids; the 15-char form is the
case-sensitive prefix). Pass 18-char ids and the keys equal the records' `Id`.

Reconciliation reads whole sets (no LIMIT), following nextRecordsUrl: `won_opportunities`
(optionally those changed at or after a time, by their own SystemModstamp or their
Account's: a relationship field in WHERE), `won_opportunities_of_accounts`,
`approved_amendments` and `approved_amendments_of` (one `IN (...)` query per 200 ids).

Not confirmed from Salesforce sources (the stand-in mimics a best guess): the JWT error
descriptions for a bad signature ("invalid assertion") and an expired assertion, the status
of an `updateOnly=true` upsert that matches nothing (404 NOT_FOUND here), and the exact
errorCode Salesforce uses for a body that names the external-id field (INVALID_FIELD here).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import httpx

from ...canonical.errors import MappingError
from ..errors import (
    ConflictError,
    ConnectorError,
    NotFoundError,
    RateLimitedError,
    ResponseShapeError,
    TransientError,
    error_class_for_status,
)
from ..http import ConnectorHttpClient, VendorErrorDetail
from .mapping import parse_salesforce_datetime

logger = logging.getLogger(__name__)

DEFAULT_API_VERSION = "v62.0"

OPPORTUNITY_FIELDS: tuple[str, ...] = (
    "Id",
    "Name",
    "StageName",
    "IsClosed",
    "IsWon",
    "Amount",
    "CloseDate",
    "CurrencyIsoCode",
    "AccountId",
    "SystemModstamp",
    "Legal_Entity__c",
    "Project_Template__c",
    "Throughline_ERP_Customer_Id__c",
    "Throughline_PSA_Project_Id__c",
    "Billing_Model__c",
    "Planned_Margin__c",
    "Account.Name",
    "Account.BillingCountry",
    "Account.BillingCity",
    "Account.VAT_Number__c",
    "Account.CurrencyIsoCode",
)

AMENDMENT_OBJECT = "Contract_Amendment__c"
AMENDMENT_FIELDS: tuple[str, ...] = (
    "Id",
    "Name",
    "Opportunity__c",
    "New_Total_Value__c",
    "Effective_Date__c",
    "Status__c",
    "Reason__c",
    "Milestone_Plan__c",
    "CurrencyIsoCode",
    "SystemModstamp",
)
INVOICE_OBJECT = "Throughline_Invoice__c"
INVOICE_KEY_FIELD = "Throughline_Key__c"
CLOSED_WON = "Closed Won"
#: most ids one `WHERE ... IN (...)` carries (keeps the GET URL short; one page of answers)
SOQL_IN_CHUNK = 200
#: most records one sObject Collections request may carry
COLLECTION_LIMIT = 200
#: a record of an allOrNone request that was fine but rolled back with the others
ROLLED_BACK = "ALL_OR_NONE_OPERATION_ROLLED_BACK"

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,79}$")
_RECORD_ID = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$")
#: a slash in an external id breaks the upsert URL, even encoded (known REST limitation, from
#: memory: not confirmed from a Salesforce source), so invoice keys may not hold one
_INVOICE_KEY = re.compile(r"^[^/\\\s\x00-\x1f\x7f]{1,255}$")
_VERSION = re.compile(r"^v?(\d{2,3}\.\d)$")
_SOQL_ESCAPES = {
    "\\": "\\\\",
    "'": "\\'",
    '"': '\\"',
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\b": "\\b",
    "\f": "\\f",
}
#: errorCodes that mean "try again later" whatever the status
_TRANSIENT_CODES = frozenset({"UNABLE_TO_LOCK_ROW", "SERVER_UNAVAILABLE"})
#: per-record statusCodes of a collections answer that a single-record call would have
#: answered with 404 (everything else a single PATCH refuses is a 400)
_MISSING_RECORD_CODES = frozenset({"ENTITY_IS_DELETED", "NOT_FOUND"})
_MAX_PAGES = 10_000


def soql_quote(value: str) -> str:
    """A SOQL string literal: quoted, with quotes, backslashes and controls escaped."""
    return "'" + "".join(_SOQL_ESCAPES.get(char, char) for char in value) + "'"


def soql_literal(value: Any) -> str:
    """Any supported Python value as a SOQL literal (strings escaped, datetimes in UTC)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, datetime):
        return soql_datetime(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        return soql_quote(value)
    raise TypeError(f"no SOQL literal for {type(value).__name__}")


def soql_datetime(value: datetime) -> str:
    """A SOQL datetime literal in UTC; naive datetimes are refused (ambiguous)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("SOQL datetimes must be timezone-aware")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _check_name(kind: str, value: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise ValueError(f"not a Salesforce {kind} name: {value!r}")
    return value


def _check_id(value: str) -> str:
    if not isinstance(value, str) or not _RECORD_ID.match(value):
        raise ValueError(f"not a Salesforce record id: {value!r}")
    return value


def _check_limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 2000:
        raise ValueError("limit must be an integer from 1 to 2000")
    return limit


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _check_ids(ids: Iterable[str]) -> list[str]:
    """The ids, each checked for shape, without repeats, in first-seen order. A bare string
    is refused (it would iterate as characters)."""
    if isinstance(ids, str):
        raise TypeError("pass a list of ids, not one id")
    return list(dict.fromkeys(_check_id(value) for value in ids))


def _by_input_id(ids: list[str]) -> dict[str, list[str]]:
    """15-char prefix -> the ids as given: Salesforce answers 18-char Ids, a caller may have
    given the 15-char form (the 18-char Id's first 15 characters, case-sensitive)."""
    keys: dict[str, list[str]] = {}
    for value in ids:
        keys.setdefault(value[:15], []).append(value)
    return keys


def _in_list(ids: list[str]) -> str:
    """A SOQL `IN` list of checked ids, each quoted with soql_quote."""
    return "(" + ", ".join(soql_quote(value) for value in ids) + ")"


def _detail_from_items(
    items: list[dict[str, Any]], *, code_key: str, fallback: str
) -> VendorErrorDetail:
    """A Salesforce error array (`{message, errorCode, fields}` items, or a SaveResult's
    `{statusCode, message, fields}`) in vendor-neutral terms: every message, the first code,
    every field."""
    messages = [str(item.get("message") or "").strip() for item in items]
    code = items[0].get(code_key) if items else None
    fields: list[str] = []
    for item in items:
        raw = item.get("fields")
        if isinstance(raw, list):
            fields.extend(str(f) for f in raw if isinstance(f, str))
    return VendorErrorDetail(
        "; ".join(m for m in messages if m)[:500] or fallback,
        str(code) if isinstance(code, str) else None,
        ",".join(fields) or None,
    )


def _timestamp(record: dict[str, Any], field: str, operation: str) -> datetime:
    """A datetime field of a queried record, or ResponseShapeError."""
    try:
        return parse_salesforce_datetime(record.get(field), field=field)
    except MappingError:
        raise ResponseShapeError(
            f"Salesforce answered a {field} that is not a datetime",
            body=record,
            operation=operation,
        ) from None


class SalesforceClient(ConnectorHttpClient):
    """Salesforce REST API over the shared connector HTTP client."""

    rate_limit_headers = ("Sforce-Limit-Info",)

    def __init__(
        self, base_url: str, *, api_version: str = DEFAULT_API_VERSION, **kwargs: Any
    ) -> None:
        match = _VERSION.match(api_version or "")
        if match is None:
            raise ValueError(f"not a Salesforce API version: {api_version!r} (like v62.0)")
        self.api_version = f"v{match.group(1)}"
        super().__init__(base_url, **kwargs)

    # -- vendor hooks -------------------------------------------------------------------
    def describe_error(self, response: httpx.Response) -> VendorErrorDetail:
        try:
            body = response.json()
        except ValueError:
            return VendorErrorDetail(response.text[:500] or response.reason_phrase)
        if isinstance(body, list) and body and all(isinstance(item, str) for item in body):
            # 300 from an upsert: the URLs of the records that match the external id
            return VendorErrorDetail(
                f"{len(body)} records match the external id: {', '.join(body)[:400]}",
                "MULTIPLE_CHOICES",
            )
        if isinstance(body, list):
            items = [item for item in body if isinstance(item, dict)]
            if items:
                return _detail_from_items(
                    items, code_key="errorCode", fallback=f"HTTP {response.status_code}"
                )
        if isinstance(body, dict) and ("error" in body or "error_description" in body):
            return VendorErrorDetail(
                str(body.get("error_description") or body.get("error"))[:500],
                str(body.get("error")) if body.get("error") else None,
            )
        return super().describe_error(response)

    def error_class(
        self, response: httpx.Response, detail: VendorErrorDetail
    ) -> type[ConnectorError]:
        return self._classify(response.status_code, detail)

    def _classify(self, status: int, detail: VendorErrorDetail) -> type[ConnectorError]:
        """The error kind for a status and error body: of a whole call, or (with the status a
        single-record call would have answered) of one record of a collections answer."""
        if detail.code == "REQUEST_LIMIT_EXCEEDED":
            return RateLimitedError
        if detail.code in _TRANSIENT_CODES:
            return TransientError
        if detail.code == ROLLED_BACK:
            # nothing is wrong with this record: another one failed and took it along, so
            # sending it again (without the failing one) may succeed
            return TransientError
        if status == 300:
            return ConflictError
        return error_class_for_status(status)

    # -- paths ------------------------------------------------------------------------------
    def data_path(self, *parts: str) -> str:
        """`/services/data/vNN.N/<parts...>` with each part URL-quoted."""
        tail = "/".join(quote(part, safe="") for part in parts)
        return f"/services/data/{self.api_version}/{tail}"

    # -- queries ----------------------------------------------------------------------------
    def query(self, soql: str) -> Iterator[dict[str, Any]]:
        """Run SOQL and yield every record, following nextRecordsUrl until done."""
        operation = "salesforce.query"
        body = self.get_json(self.data_path("query"), params={"q": soql}, operation=operation)
        seen: set[str] = set()
        for _page in range(_MAX_PAGES):
            records, next_url = self._read_page(body, operation)
            yield from records
            if next_url is None:
                return
            if next_url in seen:
                raise ResponseShapeError(
                    "Salesforce repeated a nextRecordsUrl", body=next_url, operation=operation
                )
            seen.add(next_url)
            body = self.get_json(next_url, operation="salesforce.query.more")
        raise ResponseShapeError("Salesforce query did not finish paging", operation=operation)

    def _read_page(self, body: Any, operation: str) -> tuple[list[dict[str, Any]], str | None]:
        if not isinstance(body, dict):
            raise ResponseShapeError(
                "Salesforce query answer is not an object", body=body, operation=operation
            )
        records = body.get("records")
        done = body.get("done")
        if not isinstance(records, list) or not isinstance(done, bool):
            raise ResponseShapeError(
                "Salesforce query answer lacks records/done", body=body, operation=operation
            )
        if not all(isinstance(record, dict) for record in records):
            raise ResponseShapeError(
                "Salesforce query records are not objects", body=body, operation=operation
            )
        if done:
            return records, None
        next_url = body.get("nextRecordsUrl")
        if not isinstance(next_url, str) or not next_url.startswith("/services/data/"):
            raise ResponseShapeError(
                "Salesforce query is not done but has no usable nextRecordsUrl",
                body=body,
                operation=operation,
            )
        return records, next_url

    # -- sObjects -----------------------------------------------------------------------------
    def get(
        self, sobject: str, record_id: str, fields: list[str] | tuple[str, ...] | None = None
    ) -> dict[str, Any]:
        """One record by Id (optionally only `fields`)."""
        path = self.data_path("sobjects", _check_name("object", sobject), _check_id(record_id))
        params = None
        if fields:
            params = {"fields": ",".join(_check_name("field", f) for f in fields)}
        operation = f"salesforce.{sobject}.get"
        body = self.get_json(path, params=params, operation=operation)
        if not isinstance(body, dict):
            raise ResponseShapeError(
                "Salesforce record is not an object", body=body, operation=operation
            )
        return body

    def create(self, sobject: str, fields: dict[str, Any]) -> str:
        """Create a record; return its Id."""
        operation = f"salesforce.{sobject}.create"
        path = self.data_path("sobjects", _check_name("object", sobject))
        response = self.request("POST", path, json=fields, operation=operation)
        body = self.decode(response, operation)
        record_id = body.get("id") if isinstance(body, dict) else None
        if not isinstance(record_id, str) or not _RECORD_ID.match(record_id):
            raise ResponseShapeError(
                "Salesforce create answer has no record id",
                status=response.status_code,
                body=body,
                operation=operation,
            )
        return record_id

    def update(self, sobject: str, record_id: str, fields: dict[str, Any]) -> None:
        """Update fields of one record (PATCH; 204)."""
        path = self.data_path("sobjects", _check_name("object", sobject), _check_id(record_id))
        self.request("PATCH", path, json=fields, operation=f"salesforce.{sobject}.update")

    def update_many(
        self,
        sobject: str,
        updates: list[tuple[str, dict[str, Any]]],
        *,
        all_or_none: bool = False,
    ) -> list[ConnectorError | None]:
        """Update many records of `sobject` with sObject Collections, 200 per call: one
        result per `(record id, fields)` of `updates`, in order: None when the record was
        updated, else the ConnectorError a single-record PATCH would have raised for the same
        error (ValidationError for a bad value, NotFoundError for a missing record, ...; a
        record rolled back by `all_or_none` is a TransientError with vendor_code
        ALL_OR_NONE_OPERATION_ROLLED_BACK). `all_or_none` holds per call, i.e. per 200
        records. A call that fails as a whole raises its ConnectorError; the calls before it
        have done their work. Repeating a call is harmless (it sets the same values), so the
        shared client may retry it."""
        _check_name("object", sobject)
        checked: list[tuple[str, dict[str, Any]]] = []
        for index, item in enumerate(updates):
            if not isinstance(item, tuple | list) or len(item) != 2:
                raise ValueError(f"updates[{index}] is not a (record id, fields) pair")
            record_id, fields = item
            _check_id(record_id)
            if not isinstance(fields, dict):
                raise ValueError(f"updates[{index}]: the fields are not a dict")
            clash = [
                k for k in fields if not isinstance(k, str) or k.lower() in ("id", "attributes")
            ]
            if clash:
                raise ValueError(f"updates[{index}]: the fields must not contain {clash}")
            checked.append((record_id, fields))
        results: list[ConnectorError | None] = []
        for part in _chunks(checked, COLLECTION_LIMIT):
            results.extend(self._update_collection(sobject, part, all_or_none))
        return results

    def _update_collection(
        self, sobject: str, part: list[tuple[str, dict[str, Any]]], all_or_none: bool
    ) -> list[ConnectorError | None]:
        operation = f"salesforce.{sobject}.update_many"
        body = {
            "allOrNone": all_or_none,
            "records": [
                {"attributes": {"type": sobject}, "id": record_id, **fields}
                for record_id, fields in part
            ],
        }
        # the same values PATCHed twice leave the same records: the key marks it repeatable
        digest = hashlib.sha256(
            json.dumps(body, sort_keys=True, default=str, separators=(",", ":")).encode()
        ).hexdigest()
        response = self.request(
            "PATCH",
            self.data_path("composite", "sobjects"),
            json=body,
            operation=operation,
            idempotency_key=f"{sobject}/update_many/{digest[:40]}",
        )
        answer = self.decode(response, operation)
        if not isinstance(answer, list) or len(answer) != len(part):
            raise ResponseShapeError(
                f"Salesforce answered {len(answer) if isinstance(answer, list) else 'no'} "
                f"save results for {len(part)} records",
                status=response.status_code,
                body=answer,
                operation=operation,
            )
        return [
            self._save_result(result, record_id, operation)
            for result, (record_id, _fields) in zip(answer, part, strict=True)
        ]

    def _save_result(self, result: Any, record_id: str, operation: str) -> ConnectorError | None:
        """One SaveResult of a collections answer: None for success, else its error."""
        success = result.get("success") if isinstance(result, dict) else None
        if not isinstance(success, bool):
            raise ResponseShapeError(
                "Salesforce answered a save result without success",
                body=result,
                operation=operation,
            )
        answered_id = result.get("id")
        if isinstance(answered_id, str) and answered_id[:15] != record_id[:15]:
            raise ResponseShapeError(
                f"Salesforce answered the save result of {answered_id} where {record_id} was due",
                body=result,
                operation=operation,
            )
        if success:
            return None
        raw = result.get("errors")
        items = [item for item in raw if isinstance(item, dict)] if isinstance(raw, list) else []
        detail = _detail_from_items(
            items, code_key="statusCode", fallback="Salesforce refused the record without a reason"
        )
        # classified like the answer of a single-record PATCH with this error body; the error
        # has no HTTP status of its own (the collections call answered 200)
        status = 404 if detail.code in _MISSING_RECORD_CODES else 400
        cls = self._classify(status, detail)
        return cls(
            detail.message,
            vendor_code=detail.code,
            field=detail.field,
            body=result,
            operation=operation,
        )

    def upsert(
        self,
        sobject: str,
        ext_field: str,
        value: str,
        fields: dict[str, Any],
        *,
        update_only: bool = False,
    ) -> tuple[str | None, bool]:
        """Create or update the record whose `ext_field` is `value`: (Id, created).

        Several matching records raise ConflictError (300). Id is None only when Salesforce
        answered 204 (API versions before 46.0 on update).
        """
        _check_name("object", sobject)
        _check_name("field", ext_field)
        if not isinstance(value, str) or not value:
            raise ValueError("an upsert needs a non-empty external id value")
        clash = [k for k in fields if k.lower() in ("id", ext_field.lower())]
        if clash:
            raise ValueError(f"the upsert body must not contain {', '.join(clash)}")
        operation = f"salesforce.{sobject}.upsert"
        response = self.request(
            "PATCH",
            self.data_path("sobjects", sobject, ext_field, value),
            params={"updateOnly": "true"} if update_only else None,
            json=fields,
            operation=operation,
            # the external id makes a repeat harmless: it finds what the first attempt made
            idempotency_key=f"{sobject}/{ext_field}/{value}",
            ok=(200, 201, 204),
        )
        if response.status_code == 204:
            return None, False
        body = self.decode(response, operation)
        record_id = body.get("id") if isinstance(body, dict) else None
        if not isinstance(record_id, str) or not _RECORD_ID.match(record_id):
            raise ResponseShapeError(
                "Salesforce upsert answer has no record id",
                status=response.status_code,
                body=body,
                operation=operation,
            )
        return record_id, response.status_code == 201

    def delete(self, sobject: str, record_id: str) -> None:
        path = self.data_path("sobjects", _check_name("object", sobject), _check_id(record_id))
        self.request("DELETE", path, operation=f"salesforce.{sobject}.delete")

    def limits(self) -> dict[str, Any]:
        """The org's limits (`DailyApiRequests: {Max, Remaining}`, ...)."""
        operation = "salesforce.limits"
        body = self.get_json(self.data_path("limits"), operation=operation)
        if not isinstance(body, dict):
            raise ResponseShapeError(
                "Salesforce limits answer is not an object", body=body, operation=operation
            )
        return body

    # -- opportunities ----------------------------------------------------------------------
    def closed_won_opportunities(
        self, since: datetime | None, limit: int = 200, *, inclusive: bool = False
    ) -> list[dict[str, Any]]:
        """Won opportunities changed after `since` (SystemModstamp), oldest change first.

        With `inclusive` the watermark comparison is `>=` (see the module docstring).
        """
        _check_limit(limit)
        conditions = ["IsWon = true"]
        if since is not None:
            operator = ">=" if inclusive else ">"
            conditions.append(f"SystemModstamp {operator} {soql_datetime(since)}")
        # every value in the SOQL is a validated int or a formatted datetime literal
        soql = (
            f"SELECT {', '.join(OPPORTUNITY_FIELDS)} FROM Opportunity "  # noqa: S608
            f"WHERE {' AND '.join(conditions)} ORDER BY SystemModstamp ASC LIMIT {limit}"
        )
        return list(self.query(soql))

    def get_opportunities(self, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Opportunities with their Account fields (the feed's field set), keyed by the ids as
        given (see the module docstring for 15-char ids); ids that match no Opportunity are
        left out. One SOQL query per 200 ids."""
        wanted = _check_ids(ids)
        keys = _by_input_id(wanted)
        found: dict[str, dict[str, Any]] = {}
        for part in _chunks(wanted, SOQL_IN_CHUNK):
            # every id is checked for shape and quoted with soql_quote
            soql = (
                f"SELECT {', '.join(OPPORTUNITY_FIELDS)} FROM Opportunity "  # noqa: S608
                f"WHERE Id IN {_in_list(part)}"
            )
            for record in self.query(soql):
                for key in self._input_ids(keys, record.get("Id"), record, "salesforce.query"):
                    found[key] = record
        return found

    def get_opportunity(self, opp_id: str) -> dict[str, Any]:
        """One Opportunity with its Account fields (the same field set as the feed)."""
        record = self.get_opportunities([opp_id]).get(opp_id)
        if record is None:
            raise NotFoundError(
                f"Opportunity {opp_id} does not exist",
                vendor_code="NOT_FOUND",
                operation="salesforce.Opportunity.get",
            )
        return record

    # -- business timestamps ----------------------------------------------------------------
    def first_quote_dates(self, ids: Iterable[str]) -> dict[str, datetime]:
        """When each Opportunity's first Quote was created (UTC), keyed by the ids as given;
        Opportunities without quotes are left out. One SOQL query per 200 ids."""
        operation = "salesforce.Quote.first"
        wanted = _check_ids(ids)
        keys = _by_input_id(wanted)
        first: dict[str, datetime] = {}
        for part in _chunks(wanted, SOQL_IN_CHUNK):
            # every id is checked for shape and quoted with soql_quote
            soql = (
                "SELECT Id, OpportunityId, CreatedDate FROM Quote "  # noqa: S608
                f"WHERE OpportunityId IN {_in_list(part)} ORDER BY CreatedDate ASC, Id ASC"
            )
            for record in self.query(soql):
                for key in self._input_ids(keys, record.get("OpportunityId"), record, operation):
                    if key not in first:  # the rows come oldest first
                        first[key] = _timestamp(record, "CreatedDate", operation)
        return first

    def first_quote_date(self, opp_id: str) -> datetime | None:
        """When the Opportunity's first Quote was created (UTC), or None without quotes."""
        return self.first_quote_dates([opp_id]).get(opp_id)

    def closed_won_times(self, ids: Iterable[str]) -> dict[str, datetime | None]:
        """When each Opportunity last became Closed Won (see closed_won_at), keyed by the ids
        as given: None when it is not Closed Won now, or does not exist. One SOQL query per
        200 ids (and its further pages: a deal has several history rows)."""
        operation = "salesforce.OpportunityHistory.won"
        wanted = _check_ids(ids)
        keys = _by_input_id(wanted)
        won_since: dict[str, datetime | None] = dict.fromkeys(wanted)
        for part in _chunks(wanted, SOQL_IN_CHUNK):
            # every id is checked for shape and quoted with soql_quote
            soql = (
                "SELECT Id, OpportunityId, StageName, CreatedDate "  # noqa: S608
                f"FROM OpportunityHistory WHERE OpportunityId IN {_in_list(part)} "
                "ORDER BY CreatedDate ASC, Id ASC"
            )
            for row in self.query(soql):
                stage = row.get("StageName")
                if not isinstance(stage, str):
                    raise ResponseShapeError(
                        "Salesforce answered an OpportunityHistory row without StageName",
                        body=row,
                        operation=operation,
                    )
                at = _timestamp(row, "CreatedDate", operation)
                # the first row of the last unbroken run of Closed Won rows
                for key in self._input_ids(keys, row.get("OpportunityId"), row, operation):
                    if stage != CLOSED_WON:
                        won_since[key] = None
                    elif won_since[key] is None:
                        won_since[key] = at
        return won_since

    def closed_won_at(self, opp: dict[str, Any] | str) -> datetime | None:
        """When the Opportunity (a record with `Id`, or its id) last became Closed Won, from
        its OpportunityHistory; None when it is not Closed Won now (see the docstring)."""
        opp_id = opp.get("Id") if isinstance(opp, dict) else opp
        return self.closed_won_times([_check_id(opp_id)])[opp_id]

    @staticmethod
    def _input_ids(
        keys: dict[str, list[str]], answered: Any, record: Any, operation: str
    ) -> list[str]:
        """The ids as the caller gave them for an Id Salesforce answered; an Id that was not
        asked for means the answer does not fit the query."""
        given = keys.get(answered[:15]) if isinstance(answered, str) else None
        if not given:
            raise ResponseShapeError(
                f"Salesforce answered a record for {answered!r}, which was not asked for",
                body=record,
                operation=operation,
            )
        return given

    # -- contract amendments ----------------------------------------------------------------
    def approved_amendments_since(
        self, since: datetime | None, *, limit: int = 200, inclusive: bool = False
    ) -> list[dict[str, Any]]:
        """Approved Contract_Amendment__c records changed after `since` (SystemModstamp),
        oldest change first; `inclusive` compares with `>=` (see the module docstring)."""
        _check_limit(limit)
        conditions = ["Status__c = 'Approved'"]
        if since is not None:
            operator = ">=" if inclusive else ">"
            conditions.append(f"SystemModstamp {operator} {soql_datetime(since)}")
        # every value in the SOQL is a constant, a validated int or a datetime literal
        soql = (
            f"SELECT {', '.join(AMENDMENT_FIELDS)} FROM {AMENDMENT_OBJECT} "  # noqa: S608
            f"WHERE {' AND '.join(conditions)} ORDER BY SystemModstamp ASC LIMIT {limit}"
        )
        return list(self.query(soql))

    def get_amendment(self, amendment_id: str) -> dict[str, Any]:
        """One Contract_Amendment__c (the fields of the feed), e.g. for a webhook event."""
        # the id is checked for shape and quoted with soql_quote
        soql = (
            f"SELECT {', '.join(AMENDMENT_FIELDS)} FROM {AMENDMENT_OBJECT} "  # noqa: S608
            f"WHERE Id = {soql_quote(_check_id(amendment_id))} LIMIT 1"
        )
        for record in self.query(soql):
            return record
        raise NotFoundError(
            f"{AMENDMENT_OBJECT} {amendment_id} does not exist",
            vendor_code="NOT_FOUND",
            operation=f"salesforce.{AMENDMENT_OBJECT}.get",
        )

    # -- reconciliation reads ----------------------------------------------------------------
    def won_opportunities(
        self, since: datetime | None = None, *, by_account: bool = False
    ) -> Iterator[dict[str, Any]]:
        """Every won Opportunity (the feed's fields and `Account.SystemModstamp`), following
        nextRecordsUrl through all pages (no LIMIT: a reconciliation reads the whole set).
        With `since`, only those whose SystemModstamp is at or after it - or, `by_account`,
        whose Account's is (an account edited after its deals were won)."""
        conditions = ["IsWon = true"]
        if since is not None:
            stamp = "Account.SystemModstamp" if by_account else "SystemModstamp"
            conditions.append(f"{stamp} >= {soql_datetime(since)}")
        yield from self._won(conditions)

    def won_opportunities_of_accounts(self, account_ids: Iterable[str]) -> Iterator[dict[str, Any]]:
        """Every won Opportunity of these Accounts (fields as `won_opportunities`), one SOQL
        query per 200 account ids."""
        for part in _chunks(_check_ids(account_ids), SOQL_IN_CHUNK):
            yield from self._won(["IsWon = true", f"AccountId IN {_in_list(part)}"])

    def _won(self, conditions: list[str]) -> Iterator[dict[str, Any]]:
        fields = ", ".join((*OPPORTUNITY_FIELDS, "Account.SystemModstamp"))
        # conditions hold constants, checked ids quoted with soql_quote and datetime literals
        yield from self.query(
            f"SELECT {fields} FROM Opportunity WHERE {' AND '.join(conditions)}"  # noqa: S608
        )

    def approved_amendments(self, since: datetime | None = None) -> Iterator[dict[str, Any]]:
        """Every Approved Contract_Amendment__c (the feed's fields), all pages; with `since`
        only those whose SystemModstamp is at or after it."""
        conditions = ["Status__c = 'Approved'"]
        if since is not None:
            conditions.append(f"SystemModstamp >= {soql_datetime(since)}")
        yield from self._amendments(conditions)

    def approved_amendments_of(self, opportunity_ids: Iterable[str]) -> Iterator[dict[str, Any]]:
        """Every Approved Contract_Amendment__c of these Opportunities, one SOQL query per 200
        ids."""
        for part in _chunks(_check_ids(opportunity_ids), SOQL_IN_CHUNK):
            yield from self._amendments(
                ["Status__c = 'Approved'", f"Opportunity__c IN {_in_list(part)}"]
            )

    def _amendments(self, conditions: list[str]) -> Iterator[dict[str, Any]]:
        # conditions hold constants, checked ids quoted with soql_quote and datetime literals
        yield from self.query(
            f"SELECT {', '.join(AMENDMENT_FIELDS)} FROM {AMENDMENT_OBJECT} "  # noqa: S608
            f"WHERE {' AND '.join(conditions)}"
        )

    # -- invoices back to the CRM -----------------------------------------------------------
    def upsert_invoice_status(self, key: str, fields: dict[str, Any]) -> tuple[str | None, bool]:
        """Create or update the Throughline_Invoice__c whose Throughline_Key__c is `key`
        (fields from mapping.invoice_status_to_salesforce): (Id, created)."""
        if not isinstance(key, str) or not _INVOICE_KEY.match(key):
            raise ValueError(
                "an invoice key is 1 to 255 characters without slashes, spaces or controls"
            )
        return self.upsert(INVOICE_OBJECT, INVOICE_KEY_FIELD, key, fields)
