"""The NetSuite SuiteTalk REST client: records, SuiteQL, async jobs and governance, over the
shared `ConnectorHttpClient` (retries, error classification, telemetry).

Vendor facts this client relies on, and where they come from (NetSuite Help Center unless
said otherwise):
- Create answers 204 No Content with the new record's URL in `Location` ("Creating a Record
  Instance"): confirmed. The internal id is the last segment of that URL.
- External ids are addressed as `eid:<externalId>` in the URL and may hold letters, digits,
  `_` and `-` ("Using External IDs"): confirmed. Upsert is `PUT .../eid:<externalId>`.
- Idempotency: `X-NetSuite-Idempotency-Key` with `Prefer: respond-async`; the answer is 202
  with `Location: /services/rest/async/v1/job/{id}`; a repeated key answers 400 (title
  "Conflict") with o:errorCode IDEMPOTENCY_ERROR and the earlier job in `Location` ("Sending
  an Asynchronous Request Using an Idempotency Key"): confirmed. The job, its task and
  `.../task/{id}/result` are read back ("Polling for the Status of a Completed Asynchronous
  Request", "Getting the Result of an Executed Request"): confirmed. Not confirmed: that the
  result of an async *create* replays 204 + Location (the documented example is a GET); this
  client reads the id from the result's Location and otherwise raises ResponseShapeError.
- Errors: `{type, title, status, "o:errorDetails": [{detail, "o:errorCode", "o:errorPath"?,
  "o:urlPath"?, "o:errorHeader"?, "o:errorQueryParam"?}]}` ("Error Handling in REST Web
  Services"): confirmed.
- Concurrency: one account-wide limit shared by web services and RESTlets; RESTlets answer
  400 SSS_REQUEST_LIMIT_EXCEEDED, SOAP answers ExceededConcurrentRequestLimitFault
  (WS_REQUEST_BLOCKED) ("Errors Related to Concurrency Violations"): confirmed. The status of
  a REST web services request over the limit is NOT confirmed: the AI Connector docs speak of
  a "Too Many Requests" error, so the stand-in answers 429 CONCURRENCY_LIMIT_EXCEEDED; this
  client treats 429, SSS_REQUEST_LIMIT_EXCEEDED, CONCURRENCY_LIMIT_EXCEEDED and any detail
  saying "concurrent request limit" as RateLimitedError. Third-party reports
  (julbrs/netsuite-api-client#26) say overflow can also surface as 401 "Invalid login
  attempt"; that stays an AuthError after one token refresh, as it cannot be told apart.
- `GET /services/rest/system/v1/governanceLimits` answers `{accountConcurrencyLimit,
  accountUnallocatedConcurrencyLimit, integrationConcurrencyLimit?, integrationLimitType}`
  ("GovernanceLimits Operation"): confirmed; results only for administrators.
- SuiteQL: `POST /services/rest/query/v1/suiteql` with `{"q": ...}`, header `Prefer:
  transient`, `limit` (max 1000) and `offset`; answers `{links, count, hasMore, offset,
  totalResults, items}`. Column names come back lower-case. Not confirmed from a vendor
  source (the stand-in reproduces it): datetime columns come back in the account's date
  format without the time unless formatted, so poll with
  `TO_CHAR(lastmodifieddate, 'YYYY-MM-DD HH24:MI:SS')` and compare with `TO_TIMESTAMP(...)`;
  NetSuite reads such literals in the user's time zone, the stand-in in UTC.
- Record datetimes are ISO 8601 in UTC, e.g. 2017-07-21T17:32:28Z ("Using Datetime
  Fields"): confirmed.
- SuiteQL is a POST, so the shared client repeats it only when the vendor refused it outright
  (429, 503, connection refused), not after a timeout.

Project-to-cash and resource-to-finance (record and field names: NetSuite Help Center, the
records browsers and public client libraries; see the stand-in's docstring for the detail):
- Invoices are upserted by external id with `?replace=item`: an upsert of an existing record
  is an update, and an update ADDS sublist lines that carry no line id, so without `replace`
  a repeated upsert would bill every line twice. Payments are polled through SuiteQL over
  `transaction` (type 'CustInvc'): `foreigntotal`, `foreignamountremaining` (transaction
  currency) and `status` (the one-letter code; 'B' = Paid In Full as the saved-search id
  'CustInvc:B' suggests: not confirmed for SuiteQL, so the mapper also reads the amounts).
  The watermark comparison is `>=`, so a change in the same second is never missed; callers
  drop what they already applied. Reconciliation reads every invoice (`invoices`, in id
  order so a change made while it pages does not move a row between pages) with
  `subsidiary`, `currency` and `taxtotal`: the amount before tax is foreigntotal minus
  taxtotal. `taxtotal` as a SuiteQL column of `transaction` (the REST record's `taxTotal`)
  and that it is in the transaction currency are NOT confirmed. `time_bills` reads the
  `timebill` table (the Records Catalog's name; not confirmed for SuiteQL) for the rows
  that carry an externalId, i.e. were posted by an integration.
- NetSuite's REST record service has no bulk insert. `post_batch` posts time bills and
  expense reports to a RESTlet the firm deploys (script `customscript_tl_bulk_post`, deploy
  `customdeploy_tl_bulk_post`; Throughline would ship its SuiteScript source). Its contract is
  Throughline's: `{"recordType", "action"?, "records": [<= 500 record bodies>]}` answered by
  one result per record, in order; records are keyed by externalId, so a repeat answers
  "exists". `upsert_batch` sends `"action": "upsert"` for customers, jobs, billing milestones
  and revenue schedule lines (provisioning many deals in few calls): a new externalId answers
  "created", a known one "updated" (the record service's upsert semantics: sublist lines
  without an id are added, there is no `replace`) or "unchanged" (nothing saved); references
  are internal ids, so customers go before their jobs and jobs before their milestones, and a
  repeat is harmless. A script deployed before upsert refuses these record types (400
  TL_BAD_REQUEST, a ValidationError); a status the action does not answer (an "exists" to an
  upsert) is a ResponseShapeError. `inactive_lines` finds the active lines of many jobs or
  contracts with one SuiteQL query (`IN (...)`) per 500 values. Facts:
  RESTlets live on `https://<account>.restlets.api.netsuite.com/app/site/hosting/restlet.nl`
  (confirmed), take the same OAuth 2.0 token when its scope includes `restlets` (confirmed),
  share the account's concurrency limit and answer 400 SSS_REQUEST_LIMIT_EXCEEDED over it
  (confirmed), answer unhandled script errors with 400 and `{"error": {"code", "message"}}`
  (confirmed), and may spend 5,000 usage units per call, a transaction save costing 20
  (confirmed): a script saving 500 transactions in one call runs out of units. This client
  therefore halves its batch and repeats (harmless: records keyed by externalId) when the
  RESTlet answers SSS_USAGE_LIMIT_EXCEEDED; against a real account set `batch_size` to about
  200 or let the script hand off to a map/reduce script. The RESTlet takes no idempotency key;
  the client sends a key derived from the batch's external ids anyway (the RESTlet ignores
  it) so that the shared client may repeat the call after a timeout, which is safe here; for
  an upsert the key also covers the action and a hash of the bodies (other values, another
  request).
  An unknown script answers SSS_INVALID_SCRIPTLET_ID (seen in public integrations; its status
  is reported as 400 or 404): a NotFoundError.
- Reference data comes through SuiteQL (`employee`, `department`, `currencyrate`): one call
  per 1,000 rows instead of one GET per record.
- Reconciliation reads by SuiteQL, incrementally by modification time (`>=`, UTC):
  `customers_changed_since`, `jobs_changed_since`, `jobs_by_id`, `billing_milestones_
  changed_since` (custom records name the column `lastmodified`, inactive lines included)
  and `billing_milestones_of` (active lines). A customer's tax registration country is read
  with the record (`customer_tax_countries`, one GET each): the REST record serves the
  SuiteTax `taxRegistration` sublist; a SuiteQL table for it is not confirmed, so none is
  relied on.
- Revenue schedules and billing plans live in custom records (`customrecord_tl_revenue_
  schedule`, `customrecord_tl_billing_milestone`, see the stand-in for why not NetSuite's
  billingSchedule), one record per line keyed by externalId; lines that a new version of the
  schedule or plan no longer has are made inactive, never deleted (an audit trail stays).
  What the ERP recognised is read back through SuiteQL: the accounting periods
  (`accountingperiod`: startdate, enddate, closed; quarters, years and adjustment periods
  left out by isquarter/isyear/isadjust) and the active schedule lines of a period
  (`revenue_lines_between`). The table and column names are NetSuite's SuiteQL names for
  accounting periods and custom records (custom fields by their script ids); that
  `accountingperiod` has the isquarter/isyear/isadjust flags as columns is taken from the
  records browser's AccountingPeriod fields, not confirmed for SuiteQL.
- People on projects are `resourceAllocation` records (REST record id confirmed by the Help
  Center; the Resource Allocations feature must be enabled), upserted by externalId like
  jobs. The job's `jobResource` sublist ("Resources" subtab) is not used: its lines carry no
  external id. See the stand-in for the fields and what is not confirmed (the REST values of
  allocationUnit "H"/"P" and of allocationType).
- Subcontractor charges are vendor bills (REST record id `vendorBill`, confirmed by the Help
  Center) for the firm's subcontractor `vendor` records, looked up by externalId
  (`find_vendor`). A bill is upserted by externalId with `?replace=expense`, as invoices are
  with `replace=item`: without it a repeated upsert would add the expense line again and
  double the payable. The `expense` sublist and its line fields (account, amount, memo,
  customer = the project the cost is for, isBillable) are the SuiteScript/SOAP names; their
  REST ids are not confirmed (see the stand-in). NetSuite refuses edits of a bill in a closed
  or A/P-locked period, so a re-run after the close should look the bill up first.
- Subcontractors' engagements are purchase orders. Confirmed by the Help Center ("Purchase
  Order" in the REST records list): the REST record id `purchaseOrder`, the Purchase Orders
  feature as a prerequisite, the create sample `{"entity": {"id"}, "item": {"items": [{"item":
  {"id"}, "rate"}]}}`, that the `expense` sublist is not served when "Allow Expenses on
  Purchases" is set, and that a purchase order "has no accounting impact until the included
  items are received" (a non-posting transaction: no closed-period check). Taken from the SOAP
  schema browser (PurchaseOrder, PurchaseOrderItem), their camelCase REST ids NOT confirmed:
  body entity, subsidiary, currency ("the vendor currency used for this transaction"),
  tranDate, memo, externalId; item lines item, description, quantity, rate, amount, customer
  (the job), isBillable, isClosed, line. `upsert_purchase_order` upserts by externalId
  ("TL-PO-<assignment id>") with `?replace=item`, as invoices, so a repeat never doubles a
  line; `close_purchase_order` closes the open lines (isClosed, by their `line`) and deletes
  nothing. The line's item must be a purchasable item (a "Service for Purchase" item: the
  connection setting `purchase_item_id`). The bill-to-order link: NetSuite's own
  `createdFrom` on a vendor bill is set by transforming the order (`POST
  .../purchaseOrder/{id}/!transform/vendorBill`: REST supports every SuiteScript transform,
  confirmed), which copies the order's item lines into the bill and cannot be keyed by the
  charge's externalId; whether `createdFrom` may be written on a plain create is NOT
  confirmed. Throughline therefore links a charge's bill to its order through a custom body
  field the firm deploys, `custbody_tl_po` (List/Record: Purchase Order), and names the order
  in the memo.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from ..errors import (
    ConflictError,
    ConnectorError,
    NotFoundError,
    RateLimitedError,
    ResponseShapeError,
    TransientError,
    ValidationError,
)
from ..http import ConnectorHttpClient, VendorErrorDetail

logger = logging.getLogger(__name__)

RECORD_PREFIX = "/services/rest/record/v1"
QUERY_PATH = "/services/rest/query/v1/suiteql"
GOVERNANCE_PATH = "/services/rest/system/v1/governanceLimits"
SERVICE_PREFIX = "/services/rest/"
MAX_PAGE = 1000
RESTLET_PATH = "/app/site/hosting/restlet.nl"
BULK_SCRIPT = "customscript_tl_bulk_post"
BULK_DEPLOY = "customdeploy_tl_bulk_post"
MAX_BATCH = 500
BULK_RECORD_TYPES = ("timeBill", "expenseReport")
BATCH_STATUSES = frozenset({"created", "exists", "error"})
USAGE_LIMIT_CODE = "SSS_USAGE_LIMIT_EXCEEDED"
NOT_FOUND_CODES = frozenset({"SSS_INVALID_SCRIPTLET_ID"})
REVENUE_RECORD = "customrecord_tl_revenue_schedule"
MILESTONE_RECORD = "customrecord_tl_billing_milestone"
ALLOCATION_RECORD = "resourceAllocation"
VENDOR_BILL_RECORD = "vendorBill"
PURCHASE_ORDER_RECORD = "purchaseOrder"
INTERNAL_ID = re.compile(r"^\d{1,18}$")
#: what the bulk RESTlet upserts ("action": "upsert") and the statuses it answers then
BULK_UPSERT_TYPES = ("customer", "job", MILESTONE_RECORD, REVENUE_RECORD)
UPSERT_STATUSES = frozenset({"created", "updated", "unchanged", "error"})
#: values per `IN (...)` list of a SuiteQL query (Oracle caps a list at 1,000; SuiteQL's own
#: cap is not confirmed, so stay well below it)
MAX_IN_VALUES = 500
FIELD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,99}$")

RATE_LIMIT_CODES = frozenset(
    {"CONCURRENCY_LIMIT_EXCEEDED", "SSS_REQUEST_LIMIT_EXCEEDED", "WS_REQUEST_BLOCKED"}
)
CONFLICT_CODES = frozenset({"DUP_ENTITY", "DUP_RCRD", "RCRD_HAS_BEEN_CHANGED"})
RECORD_TYPE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,99}$")
EXTERNAL_ID = re.compile(r"^[A-Za-z0-9_\-]{1,255}$")
RECORD_ID = re.compile(r"^(\d{1,18}|eid:[A-Za-z0-9_\-]{1,255})$")


class IdempotencyConflictError(ConflictError):
    """A write reused an idempotency key; `job_path` names the earlier request's async job."""

    def __init__(self, message: str, *, job_path: str | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.job_path = job_path

    def as_dict(self) -> dict[str, Any]:
        return {**super().as_dict(), "job_path": self.job_path}


def service_path(location: str | None) -> str | None:
    """The path of a NetSuite URL (absolute or relative) if it is a REST services path.

    Only the path is kept: a Location header is vendor data and must never send our bearer
    token to another host.
    """
    if not location or not isinstance(location, str):
        return None
    path = urlsplit(location.strip()).path
    if not path.startswith(SERVICE_PREFIX) or ".." in path:
        return None
    return path


class NetSuiteClient(ConnectorHttpClient):
    """SuiteTalk REST web services for one account."""

    idempotency_header = "X-NetSuite-Idempotency-Key"

    def __init__(
        self,
        base_url: str,
        *,
        page_size: int = MAX_PAGE,
        job_poll_interval: float = 0.5,
        job_poll_attempts: int = 60,
        restlet_url: str | None = None,
        bulk_script: str = BULK_SCRIPT,
        bulk_deploy: str = BULK_DEPLOY,
        batch_size: int = MAX_BATCH,
        **kw: Any,
    ) -> None:
        super().__init__(base_url, **kw)
        self.page_size = max(1, min(page_size, MAX_PAGE))
        self.job_poll_interval = job_poll_interval
        self.job_poll_attempts = max(1, job_poll_attempts)
        #: the RESTlet endpoint: absolute (the account's restlets domain) or, by default, on
        #: the same host as the REST services (the stand-in serves both)
        self.restlet_url = restlet_url or RESTLET_PATH
        self.bulk_script = bulk_script
        self.bulk_deploy = bulk_deploy
        self.batch_size = max(1, min(batch_size, MAX_BATCH))

    # -- vendor hooks -------------------------------------------------------------------
    def describe_error(self, response: httpx.Response) -> VendorErrorDetail:
        try:
            body = response.json()
        except ValueError:
            return VendorErrorDetail(response.text[:500] or response.reason_phrase)
        if not isinstance(body, dict):
            return VendorErrorDetail(str(body)[:500])
        restlet = body.get("error")
        if isinstance(restlet, dict):  # a RESTlet's (SuiteScript's) error
            code = restlet.get("code") if isinstance(restlet.get("code"), str) else None
            text = restlet.get("message")
            message = text if isinstance(text, str) and text else code or response.reason_phrase
            return VendorErrorDetail(str(message)[:500], code, None)
        details = body.get("o:errorDetails")
        messages: list[str] = []
        code: str | None = None
        field: str | None = None
        if isinstance(details, list):
            for item in details:
                if not isinstance(item, dict):
                    continue
                text = item.get("detail")
                if isinstance(text, str) and text:
                    messages.append(text)
                item_code = item.get("o:errorCode")
                if code is None and isinstance(item_code, str) and item_code:
                    code = item_code
                if field is None:
                    for key in ("o:errorPath", "o:errorQueryParam", "o:errorHeader"):
                        value = item.get(key)
                        if isinstance(value, str) and value:
                            field = value
                            break
        if not messages:
            for key in ("title", "error_description", "error", "message"):
                value = body.get(key)
                if isinstance(value, str) and value:
                    messages.append(value)
                    break
        if code is None and isinstance(body.get("error"), str):
            code = body["error"]
        message = "; ".join(messages) or response.reason_phrase or f"HTTP {response.status_code}"
        return VendorErrorDetail(message[:500], code, field)

    def error_class(
        self, response: httpx.Response, detail: VendorErrorDetail
    ) -> type[ConnectorError]:
        code = (detail.code or "").upper()
        if code == "IDEMPOTENCY_ERROR":
            return IdempotencyConflictError
        if (
            code in RATE_LIMIT_CODES
            or response.status_code == 429
            or "concurrent request limit" in detail.message.lower()
        ):
            return RateLimitedError
        if code in CONFLICT_CODES:
            return ConflictError
        if code in NOT_FOUND_CODES:
            return NotFoundError
        return super().error_class(response, detail)

    def _error_from(self, response: httpx.Response, operation: str) -> ConnectorError:
        error = super()._error_from(response, operation)
        if isinstance(error, IdempotencyConflictError):
            error.job_path = service_path(response.headers.get("Location"))
        return error

    # -- records ------------------------------------------------------------------------
    def get_record(self, record_type: str, record_id: str, expand: bool = False) -> dict[str, Any]:
        """One record by internal id or `eid:<externalId>`; `expand` inlines sublists."""
        params = {"expandSubResources": "true"} if expand else None
        body = self.get_json(
            _record_path(record_type, record_id),
            operation=f"netsuite.{record_type}.get",
            params=params,
        )
        if not isinstance(body, dict) or not isinstance(body.get("id"), str | int):
            raise ResponseShapeError(
                f"{record_type} {record_id}: expected a record object with an id",
                body=_excerpt(body),
                operation=f"netsuite.{record_type}.get",
            )
        return body

    def find_by_external_id(self, record_type: str, external_id: str) -> dict[str, Any] | None:
        """The record with this external id, or None when there is none."""
        _check_external_id(external_id)
        try:
            return self.get_record(record_type, f"eid:{external_id}")
        except NotFoundError:
            return None

    def list_records(self, record_type: str) -> Iterator[dict[str, Any]]:
        """Every `{id, links}` item of a record type, following `limit`/`offset` pages."""
        yield from self._pages(
            "GET",
            _record_path(record_type),
            operation=f"netsuite.{record_type}.list",
        )

    def create_record(
        self, record_type: str, body: dict[str, Any], idempotency_key: str | None = None
    ) -> str:
        """Create a record and return its internal id.

        With an idempotency key the request is sent asynchronously (NetSuite honours keys
        only then) and the id is read from the finished job. Sending the same key again,
        from a retry or a re-run workflow step, returns the id the first request created
        instead of creating another record.
        """
        operation = f"netsuite.{record_type}.create"
        path = _record_path(record_type)
        if idempotency_key is None:
            response = self.request("POST", path, operation=operation, json=body)
            return _id_from_location(response, record_type, operation)
        response = self._async_write("POST", path, operation, body, idempotency_key)
        return _id_from_location(response, record_type, operation)

    def update_record(
        self,
        record_type: str,
        record_id: str,
        body: dict[str, Any],
        *,
        idempotency_key: str | None = None,
        replace: Iterable[str] = (),
    ) -> None:
        """PATCH a record. Sublist lines with an `id` are updated, lines without are added;
        sublists named in `replace` are replaced as a whole."""
        operation = f"netsuite.{record_type}.update"
        path = _record_path(record_type, record_id)
        params = _replace_params(replace)
        if idempotency_key is None:
            self.request("PATCH", path, operation=operation, json=body, params=params)
            return
        self._async_write("PATCH", path, operation, body, idempotency_key, params=params)

    def upsert_by_external_id(
        self,
        record_type: str,
        external_id: str,
        body: dict[str, Any],
        *,
        replace: Iterable[str] = (),
    ) -> str:
        """Create or update the record keyed by `external_id`; return its internal id.

        PUT is idempotent, so the shared client may repeat it safely after a timeout or 5xx.
        """
        _check_external_id(external_id)
        operation = f"netsuite.{record_type}.upsert"
        payload = {k: v for k, v in body.items() if k != "externalId"}
        response = self.request(
            "PUT",
            _record_path(record_type, f"eid:{external_id}"),
            operation=operation,
            json=payload,
            params=_replace_params(replace),
        )
        if response.headers.get("Location"):
            return _id_from_location(response, record_type, operation)
        record = self.find_by_external_id(record_type, external_id)
        if record is None:
            raise ResponseShapeError(
                f"upsert of {record_type} eid:{external_id} succeeded but the record is absent",
                status=response.status_code,
                operation=operation,
            )
        return str(record["id"])

    def delete_record(self, record_type: str, record_id: str) -> bool:
        """Delete a record; False when it did not exist (a retried delete is not an error)."""
        try:
            self.request(
                "DELETE",
                _record_path(record_type, record_id),
                operation=f"netsuite.{record_type}.delete",
            )
        except NotFoundError:
            return False
        return True

    def get_subsidiary(self, subsidiary_id: str) -> dict[str, Any]:
        """A subsidiary with its sublists expanded (the taxRegistration lines included)."""
        return self.get_record("subsidiary", subsidiary_id, expand=True)

    # -- query and system ---------------------------------------------------------------
    def suiteql(self, query: str) -> Iterator[dict[str, Any]]:
        """Every row of a SuiteQL query (column names lower-case), following pages."""
        for row in self._pages(
            "POST",
            QUERY_PATH,
            operation="netsuite.suiteql",
            json={"q": query},
            headers={"Prefer": "transient"},
            need_id=False,
        ):
            yield {k: v for k, v in row.items() if k != "links"}

    def governance_limits(self) -> dict[str, Any]:
        """The account's concurrency limits (administrator roles only)."""
        body = self.get_json(GOVERNANCE_PATH, operation="netsuite.governance_limits")
        if not isinstance(body, dict) or not isinstance(body.get("accountConcurrencyLimit"), int):
            raise ResponseShapeError(
                "governanceLimits answered without accountConcurrencyLimit",
                body=_excerpt(body),
                operation="netsuite.governance_limits",
            )
        return body

    # -- project-to-cash ----------------------------------------------------------------
    def upsert_invoice(self, external_id: str, body: dict[str, Any]) -> str:
        """Create or update the invoice keyed by `external_id`; return its internal id.

        The item sublist is replaced, so repeating the upsert never adds lines twice. An
        upsert is an edit when the invoice exists, and NetSuite refuses edits of a
        transaction in a closed period: a step re-run after the close should look the
        invoice up first (`find_by_external_id`)."""
        return self.upsert_by_external_id("invoice", external_id, body, replace=("item",))

    def get_invoice(self, invoice_id: str) -> dict[str, Any]:
        """An invoice (internal id or `eid:<externalId>`) with its item lines expanded."""
        return self.get_record("invoice", invoice_id, expand=True)

    def invoices_changed_since(self, since: datetime) -> list[dict[str, Any]]:
        """Invoices modified at or after `since` (timezone-aware), oldest change first, as
        SuiteQL rows: id, tranid, externalid, entity, subsidiary, currency (internal ids),
        status, foreigntotal, taxtotal, foreignamountremaining, trandate, duedate
        (YYYY-MM-DD), lastmodifieddate (UTC)."""
        query = _invoice_query(_since_literal(since), order="lastmodifieddate, id")
        return self._rows(query, "netsuite.invoice.changes")

    def invoices(self, since: datetime | None = None) -> Iterator[dict[str, Any]]:
        """Every invoice, or those modified at or after `since` (timezone-aware), in id
        order, page by page (nothing beyond one page is held): the rows of
        `invoices_changed_since`. A row without an id raises ResponseShapeError."""
        literal = _since_literal(since) if since is not None else None
        query = _invoice_query(literal, order="id")
        yield from self._stream(query, "netsuite.invoice.list")

    def time_bills(self, since: datetime | None = None) -> Iterator[dict[str, Any]]:
        """The time bills an integration posted (those carrying an externalId), or those of
        them modified at or after `since` (timezone-aware), in id order, page by page, as
        SuiteQL rows: id, externalid, employee, customer (the job), subsidiary (internal
        ids), hours (a number), isbillable, supervisorapproval ('T'/'F'), trandate
        (YYYY-MM-DD), lastmodifieddate (UTC). A row without an id raises ResponseShapeError."""
        where = "externalid IS NOT NULL"
        if since is not None:
            where += f" AND lastmodifieddate >= {_since_literal(since)}"
        query = (
            "SELECT id, externalid, employee, customer, subsidiary, hours, "  # noqa: S608
            "isbillable, supervisorapproval, TO_CHAR(trandate, 'YYYY-MM-DD') AS trandate, "
            "TO_CHAR(lastmodifieddate, 'YYYY-MM-DD HH24:MI:SS') AS lastmodifieddate "
            f"FROM timebill WHERE {where} ORDER BY id"
        )
        yield from self._stream(query, "netsuite.timebill.list")

    # -- revenue read back ----------------------------------------------------------------
    def accounting_periods_after(self, after: date | None) -> list[dict[str, Any]]:
        """The accounting periods (months: quarters, years and adjustment periods left out)
        ending after `after` (None: all), oldest first, as SuiteQL rows: id, periodname,
        startdate, enddate (YYYY-MM-DD), closed ('T'/'F')."""
        where = "isquarter = 'F' AND isyear = 'F' AND isadjust = 'F'"
        if after is not None:
            where += f" AND enddate > TO_DATE('{after.isoformat()}', 'YYYY-MM-DD')"
        return self._rows(
            "SELECT id, periodname, TO_CHAR(startdate, 'YYYY-MM-DD') AS startdate, "  # noqa: S608
            "TO_CHAR(enddate, 'YYYY-MM-DD') AS enddate, closed FROM accountingperiod "
            f"WHERE {where} ORDER BY startdate, id",
            "netsuite.accountingperiod.list",
        )

    def revenue_lines_between(self, start: date, end: date) -> list[dict[str, Any]]:
        """The active lines of Throughline's revenue schedules (the custom record) whose
        period starts from `start` to `end` (both included), as SuiteQL rows: id, externalid,
        custrecord_tl_contract, custrecord_tl_period (YYYY-MM-DD), custrecord_tl_amount (a
        number, in the line's currency), custrecord_tl_currency (ISO code), ordered by id."""
        if end < start:
            raise ValueError("end must not be before start")
        return self._rows(
            "SELECT id, externalid, custrecord_tl_contract, "  # noqa: S608
            "TO_CHAR(custrecord_tl_period, 'YYYY-MM-DD') AS custrecord_tl_period, "
            f"custrecord_tl_amount, custrecord_tl_currency FROM {REVENUE_RECORD} "
            f"WHERE isinactive = 'F' AND custrecord_tl_period >= "
            f"TO_DATE('{start.isoformat()}', 'YYYY-MM-DD') AND custrecord_tl_period <= "
            f"TO_DATE('{end.isoformat()}', 'YYYY-MM-DD') ORDER BY id",
            f"netsuite.{REVENUE_RECORD}.list",
        )

    # -- time and expenses in batches ---------------------------------------------------
    def post_batch(self, record_type: str, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Post time bills or expense reports through the bulk RESTlet, `batch_size` (at most
        500) per call; return one result per record in input order: `{"externalId",
        "status": "created"|"exists", "id"}` or `{"externalId", "status": "error", "error":
        {"code", "message"}}`. A record's error never fails the others; a call that fails
        as a whole raises its ConnectorError."""
        if record_type not in BULK_RECORD_TYPES:
            raise ValueError(f"record_type must be one of {', '.join(BULK_RECORD_TYPES)}")
        return self._bulk(record_type, records, "create")

    def upsert_batch(
        self,
        record_type: str,
        records: list[dict[str, Any]],
        *,
        replace: Iterable[str] = (),
    ) -> list[dict[str, Any]]:
        """Create or update customers, jobs, billing milestones or revenue schedule lines by
        externalId through the bulk RESTlet, `batch_size` (at most 500) per call; return one
        result per record in input order: `{"externalId", "status": "created"|"updated"|
        "unchanged", "id"}` or `{"externalId", "status": "error", "error": {"code",
        "message"}}`. Bodies are the record service's (references as `{"id": <internal
        id>}`), so upsert customers before the jobs that name them as parent, and jobs
        before their milestones. An update adds sublist lines that carry no id, as
        `upsert_by_external_id` does, except in the sublists named in `replace` (a customer's
        taxRegistration: a repeated upsert must not add the registration again), which are
        replaced as a whole. A record's error never fails the others; a call that fails as a
        whole raises its ConnectorError."""
        if record_type not in BULK_UPSERT_TYPES:
            raise ValueError(f"record_type must be one of {', '.join(BULK_UPSERT_TYPES)}")
        return self._bulk(record_type, records, "upsert", replace=tuple(replace))

    def _bulk(
        self,
        record_type: str,
        records: list[dict[str, Any]],
        action: str,
        replace: tuple[str, ...] = (),
    ) -> list[dict[str, Any]]:
        """Send `records` to the bulk RESTlet in chunks of `batch_size`, halving the chunk
        when the script runs out of usage units (harmless: records are keyed by externalId,
        what a stopped call saved answers "exists" or "unchanged" when repeated)."""
        for index, record in enumerate(records):
            if not isinstance(record, dict):
                raise ValueError(f"records[{index}] is not a record body")
            _check_external_id(record.get("externalId"))  # type: ignore[arg-type]
        results: list[dict[str, Any]] = []
        size = self.batch_size
        offset = 0
        while offset < len(records):
            part = records[offset : offset + size]
            try:
                results.extend(self._post_restlet(record_type, part, action, replace))
            except ValidationError as exc:
                if exc.vendor_code != USAGE_LIMIT_CODE or size == 1:
                    raise
                size = max(1, size // 2)
                logger.warning(
                    "netsuite bulk %s %s: the RESTlet ran out of usage units; %d per call now",
                    action,
                    record_type,
                    size,
                )
                continue
            offset += len(part)
        return results

    def _post_restlet(
        self,
        record_type: str,
        part: list[dict[str, Any]],
        action: str = "create",
        replace: tuple[str, ...] = (),
    ) -> list[dict[str, Any]]:
        operation = f"netsuite.{record_type}.bulk" + ("" if action == "create" else f"_{action}")
        keys = [record_type, *(str(r["externalId"]) for r in part)]
        payload: dict[str, Any] = {"recordType": record_type, "records": part}
        statuses = BATCH_STATUSES
        if action != "create":
            # an upsert with other values is another request: the key covers the bodies too
            bodies = json.dumps(part, sort_keys=True, separators=(",", ":"), default=str)
            keys = [action, *replace, *keys, hashlib.sha256(bodies.encode()).hexdigest()]
            payload = {"recordType": record_type, "action": action, "records": part}
            if replace:
                payload["replace"] = list(replace)
            statuses = UPSERT_STATUSES
        digest = hashlib.sha256("\n".join(keys).encode()).hexdigest()
        response = self.request(
            "POST",
            self.restlet_url,
            operation=operation,
            params={"script": self.bulk_script, "deploy": self.bulk_deploy},
            json=payload,
            idempotency_key=f"tl-bulk-{digest[:40]}",
        )
        body = self.decode(response, operation)
        results = body.get("results") if isinstance(body, dict) else None
        if not isinstance(results, list) or len(results) != len(part):
            raise ResponseShapeError(
                f"the RESTlet answered {len(results) if isinstance(results, list) else 'no'} "
                f"results for {len(part)} records",
                status=response.status_code,
                body=_excerpt(body),
                operation=operation,
            )
        return [
            _batch_result(result, record["externalId"], operation, statuses)
            for result, record in zip(results, part, strict=True)
        ]

    # -- reference data (ERP -> PSA) ----------------------------------------------------
    def list_employees(self) -> list[dict[str, Any]]:
        """Every employee as a SuiteQL row: id, entityid, firstname, lastname, email,
        subsidiary, department, laborcost, isinactive ('T'/'F'), externalid."""
        return self._rows(
            "SELECT id, entityid, firstname, lastname, email, subsidiary, department, "
            "laborcost, isinactive, externalid FROM employee ORDER BY id",
            "netsuite.employee.list",
        )

    def list_departments(self) -> list[dict[str, Any]]:
        """Every department (cost centre) as a SuiteQL row: id, name, isinactive, externalid."""
        return self._rows(
            "SELECT id, name, isinactive, externalid FROM department ORDER BY id",
            "netsuite.department.list",
        )

    def currency_rates(self, on: date) -> list[dict[str, Any]]:
        """The exchange rates in effect on `on`: for each (base, transaction) currency pair
        the rate with the latest effective date not after `on`. SuiteQL rows: id,
        basecurrency, transactioncurrency, exchangerate, effectivedate (YYYY-MM-DD)."""
        rows = self._rows(
            "SELECT id, basecurrency, transactioncurrency, exchangerate, "  # noqa: S608
            "TO_CHAR(effectivedate, 'YYYY-MM-DD') AS effectivedate FROM currencyrate "
            f"WHERE effectivedate <= TO_DATE('{on.isoformat()}', 'YYYY-MM-DD') "
            "ORDER BY effectivedate, id",
            "netsuite.currencyrate.list",
        )
        latest: dict[tuple[str, str], dict[str, Any]] = {}
        for row in rows:
            base, quote_ = row.get("basecurrency"), row.get("transactioncurrency")
            if not isinstance(base, str | int) or not isinstance(quote_, str | int):
                raise ResponseShapeError(
                    "a currency rate row has no currency pair",
                    body=_excerpt(row),
                    operation="netsuite.currencyrate.list",
                )
            latest[(str(base), str(quote_))] = row
        return list(latest.values())

    def upsert_job(self, external_id: str, body: dict[str, Any]) -> str:
        """Create or update the project (job) keyed by `external_id`; return its id."""
        return self.upsert_by_external_id("job", external_id, body)

    def upsert_allocation(self, external_id: str, body: dict[str, Any]) -> str:
        """Create or update the resource allocation (a person on a project) keyed by
        `external_id` (a body from `allocation_from_assignment`); return its internal id."""
        return self.upsert_by_external_id(ALLOCATION_RECORD, external_id, body)

    # -- payables ------------------------------------------------------------------------
    def find_vendor(self, external_id: str) -> dict[str, Any] | None:
        """The vendor with this external id (e.g. "TL-VENDOR-301"), or None when there is
        none. An id NetSuite could not hold raises ValueError."""
        return self.find_by_external_id("vendor", external_id)

    def upsert_vendor_bill(self, external_id: str, body: dict[str, Any]) -> str:
        """Create or update the vendor bill keyed by `external_id` (a body from
        `vendor_bill_from_charge`); return its internal id. The expense lines are replaced,
        so repeating the upsert never books a charge twice."""
        return self.upsert_by_external_id(
            VENDOR_BILL_RECORD, external_id, body, replace=("expense",)
        )

    def get_vendor_bill(self, bill_id: str) -> dict[str, Any]:
        """A vendor bill (internal id or `eid:<externalId>`) with its expense lines expanded."""
        return self.get_record(VENDOR_BILL_RECORD, bill_id, expand=True)

    def upsert_purchase_order(self, external_id: str, body: dict[str, Any]) -> str:
        """Create or update the purchase order keyed by `external_id` (a body from
        `purchase_order_to_netsuite`); return its internal id. The item lines are replaced, so
        repeating the upsert never orders the hours twice."""
        return self.upsert_by_external_id(
            PURCHASE_ORDER_RECORD, external_id, body, replace=("item",)
        )

    def get_purchase_order(self, order_id: str) -> dict[str, Any]:
        """A purchase order (internal id or `eid:<externalId>`) with its item lines expanded."""
        return self.get_record(PURCHASE_ORDER_RECORD, order_id, expand=True)

    def close_purchase_order(self, order_id: str) -> int:
        """Close the order's open item lines (isClosed), keeping their quantities and amounts:
        the order stays as the record of what was engaged. Return how many lines closed (0
        when all were closed already: a repeat writes nothing)."""
        order = self.get_purchase_order(order_id)
        sublist = order.get("item")
        items = sublist.get("items") if isinstance(sublist, dict) else None
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise ResponseShapeError(
                f"purchase order {order_id}: expected expanded item lines",
                body=_excerpt(order),
                operation="netsuite.purchaseOrder.get",
            )
        open_lines = [
            {"line": item["line"], "isClosed": True}
            for item in items
            if item.get("isClosed") is not True and isinstance(item.get("line"), int | str)
        ]
        if open_lines:
            self.update_record(
                PURCHASE_ORDER_RECORD, str(order["id"]), {"item": {"items": open_lines}}
            )
        return len(open_lines)

    # -- revenue schedules and billing plans ---------------------------------------------
    def upsert_revenue_schedule(self, contract_key: str, lines: list[dict[str, Any]]) -> list[str]:
        """Make the contract's revenue schedule in NetSuite the given lines (bodies from
        `revenue_schedule_lines`): each upserted by its externalId, lines of an earlier
        version that are not among them made inactive. Return the lines' ids, in order."""
        for index, line in enumerate(lines):
            if not isinstance(line, dict) or line.get("custrecord_tl_contract") != contract_key:
                raise ValueError(f"lines[{index}] is not a line of contract {contract_key!r}")
        ids = [
            self.upsert_by_external_id(
                REVENUE_RECORD, line["externalId"], {**line, "isInactive": False}
            )
            for line in lines
        ]
        self._retire(
            REVENUE_RECORD,
            "custrecord_tl_contract",
            contract_key,
            {str(line["externalId"]) for line in lines},
        )
        return ids

    def upsert_billing_plan(self, job_id: str, milestones: list[dict[str, Any]]) -> list[str]:
        """Make the project's billing plan the given milestones (bodies from
        `billing_milestone_lines`), each upserted by its externalId and tied to the job;
        milestones of an earlier plan not among them are made inactive. Return their ids."""
        if not isinstance(job_id, str) or not INTERNAL_ID.fullmatch(job_id):
            raise ValueError(f"not a NetSuite internal id: {job_id!r}")
        for index, milestone in enumerate(milestones):
            if not isinstance(milestone, dict):
                raise ValueError(f"milestones[{index}] is not a record body")
        ids = [
            self.upsert_by_external_id(
                MILESTONE_RECORD,
                milestone["externalId"],
                {**milestone, "custrecord_tl_bm_job": {"id": job_id}, "isInactive": False},
            )
            for milestone in milestones
        ]
        self._retire(
            MILESTONE_RECORD,
            "custrecord_tl_bm_job",
            job_id,
            {str(m["externalId"]) for m in milestones},
        )
        return ids

    def inactive_lines(
        self, record_type: str, field: str, values: list[str]
    ) -> list[dict[str, Any]]:
        """The still ACTIVE lines (isinactive = 'F') of `record_type` whose `field` is one of
        `values`, e.g. the milestones of many jobs (`custrecord_tl_bm_job`) or the revenue
        lines of many contracts (`custrecord_tl_contract`): the candidates a bulk
        provisioning compares with the new plans to choose which lines to make inactive.
        One SuiteQL query per `MAX_IN_VALUES` values; rows are `{"id", "externalid",
        <field lower-case>}`, ordered by id within each chunk."""
        if not RECORD_TYPE.fullmatch(record_type):
            raise ValueError(f"not a NetSuite record type: {record_type!r}")
        if not FIELD_NAME.fullmatch(field):
            raise ValueError(f"not a NetSuite field id: {field!r}")
        if isinstance(values, str) or not all(isinstance(v, str) for v in values):
            raise ValueError("values must be a list of strings")
        wanted = list(dict.fromkeys(values))
        rows: list[dict[str, Any]] = []
        for start in range(0, len(wanted), MAX_IN_VALUES):
            listed = ", ".join(_sql_text(v) for v in wanted[start : start + MAX_IN_VALUES])
            rows.extend(
                self._rows(
                    f"SELECT id, externalid, {field} FROM {record_type} "  # noqa: S608
                    f"WHERE {field} IN ({listed}) AND isinactive = 'F' ORDER BY id",
                    f"netsuite.{record_type}.list",
                )
            )
        return rows

    def _retire(self, record_type: str, field: str, value: str, keep: set[str]) -> None:
        where = f"{field} = {_sql_text(value)} AND isinactive = 'F'"
        rows = self._rows(
            f"SELECT id, externalid FROM {record_type} WHERE {where} ORDER BY id",  # noqa: S608
            f"netsuite.{record_type}.list",
        )
        for row in rows:
            if str(row.get("externalid")) not in keep:
                self.update_record(record_type, str(row["id"]), {"isInactive": True})

    # -- reconciliation reads ------------------------------------------------------------
    def customers_changed_since(self, since: datetime | None) -> list[dict[str, Any]]:
        """Customers modified at or after `since` (timezone-aware; every customer when None),
        by id, as SuiteQL rows: id, externalid, companyname, subsidiary, currency, isinactive
        ('T'/'F'), lastmodifieddate (UTC, YYYY-MM-DD HH24:MI:SS)."""
        return self._changed(
            "customer",
            "id, externalid, companyname, subsidiary, currency, isinactive, "
            f"{_STAMP.format('lastmodifieddate')}",
            "lastmodifieddate",
            since,
        )

    def customer_tax_countries(self, customer_ids: Iterable[str]) -> dict[str, str | None]:
        """The country (ISO code) of each customer's first tax registration, None when it
        has none. SuiteQL serves no tax registrations, so this reads each customer with its
        sublists expanded: one GET per customer."""
        countries: dict[str, str | None] = {}
        for customer_id in dict.fromkeys(customer_ids):
            if not isinstance(customer_id, str) or not INTERNAL_ID.fullmatch(customer_id):
                raise ValueError(f"not a NetSuite internal id: {customer_id!r}")
            record = self.get_record("customer", customer_id, expand=True)
            sublist = record.get("taxRegistration")
            items = sublist.get("items") if isinstance(sublist, dict) else None
            if sublist is not None and not isinstance(items, list):
                raise ResponseShapeError(
                    f"customer {customer_id}: expected expanded taxRegistration lines",
                    body=_excerpt(record),
                    operation="netsuite.customer.get",
                )
            country = None
            if items:
                nexus = items[0].get("nexusCountry") if isinstance(items[0], dict) else None
                country = nexus.get("id") if isinstance(nexus, dict) else nexus
                if not isinstance(country, str) or not country.strip():
                    raise ResponseShapeError(
                        f"customer {customer_id}: a tax registration without nexusCountry",
                        body=_excerpt(items[0]),
                        operation="netsuite.customer.get",
                    )
                country = country.strip().upper()
            countries[customer_id] = country
        return countries

    def jobs_changed_since(self, since: datetime | None) -> list[dict[str, Any]]:
        """Projects (jobs) modified at or after `since` (every job when None), by id, as
        SuiteQL rows: id, externalid, entityid, companyname, parent (the customer),
        subsidiary, currency, startdate (YYYY-MM-DD), isinactive, lastmodifieddate."""
        return self._changed("job", _JOB_COLUMNS, "lastmodifieddate", since)

    def jobs_by_id(self, job_ids: Iterable[str]) -> list[dict[str, Any]]:
        """The jobs with these internal ids (rows as `jobs_changed_since`), one query per
        `MAX_IN_VALUES` ids; ids that name no job are left out."""
        rows: list[dict[str, Any]] = []
        for listed in _id_lists(job_ids):
            rows.extend(
                self._rows(
                    f"SELECT {_JOB_COLUMNS} FROM job WHERE id IN ({listed}) ORDER BY id",  # noqa: S608
                    "netsuite.job.list",
                )
            )
        return rows

    def billing_milestones_changed_since(self, since: datetime | None) -> list[dict[str, Any]]:
        """Billing milestone lines (`customrecord_tl_billing_milestone`, inactive ones too:
        a line made inactive changed its job's plan) modified at or after `since`, as rows
        like `billing_milestones_of`."""
        return self._changed(MILESTONE_RECORD, _MILESTONE_COLUMNS, "lastmodified", since)

    def billing_milestones_of(self, job_ids: Iterable[str]) -> list[dict[str, Any]]:
        """The ACTIVE billing milestone lines of these jobs (their billing plans), one query
        per `MAX_IN_VALUES` jobs, as rows: id, externalid, isinactive, custrecord_tl_bm_job,
        custrecord_tl_bm_amount (a number), custrecord_tl_bm_currency, lastmodified."""
        rows: list[dict[str, Any]] = []
        for listed in _id_lists(job_ids):
            rows.extend(
                self._rows(
                    f"SELECT {_MILESTONE_COLUMNS} FROM {MILESTONE_RECORD} "  # noqa: S608
                    f"WHERE custrecord_tl_bm_job IN ({listed}) AND isinactive = 'F' ORDER BY id",
                    f"netsuite.{MILESTONE_RECORD}.list",
                )
            )
        return rows

    def _changed(
        self, table: str, columns: str, stamp: str, since: datetime | None
    ) -> list[dict[str, Any]]:
        where = ""
        if since is not None:
            if since.tzinfo is None or since.utcoffset() is None:
                raise ValueError("since must be a timezone-aware datetime")
            at = since.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
            where = f" WHERE {stamp} >= TO_TIMESTAMP('{at}', 'YYYY-MM-DD HH24:MI:SS')"
        # the table, columns and stamp are constants; the datetime is formatted
        return self._rows(
            f"SELECT {columns} FROM {table}{where} ORDER BY id",  # noqa: S608
            f"netsuite.{table}.list",
        )

    # -- internals ----------------------------------------------------------------------
    def _rows(self, query: str, operation: str) -> list[dict[str, Any]]:
        return list(self._stream(query, operation))

    def _stream(self, query: str, operation: str) -> Iterator[dict[str, Any]]:
        """The rows of a query as its pages come, each checked to carry an id."""
        for row in self.suiteql(query):
            rid = row.get("id")
            if isinstance(rid, bool) or not isinstance(rid, str | int):
                raise ResponseShapeError(
                    "a SuiteQL row has no id", body=_excerpt(row), operation=operation
                )
            yield row

    def _pages(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        json: Any = None,
        headers: dict[str, str] | None = None,
        need_id: bool = True,
    ) -> Iterator[dict[str, Any]]:
        offset = 0
        limit = self.page_size
        while True:
            response = self.request(
                method,
                path,
                operation=operation,
                params={"limit": limit, "offset": offset},
                json=json,
                headers=headers,
            )
            body = self.decode(response, operation)
            items = body.get("items") if isinstance(body, dict) else None
            has_more = body.get("hasMore") if isinstance(body, dict) else None
            if not isinstance(items, list) or not isinstance(has_more, bool):
                raise ResponseShapeError(
                    "expected a page with items and hasMore",
                    status=response.status_code,
                    body=_excerpt(body),
                    operation=operation,
                )
            for item in items:
                if not isinstance(item, dict) or (
                    need_id and not isinstance(item.get("id"), str | int)
                ):
                    raise ResponseShapeError(
                        "a page item is not an object with an id",
                        status=response.status_code,
                        body=_excerpt(item),
                        operation=operation,
                    )
                yield item
            if not has_more:
                return
            if not items:
                raise ResponseShapeError(
                    "hasMore is true on an empty page",
                    status=response.status_code,
                    body=_excerpt(body),
                    operation=operation,
                )
            offset += len(items)

    def _async_write(
        self,
        method: str,
        path: str,
        operation: str,
        body: dict[str, Any],
        idempotency_key: str,
        *,
        params: dict[str, str] | None = None,
    ) -> httpx.Response:
        """Send a keyed write with respond-async and return the finished task's result."""
        try:
            response = self.request(
                method,
                path,
                operation=operation,
                json=body,
                params=params,
                headers={"Prefer": "respond-async"},
                idempotency_key=idempotency_key,
            )
        except IdempotencyConflictError as exc:
            if exc.job_path is None:
                raise
            logger.info(
                "netsuite %s: key %s was used before; reading job %s",
                operation,
                idempotency_key,
                exc.job_path,
            )
            return self._job_result(exc.job_path, operation)
        if response.status_code != 202:
            return response  # processed synchronously
        job_path = service_path(response.headers.get("Location"))
        if job_path is None:
            raise ResponseShapeError(
                "202 Accepted without an async job Location",
                status=202,
                operation=operation,
            )
        return self._job_result(job_path, operation)

    def _job_result(self, job_path: str, operation: str) -> httpx.Response:
        """Wait for an async job, then fetch its (single) task's result.

        A failed task's result is the original error, raised here as its ConnectorError.
        """
        for attempt in range(self.job_poll_attempts):
            job = self.get_json(job_path, operation=f"{operation}.job")
            if not isinstance(job, dict) or not isinstance(job.get("completed"), bool):
                raise ResponseShapeError(
                    "async job answered without `completed`",
                    body=_excerpt(job),
                    operation=f"{operation}.job",
                )
            if job["completed"]:
                break
            if attempt + 1 < self.job_poll_attempts:
                self._sleep(self.job_poll_interval)
        else:
            raise TransientError(
                f"async job {job_path} did not complete in time", operation=f"{operation}.job"
            )
        tasks = self.get_json(f"{job_path}/task", operation=f"{operation}.job")
        items = tasks.get("items") if isinstance(tasks, dict) else None
        task_path = None
        if isinstance(items, list) and items and isinstance(items[0], dict):
            for link in items[0].get("links") or []:
                if isinstance(link, dict) and link.get("rel") == "self":
                    task_path = service_path(link.get("href"))
        if task_path is None or not task_path.startswith(f"{job_path}/task/"):
            raise ResponseShapeError(
                "async job has no readable task",
                body=_excerpt(tasks),
                operation=f"{operation}.job",
            )
        return self.request("GET", f"{task_path}/result", operation=f"{operation}.result")


# -- helpers -----------------------------------------------------------------------------------
def _record_path(record_type: str, record_id: str | None = None) -> str:
    if not RECORD_TYPE.fullmatch(record_type):
        raise ValueError(f"not a NetSuite record type: {record_type!r}")
    path = f"{RECORD_PREFIX}/{record_type}"
    if record_id is None:
        return path
    record_id = str(record_id)
    if not RECORD_ID.fullmatch(record_id):
        raise ValueError(f"not a NetSuite internal id or eid:<externalId>: {record_id!r}")
    return f"{path}/{quote(record_id, safe=':')}"


def _check_external_id(external_id: str) -> None:
    if not isinstance(external_id, str) or not EXTERNAL_ID.fullmatch(external_id):
        raise ValueError(
            "a NetSuite external id holds only letters, digits, '_' and '-' (1-255 characters)"
        )


def _replace_params(replace: Iterable[str]) -> dict[str, str] | None:
    names = [name for name in replace if name]
    return {"replace": ",".join(names)} if names else None


def _id_from_location(response: httpx.Response, record_type: str, operation: str) -> str:
    path = service_path(response.headers.get("Location"))
    match = (
        re.fullmatch(rf"{RECORD_PREFIX}/{re.escape(record_type)}/(\d+)", path, re.IGNORECASE)
        if path
        else None
    )
    if match is None:
        raise ResponseShapeError(
            f"expected a Location naming the {record_type} record",
            status=response.status_code,
            body={"Location": response.headers.get("Location")},
            operation=operation,
        )
    return match.group(1)


_STAMP = "TO_CHAR({0}, 'YYYY-MM-DD HH24:MI:SS') AS {0}"
_JOB_COLUMNS = (
    "id, externalid, entityid, companyname, parent, subsidiary, currency, "
    "TO_CHAR(startdate, 'YYYY-MM-DD') AS startdate, isinactive, "
    + _STAMP.format("lastmodifieddate")
)
_MILESTONE_COLUMNS = (
    "id, externalid, isinactive, custrecord_tl_bm_job, custrecord_tl_bm_amount, "
    "custrecord_tl_bm_currency, " + _STAMP.format("lastmodified")
)


def _id_lists(ids: Iterable[str]) -> Iterator[str]:
    """Checked internal ids as SuiteQL `IN` lists of at most MAX_IN_VALUES."""
    if isinstance(ids, str):
        raise TypeError("pass a list of ids, not one id")
    wanted = list(dict.fromkeys(ids))
    for value in wanted:
        if not isinstance(value, str) or not INTERNAL_ID.fullmatch(value):
            raise ValueError(f"not a NetSuite internal id: {value!r}")
    for start in range(0, len(wanted), MAX_IN_VALUES):
        yield ", ".join(_sql_text(v) for v in wanted[start : start + MAX_IN_VALUES])


def _since_literal(since: datetime) -> str:
    """A SuiteQL timestamp literal of an aware datetime, in UTC (see the module doc)."""
    if not isinstance(since, datetime) or since.tzinfo is None:
        raise ValueError("since must be a timezone-aware datetime")
    stamp = since.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    return f"TO_TIMESTAMP('{stamp}', 'YYYY-MM-DD HH24:MI:SS')"


def _invoice_query(since_literal: str | None, *, order: str) -> str:
    """The invoices of `transaction`, modified at or after a timestamp literal (or all)."""
    # the REST SuiteQL service takes no bind variables: literals are formatted or escaped
    where = "type = 'CustInvc'"
    if since_literal is not None:
        where += f" AND lastmodifieddate >= {since_literal}"
    return (
        "SELECT id, tranid, externalid, entity, subsidiary, currency, status, "  # noqa: S608
        "foreigntotal, taxtotal, foreignamountremaining, "
        "TO_CHAR(trandate, 'YYYY-MM-DD') AS trandate, "
        "TO_CHAR(duedate, 'YYYY-MM-DD') AS duedate, "
        "TO_CHAR(lastmodifieddate, 'YYYY-MM-DD HH24:MI:SS') AS lastmodifieddate "
        f"FROM transaction WHERE {where} ORDER BY {order}"
    )


def _sql_text(value: str) -> str:
    """A SuiteQL string literal."""
    return "'" + str(value).replace("'", "''") + "'"


def _batch_result(
    result: Any, external_id: str, operation: str, statuses: frozenset[str] = BATCH_STATUSES
) -> dict[str, Any]:
    """One RESTlet result, checked against the record it answers and the statuses its action
    answers (a create never answers "updated", an upsert never "exists")."""

    def bad(problem: str) -> ResponseShapeError:
        return ResponseShapeError(
            f"RESTlet result for {external_id}: {problem}",
            body=_excerpt(result),
            operation=operation,
        )

    if not isinstance(result, dict):
        raise bad("not an object")
    if result.get("externalId") != external_id:
        raise bad(f"answers externalId {result.get('externalId')!r} (out of order?)")
    status = result.get("status")
    if status not in statuses:
        raise bad(f"unknown status {status!r}")
    if status == "error":
        error = result.get("error")
        code = error.get("code") if isinstance(error, dict) else None
        message = error.get("message") if isinstance(error, dict) else None
        if not isinstance(code, str) or not isinstance(message, str):
            raise bad("an error without code and message")
        return {
            "externalId": external_id,
            "status": status,
            "error": {"code": code, "message": message},
        }
    rid = result.get("id")
    if isinstance(rid, bool) or not isinstance(rid, str | int) or not str(rid).strip():
        raise bad(f"{status} without an id")
    return {"externalId": external_id, "status": status, "id": str(rid)}


def _excerpt(body: Any) -> Any:
    text = repr(body)
    return body if len(text) <= 2000 else text[:2000]
