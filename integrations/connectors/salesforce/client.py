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
  Billing_Model__c`, `Contract_Amendment__c` (polled by SystemModstamp like the won-deal
  feed; the long text `Milestone_Plan__c` cannot be filtered, and is not) and
  `Throughline_Invoice__c`, upserted by its external id `Throughline_Key__c`. Its
  `Opportunity__c` is master-detail with reparenting allowed, so an upsert that updates may
  carry it (Salesforce refuses non-updateable fields in an update body).
* Outbound events: see webhooks.py.

Not confirmed from Salesforce sources (the stand-in mimics a best guess): the JWT error
descriptions for a bad signature ("invalid assertion") and an expired assertion, the status
of an `updateOnly=true` upsert that matches nothing (404 NOT_FOUND here), and the exact
errorCode Salesforce uses for a body that names the external-id field (INVALID_FIELD here).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
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
                messages = [str(item.get("message") or "").strip() for item in items]
                code = items[0].get("errorCode")
                fields: list[str] = []
                for item in items:
                    raw = item.get("fields")
                    if isinstance(raw, list):
                        fields.extend(str(f) for f in raw if isinstance(f, str))
                return VendorErrorDetail(
                    "; ".join(m for m in messages if m)[:500] or f"HTTP {response.status_code}",
                    str(code) if isinstance(code, str) else None,
                    ",".join(fields) or None,
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
        if detail.code == "REQUEST_LIMIT_EXCEEDED":
            return RateLimitedError
        if detail.code in _TRANSIENT_CODES:
            return TransientError
        if response.status_code == 300:
            return ConflictError
        return error_class_for_status(response.status_code)

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

    def get_opportunity(self, opp_id: str) -> dict[str, Any]:
        """One Opportunity with its Account fields (the same field set as the feed)."""
        # the id is checked for shape and quoted with soql_quote
        soql = (
            f"SELECT {', '.join(OPPORTUNITY_FIELDS)} FROM Opportunity "  # noqa: S608
            f"WHERE Id = {soql_quote(_check_id(opp_id))} LIMIT 1"
        )
        for record in self.query(soql):
            return record
        raise NotFoundError(
            f"Opportunity {opp_id} does not exist",
            vendor_code="NOT_FOUND",
            operation="salesforce.Opportunity.get",
        )

    # -- business timestamps ----------------------------------------------------------------
    def first_quote_date(self, opp_id: str) -> datetime | None:
        """When the Opportunity's first Quote was created (UTC), or None without quotes."""
        operation = "salesforce.Quote.first"
        # the id is checked for shape and quoted with soql_quote
        soql = (
            "SELECT Id, CreatedDate FROM Quote "  # noqa: S608
            f"WHERE OpportunityId = {soql_quote(_check_id(opp_id))} "
            "ORDER BY CreatedDate ASC, Id ASC LIMIT 1"
        )
        for record in self.query(soql):
            return _timestamp(record, "CreatedDate", operation)
        return None

    def closed_won_at(self, opp: dict[str, Any] | str) -> datetime | None:
        """When the Opportunity (a record with `Id`, or its id) last became Closed Won, from
        its OpportunityHistory; None when it is not Closed Won now (see the docstring)."""
        opp_id = opp.get("Id") if isinstance(opp, dict) else opp
        operation = "salesforce.OpportunityHistory.won"
        # the id is checked for shape and quoted with soql_quote
        soql = (
            "SELECT Id, StageName, CreatedDate FROM OpportunityHistory "  # noqa: S608
            f"WHERE OpportunityId = {soql_quote(_check_id(opp_id))} "
            "ORDER BY CreatedDate ASC, Id ASC"
        )
        won_since: datetime | None = None
        for row in self.query(soql):
            stage = row.get("StageName")
            if not isinstance(stage, str):
                raise ResponseShapeError(
                    "Salesforce answered an OpportunityHistory row without StageName",
                    body=row,
                    operation=operation,
                )
            at = _timestamp(row, "CreatedDate", operation)
            if stage != CLOSED_WON:
                won_since = None
            elif won_since is None:
                won_since = at
        return won_since

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

    # -- invoices back to the CRM -----------------------------------------------------------
    def upsert_invoice_status(self, key: str, fields: dict[str, Any]) -> tuple[str | None, bool]:
        """Create or update the Throughline_Invoice__c whose Throughline_Key__c is `key`
        (fields from mapping.invoice_status_to_salesforce): (Id, created)."""
        if not isinstance(key, str) or not _INVOICE_KEY.match(key):
            raise ValueError(
                "an invoice key is 1 to 255 characters without slashes, spaces or controls"
            )
        return self.upsert(INVOICE_OBJECT, INVOICE_KEY_FIELD, key, fields)
