"""The NetSuite stand-in: a local copy of SuiteTalk REST web services for tests and the demo.

It serves, under its own base URL (standing for https://<account>.suitetalk.api.netsuite.com,
and for https://<account>.restlets.api.netsuite.com where RESTlets live):

- `POST /services/rest/auth/oauth2/v1/token`: OAuth 2.0 client credentials (M2M). The client
  assertion is a JWT whose header `kid` names a certificate id (PS256/384/512, RS256 or
  ES256/384/512); claims `iss` = client id, `scope` containing `rest_webservices`, `aud` = the
  token endpoint URL (this stand-in's URL, or the real account URL), `iat`, `exp` at most one
  hour after `iat`. Keys come from `trusted_keys` or `<STANDIN_KEYS_DIR>/netsuite/<kid>.pem`
  (a PEM public key or certificate). Answers `{access_token, token_type, expires_in}`; errors
  are `{"error": ...}` with 400 (invalid_request, invalid_grant, invalid_scope,
  unsupported_grant_type) or 401 (invalid_client). A token is good for RESTlets only when the
  assertion's scope named `restlets`.
- `/services/rest/record/v1/{type}`: list (`limit` 1..1000, `offset`), get by internal id or
  `eid:<externalId>` (`expandSubResources=true` expands sublists, otherwise a sublist is
  `{"links": [...]}`), POST create (204 + Location), PATCH (204; sublist lines with an id
  (`id`, or `line` on transaction sublists) are updated, lines without are added,
  `?replace=<sublist>` replaces the sublist), PUT `eid:<externalId>` upsert (204 + Location;
  on an existing record it is an update, so sublist lines are ADDED unless `replace` names
  the sublist), DELETE (204). Record type names are case-insensitive, as in NetSuite.
  Writable: customer, subsidiary, job, invoice, timeBill, expenseReport, resourceAllocation,
  vendorBill, purchaseOrder and the custom records below. Read-only here (edit them through
  `/__standin__/`): currency, nexus, term, employee, department, currencyRate,
  accountingPeriod, serviceSaleItem, salesTaxItem, expenseCategory, customerPayment, vendor,
  account, servicePurchaseItem.
- Idempotency: `X-NetSuite-Idempotency-Key` with or without `Prefer: respond-async`. With
  respond-async the answer is 202 + `Location: /services/rest/async/v1/job/{id}`; the job, its
  task and `.../task/{id}/result` (the replayed original answer) can be read back. A repeated
  key answers 400 IDEMPOTENCY_ERROR with the earlier job in `Location` and does nothing.
- `POST /services/rest/query/v1/suiteql` (header `Prefer: transient`): a small SuiteQL subset,
  see `run_suiteql`. Columns come back lower-case, booleans as 'T'/'F', null columns omitted,
  numbers (amounts, hours, rates) as JSON numbers, dates and datetimes as M/D/YYYY (a US
  account's date format, no time) unless formatted with TO_CHAR; TO_TIMESTAMP literals and
  stored datetimes are read as UTC (real NetSuite applies the user's time zone). Record
  datetimes are ISO 8601 UTC ("Using Datetime Fields"). Tables: customer, subsidiary,
  currency, employee, department, currencyrate, accountingperiod, job, timebill,
  resourceallocation, vendor, the custom records, and `transaction` (invoices 'CustInvc',
  customer payments 'CustPymt', expense reports 'ExpRept', vendor bills 'VendBill' and
  purchase orders 'PurchOrd';
  `status` is the one-letter code, e.g.
  'A' Open and 'B' Paid In Full for invoices, as the saved-search ids 'CustInvc:A'/'CustInvc:B'
  suggest; not confirmed for SuiteQL).
- `GET /services/rest/system/v1/governanceLimits`: the documented shape plus
  `inFlightRequests` (a stand-in extension). More than `concurrency_limit` simultaneous
  requests to the record, query, system, async and RESTlet services answer 429
  CONCURRENCY_LIMIT_EXCEEDED without Retry-After, or for a RESTlet 400
  SSS_REQUEST_LIMIT_EXCEEDED (the token endpoint is not governed; see the connector's
  docstring for what is and is not confirmed about the real status code).

Project-to-cash and resource-to-finance records (field names from the NetSuite Help Center,
the SuiteScript/SOAP records browsers and public client libraries, e.g. NetSweet/netsuite):

- `invoice`: entity (customer), subsidiary, currency, tranDate, dueDate (default tranDate
  plus the customer's terms), memo, job (a project of that customer, optional), terms and the
  `item` sublist (item = a serviceSaleItem, description, quantity, rate, amount, taxCode = a
  salesTaxItem, optional). The stand-in assigns `tranId` ("INV-10001", ...), `postingPeriod`,
  and computes per line `taxRate1`/`tax1Amt`, then subtotal, taxTotal, total, amountPaid,
  amountRemaining and status ({"id": "A", "refName": "Open"} or "B" "Paid In Full"; the
  refName is what public samples show, the id letter is not confirmed for REST). Tax is the
  stand-in's simplification of SuiteTax: the line's taxCode rate, else the rate of the
  country of the subsidiary's first tax registration (GB 20 %, DE 19 %, US 0 %, see
  `TAX_RATES`); a subsidiary without any tax registration cannot invoice (400 USER_ERROR on
  `subsidiary`: the demo's GmbH until Finance adds its VAT number). Invoices with payments
  cannot drop below what was paid and cannot be deleted.
- `accountingPeriod` (periodName, startDate, endDate, closed, allLocked, arLocked,
  apLocked, isQuarter, isYear, isAdjust): seeded with the months of 2026, ids 1-12; January to
  September are closed. A transaction dated in a closed period, or before the first period,
  is refused, and so is any edit of a transaction already in a closed period: 400 USER_ERROR
  on `tranDate`, detail "The transaction date you specified is not within the date range of
  your accounting period." (NetSuite's wording, as reported by integrations such as Fyle and
  Expensify NS0079; the o:errorCode for it is not confirmed) plus the stand-in's "The period
  Sep 2026 is closed." Dates after the last period count as open.
- `customerPayment`: created only by the control endpoint below (customer, subsidiary,
  currency, tranDate, payment, `apply` sublist {doc, amount}, status "B" Not Deposited).
  Overdue is not a NetSuite status: the mapper derives it (open and dueDate before today).
- `timeBill` (Track Time): employee, customer ("Customer:Project": a job, or a customer),
  subsidiary (must be the employee's), tranDate, hours (decimal hours 0 < h <= 24;
  NetSuite's own duration format H:MM is accepted too), isBillable, supervisorApproval, memo.
- `expenseReport`: entity (an employee), subsidiary, tranDate, expenseReportCurrency, memo,
  supervisorApproval, accountingApproval and the `expense` sublist (expenseDate, category =
  an expenseCategory, amount, foreignAmount, currency, customer = a job or a customer,
  isBillable, receipt, memo); total is the sum of the lines' amounts; status "B" Pending
  Supervisor Approval, "C" Pending Accounting Approval or "F" Approved by Accounting (codes
  from the transaction status list 'ExpRept:B/C/F'). Whether a line needs a category is not
  confirmed; the stand-in does not require one.
- `employee` (entityId, firstName, lastName, email, subsidiary, department, laborCost (the
  hourly labour cost, in the subsidiary's currency), isInactive), `department` (name,
  isInactive), `currencyRate` (baseCurrency, transactionCurrency, exchangeRate = base units
  per one transaction-currency unit, effectiveDate) and `job` (project: entityId,
  companyName, parent = the customer, subsidiary (must be the customer's), currency,
  startDate, projectedEndDate, comments, isInactive, externalId).
- `resourceAllocation` (REST record id "resourceAllocation", Help Center "Resource
  Allocation"; the Resource Allocations feature; SOAP records browser for the fields):
  allocationResource (here: an active employee; NetSuite also takes vendors and generic
  resources and only those marked Project Resource, which the stand-in does not model),
  project (an existing job), startDate, endDate (end on or after start), allocationAmount
  (> 0, two decimals), allocationUnit ("H" hours, the default, or "P" percent of time),
  allocationType ("1" Hard, "2" Soft), notes, externalId. The records browser marks
  resource, type, amount and both dates required (so does the stand-in: 400 USER_ERROR
  "Please enter value(s) for: ..."). Not confirmed: the REST ids of the unit list ("H"/"P";
  SOAP's enum is `_hours`/`_percentOfTime`, the Help Center's REST usage note on the unit
  could not be read in full) and of the type list (1/2). Not modelled: projectTask,
  numberHours/percentOfTime (derived by NetSuite from the resource's work calendar),
  approvalStatus/nextApprover (SuiteFlow approvals), requestedBy, recurrence. The job's
  "Resources" subtab (`jobResource`) is not served; a job with allocations cannot be deleted.
- `vendor` (REST record id "vendor", confirmed by the Help Center; read-only here):
  entityId, companyName, isPerson, subsidiary, currency, email, expenseAccount (the vendor's
  "Default Expense Account", SOAP's Vendor.expenseAccount), isInactive, externalId. One
  subsidiary and one currency per vendor: the multi-subsidiary vendor
  (vendorSubsidiaryRelationship) and the vendor's currency sublist are not modelled.
- `account` (read-only): acctNumber, acctName, acctType ("Expense"), isInactive; only what
  vendor bill lines reference.
- `vendorBill` (REST record id "vendorBill" and the create sample `{"entity": {"id"}, "item":
  {"items": [...]}}` confirmed by the Help Center's "Vendor Bill" page): entity (an active
  vendor), subsidiary (must be the vendor's), currency (default and only value: the vendor's;
  a real vendor may have several currencies), tranDate (required; closed periods refused as
  for invoices, and so is a period whose `apLocked` is set), dueDate (default tranDate: vendor
  terms are not modelled), tranId (on a bill this is the vendor's reference number, typed in,
  not numbered by NetSuite), memo, externalId, and the `expense` sublist (lines: account, amount
  > 0, memo, customer = the "Customer:Project" the cost is for (an active job or customer),
  isBillable). The stand-in computes `total` (the sum of the lines: tax is not modelled on
  bills), assigns `postingPeriod` and sets status "A" Open (transaction status list
  'VendBill:A' Open, 'B' Paid In Full, 'C' Cancelled, 'D' Pending Approval, 'E' Rejected:
  the letters are the saved-search ids, not confirmed for REST). The sublist names `expense`
  and `item` come from the SuiteScript records browser (N/record, as public typings such as
  NetSuite FastTrack Toolkit declare them) and the SOAP schema (VendorBillExpenseList of
  VendorBillExpense: account, amount, memo, customer, isBillable, category, department,
  class, location, taxCode; NetSweet/netsuite). Not confirmed for REST: the camelCase line
  field ids (taken to be the SOAP names), that NetSuite sources the vendor's default expense
  account onto a line sent without one (the stand-in does; a line with neither is refused
  "Please enter value(s) for: Account"), and that a billable line needs a customer (the
  stand-in refuses one without). Not modelled: the `item` sublist, approvals (approvalStatus),
  taxes, payments, line department/class/location, and whether a line's customer must belong
  to the bill's subsidiary. `custbody_tl_po` is a custom body field (List/Record: Purchase
  Order) a firm deploys to tie a bill to the purchase order it is billed against: an existing
  purchase order, rendered as a reference; a purchase order a bill names cannot be deleted.
- `purchaseOrder` (REST record id "purchaseOrder", the Purchase Orders feature and the create
  sample `{"entity": {"id"}, "item": {"items": [{"item": {"id"}, "rate"}]}}` confirmed by the
  Help Center's "Purchase Order" page; fields from the SOAP schema browser's PurchaseOrder and
  PurchaseOrderItem, camelCase REST ids not confirmed): entity (an active vendor), subsidiary
  (must be the vendor's), currency (the vendor's, as on bills), tranDate (required), dueDate,
  memo, externalId and the `item` sublist (item = an active servicePurchaseItem, description,
  quantity > 0 (default 1), rate >= 0, amount (default quantity x rate, to the cent, half
  up), customer = the "Customer:Project" the line is for (an active job or customer),
  isBillable (a billable line needs a customer), isClosed). The stand-in numbers it (tranId
  "PO-1001", ...), computes `total` (the sum of the lines, closed ones included; tax not
  modelled) and the status: "H" Closed when every line is closed, else "B" Pending Receipt
  (saved-search ids 'PurchOrd:A'..'H'; receipts, bills against the order, approvals and the
  other statuses are not modelled). A purchase order is non-posting ("has no accounting
  impact until the included items are received", Help Center): it has no postingPeriod and
  is accepted, edited and deleted in a closed period. A job with purchase order lines cannot
  be deleted. `servicePurchaseItem` (read-only; a "Service for Purchase" item: itemId,
  displayName, expenseAccount, isInactive) is what the lines order.
- Custom records (REST serves them as `customrecord_<id>` with `custrecord_<id>` fields):
  `customrecord_tl_revenue_schedule` (name, custrecord_tl_contract, custrecord_tl_period,
  custrecord_tl_amount, custrecord_tl_currency (ISO code as text), isInactive; one record per
  schedule line, keyed by externalId) and `customrecord_tl_billing_milestone` (name,
  custrecord_tl_bm_job, custrecord_tl_bm_date, custrecord_tl_bm_amount,
  custrecord_tl_bm_currency, custrecord_tl_bm_billable, custrecord_tl_bm_completed,
  isInactive). NetSuite's own `billingSchedule` (REST record "BillingSchedule", with the
  Advanced Billing feature: name, scheduleType, frequency, ... and a milestone list of
  milestoneDate, milestoneAmount, milestoneTerm, projectTask, milestoneCompleted in SOAP) is
  not modelled: its milestone amounts are percentages of the project total, the REST name of
  the milestone sublist and the scheduleType ids are not confirmed, and sublist lines carry
  no external id, so a milestone could not be upserted idempotently. Throughline keeps the
  plan in the custom record instead (a firm deploys it with the RESTlet below).

The bulk RESTlet (`POST /app/site/hosting/restlet.nl?script=customscript_tl_bulk_post&deploy=
customdeploy_tl_bulk_post`, same bearer token): NetSuite's REST record service has no bulk
insert, so firms deploy a RESTlet for volume. This one is a script the firm deploys
(Throughline would ship its SuiteScript source); its contract is Throughline's own. Body
`{"recordType", "action": "create"|"upsert" (default "create"), "records": [1..500 record
bodies as the record service takes them, each with an externalId]}`; answer 200 `{"results":
[{"externalId", "id"?, "status", "error"?: {"code", "message"}}]}` in input order.
- "create" (recordType "timeBill" or "expenseReport"): status "created"|"exists"|"error". A
  record whose externalId exists answers "exists" with its id (first write wins), so a
  repeated batch is harmless.
- "upsert" (recordType "customer", "job", "customrecord_tl_billing_milestone" or
  "customrecord_tl_revenue_schedule"; provisioning many deals in few calls): status
  "created"|"updated"|"unchanged"|"error". An externalId not in the index is created, one in
  it updated, through the same validation as the record service's `PUT .../eid:<externalId>`
  (so an update ADDS sublist lines without an id, e.g. a customer's taxRegistration, unless
  the body's optional `"replace": ["<sublist>", ...]` names the sublist: those are replaced
  as a whole, as the record service's `?replace=` does). A body that leaves the record as it
  is answers "unchanged" and saves nothing, so a repeated batch is harmless. References to
  other records are `{"id": ...}` internal ids (a job's parent customer, a milestone's
  custrecord_tl_bm_job), so a batch of jobs follows the batch of their customers.
Upserting transactions (time, expenses) is refused: those stay first-write-wins. A bad record
(closed period, unknown or inactive employee, unknown job or subsidiary, a duplicate entityId)
answers an error for that record only (code INVALID_FLD_VALUE and SuiteScript's "You have
entered an Invalid Field Value ... for the following field: ..." for a bad reference,
otherwise NetSuite's code). RESTlet errors are `{"error": {"code", "message"}}`: an unknown
script answers 400 SSS_INVALID_SCRIPTLET_ID, a request the script cannot read (an unknown
action, a recordType the action does not take) 400 TL_BAD_REQUEST, a body that is not
application/json 415 (not confirmed), a bad token 401 INVALID_LOGIN_ATTEMPT. Real governance:
a RESTlet call may spend 5,000 usage units and each saved transaction costs 20, so a real
script cannot save 500 transactions in one call; set `restlet_usage_limit` (settings) to make
the stand-in stop at that budget (10 units for the lookup, 20 per saved record, created or
updated; the stand-in charges entities and custom records as transactions, which NetSuite
is reported to charge less: not confirmed): the records saved so far stay saved and the call
answers 400 SSS_USAGE_LIMIT_EXCEEDED, as NetSuite does when a script runs out of units. The
default (0) does not meter. The RESTlet keeps an index by externalId: a batch never scans a
table for it (the upsert of a customer or job with an entityId does scan, to refuse a
duplicate entityId as NetSuite does on save). Edits, copies and deletions through the generic
`/__standin__/records` controls keep the index in step (the oldest record holding an
externalId answers for it, so an upsert after a copy updates the original) and stamp
lastModifiedDate; a copy gets the next internal id of its sequence, a new tranId (a
customer or job a new entityId) and its creation date.

Errors use NetSuite's shape: `{type, title, status, "o:errorDetails": [{detail, "o:errorCode",
"o:errorPath"?, "o:errorQueryParam"?, "o:errorHeader"?, "o:urlPath"?}]}`.

Seed (ids are stable across resets):
- currency 1 USD "US Dollar" (base), 2 GBP "British Pound", 4 EUR "Euro" (3 is absent).
- nexus 1 US, 2 GB, 3 DE; term 1 "Net 15", 2 "Net 30", 3 "Net 60", 4 "Due on receipt".
- subsidiary 1 "Throughline Demo Inc." US/USD with tax registration 98-7654321 (nexus US);
  2 "Throughline Demo UK Ltd" GB/GBP with VAT registration GB999999973 (nexus GB);
  3 "Throughline Demo GmbH" DE/EUR with NO tax registration: the demo's Finance failure. Fix it
  with a PATCH `{"taxRegistration": {"items": [{"nexusCountry": {"id": "DE"},
  "taxRegistrationNumber": "DE999999999"}]}}`, the form on `/__standin__/netsuite/`, or the
  generic `/__standin__/` record editor.
- accountingPeriod 1-12 (Jan-Dec 2026; 1-9 closed).
- department 1 Delivery, 2 Consulting, 3 Finance, 4 Legacy Operations (inactive).
- employee 101-103 in subsidiary 1 (US), 104, 105 and 108 in 2 (UK), 106 and 107 in 3 (DE);
  108 is inactive and has no labour cost.
- currencyRate 1-6 effective on the day of the reset (USD, GBP and EUR against each base
  currency), 7-12 the same pairs effective 30 days earlier.
- vendor 301 "Apex Data Consulting" (subsidiary 2, GBP, externalId "TL-VENDOR-301") and 302
  "Blue Ridge Analytics" (subsidiary 1, USD, "TL-VENDOR-302"), both with default expense
  account 1; account 1 "5100 Subcontractor Costs", 2 "5190 Legacy Subcontracting" (inactive);
  servicePurchaseItem 10 "Subcontracted Services" (expense account 1).
- serviceSaleItem 1 "Professional Services", 2 "Milestone Billing", 3 "Expense Rebill";
  salesTaxItem 1 S-GB 20 %, 2 Z-GB 0 %, 3 S-DE 19 %, 4 S-US 0 %; expenseCategory 1 Travel,
  2 Meals, 3 Accommodation, 4 Mileage, 5 Other.
- No customers, jobs or transactions. Customers and jobs share the entity ids from 1001 up;
  invoices, payments, expense reports, vendor bills and purchase orders share the transaction
  ids from 5001 up;
  time bills, resource allocations and custom records count from 1.
- Account "TSTDRV1234567", client id "throughline-demo-client", trusted certificate id
  "throughline-demo-cert" (its key is read from the keys directory unless passed in). A second
  account, e.g. the legacy ERP of a phased migration ("TSTDRV7654321", `create_legacy_app`),
  runs as another app with its own state: own records, tokens and snapshot (a snapshot of one
  account is refused by the other).

Customer fields served: id, externalId, entityId, companyName, isPerson, subsidiary, currency,
email, phone, comments, terms, isInactive, taxRegistration (the SuiteTax sublist: id,
nexusCountry, taxRegistrationNumber), defaultTaxReg (read-only, the first registration),
dateCreated, lastModifiedDate. REST web services expose only SuiteTax fields, so the customer's
VAT number lives in the taxRegistration sublist, not in the legacy `vatRegNumber`.

Stand-in extras under `/__standin__/netsuite/`: an HTML page with the subsidiaries (and a form
to add a tax registration), the accounting periods (close or reopen), the open invoices (record
a payment) and the purchase orders with their lines; `settings` (GET/POST concurrency_limit,
latency_ms, token_lifetime, restlet_usage_limit); `lose-responses` (POST a rule `{path, method,
times, status}`: matching writes, RESTlet calls included, are committed and then answered with
`status`, 503 by default, as when a response is lost; DELETE clears); `certificates` (POST
`{"kid", "pem"}` to trust a key, as uploading a certificate to NetSuite); `governance`
(in-flight, peak and rejected counts); `invoice/{id}/pay` (POST `{"amount": "120.00", "date"?:
"YYYY-MM-DD"}`, a partial or full payment: records a customerPayment and updates the invoice's
amountPaid, amountRemaining, status and lastModifiedDate; `id` may be `eid:<externalId>`; a
form post redirects to the page); `accounting-period/{id}` (POST `{"closed": true|false}`).
"""

from __future__ import annotations

import asyncio
import calendar
import html
import json
import logging
import os
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from .common import CONTROL_PREFIX, StandinState, bearer_token, build_app

logger = logging.getLogger(__name__)

ACCOUNT_ID = "TSTDRV1234567"
LEGACY_ACCOUNT_ID = "TSTDRV7654321"
CLIENT_ID = "throughline-demo-client"
CERTIFICATE_ID = "throughline-demo-cert"

TOKEN_PATH = "/services/rest/auth/oauth2/v1/token"
RECORD_PREFIX = "/services/rest/record/v1"
QUERY_PATH = "/services/rest/query/v1/suiteql"
GOVERNANCE_PATH = "/services/rest/system/v1/governanceLimits"
ASYNC_PREFIX = "/services/rest/async/v1/job"
EXTRA_PREFIX = f"{CONTROL_PREFIX}/netsuite"
RESTLET_PATH = "/app/site/hosting/restlet.nl"
BULK_SCRIPT = "customscript_tl_bulk_post"
BULK_DEPLOY = "customdeploy_tl_bulk_post"
MAX_BATCH = 500
#: usage units (SuiteScript governance): per RESTlet call, one lookup, one transaction save
RESTLET_LOOKUP_UNITS = 10
RESTLET_SAVE_UNITS = 20

MAX_NAME = 83
MAX_PAGE = 1000
MAX_ASSERTION_LIFETIME = 3600
JWT_ALGORITHMS = ["PS256", "PS384", "PS512", "RS256", "ES256", "ES384", "ES512"]
EXTERNAL_ID = re.compile(r"^[A-Za-z0-9_\-]{1,255}$")
SAFE_KID = re.compile(r"^[A-Za-z0-9_.\-]{1,100}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

CENT = Decimal("0.01")
#: VAT/sales-tax rate by the country of the subsidiary's tax registration: the stand-in's
#: simplification of SuiteTax (US sales tax is 0 % here, as no ship-to address is modelled)
TAX_RATES: dict[str, Decimal] = {
    "US": Decimal("0"),
    "GB": Decimal("20"),
    "DE": Decimal("19"),
    "FR": Decimal("20"),
    "IE": Decimal("23"),
    "NL": Decimal("21"),
    "ES": Decimal("21"),
    "IT": Decimal("22"),
    "CA": Decimal("5"),
    "AU": Decimal("10"),
    "SG": Decimal("9"),
    "JP": Decimal("10"),
}
PERIOD_CLOSED = (
    "The transaction date you specified is not within the date range of your accounting period."
)

INVALID_LOGIN = (
    "Invalid login attempt. For more details, see the Login Audit Trail in the NetSuite UI at "
    "Setup > Users/Roles > User Management > View Login Audit Trail."
)

COUNTRIES = {
    "US": "United States",
    "GB": "United Kingdom",
    "DE": "Germany",
    "FR": "France",
    "IE": "Ireland",
    "NL": "Netherlands",
    "ES": "Spain",
    "IT": "Italy",
    "CA": "Canada",
    "AU": "Australia",
    "SG": "Singapore",
    "JP": "Japan",
}

_RFC9110 = "https://www.rfc-editor.org/rfc/rfc9110.html#section-"
STATUS_INFO: dict[int, tuple[str, str]] = {
    400: ("Bad Request", f"{_RFC9110}15.5.1"),
    401: ("Unauthorized", f"{_RFC9110}15.5.2"),
    403: ("Forbidden", f"{_RFC9110}15.5.4"),
    404: ("Not Found", f"{_RFC9110}15.5.5"),
    405: ("Method Not Allowed", f"{_RFC9110}15.5.6"),
    409: ("Conflict", f"{_RFC9110}15.5.10"),
    415: ("Unsupported Media Type", f"{_RFC9110}15.5.16"),
    429: ("Too Many Requests", "https://www.rfc-editor.org/rfc/rfc6585.html#section-4"),
    500: ("Internal Server Error", f"{_RFC9110}15.6.1"),
    502: ("Bad Gateway", f"{_RFC9110}15.6.3"),
    503: ("Service Unavailable", f"{_RFC9110}15.6.4"),
    504: ("Gateway Timeout", f"{_RFC9110}15.6.5"),
}
DEFAULT_CODES = {
    400: "USER_ERROR",
    401: "INVALID_LOGIN",
    403: "INSUFFICIENT_PERMISSION",
    404: "NONEXISTENT_ID",
    405: "INVALID_METHOD",
    429: "CONCURRENCY_LIMIT_EXCEEDED",
    500: "UNEXPECTED_ERROR",
    503: "SERVICE_UNAVAILABLE",
}


# -- errors ----------------------------------------------------------------------------------
def error_body(
    status: int,
    code: str = "",
    message: str = "",
    *,
    path: str | None = None,
    query_param: str | None = None,
    header: str | None = None,
    url_path: str | None = None,
) -> dict[str, Any]:
    """NetSuite's REST error body."""
    title, type_uri = STATUS_INFO.get(status, ("Error", f"{_RFC9110}15"))
    detail: dict[str, Any] = {
        "detail": message or title,
        "o:errorCode": code or DEFAULT_CODES.get(status, "UNEXPECTED_ERROR"),
    }
    if path:
        detail["o:errorPath"] = path
    if query_param:
        detail["o:errorQueryParam"] = query_param
    if header:
        detail["o:errorHeader"] = header
    if url_path:
        detail["o:urlPath"] = url_path
    return {"type": type_uri, "title": title, "status": status, "o:errorDetails": [detail]}


class NsError(Exception):
    """Raised inside handlers; becomes a NetSuite error response."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None, **kw: Any
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.kw = kw

    def body(self) -> dict[str, Any]:
        return error_body(self.status, self.code, self.message, **self.kw)


class RefError(NsError):
    """An invalid reference: USER_ERROR to the record service, and to a SuiteScript (the
    bulk RESTlet) the error N/record raises, INVALID_FLD_VALUE."""

    def __init__(self, key: str, rid: str, path: str | None = None) -> None:
        super().__init__(400, "USER_ERROR", f"Invalid {key} reference key {rid}.", path=path or key)
        self.script_code = "INVALID_FLD_VALUE"
        self.script_message = (
            f"You have entered an Invalid Field Value {rid} for the following field: {key}"
        )


def script_error(exc: NsError) -> dict[str, str]:
    """How a SuiteScript sees a record error: {code, message}."""
    if isinstance(exc, RefError):
        return {"code": exc.script_code, "message": exc.script_message}
    return {"code": exc.code, "message": exc.message}


def restlet_error(status: int, code: str, message: str) -> JSONResponse:
    """A RESTlet's error answer (SuiteScript error name and message)."""
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def _fault_body(status: int, code: str, message: str) -> dict[str, Any]:
    return error_body(status, code, message)


# -- time and value helpers ------------------------------------------------------------------
def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def ref_id(value: Any) -> str | None:
    """An internal id from a stored or submitted reference ("2", 2 or {"id": "2"})."""
    if isinstance(value, dict):
        value = value.get("id")
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | str) and str(value).strip():
        return str(value).strip()
    return None


def country_id(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("id")
    if isinstance(value, str) and re.fullmatch(r"[A-Za-z]{2}", value.strip()):
        return value.strip().upper()
    return None


def to_decimal(value: Any) -> Decimal | None:
    """A finite Decimal from a stored or submitted number (Decimal, int, numeric string or,
    from hand edits, float), else None."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def money_text(value: Decimal) -> str:
    """Stored form of an amount: a string with exactly two places (half up, as NetSuite)."""
    return format(value.quantize(CENT, rounding=ROUND_HALF_UP), "f")


def number_out(value: Any) -> Any:
    """A stored number as a JSON number; anything unreadable as it is."""
    number = to_decimal(value) if isinstance(value, str) else None
    return value if number is None else float(number)


def parse_day(value: Any) -> date | None:
    if not isinstance(value, str):
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


# -- state -------------------------------------------------------------------------------------
@dataclass
class LostResponseRule:
    """Commit matching writes, then answer `status` as if the response were lost."""

    path: str = ".*"
    method: str = "*"
    times: int | None = 1
    status: int = 503

    def matches(self, method: str, path: str) -> bool:
        if self.times is not None and self.times <= 0:
            return False
        if self.method not in ("*", method.upper()):
            return False
        return re.search(self.path, path) is not None


@dataclass
class Outcome:
    """A write's answer, kept on its async job so it can be replayed."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    def response(self) -> Response:
        if self.status == 204 or self.body is None:
            return Response(status_code=self.status, headers=self.headers)
        return JSONResponse(self.body, status_code=self.status, headers=self.headers)

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe, so async jobs survive a snapshot."""
        return {"status": self.status, "body": self.body, "headers": dict(self.headers)}

    @classmethod
    def from_dict(cls, data: Any) -> Outcome:
        if not isinstance(data, dict):
            return cls(500, error_body(500, "", "The job's result is unreadable."))
        return cls(int(data.get("status", 500)), data.get("body"), dict(data.get("headers") or {}))


REVENUE_RECORD = "customrecord_tl_revenue_schedule"
MILESTONE_RECORD = "customrecord_tl_billing_milestone"
ALLOCATION_RECORD = "resourceallocation"
VENDOR_BILL = "vendorbill"
PURCHASE_ORDER = "purchaseorder"
PURCHASE_ITEM = "servicepurchaseitem"
#: resourceAllocation list values: allocationUnit (REST ids "H"/"P" as Throughline uses them;
#: SOAP's enum is _hours/_percentOfTime) and allocationType (1 Hard, 2 Soft: ids not confirmed)
ALLOCATION_UNITS = {"H": "Hours", "P": "Percent of Time"}
ALLOCATION_TYPES = {"1": "Hard", "2": "Soft"}
RECORD_TYPES = (
    "customer",
    "subsidiary",
    "currency",
    "nexus",
    "term",
    "accountingperiod",
    "employee",
    "department",
    "currencyrate",
    "job",
    "servicesaleitem",
    "salestaxitem",
    "expensecategory",
    "invoice",
    "customerpayment",
    "timebill",
    "expensereport",
    REVENUE_RECORD,
    MILESTONE_RECORD,
    ALLOCATION_RECORD,
    "vendor",
    "account",
    VENDOR_BILL,
    PURCHASE_ITEM,
    PURCHASE_ORDER,
)
WRITABLE_TYPES = (
    "customer",
    "subsidiary",
    "job",
    "invoice",
    "timebill",
    "expensereport",
    REVENUE_RECORD,
    MILESTONE_RECORD,
    ALLOCATION_RECORD,
    VENDOR_BILL,
    PURCHASE_ORDER,
)
TRANSACTION_TYPES = ("invoice", "customerpayment", "expensereport", "timebill", VENDOR_BILL)
#: record types that share one internal id sequence, as entities and transactions do
ID_GROUPS = {
    "customer": "entity",
    "job": "entity",
    "invoice": "transaction",
    "customerpayment": "transaction",
    "expensereport": "transaction",
    VENDOR_BILL: "transaction",
    PURCHASE_ORDER: "transaction",
}
TRAN_PREFIXES = {
    "invoice": "INV-",
    "customerpayment": "PYMT-",
    "expensereport": "EXP-",
    PURCHASE_ORDER: "PO-",
}
STATUS_NAMES: dict[str, dict[str, str]] = {
    "invoice": {"A": "Open", "B": "Paid In Full", "V": "Voided"},
    "customerpayment": {"A": "Unapproved Payment", "B": "Not Deposited", "C": "Deposited"},
    "expensereport": {
        "A": "In Progress",
        "B": "Pending Supervisor Approval",
        "C": "Pending Accounting Approval",
        "D": "Rejected by Supervisor",
        "E": "Rejected by Accounting",
        "F": "Approved by Accounting",
        "I": "Paid In Full",
    },
    VENDOR_BILL: {
        "A": "Open",
        "B": "Paid In Full",
        "C": "Cancelled",
        "D": "Pending Approval",
        "E": "Rejected",
    },
    #: 'PurchOrd:A'..'H' as saved searches name them (not confirmed for REST)
    PURCHASE_ORDER: {
        "A": "Pending Supervisor Approval",
        "B": "Pending Receipt",
        "C": "Rejected by Supervisor",
        "D": "Partially Received",
        "E": "Pending Billing/Partially Received",
        "F": "Pending Bill",
        "G": "Fully Billed",
        "H": "Closed",
    },
}
BULK_TYPES = {"timebill": "timebill", "expensereport": "expensereport"}
#: the record types the bulk RESTlet upserts ("action": "upsert"), by lower-case name
BULK_UPSERT_TYPES = {
    "customer": "customer",
    "job": "job",
    MILESTONE_RECORD: MILESTONE_RECORD,
    REVENUE_RECORD: REVENUE_RECORD,
}
BULK_ACTIONS = ("create", "upsert")


class NetSuiteState(StandinState):
    """Records, tokens, async jobs, idempotency keys and the concurrency governor."""

    vendor = "netsuite"
    persistent_attrs = ("jobs", "idempotency", "_seq", "_job_seq", "account_id")

    def __init__(
        self,
        trusted_keys: dict[str, str] | None = None,
        *,
        client_id: str = CLIENT_ID,
        account_id: str = ACCOUNT_ID,
        concurrency_limit: int = 15,
        latency_ms: int = 0,
        token_lifetime: int = 3600,
        keys_dir: str | None = None,
    ) -> None:
        self.trusted_keys: dict[str, str] = dict(trusted_keys or {})
        self.client_id = client_id
        self.account_id = account_id
        self.concurrency_limit = concurrency_limit
        self.latency_ms = latency_ms
        self.token_lifetime = token_lifetime
        self.keys_dir = keys_dir
        self.in_flight = 0
        self.restlet_usage_limit = 0
        self.restlets = {(BULK_SCRIPT, BULK_DEPLOY)}
        super().__init__()

    # -- seed -------------------------------------------------------------------------------
    def seed(self) -> None:
        self.jobs: dict[str, dict[str, Any]] = {}
        self.idempotency: dict[str, str] = {}
        self.lost_rules: list[LostResponseRule] = []
        self.peak_in_flight = 0
        self.rejected = 0
        self._job_seq = 0
        self._seq: dict[str, int] = {
            "entity": 1000,
            "transaction": 5000,
            "tranid:invoice": 10000,
            "tranid:customerpayment": 1000,
            "tranid:expensereport": 1000,
            f"tranid:{PURCHASE_ORDER}": 1000,
        }
        self.eid_index: dict[str, dict[str, str]] = {}
        self.token_scopes: dict[str, frozenset[str]] = {}
        self.period_memo: dict[date, tuple[dict[str, Any] | None, bool]] | None = None
        seeded = "2025-01-02T09:00:00Z"
        currencies = self.table("currency")
        for cid, symbol, name, display, base in (
            ("1", "USD", "US Dollar", "$", True),
            ("2", "GBP", "British Pound", "£", False),
            ("4", "EUR", "Euro", "€", False),
        ):
            currencies[cid] = {
                "id": cid,
                "name": name,
                "symbol": symbol,
                "displaySymbol": display,
                "isBaseCurrency": base,
                "isInactive": False,
                "lastModifiedDate": seeded,
            }
        nexus = self.table("nexus")
        for nid, country in (("1", "US"), ("2", "GB"), ("3", "DE")):
            nexus[nid] = {
                "id": nid,
                "country": country,
                "description": COUNTRIES[country],
                "isInactive": False,
                "lastModifiedDate": seeded,
            }
        terms = self.table("term")
        for tid, name, days in (
            ("1", "Net 15", 15),
            ("2", "Net 30", 30),
            ("3", "Net 60", 60),
            ("4", "Due on receipt", 0),
        ):
            terms[tid] = {
                "id": tid,
                "name": name,
                "daysUntilNetDue": days,
                "isInactive": False,
                "lastModifiedDate": seeded,
            }
        subs = self.table("subsidiary")
        subs["1"] = self._subsidiary("1", "Throughline Demo Inc.", "US", "1", seeded)
        subs["1"]["taxRegistration"] = [
            {
                "id": "1",
                "nexusCountry": "US",
                "nexus": "1",
                "taxRegistrationNumber": "98-7654321",
                "effectiveFrom": "2020-01-01",
            }
        ]
        subs["2"] = self._subsidiary("2", "Throughline Demo UK Ltd", "GB", "2", seeded)
        subs["2"]["parent"] = "1"
        subs["2"]["taxRegistration"] = [
            {
                "id": "1",
                "nexusCountry": "GB",
                "nexus": "2",
                "taxRegistrationNumber": "GB999999973",
                "effectiveFrom": "2021-04-01",
            }
        ]
        subs["3"] = self._subsidiary("3", "Throughline Demo GmbH", "DE", "4", seeded)
        subs["3"]["parent"] = "1"
        self.table("customer")
        self._seed_finance(seeded)
        self.rebuild_index()

    def _seed_finance(self, seeded: str) -> None:
        """Accounting periods, reference data and the lists invoices and expenses use."""
        periods = self.table("accountingperiod")
        for month in range(1, 13):
            last = calendar.monthrange(2026, month)[1]
            closed = month <= 9
            periods[str(month)] = {
                "id": str(month),
                "periodName": f"{calendar.month_abbr[month]} 2026",
                "startDate": date(2026, month, 1).isoformat(),
                "endDate": date(2026, month, last).isoformat(),
                "closed": closed,
                "allLocked": closed,
                "arLocked": closed,
                "apLocked": closed,
                "isQuarter": False,
                "isYear": False,
                "isAdjust": False,
                "isInactive": False,
                "lastModifiedDate": seeded,
            }
        departments = self.table("department")
        for did, name, inactive in (
            ("1", "Delivery", False),
            ("2", "Consulting", False),
            ("3", "Finance", False),
            ("4", "Legacy Operations", True),
        ):
            departments[did] = {
                "id": did,
                "name": name,
                "isInactive": inactive,
                "lastModifiedDate": seeded,
            }
        employees = self.table("employee")
        for eid, first, last, sub, dept, cost, inactive in (
            ("101", "Ava", "Thompson", "1", "1", "95.00", False),
            ("102", "Liam", "Carter", "1", "2", "110.00", False),
            ("103", "Maya", "Patel", "1", "3", "80.00", False),
            ("104", "Oliver", "Hughes", "2", "1", "70.00", False),
            ("105", "Sophie", "Clarke", "2", "2", "85.00", False),
            ("106", "Jonas", "Becker", "3", "1", "78.00", False),
            ("107", "Lena", "Fischer", "3", "2", "92.50", False),
            ("108", "Tom", "Wright", "2", "4", None, True),
        ):
            employees[eid] = {
                "id": eid,
                "entityId": f"{first} {last}",
                "firstName": first,
                "lastName": last,
                "email": f"{first.lower()}.{last.lower()}@throughline-demo.example",
                "subsidiary": sub,
                "department": dept,
                "laborCost": cost,
                "isInactive": inactive,
                "lastModifiedDate": seeded,
            }
        today = utcnow().date()
        rates = self.table("currencyrate")
        rid = 0
        for effective, table in (
            (today, {("1", "2"): "1.27", ("1", "4"): "1.08", ("2", "1"): "0.787402",
                     ("2", "4"): "0.850394", ("4", "1"): "0.925926", ("4", "2"): "1.175926"}),
            (today - timedelta(days=30),
             {("1", "2"): "1.25", ("1", "4"): "1.07", ("2", "1"): "0.8", ("2", "4"): "0.856",
              ("4", "1"): "0.934579", ("4", "2"): "1.168224"}),
        ):  # fmt: skip
            for (base, foreign), rate in table.items():
                rid += 1
                rates[str(rid)] = {
                    "id": str(rid),
                    "baseCurrency": base,
                    "transactionCurrency": foreign,
                    "exchangeRate": rate,
                    "effectiveDate": effective.isoformat(),
                    "lastModifiedDate": seeded,
                }
        items = self.table("servicesaleitem")
        for iid, name in (
            ("1", "Professional Services"),
            ("2", "Milestone Billing"),
            ("3", "Expense Rebill"),
        ):
            items[iid] = {
                "id": iid,
                "itemId": name,
                "displayName": name,
                "isInactive": False,
                "lastModifiedDate": seeded,
            }
        taxes = self.table("salestaxitem")
        for tid, code, rate, country in (
            ("1", "S-GB", "20.00", "GB"),
            ("2", "Z-GB", "0.00", "GB"),
            ("3", "S-DE", "19.00", "DE"),
            ("4", "S-US", "0.00", "US"),
        ):
            taxes[tid] = {
                "id": tid,
                "itemId": code,
                "rate": rate,
                "country": country,
                "isInactive": False,
                "lastModifiedDate": seeded,
            }
        categories = self.table("expensecategory")
        for cid, name in (
            ("1", "Travel"),
            ("2", "Meals"),
            ("3", "Accommodation"),
            ("4", "Mileage"),
            ("5", "Other"),
        ):
            categories[cid] = {
                "id": cid,
                "name": name,
                "isInactive": False,
                "lastModifiedDate": seeded,
            }
        for name in ("job", "invoice", "customerpayment", "timebill", "expensereport"):
            self.table(name)
        self.table(REVENUE_RECORD)
        self.table(MILESTONE_RECORD)
        self.table(ALLOCATION_RECORD)
        self._seed_payables(seeded)

    def _seed_payables(self, seeded: str) -> None:
        """The expense accounts and subcontractor vendors vendor bills use."""
        accounts = self.table("account")
        for aid, number, name, inactive in (
            ("1", "5100", "Subcontractor Costs", False),
            ("2", "5190", "Legacy Subcontracting", True),
        ):
            accounts[aid] = {
                "id": aid,
                "acctNumber": number,
                "acctName": name,
                "acctType": "Expense",
                "isInactive": inactive,
                "lastModifiedDate": seeded,
            }
        vendors = self.table("vendor")
        for vid, name, sub, currency, email in (
            ("301", "Apex Data Consulting", "2", "2", "accounts@apex-data.example"),
            ("302", "Blue Ridge Analytics", "1", "1", "billing@blueridge-analytics.example"),
        ):
            vendors[vid] = {
                "id": vid,
                "externalId": f"TL-VENDOR-{vid}",
                "entityId": f"VEND{vid}",
                "companyName": name,
                "isPerson": False,
                "subsidiary": sub,
                "currency": currency,
                "email": email,
                "expenseAccount": "1",
                "isInactive": False,
                "dateCreated": seeded,
                "lastModifiedDate": seeded,
            }
        self.table(VENDOR_BILL)
        # what purchase orders for subcontracted work order: a "Service for Purchase" item
        self.table(PURCHASE_ITEM)["10"] = {
            "id": "10",
            "itemId": "Subcontracted Services",
            "displayName": "Subcontracted Services",
            "expenseAccount": "1",
            "isInactive": False,
            "lastModifiedDate": seeded,
        }
        self.table(PURCHASE_ORDER)

    @staticmethod
    def _subsidiary(sid: str, name: str, country: str, currency: str, at: str) -> dict[str, Any]:
        return {
            "id": sid,
            "name": name,
            "legalName": name,
            "country": country,
            "currency": currency,
            "isElimination": False,
            "isInactive": False,
            "taxRegistration": [],
            "lastModifiedDate": at,
        }

    # -- ids ----------------------------------------------------------------------------------
    def next_id(self, record_type: str) -> str:
        """The next internal id; entities and transactions each share one sequence. An id
        already taken (an old snapshot, a hand edit) is skipped."""
        with self.lock:
            group = ID_GROUPS.get(record_type, record_type)
            members = [t for t, g in ID_GROUPS.items() if g == group] or [record_type]
            current = self._seq.get(group)
            if current is None:
                numeric = [int(k) for t in members for k in self.table(t) if k.isdigit()]
                current = max(numeric, default=0)
            current += 1
            while any(str(current) in self.table(t) for t in members):
                current += 1
            self._seq[group] = current
            return str(current)

    def next_tran_id(self, record_type: str) -> str:
        """A document number: INV-10001, PYMT-1001, EXP-1001, ..."""
        with self.lock:
            key = f"tranid:{record_type}"
            self._seq[key] = self._seq.get(key, 0) + 1
            return f"{TRAN_PREFIXES.get(record_type, '')}{self._seq[key]}"

    def new_job(self, outcome: Outcome, started: datetime) -> str:
        with self.lock:
            self._job_seq += 1
            while str(self._job_seq) in self.jobs:
                self._job_seq += 1
            job_id = str(self._job_seq)
            self.jobs[job_id] = {
                "id": job_id,
                "outcome": outcome.as_dict(),
                "startTime": iso(started),
                "endTime": iso(utcnow()),
            }
            return job_id

    # -- the index by external id (the bulk RESTlet's hot path never scans a table) ------------
    def rebuild_index(self) -> None:
        with self.lock:
            self.eid_index = {}
            for rtype, records in self.collections.items():
                index = self.eid_index.setdefault(rtype, {})
                for rid, record in records.items():
                    external = record.get("externalId") if isinstance(record, dict) else None
                    if isinstance(external, str) and external:
                        index[external] = rid

    def index_put(self, record_type: str, record: dict[str, Any]) -> None:
        external = record.get("externalId")
        if isinstance(external, str) and external:
            self.eid_index.setdefault(record_type, {})[external] = str(record["id"])

    def index_drop(self, record_type: str, record: dict[str, Any]) -> None:
        external = record.get("externalId")
        index = self.eid_index.get(record_type, {})
        if isinstance(external, str) and index.get(external) == str(record.get("id")):
            del index[external]

    def by_external_id(self, record_type: str, external_id: str) -> dict[str, Any] | None:
        """The record with this external id, through the index (checked against the record,
        so a stale entry is never trusted)."""
        with self.lock:
            rid = self.eid_index.get(record_type, {}).get(external_id)
            if rid is None:
                return None
            record = self.table(record_type).get(rid)
            if record is None or record.get("externalId") != external_id:
                self.eid_index[record_type].pop(external_id, None)
                return None
            return record

    # -- the control surface's record edits (see standins.common) --------------------------
    def stamp_modified(self, name: str, record: dict[str, Any]) -> None:
        if "lastModifiedDate" in record:
            record["lastModifiedDate"] = iso(utcnow())

    def prepare_copy(self, name: str, record: dict[str, Any]) -> str:
        rid = self.next_id(name)
        record["id"] = rid
        if name in ("customer", "job"):  # the entity id is unique: the copy is auto-numbered
            record["entityId"] = f"{'CUST' if name == 'customer' else 'PRJ'}{rid}"
        if name in TRAN_PREFIXES:
            record["tranId"] = self.next_tran_id(name)
        created = CREATED_FIELDS.get(name)
        if created:
            record[created] = iso(utcnow())
        return rid

    def records_changed(
        self, name: str, before: dict[str, Any] | None, after: dict[str, Any] | None
    ) -> None:
        externals = {r.get("externalId") for r in (before, after) if isinstance(r, dict)}
        index = self.eid_index.setdefault(name, {})
        for external in externals:
            if not isinstance(external, str) or not external:
                continue
            holders = [
                rid
                for rid, record in self.table(name).items()
                if isinstance(record, dict) and record.get("externalId") == external
            ]
            if holders:
                index[external] = min(holders, key=_sort_key)
            else:
                index.pop(external, None)
        if name == "accountingperiod":
            self.period_memo = None

    # -- accounting periods -----------------------------------------------------------------
    def period_for(self, day: date) -> tuple[dict[str, Any] | None, bool]:
        """(the period holding `day`, whether posting to it is refused). A date before the
        first period counts as closed, a date after the last or in a gap as open."""
        with self.lock:
            periods = [
                p
                for p in self.table("accountingperiod").values()
                if isinstance(p, dict) and not p.get("isQuarter") and not p.get("isYear")
            ]
        first: date | None = None
        for period in periods:
            start, end = parse_day(period.get("startDate")), parse_day(period.get("endDate"))
            if start is None or end is None:
                continue
            first = start if first is None or start < first else first
            if start <= day <= end:
                return period, bool(period.get("closed") or period.get("allLocked"))
        return None, first is not None and day < first

    def check_period(self, day: date, path: str = "tranDate") -> str | None:
        """The posting period's id for `day`, or raise the closed-period error. Inside a
        RESTlet batch the answer per day is memoised (`period_memo`)."""
        memo = self.period_memo
        if memo is not None and day in memo:
            period, closed = memo[day]
        else:
            period, closed = self.period_for(day)
            if memo is not None:
                memo[day] = (period, closed)
        if closed:
            name = period.get("periodName") if period else f"before {day.isoformat()}"
            raise NsError(
                400, "USER_ERROR", f"{PERIOD_CLOSED} The period {name} is closed.", path=path
            )
        return str(period["id"]) if period else None

    # -- tokens ---------------------------------------------------------------------------------
    def issue_token(self, lifetime: float = 3600.0, scopes: frozenset[str] = frozenset()) -> str:
        """A random token naming the account, so two accounts' tokens never coincide."""
        token = f"{account_host(self.account_id)}.{secrets.token_urlsafe(24)}"
        with self.lock:
            self.tokens[token] = time.time() + lifetime
            self.token_scopes[token] = scopes
        return token

    def token_has_scope(self, token: str | None, scope: str) -> bool:
        if not self.token_valid(token):
            return False
        with self.lock:
            return scope in self.token_scopes.get(str(token), frozenset())

    def revoke_tokens(self) -> None:
        with self.lock:
            self.tokens.clear()
            self.token_scopes.clear()

    # -- persistence ------------------------------------------------------------------------
    def restore(self, data: dict[str, Any]) -> None:
        """Take back a snapshot of this account (another account's is refused)."""
        attrs = data.get("attrs") if isinstance(data, dict) else None
        account = attrs.get("account_id") if isinstance(attrs, dict) else None
        if account is not None and account != self.account_id:
            raise ValueError(f"snapshot of NetSuite account {account}, not {self.account_id}")
        with self.lock:
            super().restore(data)
            self.rebuild_index()

    # -- keys ----------------------------------------------------------------------------------
    def public_key(self, kid: str) -> Any | None:
        """The trusted public key for a certificate id, or None."""
        pem = self.trusted_keys.get(kid)
        if pem is None:
            if not SAFE_KID.fullmatch(kid) or ".." in kid:
                return None
            base = self.keys_dir or os.environ.get("STANDIN_KEYS_DIR", "var/standin-keys")
            path = Path(base) / "netsuite" / f"{kid}.pem"
            if not path.is_file():
                return None
            pem = path.read_text(encoding="utf-8")
        return load_public_key(pem)

    # -- lost responses ------------------------------------------------------------------------
    def take_lost_response(self, method: str, path: str) -> LostResponseRule | None:
        with self.lock:
            for rule in self.lost_rules:
                if rule.matches(method, path):
                    if rule.times is not None:
                        rule.times -= 1
                    return rule
        return None

    def summary(self) -> dict[str, Any]:
        data = super().summary()
        with self.lock:
            data.update(
                {
                    "account_id": self.account_id,
                    "restlet_usage_limit": self.restlet_usage_limit,
                    "concurrency_limit": self.concurrency_limit,
                    "in_flight": self.in_flight,
                    "peak_in_flight": self.peak_in_flight,
                    "rejected_for_concurrency": self.rejected,
                    "jobs": len(self.jobs),
                }
            )
        return data


def load_public_key(pem: str) -> Any | None:
    """A public key from a PEM public key or X.509 certificate; None when unreadable."""
    try:
        raw = pem.encode("utf-8")
        if b"BEGIN CERTIFICATE" in raw:
            return x509.load_pem_x509_certificate(raw).public_key()
        return serialization.load_pem_public_key(raw)
    except (ValueError, TypeError):
        logger.warning("netsuite stand-in: a trusted key could not be read")
        return None


def account_host(account_id: str) -> str:
    """The account's host label: lower case, '_' becomes '-' (1234567_SB1 -> 1234567-sb1)."""
    return account_id.lower().replace("_", "-")


# -- rendering -----------------------------------------------------------------------------------
class Renderer:
    """Turns stored records into NetSuite REST JSON (links, {id, refName} references)."""

    def __init__(self, state: NetSuiteState, base: str) -> None:
        self.state = state
        self.base = base.rstrip("/")

    def url(self, record_type: str, rid: str, *rest: str) -> str:
        tail = "".join(f"/{quote(str(p), safe=':')}" for p in rest)
        return f"{self.base}{RECORD_PREFIX}/{record_type}/{quote(str(rid), safe=':')}{tail}"

    def links(self, href: str) -> list[dict[str, str]]:
        return [{"rel": "self", "href": href}]

    def ref(self, record_type: str, value: Any) -> dict[str, Any] | None:
        rid = ref_id(value)
        if rid is None:
            return None
        jobs, customers = self.state.table("job"), self.state.table("customer")
        if record_type == "job" and rid not in jobs and rid in customers:
            record_type = "customer"  # a "Customer:Project" field naming the customer
        target = self.state.table(record_type).get(rid)
        out: dict[str, Any] = {"links": self.links(self.url(record_type, rid)), "id": rid}
        if target is not None:
            out["refName"] = ref_name(record_type, target)
        return out

    @staticmethod
    def country(value: Any) -> dict[str, str] | None:
        cid = country_id(value)
        if cid is None:
            return None
        return {"id": cid, "refName": COUNTRIES.get(cid, cid)}

    def tax_lines(self, record_type: str, record: dict[str, Any]) -> list[dict[str, Any]]:
        out = []
        for line in sublist_lines(self.state, record, "taxRegistration"):
            item: dict[str, Any] = {"links": [], "id": line["id"]}
            if (c := self.country(line.get("nexusCountry"))) is not None:
                item["nexusCountry"] = c
            if record_type == "subsidiary" and (n := self.ref("nexus", line.get("nexus"))):
                item["nexus"] = n
            for key in ("taxRegistrationNumber", "effectiveFrom", "validUntil", "address"):
                if line.get(key) not in (None, ""):
                    item[key] = line[key]
            out.append(item)
        return out

    def lines(self, record_type: str, record: dict[str, Any], name: str) -> list[dict[str, Any]]:
        """A transaction sublist's lines: `line` numbers, references and numbers rendered."""
        refs = LINE_REFS.get((record_type, name), {})
        numbers = LINE_NUMBERS.get((record_type, name), frozenset())
        out = []
        for line in sublist_lines(self.state, record, name):
            item: dict[str, Any] = {"links": []}
            line_id = str(line["id"])
            item["line"] = int(line_id) if line_id.isdigit() else line_id
            for key, value in line.items():
                if key == "id" or value is None:
                    continue
                if key in refs:
                    rendered = self.ref(refs[key], value)
                    if rendered is not None:
                        item[key] = rendered
                elif key in numbers:
                    item[key] = number_out(value)
                else:
                    item[key] = value
            out.append(item)
        return out

    def sublist(
        self, record_type: str, record: dict[str, Any], name: str, expand: bool
    ) -> dict[str, Any]:
        href = self.url(record_type, record["id"], name)
        if not expand:
            return {"links": self.links(href)}
        if name == "taxRegistration":
            items = self.tax_lines(record_type, record)
        else:
            items = self.lines(record_type, record, name)
        return {
            "links": self.links(href),
            "items": items,
            "totalResults": len(items),
            "count": len(items),
            "hasMore": False,
            "offset": 0,
        }

    def record(
        self, record_type: str, record: dict[str, Any], *, expand: bool = False
    ) -> dict[str, Any]:
        rid = record["id"]
        out: dict[str, Any] = {"links": self.links(self.url(record_type, rid)), "id": rid}
        refs = REFERENCE_FIELDS.get(record_type, {})
        numbers = NUMBER_FIELDS.get(record_type, frozenset())
        sublists = SUBLISTS.get(record_type, ())
        statuses = STATUS_NAMES.get(record_type)
        for key, value in record.items():
            if key == "id" or key in sublists or value is None:
                continue
            if key in refs:
                rendered = self.ref(refs[key], value)
                if rendered is not None:
                    out[key] = rendered
            elif key == "country":
                if (c := self.country(value)) is not None:
                    out[key] = c
            elif key in numbers:
                out[key] = number_out(value)
            elif key == "status" and statuses is not None:
                out[key] = {"id": value, "refName": statuses.get(str(value), str(value))}
            elif (names := LIST_FIELDS.get((record_type, key))) is not None:
                out[key] = {"id": value, "refName": names.get(str(value), str(value))}
            else:
                out[key] = value
        for name in sublists:
            out[name] = self.sublist(record_type, record, name, expand)
        if record_type == "customer":
            lines = sublist_lines(self.state, record, "taxRegistration")
            if lines:
                out["defaultTaxReg"] = {
                    "id": lines[0]["id"],
                    "refName": str(lines[0].get("taxRegistrationNumber") or ""),
                }
        return out


REFERENCE_FIELDS: dict[str, dict[str, str]] = {
    "customer": {"subsidiary": "subsidiary", "currency": "currency", "terms": "term"},
    "subsidiary": {"currency": "currency", "parent": "subsidiary"},
    "currency": {},
    "nexus": {},
    "term": {},
    "employee": {"subsidiary": "subsidiary", "department": "department"},
    "currencyrate": {"baseCurrency": "currency", "transactionCurrency": "currency"},
    "job": {"parent": "customer", "subsidiary": "subsidiary", "currency": "currency"},
    "invoice": {
        "entity": "customer",
        "subsidiary": "subsidiary",
        "currency": "currency",
        "job": "job",
        "terms": "term",
        "postingPeriod": "accountingperiod",
    },
    "customerpayment": {
        "customer": "customer",
        "subsidiary": "subsidiary",
        "currency": "currency",
        "postingPeriod": "accountingperiod",
    },
    "timebill": {"employee": "employee", "customer": "job", "subsidiary": "subsidiary"},
    "expensereport": {
        "entity": "employee",
        "subsidiary": "subsidiary",
        "expenseReportCurrency": "currency",
        "postingPeriod": "accountingperiod",
    },
    MILESTONE_RECORD: {"custrecord_tl_bm_job": "job"},
    ALLOCATION_RECORD: {"allocationResource": "employee", "project": "job"},
    "vendor": {"subsidiary": "subsidiary", "currency": "currency", "expenseAccount": "account"},
    "account": {},
    VENDOR_BILL: {
        "entity": "vendor",
        "subsidiary": "subsidiary",
        "currency": "currency",
        "postingPeriod": "accountingperiod",
        "custbody_tl_po": PURCHASE_ORDER,
    },
    PURCHASE_ITEM: {"expenseAccount": "account"},
    PURCHASE_ORDER: {"entity": "vendor", "subsidiary": "subsidiary", "currency": "currency"},
}
#: select fields whose values come from a fixed list, rendered as {id, refName}
LIST_FIELDS: dict[tuple[str, str], dict[str, str]] = {
    (ALLOCATION_RECORD, "allocationUnit"): ALLOCATION_UNITS,
    (ALLOCATION_RECORD, "allocationType"): ALLOCATION_TYPES,
}
NUMBER_FIELDS: dict[str, frozenset[str]] = {
    "employee": frozenset({"laborCost"}),
    "currencyrate": frozenset({"exchangeRate"}),
    "salestaxitem": frozenset({"rate"}),
    "invoice": frozenset({"subtotal", "taxTotal", "total", "amountPaid", "amountRemaining"}),
    "customerpayment": frozenset({"payment", "total"}),
    "timebill": frozenset({"hours"}),
    "expensereport": frozenset({"total"}),
    REVENUE_RECORD: frozenset({"custrecord_tl_amount"}),
    MILESTONE_RECORD: frozenset({"custrecord_tl_bm_amount"}),
    ALLOCATION_RECORD: frozenset({"allocationAmount"}),
    VENDOR_BILL: frozenset({"total"}),
    PURCHASE_ORDER: frozenset({"total"}),
}
SUBLISTS: dict[str, tuple[str, ...]] = {
    "customer": ("taxRegistration",),
    "subsidiary": ("taxRegistration",),
    "invoice": ("item",),
    "expensereport": ("expense",),
    "customerpayment": ("apply",),
    VENDOR_BILL: ("expense",),
    PURCHASE_ORDER: ("item",),
}
LINE_REFS: dict[tuple[str, str], dict[str, str]] = {
    ("invoice", "item"): {"item": "servicesaleitem", "taxCode": "salestaxitem"},
    ("expensereport", "expense"): {
        "category": "expensecategory",
        "currency": "currency",
        "customer": "job",
    },
    ("customerpayment", "apply"): {"doc": "invoice"},
    (VENDOR_BILL, "expense"): {"account": "account", "customer": "job"},
    (PURCHASE_ORDER, "item"): {"item": PURCHASE_ITEM, "customer": "job"},
}
LINE_NUMBERS: dict[tuple[str, str], frozenset[str]] = {
    ("invoice", "item"): frozenset({"quantity", "rate", "amount", "taxRate1", "tax1Amt"}),
    ("expensereport", "expense"): frozenset({"amount", "foreignAmount"}),
    ("customerpayment", "apply"): frozenset({"amount"}),
    (VENDOR_BILL, "expense"): frozenset({"amount"}),
    (PURCHASE_ORDER, "item"): frozenset({"quantity", "rate", "amount"}),
}


def ref_name(record_type: str, record: dict[str, Any]) -> str:
    if record_type in ("customer", "vendor"):
        return f"{record.get('entityId') or ''} {record.get('companyName') or ''}".strip()
    if record_type == "nexus":
        return str(record.get("description") or record.get("country") or "")
    if record_type == "employee":
        return str(record.get("entityId") or record.get("lastName") or record.get("id"))
    if record_type == "job":
        return f"{record.get('entityId') or ''} {record.get('companyName') or ''}".strip()
    if record_type == "accountingperiod":
        return str(record.get("periodName") or record.get("id"))
    if record_type in ("servicesaleitem", "salestaxitem", PURCHASE_ITEM):
        return str(record.get("itemId") or record.get("id"))
    if record_type in TRAN_PREFIXES:
        return f"#{record.get('tranId') or record.get('id')}"
    if record_type == "account":
        return f"{record.get('acctNumber') or ''} {record.get('acctName') or ''}".strip()
    if record_type == VENDOR_BILL:
        return f"Bill #{record.get('tranId') or record.get('id')}"
    return str(record.get("name") or record.get("id"))


def sublist_lines(state: NetSuiteState, record: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """A stored sublist as a list of line dicts, tolerating hand edits (ids added if missing)."""
    raw = record.get(name)
    if isinstance(raw, dict):
        raw = raw.get("items")
    if not isinstance(raw, list):
        return []
    lines = [dict(line) for line in raw if isinstance(line, dict)]
    used = {str(line["id"]) for line in lines if ref_id(line.get("id"))}
    changed = len(lines) != len(raw) or not isinstance(record.get(name), list)
    next_line = max((int(i) for i in used if i.isdigit()), default=0)
    for line in lines:
        if ref_id(line.get("id")) is None:
            next_line += 1
            line["id"] = str(next_line)
            changed = True
        else:
            line["id"] = str(ref_id(line.get("id")))
    if changed:
        with state.lock:
            record[name] = lines
    return lines


# -- validation of writes ------------------------------------------------------------------------
READ_ONLY = frozenset({"id", "dateCreated", "lastModifiedDate", "defaultTaxReg", "refName"})
CUSTOMER_FIELDS = frozenset(
    {
        "externalId",
        "entityId",
        "companyName",
        "isPerson",
        "subsidiary",
        "currency",
        "email",
        "phone",
        "comments",
        "terms",
        "isInactive",
        "taxRegistration",
    }
)
SUBSIDIARY_FIELDS = frozenset(
    {
        "externalId",
        "name",
        "legalName",
        "country",
        "currency",
        "parent",
        "isElimination",
        "isInactive",
        "federalIdNumber",
        "email",
        "taxRegistration",
    }
)
CUSTOMER_LINE_FIELDS = frozenset({"id", "nexusCountry", "taxRegistrationNumber", "address"})
SUBSIDIARY_LINE_FIELDS = frozenset(
    {"id", "nexusCountry", "nexus", "taxRegistrationNumber", "effectiveFrom", "validUntil"}
)


def _bad(path: str, message: str, code: str = "USER_ERROR") -> NsError:
    return NsError(400, code, message, path=path)


def _string(body: dict[str, Any], key: str, max_len: int, *, path: str | None = None) -> str:
    value = body[key]
    if not isinstance(value, str):
        raise _bad(path or key, f"Invalid value for field {key}: expected a string.")
    if len(value) > max_len:
        raise _bad(
            path or key,
            f"The field {key} contained more than the maximum number ( {max_len} ) of "
            "characters allowed.",
        )
    return value


def _bool(body: dict[str, Any], key: str, path: str | None = None) -> bool:
    value = body[key]
    if not isinstance(value, bool):
        raise _bad(path or key, f"Invalid value for field {key}: expected true or false.")
    return value


def _line_customer_and_flags(
    state: NetSuiteState,
    line: dict[str, Any],
    target: dict[str, Any],
    base: str,
    flags: tuple[str, ...],
) -> None:
    """A sublist line's project (`customer`: a customer or job, or null) and true/false flags."""
    if "customer" in line:
        target["customer"] = (
            None
            if line["customer"] is None
            else _customer_or_project(state, line, "customer", path=f"{base}.customer")
        )
    for flag in flags:
        if flag in line:
            target[flag] = _bool(line, flag, f"{base}.{flag}")


def _reference(
    state: NetSuiteState,
    body: dict[str, Any],
    key: str,
    target: str,
    *,
    path: str | None = None,
    active: bool = False,
) -> str:
    """The internal id of a `{"id": ...}` reference to an existing (and, with `active`, not
    inactive) record of `target`."""
    value = body[key]
    if not isinstance(value, dict) or ref_id(value) is None:
        raise _bad(
            path or key, f'Invalid value for field {key}: expected a reference like {{"id": "1"}}.'
        )
    rid = str(ref_id(value))
    found = state.table(target).get(rid)
    if found is None or (active and found.get("isInactive") is True):
        raise RefError(key, rid, path)
    return rid


def _date(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise _bad(path, f"Invalid date value for {path}: expected YYYY-MM-DD.")
    try:
        return date.fromisoformat(value[:10]).isoformat()
    except ValueError:
        raise _bad(path, f"Invalid date value for {path}: expected YYYY-MM-DD.") from None


def _check_fields(
    body: dict[str, Any],
    allowed: frozenset[str],
    record_type: str,
    read_only: frozenset[str] = frozenset(),
) -> None:
    for key in body:
        if key == "links":
            continue
        if key in READ_ONLY or key in read_only:
            raise _bad(key, f"The field {key} is read-only and cannot be set.")
        if key not in allowed:
            raise _bad(
                key,
                f"Invalid field name {key!r}: the {record_type} record has no such field. "
                "Check the field id in the REST API Browser.",
                code="INVALID_FIELD",
            )


def _merge_lines(
    state: NetSuiteState,
    record_type: str,
    current: dict[str, Any],
    value: Any,
    *,
    replace: bool,
) -> list[dict[str, Any]]:
    if isinstance(value, dict):
        if set(value) - {"items", "links"}:
            raise _bad("taxRegistration", 'A sublist is written as {"items": [...]}.')
        value = value.get("items", [])
    if not isinstance(value, list):
        raise _bad("taxRegistration", 'A sublist is written as {"items": [...]}.')
    allowed = SUBSIDIARY_LINE_FIELDS if record_type == "subsidiary" else CUSTOMER_LINE_FIELDS
    existing = [] if replace else sublist_lines(state, current, "taxRegistration")
    by_id = {line["id"]: line for line in existing}
    next_line = max((int(i) for i in by_id if i.isdigit()), default=0)
    if replace:
        old = sublist_lines(state, current, "taxRegistration")
        next_line = max((int(line["id"]) for line in old if line["id"].isdigit()), default=0)
    result = list(existing)
    for index, line in enumerate(value):
        base = f"taxRegistration.items[{index}]"
        if not isinstance(line, dict):
            raise _bad(base, "A sublist line is a JSON object.")
        for key in line:
            if key != "links" and key not in allowed:
                raise _bad(f"{base}.{key}", f"Invalid sublist field name {key!r}.", "INVALID_FIELD")
        line_id = ref_id(line.get("id"))
        if line_id is not None and not replace:
            if line_id not in by_id:
                raise NsError(
                    400,
                    "NONEXISTENT_ID",
                    f"The sublist line {line_id} does not exist.",
                    path=f"{base}.id",
                )
            target = by_id[line_id]
        else:
            next_line += 1
            target = {"id": str(next_line)}
            result.append(target)
        if "nexusCountry" in line:
            cid = country_id(line["nexusCountry"])
            if cid is None:
                raise _bad(f"{base}.nexusCountry", "Invalid country: use a 2-letter code.")
            target["nexusCountry"] = cid
        if "taxRegistrationNumber" in line:
            number = line["taxRegistrationNumber"]
            if not isinstance(number, str) or not number.strip() or len(number) > 40:
                raise _bad(
                    f"{base}.taxRegistrationNumber",
                    "A tax registration number is a non-empty string of at most 40 characters.",
                )
            target["taxRegistrationNumber"] = number.strip()
        if "address" in line:
            target["address"] = str(line["address"])[:999]
        if record_type == "subsidiary":
            if "nexus" in line:
                nid = ref_id(line["nexus"])
                if nid is None or nid not in state.table("nexus"):
                    raise _bad(f"{base}.nexus", f"Invalid nexus reference key {nid}.")
                target["nexus"] = nid
            for key in ("effectiveFrom", "validUntil"):
                if key in line:
                    target[key] = None if line[key] is None else _date(line[key], f"{base}.{key}")
        if not target.get("nexusCountry"):
            raise _bad(f"{base}.nexusCountry", "Please enter a value for nexusCountry.")
        if not target.get("taxRegistrationNumber"):
            raise _bad(
                f"{base}.taxRegistrationNumber", "Please enter a value for taxRegistrationNumber."
            )
        if record_type == "subsidiary" and not target.get("nexus"):
            nexus = [
                n
                for n in state.table("nexus").values()
                if n.get("country") == target["nexusCountry"]
            ]
            if not nexus:
                raise _bad(
                    f"{base}.nexus",
                    f"No nexus exists for country {target['nexusCountry']}; create it first.",
                )
            target["nexus"] = nexus[0]["id"]
    return result


def apply_customer(
    state: NetSuiteState,
    body: dict[str, Any],
    current: dict[str, Any] | None,
    *,
    replace: frozenset[str],
) -> dict[str, Any]:
    """Validate a customer write and return the full record to store."""
    _check_fields(body, CUSTOMER_FIELDS, "customer")
    record = dict(current or {})
    creating = current is None
    _external_id(body, record)
    if "companyName" in body:
        name = _string(body, "companyName", MAX_NAME)
        if not name.strip():
            raise _bad("companyName", "Please enter a value for Company Name.")
        record["companyName"] = name
    if "entityId" in body:
        entity_id = _string(body, "entityId", MAX_NAME)
        if not entity_id.strip():
            raise _bad("entityId", "Please enter a value for Customer ID.")
        record["entityId"] = entity_id
    if "isPerson" in body and _bool(body, "isPerson"):
        raise _bad("isPerson", "The stand-in supports company customers only (isPerson false).")
    if "subsidiary" in body:
        record["subsidiary"] = _reference(state, body, "subsidiary", "subsidiary")
    if "currency" in body:
        record["currency"] = _reference(state, body, "currency", "currency")
    if "terms" in body:
        record["terms"] = (
            None if body["terms"] is None else _reference(state, body, "terms", "term")
        )
    if "email" in body:
        email = _string(body, "email", 254)
        if email and not EMAIL.fullmatch(email):
            raise _bad("email", "Please enter a valid email address.")
        record["email"] = email or None
    if "phone" in body:
        record["phone"] = _string(body, "phone", 32) or None
    if "comments" in body:
        record["comments"] = _string(body, "comments", 999) or None
    if "isInactive" in body:
        record["isInactive"] = _bool(body, "isInactive")
    if "taxRegistration" in body:
        record["taxRegistration"] = _merge_lines(
            state,
            "customer",
            record,
            body["taxRegistration"],
            replace=creating or "taxRegistration" in replace,
        )
    if not record.get("companyName"):
        raise _bad("companyName", "Please enter a value for Company Name.")
    if not record.get("subsidiary"):
        raise _bad("subsidiary", "Please enter a value for Primary Subsidiary.")
    if not record.get("currency"):
        sub = state.table("subsidiary").get(record["subsidiary"], {})
        record["currency"] = ref_id(sub.get("currency"))
    record.setdefault("isPerson", False)
    record.setdefault("isInactive", False)
    record.setdefault("taxRegistration", [])
    return record


def apply_subsidiary(
    state: NetSuiteState,
    body: dict[str, Any],
    current: dict[str, Any] | None,
    *,
    replace: frozenset[str],
) -> dict[str, Any]:
    """Validate a subsidiary write and return the full record to store."""
    _check_fields(body, SUBSIDIARY_FIELDS, "subsidiary")
    record = dict(current or {})
    creating = current is None
    _external_id(body, record)
    for key in ("name", "legalName"):
        if key in body:
            value = _string(body, key, MAX_NAME)
            if not value.strip():
                raise _bad(key, f"Please enter a value for {key}.")
            record[key] = value
    if "country" in body:
        cid = country_id(body["country"])
        if cid is None:
            raise _bad("country", "Invalid country: use a 2-letter code.")
        record["country"] = cid
    if "currency" in body:
        record["currency"] = _reference(state, body, "currency", "currency")
    if "parent" in body:
        record["parent"] = (
            None if body["parent"] is None else _reference(state, body, "parent", "subsidiary")
        )
    for key in ("isElimination", "isInactive"):
        if key in body:
            record[key] = _bool(body, key)
    for key, limit in (("federalIdNumber", 40), ("email", 254)):
        if key in body:
            record[key] = _string(body, key, limit) or None
    if "taxRegistration" in body:
        record["taxRegistration"] = _merge_lines(
            state,
            "subsidiary",
            record,
            body["taxRegistration"],
            replace=creating or "taxRegistration" in replace,
        )
    for key in ("name", "country", "currency"):
        if not record.get(key):
            raise _bad(key, f"Please enter a value for {key}.")
    record.setdefault("legalName", record["name"])
    record.setdefault("isElimination", False)
    record.setdefault("isInactive", False)
    record.setdefault("taxRegistration", [])
    return record


# -- projects, transactions and custom records -----------------------------------------------
TRAN_READ_ONLY = frozenset(
    {
        "tranId",
        "status",
        "subtotal",
        "taxTotal",
        "total",
        "amountPaid",
        "amountRemaining",
        "createdDate",
    }
)
JOB_FIELDS = frozenset(
    {
        "externalId",
        "entityId",
        "companyName",
        "parent",
        "subsidiary",
        "currency",
        "startDate",
        "projectedEndDate",
        "comments",
        "isInactive",
    }
)
INVOICE_FIELDS = frozenset(
    {
        "externalId",
        "entity",
        "subsidiary",
        "currency",
        "tranDate",
        "dueDate",
        "memo",
        "job",
        "terms",
        "postingPeriod",
        "otherRefNum",
        "item",
    }
)
INVOICE_LINE_FIELDS = frozenset(
    {"links", "line", "id", "item", "description", "quantity", "rate", "amount", "taxCode"}
)
TIMEBILL_FIELDS = frozenset(
    {
        "externalId",
        "employee",
        "customer",
        "subsidiary",
        "tranDate",
        "hours",
        "isBillable",
        "supervisorApproval",
        "memo",
    }
)
EXPENSE_FIELDS = frozenset(
    {
        "externalId",
        "entity",
        "subsidiary",
        "tranDate",
        "memo",
        "expenseReportCurrency",
        "supervisorApproval",
        "accountingApproval",
        "expense",
    }
)
EXPENSE_LINE_FIELDS = frozenset(
    {
        "links",
        "line",
        "id",
        "expenseDate",
        "category",
        "amount",
        "foreignAmount",
        "currency",
        "customer",
        "isBillable",
        "receipt",
        "memo",
    }
)
REVENUE_FIELDS = frozenset(
    {
        "externalId",
        "name",
        "isInactive",
        "custrecord_tl_contract",
        "custrecord_tl_period",
        "custrecord_tl_amount",
        "custrecord_tl_currency",
    }
)
MILESTONE_FIELDS = frozenset(
    {
        "externalId",
        "name",
        "isInactive",
        "custrecord_tl_bm_job",
        "custrecord_tl_bm_date",
        "custrecord_tl_bm_amount",
        "custrecord_tl_bm_currency",
        "custrecord_tl_bm_billable",
        "custrecord_tl_bm_completed",
    }
)
ALLOCATION_FIELDS = frozenset(
    {
        "externalId",
        "allocationResource",
        "project",
        "startDate",
        "endDate",
        "allocationAmount",
        "allocationUnit",
        "allocationType",
        "notes",
    }
)
ISO_CURRENCY = re.compile(r"^[A-Z]{3}$")
DURATION = re.compile(r"^(\d{1,2}):([0-5]\d)$")


def _external_id(body: dict[str, Any], record: dict[str, Any]) -> None:
    if "externalId" in body:
        value = body["externalId"]
        if not isinstance(value, str) or not EXTERNAL_ID.fullmatch(value):
            raise _bad(
                "externalId",
                "An external ID may contain only letters, numbers, underscore and hyphen.",
            )
        record["externalId"] = value


def _number(value: Any, path: str, label: str) -> Decimal:
    number = None
    if not isinstance(value, bool) and isinstance(value, int | Decimal | str | float):
        number = to_decimal(value)
    if number is None:
        raise _bad(path, f"Invalid number for {label}: {value!r}.")
    return number


def _amount(value: Any, path: str, label: str, *, positive: bool = False) -> Decimal:
    number = _number(value, path, label)
    if positive and number <= 0:
        raise _bad(path, f"{label} must be greater than 0.")
    return number.quantize(CENT, rounding=ROUND_HALF_UP)


def _text(body: dict[str, Any], key: str, max_len: int, path: str | None = None) -> str | None:
    if body[key] is None:
        return None
    return _string(body, key, max_len, path=path) or None


def _day_of(record: dict[str, Any], key: str = "tranDate") -> date | None:
    return parse_day(record.get(key))


def _locked_check(state: NetSuiteState, current: dict[str, Any] | None) -> None:
    """An existing transaction in a closed period cannot be edited."""
    if current is not None and (day := _day_of(current)) is not None:
        state.check_period(day)


def _merge_sublist(
    state: NetSuiteState,
    record: dict[str, Any],
    name: str,
    value: Any,
    *,
    replace: bool,
    apply_line: Callable[[NetSuiteState, dict[str, Any], dict[str, Any], str], None],
) -> list[dict[str, Any]]:
    """Merge submitted lines into a sublist: a line naming an existing `line` (or `id`) is
    updated, others are added; `replace` starts from an empty sublist."""
    if isinstance(value, dict):
        if set(value) - {"items", "links"}:
            raise _bad(name, 'A sublist is written as {"items": [...]}.')
        value = value.get("items", [])
    if not isinstance(value, list):
        raise _bad(name, 'A sublist is written as {"items": [...]}.')
    old = sublist_lines(state, record, name)
    result = [] if replace else [dict(line) for line in old]
    by_id = {str(line["id"]): line for line in result}
    next_line = max((int(line["id"]) for line in old if str(line["id"]).isdigit()), default=0)
    for index, line in enumerate(value):
        base = f"{name}.items[{index}]"
        if not isinstance(line, dict):
            raise _bad(base, "A sublist line is a JSON object.")
        line_id = ref_id(line.get("line", line.get("id")))
        if line_id is not None and not replace:
            if line_id not in by_id:
                raise NsError(
                    400,
                    "NONEXISTENT_ID",
                    f"The sublist line {line_id} does not exist.",
                    path=f"{base}.line",
                )
            target = by_id[line_id]
        else:
            next_line += 1
            target = {"id": str(next_line)}
            result.append(target)
        apply_line(state, line, target, base)
    return result


def _line_fields(line: dict[str, Any], allowed: frozenset[str], base: str) -> None:
    for key in line:
        if key not in allowed:
            raise _bad(f"{base}.{key}", f"Invalid sublist field name {key!r}.", "INVALID_FIELD")


def _invoice_line(
    state: NetSuiteState, line: dict[str, Any], target: dict[str, Any], base: str
) -> None:
    _line_fields(line, INVOICE_LINE_FIELDS, base)
    if "item" in line:
        target["item"] = _reference(
            state, line, "item", "servicesaleitem", path=f"{base}.item", active=True
        )
    if "description" in line:
        target["description"] = _text(line, "description", 4000, f"{base}.description")
    if "quantity" in line:
        quantity = _number(line["quantity"], f"{base}.quantity", "quantity")
        if quantity <= 0:
            raise _bad(f"{base}.quantity", "quantity must be greater than 0.")
        target["quantity"] = format(quantity, "f")
    if "rate" in line:
        target["rate"] = format(_number(line["rate"], f"{base}.rate", "rate"), "f")
    if "taxCode" in line:
        target["taxCode"] = (
            None
            if line["taxCode"] is None
            else _reference(state, line, "taxCode", "salestaxitem", path=f"{base}.taxCode")
        )
    quantity = to_decimal(target.get("quantity")) or Decimal(1)
    target["quantity"] = format(quantity, "f")
    if "amount" in line:
        target["amount"] = money_text(_amount(line["amount"], f"{base}.amount", "amount"))
    elif ("rate" in line or "quantity" in line) and (rate := to_decimal(target.get("rate"))):
        target["amount"] = money_text(quantity * rate)
    if not target.get("item"):
        raise _bad(f"{base}.item", "Please enter value(s) for: Item")
    if to_decimal(target.get("amount")) is None:
        raise _bad(f"{base}.amount", "Please enter value(s) for: Amount")


def _tax_country(state: NetSuiteState, subsidiary_id: str) -> str:
    sub = state.table("subsidiary").get(subsidiary_id) or {}
    lines = sublist_lines(state, sub, "taxRegistration")
    country = country_id(lines[0].get("nexusCountry")) if lines else None
    if country is None:
        raise _bad(
            "subsidiary",
            f"Tax cannot be calculated: the subsidiary {sub.get('name') or subsidiary_id} has no "
            "tax registration. Add one on the subsidiary's Tax Registrations subtab.",
        )
    return country


def _compute_invoice(state: NetSuiteState, record: dict[str, Any]) -> None:
    """Line taxes, totals, what is left to pay and the status (Decimal, half up to cents)."""
    default_rate = TAX_RATES.get(_tax_country(state, record["subsidiary"]), Decimal(0))
    subtotal = tax = Decimal(0)
    for line in record["item"]:
        amount = to_decimal(line.get("amount")) or Decimal(0)
        rate = default_rate
        if line.get("taxCode"):
            code = state.table("salestaxitem").get(str(line["taxCode"])) or {}
            rate = to_decimal(code.get("rate")) or Decimal(0)
        line_tax = (amount * rate / 100).quantize(CENT, rounding=ROUND_HALF_UP)
        line["taxRate1"] = format(rate, "f")
        line["tax1Amt"] = money_text(line_tax)
        subtotal += amount
        tax += line_tax
    total = subtotal + tax
    paid = to_decimal(record.get("amountPaid")) or Decimal(0)
    if total < paid:
        raise _bad(
            "item",
            f"The invoice total {money_text(total)} cannot be less than the {money_text(paid)} "
            "already paid.",
        )
    record["subtotal"] = money_text(subtotal)
    record["taxTotal"] = money_text(tax)
    record["total"] = money_text(total)
    record["amountPaid"] = money_text(paid)
    record["amountRemaining"] = money_text(total - paid)
    if record.get("status") != "V":
        record["status"] = "B" if total - paid == 0 else "A"


def apply_job(
    state: NetSuiteState,
    body: dict[str, Any],
    current: dict[str, Any] | None,
    *,
    replace: frozenset[str],
) -> dict[str, Any]:
    """Validate a job (project) write and return the full record to store."""
    _check_fields(body, JOB_FIELDS, "job")
    record = dict(current or {})
    _external_id(body, record)
    for key in ("companyName", "entityId"):
        if key in body:
            value = _string(body, key, MAX_NAME)
            if not value.strip():
                raise _bad(key, f"Please enter a value for {key}.")
            record[key] = value
    if "parent" in body:
        record["parent"] = _reference(state, body, "parent", "customer", active=True)
    if not record.get("parent"):
        raise _bad("parent", "Please enter value(s) for: Customer")
    customer = state.table("customer").get(str(record["parent"])) or {}
    if "subsidiary" in body:
        record["subsidiary"] = _reference(state, body, "subsidiary", "subsidiary")
    record["subsidiary"] = record.get("subsidiary") or ref_id(customer.get("subsidiary"))
    if record["subsidiary"] != ref_id(customer.get("subsidiary")):
        raise _bad(
            "subsidiary",
            "The project's subsidiary must be the customer's subsidiary "
            f"({ref_id(customer.get('subsidiary'))}).",
        )
    if "currency" in body:
        record["currency"] = _reference(state, body, "currency", "currency")
    record["currency"] = record.get("currency") or ref_id(customer.get("currency"))
    for key in ("startDate", "projectedEndDate"):
        if key in body:
            record[key] = None if body[key] is None else _date(body[key], key)
    start, end = _day_of(record, "startDate"), _day_of(record, "projectedEndDate")
    if start and end and end < start:
        raise _bad("projectedEndDate", "The projected end date is before the start date.")
    if "comments" in body:
        record["comments"] = _text(body, "comments", 999)
    if "isInactive" in body:
        record["isInactive"] = _bool(body, "isInactive")
    if not record.get("companyName"):
        raise _bad("companyName", "Please enter value(s) for: Project Name")
    record.setdefault("isInactive", False)
    return record


def apply_invoice(
    state: NetSuiteState,
    body: dict[str, Any],
    current: dict[str, Any] | None,
    *,
    replace: frozenset[str],
) -> dict[str, Any]:
    """Validate an invoice write, compute its tax and totals, return the record to store."""
    _check_fields(body, INVOICE_FIELDS, "invoice", TRAN_READ_ONLY)
    _locked_check(state, current)
    record = dict(current or {})
    creating = current is None
    _external_id(body, record)
    if "entity" in body:
        record["entity"] = _reference(state, body, "entity", "customer", active=True)
    if not record.get("entity"):
        raise _bad("entity", "Please enter value(s) for: Customer")
    customer = state.table("customer").get(str(record["entity"])) or {}
    home = ref_id(customer.get("subsidiary"))
    if "subsidiary" in body:
        record["subsidiary"] = _reference(state, body, "subsidiary", "subsidiary")
    record["subsidiary"] = record.get("subsidiary") or home
    if record["subsidiary"] != home:
        raise _bad(
            "subsidiary",
            f"The customer {ref_name('customer', customer)} is not assigned to subsidiary "
            f"{record['subsidiary']}.",
        )
    if "currency" in body:
        record["currency"] = _reference(state, body, "currency", "currency")
    record["currency"] = record.get("currency") or ref_id(customer.get("currency"))
    if "terms" in body:
        record["terms"] = (
            None if body["terms"] is None else _reference(state, body, "terms", "term")
        )
    elif creating:
        record["terms"] = ref_id(customer.get("terms"))
    if "job" in body:
        record["job"] = None if body["job"] is None else _reference(state, body, "job", "job")
    if record.get("job"):
        job = state.table("job").get(str(record["job"])) or {}
        if ref_id(job.get("parent")) != record["entity"]:
            raise _bad("job", f"The project {record['job']} does not belong to this customer.")
    if "tranDate" in body:
        record["tranDate"] = _date(body["tranDate"], "tranDate")
    day = _day_of(record)
    if day is None:
        raise _bad("tranDate", "Please enter value(s) for: Date")
    period = state.check_period(day)
    if "postingPeriod" in body:
        chosen = _reference(state, body, "postingPeriod", "accountingperiod")
        if chosen != period:
            raise _bad("postingPeriod", PERIOD_CLOSED)
    record["postingPeriod"] = period
    if "dueDate" in body:
        record["dueDate"] = None if body["dueDate"] is None else _date(body["dueDate"], "dueDate")
    if not record.get("dueDate"):
        term = state.table("term").get(str(record.get("terms") or "")) or {}
        days = term.get("daysUntilNetDue")
        offset = days if isinstance(days, int) and not isinstance(days, bool) else 0
        record["dueDate"] = (day + timedelta(days=offset)).isoformat()
    if "memo" in body:
        record["memo"] = _text(body, "memo", 999)
    if "otherRefNum" in body:
        record["otherRefNum"] = _text(body, "otherRefNum", 45)
    if "item" in body:
        record["item"] = _merge_sublist(
            state,
            record,
            "item",
            body["item"],
            replace=creating or "item" in replace,
            apply_line=_invoice_line,
        )
    record["item"] = sublist_lines(state, record, "item")
    if not record["item"]:
        raise _bad("item", "You must enter at least one line item for this transaction.")
    _compute_invoice(state, record)
    return record


def _hours(value: Any, path: str) -> Decimal:
    if isinstance(value, str) and (match := DURATION.fullmatch(value.strip())):
        hours = Decimal(match.group(1)) + (Decimal(match.group(2)) / 60)
        hours = hours.quantize(CENT, rounding=ROUND_HALF_UP)
    else:
        hours = _number(value, path, "hours")
        if hours != hours.quantize(CENT):
            raise _bad(path, "Invalid duration: use hours with at most two decimals, or H:MM.")
    if not 0 < hours <= 24:
        raise _bad(path, "The duration must be more than 0 and at most 24 hours.")
    return hours.quantize(CENT)


def _customer_or_project(
    state: NetSuiteState, body: dict[str, Any], key: str, path: str | None = None
) -> str:
    """NetSuite's "Customer:Project" field: an active project (job) or customer."""
    try:
        return _reference(state, body, key, "job", path=path, active=True)
    except RefError:
        return _reference(state, body, key, "customer", path=path, active=True)


def _employee(state: NetSuiteState, record: dict[str, Any], key: str) -> dict[str, Any]:
    employee = state.table("employee").get(str(record.get(key) or ""))
    if employee is None:
        raise RefError(key, str(record.get(key)))
    return employee


def _own_subsidiary(
    state: NetSuiteState, body: dict[str, Any], record: dict[str, Any], home: str | None
) -> None:
    if "subsidiary" in body:
        record["subsidiary"] = _reference(state, body, "subsidiary", "subsidiary")
    record["subsidiary"] = record.get("subsidiary") or home
    if record["subsidiary"] != home:
        raise RefError("subsidiary", str(record["subsidiary"]))


def apply_timebill(
    state: NetSuiteState,
    body: dict[str, Any],
    current: dict[str, Any] | None,
    *,
    replace: frozenset[str],
) -> dict[str, Any]:
    """Validate a time bill (Track Time) write and return the record to store."""
    _check_fields(body, TIMEBILL_FIELDS, "timeBill", TRAN_READ_ONLY)
    _locked_check(state, current)
    record = dict(current or {})
    _external_id(body, record)
    if "employee" in body:
        record["employee"] = _reference(state, body, "employee", "employee", active=True)
    if not record.get("employee"):
        raise _bad("employee", "Please enter value(s) for: Employee")
    employee = _employee(state, record, "employee")
    if "customer" in body:
        record["customer"] = (
            None if body["customer"] is None else _customer_or_project(state, body, "customer")
        )
    _own_subsidiary(state, body, record, ref_id(employee.get("subsidiary")))
    if "tranDate" in body:
        record["tranDate"] = _date(body["tranDate"], "tranDate")
    day = _day_of(record)
    if day is None:
        raise _bad("tranDate", "Please enter value(s) for: Date")
    state.check_period(day)
    if "hours" in body:
        record["hours"] = format(_hours(body["hours"], "hours"), "f")
    if not record.get("hours"):
        raise _bad("hours", "Please enter value(s) for: Duration")
    for key in ("isBillable", "supervisorApproval"):
        if key in body:
            record[key] = _bool(body, key)
        record.setdefault(key, False)
    if "memo" in body:
        record["memo"] = _text(body, "memo", 4000)
    return record


def _expense_line(
    state: NetSuiteState, line: dict[str, Any], target: dict[str, Any], base: str
) -> None:
    _line_fields(line, EXPENSE_LINE_FIELDS, base)
    if "expenseDate" in line:
        target["expenseDate"] = _date(line["expenseDate"], f"{base}.expenseDate")
    if "category" in line:
        target["category"] = (
            None
            if line["category"] is None
            else _reference(
                state, line, "category", "expensecategory", path=f"{base}.category", active=True
            )
        )
    for key in ("amount", "foreignAmount"):
        if key in line:
            target[key] = money_text(_amount(line[key], f"{base}.{key}", key, positive=True))
    if "currency" in line:
        target["currency"] = _reference(
            state, line, "currency", "currency", path=f"{base}.currency"
        )
    _line_customer_and_flags(state, line, target, base, ("isBillable", "receipt"))
    if "memo" in line:
        target["memo"] = _text(line, "memo", 4000, f"{base}.memo")
    if not target.get("amount"):
        raise _bad(f"{base}.amount", "Please enter value(s) for: Amount")
    target.setdefault("foreignAmount", target["amount"])


def apply_expensereport(
    state: NetSuiteState,
    body: dict[str, Any],
    current: dict[str, Any] | None,
    *,
    replace: frozenset[str],
) -> dict[str, Any]:
    """Validate an expense report write and return the record to store."""
    _check_fields(body, EXPENSE_FIELDS, "expenseReport", TRAN_READ_ONLY)
    _locked_check(state, current)
    record = dict(current or {})
    creating = current is None
    _external_id(body, record)
    if "entity" in body:
        record["entity"] = _reference(state, body, "entity", "employee", active=True)
    if not record.get("entity"):
        raise _bad("entity", "Please enter value(s) for: Employee")
    employee = _employee(state, record, "entity")
    home = ref_id(employee.get("subsidiary"))
    _own_subsidiary(state, body, record, home)
    if "expenseReportCurrency" in body:
        record["expenseReportCurrency"] = _reference(
            state, body, "expenseReportCurrency", "currency"
        )
    sub = state.table("subsidiary").get(str(home)) or {}
    record["expenseReportCurrency"] = record.get("expenseReportCurrency") or ref_id(
        sub.get("currency")
    )
    if "tranDate" in body:
        record["tranDate"] = _date(body["tranDate"], "tranDate")
    day = _day_of(record)
    if day is None:
        raise _bad("tranDate", "Please enter value(s) for: Date")
    record["postingPeriod"] = state.check_period(day)
    if "memo" in body:
        record["memo"] = _text(body, "memo", 4000)
    for key in ("supervisorApproval", "accountingApproval"):
        if key in body:
            record[key] = _bool(body, key)
        record.setdefault(key, False)
    if "expense" in body:
        record["expense"] = _merge_sublist(
            state,
            record,
            "expense",
            body["expense"],
            replace=creating or "expense" in replace,
            apply_line=_expense_line,
        )
    lines = sublist_lines(state, record, "expense")
    if not lines:
        raise _bad("expense", "You must enter at least one line item for this transaction.")
    for line in lines:
        line.setdefault("expenseDate", record["tranDate"])
        line.setdefault("currency", record["expenseReportCurrency"])
        line.setdefault("isBillable", False)
    record["expense"] = lines
    record["total"] = money_text(
        sum((to_decimal(x.get("amount")) or Decimal(0) for x in lines), Decimal(0))
    )
    record["status"] = (
        "F" if record["accountingApproval"] else "C" if record["supervisorApproval"] else "B"
    )
    return record


def _custom_common(body: dict[str, Any], record: dict[str, Any]) -> None:
    _external_id(body, record)
    if "name" in body:
        record["name"] = _text(body, "name", 300)
    if "isInactive" in body:
        record["isInactive"] = _bool(body, "isInactive")
    record.setdefault("isInactive", False)


def _currency_text(body: dict[str, Any], key: str) -> str:
    value = body[key]
    if not isinstance(value, str) or not ISO_CURRENCY.fullmatch(value):
        raise _bad(key, f"Invalid value for field {key}: expected a 3-letter ISO currency code.")
    return value


def _required(record: dict[str, Any], keys: tuple[str, ...]) -> None:
    for key in keys:
        if record.get(key) in (None, ""):
            raise _bad(key, f"Please enter value(s) for: {key}")


def apply_revenue_line(
    state: NetSuiteState,
    body: dict[str, Any],
    current: dict[str, Any] | None,
    *,
    replace: frozenset[str],
) -> dict[str, Any]:
    """A line of Throughline's revenue schedule custom record."""
    _check_fields(body, REVENUE_FIELDS, REVENUE_RECORD)
    record = dict(current or {})
    _custom_common(body, record)
    if "custrecord_tl_contract" in body:
        record["custrecord_tl_contract"] = _text(body, "custrecord_tl_contract", 300)
    if "custrecord_tl_period" in body:
        record["custrecord_tl_period"] = _date(body["custrecord_tl_period"], "custrecord_tl_period")
    if "custrecord_tl_amount" in body:
        record["custrecord_tl_amount"] = money_text(
            _amount(body["custrecord_tl_amount"], "custrecord_tl_amount", "custrecord_tl_amount")
        )
    if "custrecord_tl_currency" in body:
        record["custrecord_tl_currency"] = _currency_text(body, "custrecord_tl_currency")
    _required(
        record,
        (
            "custrecord_tl_contract",
            "custrecord_tl_period",
            "custrecord_tl_amount",
            "custrecord_tl_currency",
        ),
    )
    return record


def apply_billing_milestone(
    state: NetSuiteState,
    body: dict[str, Any],
    current: dict[str, Any] | None,
    *,
    replace: frozenset[str],
) -> dict[str, Any]:
    """A milestone of Throughline's billing plan custom record."""
    _check_fields(body, MILESTONE_FIELDS, MILESTONE_RECORD)
    record = dict(current or {})
    _custom_common(body, record)
    if "custrecord_tl_bm_job" in body:
        record["custrecord_tl_bm_job"] = _reference(state, body, "custrecord_tl_bm_job", "job")
    if "custrecord_tl_bm_date" in body:
        record["custrecord_tl_bm_date"] = _date(
            body["custrecord_tl_bm_date"], "custrecord_tl_bm_date"
        )
    if "custrecord_tl_bm_amount" in body:
        record["custrecord_tl_bm_amount"] = money_text(
            _amount(
                body["custrecord_tl_bm_amount"],
                "custrecord_tl_bm_amount",
                "custrecord_tl_bm_amount",
            )
        )
    if "custrecord_tl_bm_currency" in body:
        record["custrecord_tl_bm_currency"] = _currency_text(body, "custrecord_tl_bm_currency")
    for key in ("custrecord_tl_bm_billable", "custrecord_tl_bm_completed"):
        if key in body:
            record[key] = _bool(body, key)
        record.setdefault(key, key.endswith("billable"))
    _required(
        record,
        (
            "name",
            "custrecord_tl_bm_job",
            "custrecord_tl_bm_date",
            "custrecord_tl_bm_amount",
            "custrecord_tl_bm_currency",
        ),
    )
    return record


def _list_value(body: dict[str, Any], key: str, values: dict[str, str]) -> str:
    """A select field of a fixed list: "H" or {"id": "H"}."""
    value = ref_id(body[key])
    if value is None or value not in values:
        raise _bad(key, f"Invalid value for field {key}: use one of {', '.join(sorted(values))}.")
    return value


def apply_allocation(
    state: NetSuiteState,
    body: dict[str, Any],
    current: dict[str, Any] | None,
    *,
    replace: frozenset[str],
) -> dict[str, Any]:
    """A resource allocation: an active employee reserved for a project (job) between two
    dates, for a number of hours ("H") or a percentage of their time ("P")."""
    _check_fields(body, ALLOCATION_FIELDS, "resourceAllocation")
    record = dict(current or {})
    _external_id(body, record)
    if "allocationResource" in body:
        record["allocationResource"] = _reference(
            state, body, "allocationResource", "employee", active=True
        )
    if "project" in body:
        record["project"] = _reference(state, body, "project", "job")
    for key in ("startDate", "endDate"):
        if key in body:
            record[key] = None if body[key] is None else _date(body[key], key)
    if "allocationAmount" in body:
        amount = _number(body["allocationAmount"], "allocationAmount", "allocationAmount")
        if amount <= 0:
            raise _bad("allocationAmount", "allocationAmount must be greater than 0.")
        if amount != amount.quantize(CENT):
            raise _bad("allocationAmount", "allocationAmount takes at most two decimals.")
        record["allocationAmount"] = money_text(amount)
    if "allocationUnit" in body:
        record["allocationUnit"] = _list_value(body, "allocationUnit", ALLOCATION_UNITS)
    if "allocationType" in body:
        record["allocationType"] = _list_value(body, "allocationType", ALLOCATION_TYPES)
    if "notes" in body:
        record["notes"] = _text(body, "notes", 999)
    for key, label in (
        ("allocationResource", "Resource"),
        ("project", "Project"),
        ("startDate", "Start Date"),
        ("endDate", "End Date"),
        ("allocationAmount", "Allocate"),
        ("allocationType", "Allocation Type"),
    ):
        if record.get(key) in (None, ""):
            raise _bad(key, f"Please enter value(s) for: {label}")
    record.setdefault("allocationUnit", "H")
    start, end = _day_of(record, "startDate"), _day_of(record, "endDate")
    if start and end and end < start:
        raise _bad("endDate", "The end date must be on or after the start date.")
    return record


VENDOR_BILL_FIELDS = frozenset(
    {
        "externalId",
        "entity",
        "subsidiary",
        "currency",
        "tranDate",
        "dueDate",
        "tranId",
        "memo",
        "postingPeriod",
        "expense",
        "custbody_tl_po",
    }
)
#: on a vendor bill `tranId` is the vendor's reference number, typed in (not read-only)
VENDOR_BILL_READ_ONLY = TRAN_READ_ONLY - {"tranId"}
VENDOR_BILL_LINE_FIELDS = frozenset(
    {"links", "line", "id", "account", "amount", "memo", "customer", "isBillable"}
)


def _payables_period(state: NetSuiteState, day: date, path: str = "tranDate") -> str | None:
    """The posting period of a payables transaction dated `day`: refused when closed (as any
    transaction) or locked for Accounts Payable (`apLocked`)."""
    period_id = state.check_period(day, path)
    period = state.table("accountingperiod").get(str(period_id)) if period_id else None
    if period is not None and period.get("apLocked") is True:
        raise _bad(
            path, f"{PERIOD_CLOSED} The period {period.get('periodName')} is locked for A/P."
        )
    return period_id


def _vendor_bill_line(
    state: NetSuiteState, line: dict[str, Any], target: dict[str, Any], base: str
) -> None:
    _line_fields(line, VENDOR_BILL_LINE_FIELDS, base)
    if "account" in line:
        target["account"] = (
            None
            if line["account"] is None
            else _reference(state, line, "account", "account", path=f"{base}.account", active=True)
        )
    if "amount" in line:
        target["amount"] = money_text(
            _amount(line["amount"], f"{base}.amount", "amount", positive=True)
        )
    if "memo" in line:
        target["memo"] = _text(line, "memo", 4000, f"{base}.memo")
    _line_customer_and_flags(state, line, target, base, ("isBillable",))
    if not target.get("amount"):
        raise _bad(f"{base}.amount", "Please enter value(s) for: Amount")
    if target.get("isBillable") and not target.get("customer"):
        raise _bad(f"{base}.customer", "Please enter value(s) for: Customer")


def _vendor_header(
    state: NetSuiteState, body: dict[str, Any], record: dict[str, Any]
) -> dict[str, Any]:
    """A payables transaction's vendor (`entity`, active), and the subsidiary and currency,
    which must be the vendor's own (as NetSuite refuses otherwise); returns the vendor."""
    if "entity" in body:
        record["entity"] = _reference(state, body, "entity", "vendor", active=True)
    if not record.get("entity"):
        raise _bad("entity", "Please enter value(s) for: Vendor")
    vendor = state.table("vendor").get(str(record["entity"])) or {}
    home = ref_id(vendor.get("subsidiary"))
    if "subsidiary" in body:
        record["subsidiary"] = _reference(state, body, "subsidiary", "subsidiary")
    record["subsidiary"] = record.get("subsidiary") or home
    if record["subsidiary"] != home:
        raise _bad(
            "subsidiary",
            f"The vendor {ref_name('vendor', vendor)} is not assigned to subsidiary "
            f"{record['subsidiary']}.",
        )
    if "currency" in body:
        record["currency"] = _reference(state, body, "currency", "currency")
    own_currency = ref_id(vendor.get("currency"))
    record["currency"] = record.get("currency") or own_currency
    if record["currency"] != own_currency:
        raise _bad(
            "currency",
            f"Invalid currency reference key {record['currency']} for entity "
            f"{record['entity']}: the vendor is billed in currency {own_currency}.",
        )

    return vendor


def apply_vendorbill(
    state: NetSuiteState,
    body: dict[str, Any],
    current: dict[str, Any] | None,
    *,
    replace: frozenset[str],
) -> dict[str, Any]:
    """Validate a vendor bill write (a payable to a vendor, its costs charged to projects on
    the `expense` lines), compute its total and return the record to store."""
    _check_fields(body, VENDOR_BILL_FIELDS, "vendorBill", VENDOR_BILL_READ_ONLY)
    if current is not None and (booked := _day_of(current)) is not None:
        _payables_period(state, booked)  # a bill in a closed or A/P-locked period stays put
    record = dict(current or {})
    creating = current is None
    _external_id(body, record)
    vendor = _vendor_header(state, body, record)
    if "tranDate" in body:
        record["tranDate"] = _date(body["tranDate"], "tranDate")
    day = _day_of(record)
    if day is None:
        raise _bad("tranDate", "Please enter value(s) for: Date")
    period = _payables_period(state, day)
    if "postingPeriod" in body:
        chosen = _reference(state, body, "postingPeriod", "accountingperiod")
        if chosen != period:
            raise _bad("postingPeriod", PERIOD_CLOSED)
    record["postingPeriod"] = period
    if "dueDate" in body:
        record["dueDate"] = None if body["dueDate"] is None else _date(body["dueDate"], "dueDate")
    record["dueDate"] = record.get("dueDate") or day.isoformat()
    if "tranId" in body:
        record["tranId"] = _text(body, "tranId", 45)
    if "memo" in body:
        record["memo"] = _text(body, "memo", 999)
    if "custbody_tl_po" in body:  # the firm's custom field: the purchase order billed against
        record["custbody_tl_po"] = (
            None
            if body["custbody_tl_po"] is None
            else _reference(state, body, "custbody_tl_po", PURCHASE_ORDER)
        )
    if "expense" in body:
        record["expense"] = _merge_sublist(
            state,
            record,
            "expense",
            body["expense"],
            replace=creating or "expense" in replace,
            apply_line=_vendor_bill_line,
        )
    lines = sublist_lines(state, record, "expense")
    if not lines:
        raise _bad("expense", "You must enter at least one line item for this transaction.")
    default_account = ref_id(vendor.get("expenseAccount"))
    for index, line in enumerate(lines):
        if not line.get("account"):
            if default_account is None:
                raise _bad(f"expense.items[{index}].account", "Please enter value(s) for: Account")
            line["account"] = default_account
        line.setdefault("isBillable", False)
    record["expense"] = lines
    record["total"] = money_text(
        sum((to_decimal(x.get("amount")) or Decimal(0) for x in lines), Decimal(0))
    )
    record.setdefault("status", "A")
    return record


PURCHASE_ORDER_FIELDS = frozenset(
    {"externalId", "entity", "subsidiary", "currency", "tranDate", "dueDate", "memo", "item"}
)
PURCHASE_ORDER_LINE_FIELDS = frozenset(
    {
        "links",
        "line",
        "id",
        "item",
        "description",
        "quantity",
        "rate",
        "amount",
        "customer",
        "isBillable",
        "isClosed",
    }
)


def _purchase_order_line(
    state: NetSuiteState, line: dict[str, Any], target: dict[str, Any], base: str
) -> None:
    _line_fields(line, PURCHASE_ORDER_LINE_FIELDS, base)
    if "item" in line:
        target["item"] = _reference(
            state, line, "item", PURCHASE_ITEM, path=f"{base}.item", active=True
        )
    if "description" in line:
        target["description"] = _text(line, "description", 4000, f"{base}.description")
    if "quantity" in line:
        quantity = _number(line["quantity"], f"{base}.quantity", "quantity")
        if quantity <= 0:
            raise _bad(f"{base}.quantity", "quantity must be greater than 0.")
        target["quantity"] = format(quantity, "f")
    if "rate" in line:
        rate = _number(line["rate"], f"{base}.rate", "rate")
        if rate < 0:
            raise _bad(f"{base}.rate", "rate cannot be negative.")
        target["rate"] = format(rate, "f")
    quantity = to_decimal(target.get("quantity")) or Decimal(1)
    target["quantity"] = format(quantity, "f")
    if "amount" in line:
        target["amount"] = money_text(_amount(line["amount"], f"{base}.amount", "amount"))
    elif ("rate" in line or "quantity" in line) and (rate := to_decimal(target.get("rate"))):
        target["amount"] = money_text(quantity * rate)
    _line_customer_and_flags(state, line, target, base, ("isBillable", "isClosed"))
    if not target.get("item"):
        raise _bad(f"{base}.item", "Please enter value(s) for: Item")
    if to_decimal(target.get("amount")) is None:
        raise _bad(f"{base}.amount", "Please enter value(s) for: Amount")
    if target.get("isBillable") and not target.get("customer"):
        raise _bad(f"{base}.customer", "Please enter value(s) for: Customer")


def apply_purchaseorder(
    state: NetSuiteState,
    body: dict[str, Any],
    current: dict[str, Any] | None,
    *,
    replace: frozenset[str],
) -> dict[str, Any]:
    """Validate a purchase order write (goods or services ordered from a vendor; here the
    hours of a subcontractor, each `item` line for the project in `customer`), compute its
    total and status and return the record to store. A purchase order is a non-posting
    transaction: it has no posting period and is not refused in a closed period."""
    _check_fields(body, PURCHASE_ORDER_FIELDS, "purchaseOrder", TRAN_READ_ONLY)
    record = dict(current or {})
    creating = current is None
    _external_id(body, record)
    _vendor_header(state, body, record)
    if "tranDate" in body:
        record["tranDate"] = _date(body["tranDate"], "tranDate")
    day = _day_of(record)
    if day is None:
        raise _bad("tranDate", "Please enter value(s) for: Date")
    if "dueDate" in body:
        record["dueDate"] = None if body["dueDate"] is None else _date(body["dueDate"], "dueDate")
    if "memo" in body:
        record["memo"] = _text(body, "memo", 999)
    if "item" in body:
        record["item"] = _merge_sublist(
            state,
            record,
            "item",
            body["item"],
            replace=creating or "item" in replace,
            apply_line=_purchase_order_line,
        )
    lines = sublist_lines(state, record, "item")
    if not lines:
        raise _bad("item", "You must enter at least one line item for this transaction.")
    for line in lines:
        line.setdefault("isClosed", False)
        line.setdefault("isBillable", False)
    record["item"] = lines
    record["total"] = money_text(
        sum((to_decimal(x.get("amount")) or Decimal(0) for x in lines), Decimal(0))
    )
    record["status"] = "H" if all(x.get("isClosed") for x in lines) else "B"
    return record


APPLY: dict[str, Callable[..., dict[str, Any]]] = {
    "customer": apply_customer,
    "subsidiary": apply_subsidiary,
    "job": apply_job,
    "invoice": apply_invoice,
    "timebill": apply_timebill,
    "expensereport": apply_expensereport,
    REVENUE_RECORD: apply_revenue_line,
    MILESTONE_RECORD: apply_billing_milestone,
    ALLOCATION_RECORD: apply_allocation,
    VENDOR_BILL: apply_vendorbill,
    PURCHASE_ORDER: apply_purchaseorder,
}


# -- SuiteQL -----------------------------------------------------------------------------------
SUITEQL_COLUMNS: dict[str, dict[str, str]] = {
    "customer": {
        "id": "id",
        "entityid": "entityId",
        "companyname": "companyName",
        "email": "email",
        "phone": "phone",
        "comments": "comments",
        "externalid": "externalId",
        "subsidiary": "subsidiary",
        "currency": "currency",
        "terms": "terms",
        "isinactive": "isInactive",
        "isperson": "isPerson",
        "datecreated": "dateCreated",
        "lastmodifieddate": "lastModifiedDate",
    },
    "subsidiary": {
        "id": "id",
        "name": "name",
        "legalname": "legalName",
        "country": "country",
        "currency": "currency",
        "parent": "parent",
        "iselimination": "isElimination",
        "isinactive": "isInactive",
        "federalidnumber": "federalIdNumber",
        "externalid": "externalId",
        "lastmodifieddate": "lastModifiedDate",
    },
    "currency": {
        "id": "id",
        "name": "name",
        "symbol": "symbol",
        "displaysymbol": "displaySymbol",
        "isbasecurrency": "isBaseCurrency",
        "isinactive": "isInactive",
        "lastmodifieddate": "lastModifiedDate",
    },
}
SUITEQL_COLUMNS.update(
    {
        "employee": {
            "id": "id",
            "entityid": "entityId",
            "firstname": "firstName",
            "lastname": "lastName",
            "email": "email",
            "subsidiary": "subsidiary",
            "department": "department",
            "laborcost": "laborCost",
            "isinactive": "isInactive",
            "externalid": "externalId",
            "lastmodifieddate": "lastModifiedDate",
        },
        "department": {
            "id": "id",
            "name": "name",
            "isinactive": "isInactive",
            "externalid": "externalId",
            "lastmodifieddate": "lastModifiedDate",
        },
        "currencyrate": {
            "id": "id",
            "basecurrency": "baseCurrency",
            "transactioncurrency": "transactionCurrency",
            "exchangerate": "exchangeRate",
            "effectivedate": "effectiveDate",
            "lastmodifieddate": "lastModifiedDate",
        },
        "accountingperiod": {
            "id": "id",
            "periodname": "periodName",
            "startdate": "startDate",
            "enddate": "endDate",
            "closed": "closed",
            "alllocked": "allLocked",
            "arlocked": "arLocked",
            "aplocked": "apLocked",
            "isquarter": "isQuarter",
            "isyear": "isYear",
            "isadjust": "isAdjust",
        },
        "job": {
            "id": "id",
            "entityid": "entityId",
            "companyname": "companyName",
            "parent": "parent",
            "customer": "parent",
            "subsidiary": "subsidiary",
            "currency": "currency",
            "startdate": "startDate",
            "projectedenddate": "projectedEndDate",
            "isinactive": "isInactive",
            "externalid": "externalId",
            "datecreated": "dateCreated",
            "lastmodifieddate": "lastModifiedDate",
        },
        "transaction": {
            "id": "id",
            "tranid": "tranId",
            "type": "_type",
            "recordtype": "_recordtype",
            "status": "status",
            "entity": "_entity",
            "subsidiary": "subsidiary",
            "currency": "_currency",
            "trandate": "tranDate",
            "duedate": "dueDate",
            "postingperiod": "postingPeriod",
            "memo": "memo",
            "externalid": "externalId",
            "foreigntotal": "total",
            "taxtotal": "taxTotal",
            "foreignamountremaining": "amountRemaining",
            "foreignamountpaid": "amountPaid",
            "createddate": "createdDate",
            "lastmodifieddate": "lastModifiedDate",
        },
        "timebill": {
            "id": "id",
            "externalid": "externalId",
            "employee": "employee",
            "customer": "customer",
            "subsidiary": "subsidiary",
            "trandate": "tranDate",
            "hours": "hours",
            "isbillable": "isBillable",
            "supervisorapproval": "supervisorApproval",
            "memo": "memo",
            "lastmodifieddate": "lastModifiedDate",
        },
        REVENUE_RECORD: {
            "id": "id",
            "externalid": "externalId",
            "name": "name",
            "isinactive": "isInactive",
            "custrecord_tl_contract": "custrecord_tl_contract",
            "custrecord_tl_period": "custrecord_tl_period",
            "custrecord_tl_amount": "custrecord_tl_amount",
            "custrecord_tl_currency": "custrecord_tl_currency",
            "lastmodified": "lastModifiedDate",
        },
        MILESTONE_RECORD: {
            "id": "id",
            "externalid": "externalId",
            "name": "name",
            "isinactive": "isInactive",
            "custrecord_tl_bm_job": "custrecord_tl_bm_job",
            "custrecord_tl_bm_date": "custrecord_tl_bm_date",
            "custrecord_tl_bm_amount": "custrecord_tl_bm_amount",
            "custrecord_tl_bm_currency": "custrecord_tl_bm_currency",
            "custrecord_tl_bm_billable": "custrecord_tl_bm_billable",
            "custrecord_tl_bm_completed": "custrecord_tl_bm_completed",
            "lastmodified": "lastModifiedDate",
        },
        "vendor": {
            "id": "id",
            "entityid": "entityId",
            "companyname": "companyName",
            "email": "email",
            "subsidiary": "subsidiary",
            "currency": "currency",
            "expenseaccount": "expenseAccount",
            "isinactive": "isInactive",
            "isperson": "isPerson",
            "externalid": "externalId",
            "datecreated": "dateCreated",
            "lastmodifieddate": "lastModifiedDate",
        },
        ALLOCATION_RECORD: {
            "id": "id",
            "externalid": "externalId",
            "allocationresource": "allocationResource",
            "project": "project",
            "startdate": "startDate",
            "enddate": "endDate",
            "allocationamount": "allocationAmount",
            "allocationunit": "allocationUnit",
            "allocationtype": "allocationType",
            "notes": "notes",
            "datecreated": "dateCreated",
            "lastmodifieddate": "lastModifiedDate",
        },
    }
)
#: the `transaction` table: (record type, SuiteQL type code)
TRANSACTION_SOURCES = (
    ("invoice", "CustInvc"),
    ("customerpayment", "CustPymt"),
    ("expensereport", "ExpRept"),
    (VENDOR_BILL, "VendBill"),
    (PURCHASE_ORDER, "PurchOrd"),
)
DATETIME_COLUMNS = frozenset({"datecreated", "lastmodifieddate", "createddate", "lastmodified"})
DATE_COLUMNS = frozenset(
    {
        "trandate",
        "duedate",
        "startdate",
        "enddate",
        "projectedenddate",
        "effectivedate",
        "custrecord_tl_period",
        "custrecord_tl_bm_date",
    }
)
NUMBER_COLUMNS = frozenset(
    {
        "laborcost",
        "exchangerate",
        "foreigntotal",
        "taxtotal",
        "foreignamountremaining",
        "foreignamountpaid",
        "hours",
        "custrecord_tl_amount",
        "custrecord_tl_bm_amount",
        "allocationamount",
    }
)


def _suiteql_records(state: NetSuiteState, table: str) -> list[dict[str, Any]]:
    """The rows behind a table (copies), the `transaction` table merged from its types."""
    with state.lock:
        if table != "transaction":
            return [dict(r) for r in state.table(table).values() if isinstance(r, dict)]
        rows = []
        for rtype, code in TRANSACTION_SOURCES:
            for record in state.table(rtype).values():
                if not isinstance(record, dict):
                    continue
                row = dict(record, _type=code, _recordtype=rtype)
                row["_entity"] = record.get("customer" if rtype == "customerpayment" else "entity")
                row["_currency"] = record.get(
                    "expenseReportCurrency" if rtype == "expensereport" else "currency"
                )
                rows.append(row)
        return rows


_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>-?\d+(?:\.\d+)?)|(?P<op><=|>=|<>|!=|=|<|>)"
    r"|(?P<punct>[(),*])|(?P<word>[A-Za-z_][A-Za-z0-9_]*))"
)


class SuiteQLError(NsError):
    def __init__(self, message: str) -> None:
        super().__init__(
            400,
            "INVALID_PARAMETER",
            f"Invalid search query. Detailed unprocessed description follows. {message}",
            path="q",
        )


def _tokens(query: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    text = query.rstrip().rstrip(";")
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise SuiteQLError(f"Unexpected text at position {pos}: {text[pos : pos + 20]!r}.")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    return tokens


def _oracle_format(fmt: str) -> str:
    """Translate an Oracle datetime format (YYYY-MM-DD HH24:MI:SS) to strftime."""
    out = fmt.replace('"T"', "T")
    for oracle, py in (
        ("YYYY", "%Y"),
        ("HH24", "%H"),
        ("MM", "%m"),
        ("DD", "%d"),
        ("MI", "%M"),
        ("SS", "%S"),
    ):
        out = out.replace(oracle, py)
    return out


@dataclass
class _Select:
    expr: tuple[str, ...]  # ("col", name) or ("to_char", name, fmt)
    alias: str


@dataclass
class _Cond:
    left: tuple[Any, ...]
    op: str
    right: tuple[Any, ...]


@dataclass
class _Query:
    table: str
    columns: list[_Select] | None
    where: list[_Cond]
    order: list[tuple[str, bool]]


class _Parser:
    def __init__(self, query: str) -> None:
        self.tokens = _tokens(query)
        self.pos = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def word(self, *expected: str) -> bool:
        tok = self.peek()
        if tok and tok[0] == "word" and tok[1].upper() in expected:
            self.pos += 1
            return True
        return False

    def expect_word(self, expected: str) -> None:
        if not self.word(expected):
            raise SuiteQLError(f"Expected {expected}.")

    def punct(self, char: str) -> bool:
        tok = self.peek()
        if tok and tok[0] == "punct" and tok[1] == char:
            self.pos += 1
            return True
        return False

    def expect_punct(self, char: str) -> None:
        if not self.punct(char):
            raise SuiteQLError(f"Expected {char!r}.")

    def name(self) -> str:
        tok = self.peek()
        if not tok or tok[0] != "word":
            raise SuiteQLError("Expected a column name.")
        self.pos += 1
        return tok[1].lower()

    def string(self) -> str:
        tok = self.peek()
        if not tok or tok[0] != "str":
            raise SuiteQLError("Expected a quoted string.")
        self.pos += 1
        return tok[1][1:-1].replace("''", "'")

    def parse(self) -> _Query:
        self.expect_word("SELECT")
        columns: list[_Select] | None
        if self.punct("*"):
            columns = None
        else:
            columns = [self.select_item()]
            while self.punct(","):
                columns.append(self.select_item())
        self.expect_word("FROM")
        table = self.name()
        if table not in SUITEQL_COLUMNS:
            raise SuiteQLError(
                f"Table {table!r} is not available in the stand-in ("
                + ", ".join(sorted(SUITEQL_COLUMNS))
                + ")."
            )
        tok = self.peek()
        if tok and tok[0] == "word" and tok[1].upper() not in ("WHERE", "ORDER"):
            self.pos += 1  # a table alias
        where: list[_Cond] = []
        if self.word("WHERE"):
            where.append(self.condition())
            while self.word("AND"):
                where.append(self.condition())
            if self.word("OR"):
                raise SuiteQLError("The stand-in's SuiteQL subset supports AND only.")
        order: list[tuple[str, bool]] = []
        if self.word("ORDER"):
            self.expect_word("BY")
            order.append(self.order_item())
            while self.punct(","):
                order.append(self.order_item())
        if self.peek() is not None:
            raise SuiteQLError(
                f"Unsupported syntax near {self.tokens[self.pos][1]!r} (the stand-in supports "
                "SELECT, FROM one table, WHERE with AND, ORDER BY)."
            )
        return _Query(table, columns, where, order)

    def select_item(self) -> _Select:
        if self.word("TO_CHAR"):
            self.expect_punct("(")
            col = self.column_name()
            self.expect_punct(",")
            fmt = self.string()
            self.expect_punct(")")
            expr: tuple[str, ...] = ("to_char", col, fmt)
            alias = col
        else:
            col = self.column_name()
            expr, alias = ("col", col), col
        if self.word("AS"):
            alias = self.name()
        else:
            tok = self.peek()
            if tok and tok[0] == "word" and tok[1].upper() not in ("FROM",):
                alias = self.name()
        return _Select(expr, alias.lower())

    def column_name(self) -> str:
        name = self.name()
        if self.peek() == ("punct", "(") or name.upper() in ("SELECT", "FROM", "WHERE"):
            raise SuiteQLError(f"Unsupported expression {name!r}.")
        return name.split(".")[-1]

    def operand(self) -> tuple[Any, ...]:
        tok = self.peek()
        if tok is None:
            raise SuiteQLError("Unexpected end of query.")
        kind, value = tok
        if kind == "str":
            return ("lit", self.string())
        if kind == "num":
            self.pos += 1
            return ("lit", float(value) if "." in value else int(value))
        if kind == "word" and value.upper() in ("TO_TIMESTAMP", "TO_DATE"):
            self.pos += 1
            self.expect_punct("(")
            text = self.string()
            fmt = "YYYY-MM-DD HH24:MI:SS" if value.upper() == "TO_TIMESTAMP" else "YYYY-MM-DD"
            if self.punct(","):
                fmt = self.string()
            self.expect_punct(")")
            try:
                parsed = datetime.strptime(text, _oracle_format(fmt)).replace(tzinfo=UTC)
            except ValueError:
                raise SuiteQLError(f"{value.upper()}({text!r}, {fmt!r}) does not parse.") from None
            return ("lit", parsed)
        if kind == "word":
            return ("col", self.column_name())
        raise SuiteQLError(f"Unexpected {value!r}.")

    def condition(self) -> _Cond:
        left = self.operand()
        if self.word("IS"):
            negate = self.word("NOT")
            self.expect_word("NULL")
            return _Cond(left, "IS NOT NULL" if negate else "IS NULL", ("lit", None))
        negate = self.word("NOT")
        if self.word("IN"):
            self.expect_punct("(")
            items = [self.operand()]
            while self.punct(","):
                items.append(self.operand())
            self.expect_punct(")")
            if any(item[0] != "lit" for item in items):
                raise SuiteQLError("IN (...) takes literal values only in the stand-in.")
            return _Cond(left, "NOT IN" if negate else "IN", ("list", items))
        if negate:
            raise SuiteQLError("Expected IN after NOT.")
        tok = self.peek()
        if not tok or tok[0] != "op":
            raise SuiteQLError("Expected a comparison operator.")
        self.pos += 1
        return _Cond(left, tok[1], self.operand())

    def order_item(self) -> tuple[str, bool]:
        name = self.column_name()
        descending = False
        if self.word("DESC"):
            descending = True
        else:
            self.word("ASC")
        return name, descending


def _suiteql_value(table: str, column: str, record: dict[str, Any]) -> Any:
    source = SUITEQL_COLUMNS[table].get(column)
    if source is None:
        raise SuiteQLError(f"Field {column!r} for record {table!r} was not found.")
    value = record.get(source)
    if column in DATETIME_COLUMNS:
        return parse_iso(value)
    if column in DATE_COLUMNS:
        day = parse_day(value)
        return datetime(day.year, day.month, day.day, tzinfo=UTC) if day else None
    if column in NUMBER_COLUMNS and isinstance(value, str):
        number = to_decimal(value)
        return float(number) if number is not None else None
    if isinstance(value, bool):
        return "T" if value else "F"
    if isinstance(value, dict):
        value = value.get("id")
    if value is None or value == "":
        return None
    return str(value) if not isinstance(value, int | float) else value


def _comparable(left: Any, right: Any) -> tuple[Any, Any] | None:
    if left is None or right is None:
        return None
    if isinstance(left, datetime) or isinstance(right, datetime):
        if isinstance(left, datetime) and isinstance(right, datetime):
            return left, right
        raise SuiteQLError("Compare date columns with TO_TIMESTAMP or TO_DATE values.")
    try:
        if isinstance(left, int | float) or isinstance(right, int | float):
            return float(left), float(right)
    except (TypeError, ValueError):
        return str(left), str(right)
    return str(left), str(right)


def _matches(table: str, cond: _Cond, record: dict[str, Any]) -> bool:
    def value(operand: tuple[Any, ...]) -> Any:
        if operand[0] == "col":
            return _suiteql_value(table, operand[1], record)
        return operand[1]

    left = value(cond.left)
    if cond.op == "IS NULL":
        return left is None
    if cond.op == "IS NOT NULL":
        return left is not None
    if cond.op in ("IN", "NOT IN"):
        pairs = [_comparable(left, value(item)) for item in cond.right[1]]
        if cond.op == "IN":
            return any(p is not None and p[0] == p[1] for p in pairs)
        return all(p is not None and p[0] != p[1] for p in pairs)  # NULL NOT IN (...) is false
    pair = _comparable(left, value(cond.right))
    if pair is None:
        return False
    a, b = pair
    return {
        "=": a == b,
        "!=": a != b,
        "<>": a != b,
        "<": a < b,
        "<=": a <= b,
        ">": a > b,
        ">=": a >= b,
    }[cond.op]


def _display(value: Any) -> Any:
    if isinstance(value, datetime):
        return f"{value.month}/{value.day}/{value.year}"
    return value


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (2, "")
    if isinstance(value, datetime):
        return (0, value.timestamp())
    if isinstance(value, int | float):
        return (0, float(value))
    text = str(value)
    if re.fullmatch(r"-?\d+(\.\d+)?", text):
        return (0, float(text))
    return (1, text)


def run_suiteql(state: NetSuiteState, query: str) -> list[dict[str, Any]]:
    """Run the supported SuiteQL subset and return the rows (without paging).

    Supported: SELECT * | col [AS alias] | TO_CHAR(col, 'fmt') [AS alias], ...; FROM one table of
    SUITEQL_COLUMNS [alias]; WHERE cond AND cond ...; cond = operand op operand,
    col IS [NOT] NULL or operand [NOT] IN (literal, ...), op in = != <> < <= > >=,
    operand = column, 'string', number,
    TO_TIMESTAMP('...', 'YYYY-MM-DD HH24:MI:SS') or TO_DATE('...', 'YYYY-MM-DD') (read as UTC);
    ORDER BY col [ASC|DESC], ... (default: by id). Anything else is a 400 INVALID_PARAMETER.
    """
    parsed = _Parser(query).parse()
    table = parsed.table
    records = _suiteql_records(state, table)
    rows = [r for r in records if all(_matches(table, c, r) for c in parsed.where)]
    columns = parsed.columns or [_Select(("col", name), name) for name in SUITEQL_COLUMNS[table]]
    out: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for record in rows:
        item: dict[str, Any] = {}
        for col in columns:
            raw = _suiteql_value(table, col.expr[1], record)
            if col.expr[0] == "to_char" and raw is not None:
                if isinstance(raw, datetime):
                    raw = raw.strftime(_oracle_format(col.expr[2]))
                else:
                    raw = str(raw)
            else:
                raw = _display(raw)
            if raw is not None:
                item[col.alias] = raw
        out.append((item, record))
    aliases = {c.alias for c in columns}
    order = parsed.order or [("id", False)]
    for name, descending in reversed(order):

        def key(pair: tuple[dict[str, Any], dict[str, Any]], name: str = name) -> tuple[int, Any]:
            if name in SUITEQL_COLUMNS[table]:
                return _sort_key(_suiteql_value(table, name, pair[1]))
            if name in aliases:
                return _sort_key(pair[0].get(name))
            raise SuiteQLError(f"Unknown ORDER BY column {name!r}.")

        out.sort(key=key, reverse=descending)
    return [item for item, _ in out]


# -- the app -----------------------------------------------------------------------------------
def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise NsError(
            400,
            "INVALID_PARAMETER",
            f"Invalid value for the query parameter {name}: must be between {low} and {high}.",
            query_param=name,
        )
    return value


def _page(request: Request, items: list[dict[str, Any]], base_path: str) -> dict[str, Any]:
    limit = _int_param(request, "limit", MAX_PAGE, 1, MAX_PAGE)
    offset = _int_param(request, "offset", 0, 0, 10_000_000)
    page = items[offset : offset + limit]
    has_more = offset + len(page) < len(items)
    base = str(request.base_url).rstrip("/") + base_path

    def href(off: int) -> str:
        return f"{base}?limit={limit}&offset={off}"

    links = []
    if offset > 0:
        links.append({"rel": "previous", "href": href(max(offset - limit, 0))})
    links.append({"rel": "first", "href": href(0)})
    if has_more:
        links.append({"rel": "next", "href": href(offset + limit)})
    last = ((len(items) - 1) // limit) * limit if items else 0
    links.append({"rel": "last", "href": href(last)})
    links.append({"rel": "self", "href": href(offset)})
    return {
        "links": links,
        "count": len(page),
        "hasMore": has_more,
        "offset": offset,
        "totalResults": len(items),
        "items": page,
    }


def _parse_form(raw: bytes) -> dict[str, str]:
    parsed = parse_qs(raw.decode("utf-8", errors="replace"), keep_blank_values=True)
    return {k: v[0] for k, v in parsed.items()}


SETTINGS = ("concurrency_limit", "latency_ms", "token_lifetime", "restlet_usage_limit")
ENTITY_ID_LABELS = {"customer": "Customer ID", "job": "Project ID"}
CREATED_FIELDS = {
    "customer": "dateCreated",
    "job": "dateCreated",
    "invoice": "createdDate",
    "customerpayment": "createdDate",
    "timebill": "createdDate",
    "expensereport": "createdDate",
    REVENUE_RECORD: "created",
    MILESTONE_RECORD: "created",
    ALLOCATION_RECORD: "dateCreated",
    VENDOR_BILL: "createdDate",
    PURCHASE_ORDER: "createdDate",
}
#: (record type, field) pairs that reference a record of the key's type
DEPENDENTS: dict[str, tuple[tuple[str, str], ...]] = {
    "subsidiary": (("customer", "subsidiary"),),
    "customer": (("job", "parent"), ("invoice", "entity"), ("timebill", "customer")),
    "job": (
        ("invoice", "job"),
        ("timebill", "customer"),
        (MILESTONE_RECORD, "custrecord_tl_bm_job"),
        (ALLOCATION_RECORD, "project"),
    ),
    PURCHASE_ORDER: ((VENDOR_BILL, "custbody_tl_po"),),
}


def has_dependents(state: NetSuiteState, rtype: str, record: dict[str, Any]) -> bool:
    """Whether deleting the record would orphan others (a scan: deletes are rare)."""
    if rtype == "invoice":
        return (to_decimal(record.get("amountPaid")) or Decimal(0)) > 0
    rid = str(record["id"])
    with state.lock:
        for other_type, key in DEPENDENTS.get(rtype, ()):
            if any(ref_id(o.get(key)) == rid for o in state.table(other_type).values()):
                return True
        if rtype in ("job", "customer"):
            for lined in ("expensereport", VENDOR_BILL):
                for report in state.table(lined).values():
                    if any(
                        ref_id(x.get("customer")) == rid
                        for x in report.get("expense") or []
                        if isinstance(x, dict)
                    ):
                        return True
            for order in state.table(PURCHASE_ORDER).values():  # ordered for the project
                if any(
                    ref_id(x.get("customer")) == rid
                    for x in order.get("item") or []
                    if isinstance(x, dict)
                ):
                    return True
    return False


def create_app(state: NetSuiteState | None = None) -> Starlette:
    """The NetSuite stand-in as a Starlette app."""
    state = state or NetSuiteState()

    def renderer(request: Request) -> Renderer:
        return Renderer(state, str(request.base_url))

    def record_type_of(request: Request) -> str:
        raw = str(request.path_params["rtype"])
        rtype = raw.lower()
        if rtype not in RECORD_TYPES:
            raise NsError(
                404,
                "INVALID_RCRD_TYPE",
                f"Record type '{raw}' does not exist or is not available in the stand-in.",
                url_path=f"record/v1/{raw}",
            )
        return rtype

    def find(rtype: str, rid: str) -> dict[str, Any] | None:
        if rid.lower().startswith("eid:"):
            return state.by_external_id(rtype, rid[4:])
        return state.table(rtype).get(rid)

    def not_found(rtype: str, rid: str) -> NsError:
        return NsError(
            404,
            "NONEXISTENT_ID",
            f"The record instance does not exist. Provide a valid record instance ID. "
            f"({rtype} {rid})",
            url_path=f"record/v1/{rtype}/{rid}",
        )

    def numbered(rtype: str, record: dict[str, Any]) -> None:
        """Give a new record its internal id and what NetSuite numbers on create."""
        record["id"] = state.next_id(rtype)
        if rtype == "customer" and not record.get("entityId"):
            record["entityId"] = f"CUST{record['id']}"
        if rtype == "job" and not record.get("entityId"):
            record["entityId"] = f"PRJ{record['id']}"
        if rtype in TRAN_PREFIXES:
            record["tranId"] = state.next_tran_id(rtype)

    def save(
        rtype: str, record: dict[str, Any], now: str, previous: dict[str, Any] | None = None
    ) -> None:
        """Stamp and store a record and keep the external id index in step."""
        record["lastModifiedDate"] = now
        created = CREATED_FIELDS.get(rtype)
        if created:
            record.setdefault(created, now)
        if previous is not None:
            state.index_drop(rtype, previous)
        state.table(rtype)[record["id"]] = record
        state.index_put(rtype, record)

    # -- the governed wrapper --------------------------------------------------------------
    def api(
        handler: Callable[[Request], Awaitable[Response]],
        *,
        authed: bool = True,
        restlet: bool = False,
    ) -> Callable[[Request], Awaitable[Response]]:
        """Count, govern (one account-wide concurrency limit for web services and RESTlets)
        and authenticate a call; RESTlets answer in their own error shape."""

        async def run(request: Request) -> Response:
            state.count_call()
            with state.lock:
                state.in_flight += 1
                state.peak_in_flight = max(state.peak_in_flight, state.in_flight)
                over = state.in_flight > state.concurrency_limit
                if over:
                    state.rejected += 1
            try:
                if over:
                    if restlet:
                        return restlet_error(
                            400,
                            "SSS_REQUEST_LIMIT_EXCEEDED",
                            "Concurrent request limit exceeded. Request blocked.",
                        )
                    return JSONResponse(
                        error_body(
                            429,
                            "CONCURRENCY_LIMIT_EXCEEDED",
                            "Concurrent request limit exceeded. Request blocked.",
                        ),
                        status_code=429,
                    )
                if state.latency_ms:
                    await asyncio.sleep(state.latency_ms / 1000)
                token = bearer_token(request)
                if restlet and not state.token_has_scope(token, "restlets"):
                    return restlet_error(401, "INVALID_LOGIN_ATTEMPT", "Invalid login attempt.")
                if authed and not state.token_valid(token):
                    return JSONResponse(
                        error_body(401, "INVALID_LOGIN", INVALID_LOGIN), status_code=401
                    )
                return await handler(request)
            except NsError as exc:
                return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)
            finally:
                with state.lock:
                    state.in_flight -= 1

        return run

    # -- token ---------------------------------------------------------------------------
    async def token(request: Request) -> Response:
        state.count_call()

        def fail(status: int, error: str, description: str) -> Response:
            return JSONResponse(
                {"error": error, "error_description": description}, status_code=status
            )

        form = _parse_form(await request.body())
        if form.get("grant_type") != "client_credentials":
            return fail(400, "unsupported_grant_type", "grant_type must be client_credentials")
        if form.get("client_assertion_type") != (
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        ):
            return fail(400, "invalid_request", "client_assertion_type must be jwt-bearer")
        assertion = form.get("client_assertion", "")
        if not assertion:
            return fail(400, "invalid_request", "client_assertion is missing")
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError:
            return fail(400, "invalid_request", "client_assertion is not a JWT")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            return fail(400, "invalid_request", "the JWT header has no kid (certificate id)")
        if header.get("alg") not in JWT_ALGORITHMS:
            return fail(400, "invalid_request", f"unsupported JWT algorithm {header.get('alg')}")
        key = state.public_key(kid)
        if key is None:
            return fail(401, "invalid_client", f"no certificate {kid!r} is mapped to a client")
        audiences = [
            f"{str(request.base_url).rstrip('/')}{TOKEN_PATH}",
            f"https://{account_host(state.account_id)}.suitetalk.api.netsuite.com{TOKEN_PATH}",
        ]
        try:
            claims = jwt.decode(
                assertion,
                key,
                algorithms=JWT_ALGORITHMS,
                audience=audiences,
                options={"require": ["iss", "aud", "iat", "exp", "scope"]},
                leeway=30,
            )
        except jwt.InvalidSignatureError:
            return fail(401, "invalid_client", "the client assertion signature is invalid")
        except jwt.ExpiredSignatureError:
            return fail(400, "invalid_grant", "the client assertion has expired")
        except jwt.InvalidAudienceError:
            return fail(400, "invalid_grant", "aud must be the token endpoint URL")
        except jwt.MissingRequiredClaimError as exc:
            return fail(400, "invalid_request", f"the client assertion lacks {exc.claim}")
        except jwt.PyJWTError as exc:
            return fail(400, "invalid_grant", f"the client assertion is invalid: {exc}")
        if claims.get("iss") != state.client_id:
            return fail(401, "invalid_client", "iss is not the integration's client id")
        try:
            lifetime = float(claims["exp"]) - float(claims["iat"])
        except (TypeError, ValueError):
            return fail(400, "invalid_grant", "iat and exp must be numbers")
        if lifetime > MAX_ASSERTION_LIFETIME:
            return fail(400, "invalid_grant", "exp may be at most one hour after iat")
        scope = claims.get("scope")
        scopes = (
            {s.strip() for s in scope.split(",")}
            if isinstance(scope, str)
            else {str(s) for s in scope}
            if isinstance(scope, list)
            else set()
        )
        if "rest_webservices" not in scopes or not scopes <= {"restlets", "rest_webservices"}:
            return fail(400, "invalid_scope", "scope must include rest_webservices")
        access = state.issue_token(lifetime=state.token_lifetime, scopes=frozenset(scopes))
        return JSONResponse(
            {"access_token": access, "token_type": "bearer", "expires_in": state.token_lifetime}
        )

    # -- record service ------------------------------------------------------------------
    async def read_body(request: Request) -> Any:
        raw = await request.body()
        if not raw:
            raise NsError(400, "INVALID_CONTENT", "The request body is empty.")
        try:
            return json.loads(raw, parse_float=Decimal)
        except json.JSONDecodeError as exc:
            raise NsError(
                400,
                "INVALID_CONTENT",
                f"The request body is not valid JSON: {exc.msg} at position {exc.pos}.",
            ) from None
        except UnicodeDecodeError:
            raise NsError(400, "INVALID_CONTENT", "The request body is not UTF-8.") from None

    async def write(request: Request, apply: Callable[[], Outcome]) -> Response:
        """Run a write under the lock, honouring idempotency keys and respond-async."""
        key = request.headers.get("x-netsuite-idempotency-key")
        respond_async = "respond-async" in request.headers.get("prefer", "").lower()
        started = utcnow()
        with state.lock:
            if key and key in state.idempotency:
                job = state.idempotency[key]
                return JSONResponse(
                    {
                        "type": "https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html"
                        "#sec10.4.10",
                        "title": "Conflict",
                        "status": 400,
                        "o:errorDetails": [
                            {
                                "detail": "A request with the same idempotency key is already "
                                'submitted. See the "Location" header for a link to the '
                                f"previously submitted job ({ASYNC_PREFIX}/{job}).",
                                "o:errorCode": "IDEMPOTENCY_ERROR",
                            }
                        ],
                    },
                    status_code=400,
                    headers={"Location": f"{ASYNC_PREFIX}/{job}"},
                )
            try:
                outcome = apply()
            except NsError as exc:
                outcome = Outcome(exc.status, exc.body(), exc.headers)
            job_id = None
            if key or respond_async:
                job_id = state.new_job(outcome, started)
                if key:
                    state.idempotency[key] = job_id
        lost = state.take_lost_response(request.method, request.url.path)
        if lost is not None:
            return JSONResponse(
                error_body(lost.status, "", "The response was lost (stand-in fault)."),
                status_code=lost.status,
            )
        if respond_async and job_id is not None:
            return Response(
                status_code=202,
                headers={
                    "Location": f"{ASYNC_PREFIX}/{job_id}",
                    "Preference-Applied": "respond-async",
                },
            )
        return outcome.response()

    def store(
        rtype: str,
        record: dict[str, Any],
        request: Request,
        previous: dict[str, Any] | None = None,
    ) -> Outcome:
        save(rtype, record, iso(utcnow()), previous)
        location = renderer(request).url(rtype, record["id"])
        return Outcome(204, None, {"Location": location})

    def check_unique(rtype: str, record: dict[str, Any]) -> None:
        external = record.get("externalId")
        if external:
            other = state.by_external_id(rtype, str(external))
            if other is not None and other["id"] != record.get("id"):
                raise NsError(
                    400,
                    "DUP_RCRD",
                    "A record with this external ID already exists.",
                    path="externalId",
                )
        if rtype in ("customer", "job") and record.get("entityId"):
            for other in state.table(rtype).values():
                if other["id"] != record.get("id") and other.get("entityId") == record["entityId"]:
                    raise NsError(
                        400,
                        "DUP_ENTITY",
                        f"This entity already exists: the {ENTITY_ID_LABELS[rtype]} is in use.",
                        path="entityId",
                    )

    def replace_param(request: Request) -> frozenset[str]:
        raw = request.query_params.get("replace", "")
        return frozenset(p.strip() for p in raw.split(",") if p.strip())

    def writable(rtype: str) -> None:
        if rtype not in WRITABLE_TYPES:
            raise NsError(
                405,
                "INVALID_METHOD",
                f"The stand-in serves {rtype} records read-only.",
            )

    async def collection(request: Request) -> Response:
        rtype = record_type_of(request)
        if request.method == "GET":
            with state.lock:
                ids = sorted(state.table(rtype), key=lambda k: _sort_key(k))
            r = renderer(request)
            items = [{"links": r.links(r.url(rtype, rid)), "id": rid} for rid in ids]
            return JSONResponse(_page(request, items, f"{RECORD_PREFIX}/{rtype}"))
        writable(rtype)
        body = await read_body(request)

        def apply() -> Outcome:
            if not isinstance(body, dict):
                raise NsError(400, "INVALID_CONTENT", "The request body must be a JSON object.")
            record = APPLY[rtype](state, body, None, replace=frozenset())
            check_unique(rtype, record)
            numbered(rtype, record)
            return store(rtype, record, request)

        return await write(request, apply)

    async def instance(request: Request) -> Response:
        rtype = record_type_of(request)
        rid = str(request.path_params["rid"])
        if request.method == "GET":
            with state.lock:
                record = find(rtype, rid)
                if record is None:
                    raise not_found(rtype, rid)
                expand = request.query_params.get("expandSubResources", "").lower() == "true"
                return JSONResponse(renderer(request).record(rtype, record, expand=expand))
        writable(rtype)
        if request.method == "DELETE":

            def delete() -> Outcome:
                record = find(rtype, rid)
                if record is None:
                    raise not_found(rtype, rid)
                if has_dependents(state, rtype, record):
                    raise NsError(
                        400,
                        "THIS_RECORD_CANNOT_BE_DELETED_BECAUSE_IT_HAS_DEPENDENT_RECORDS",
                        "This record cannot be deleted because it has dependent records.",
                    )
                if rtype in TRANSACTION_TYPES and (day := _day_of(record)) is not None:
                    state.check_period(day)
                    if rtype == VENDOR_BILL:
                        _payables_period(state, day)
                del state.table(rtype)[record["id"]]
                state.index_drop(rtype, record)
                return Outcome(204)

            return await write(request, delete)
        body = await read_body(request)
        replace = replace_param(request)

        def update() -> Outcome:
            if not isinstance(body, dict):
                raise NsError(400, "INVALID_CONTENT", "The request body must be a JSON object.")
            current = find(rtype, rid)
            if request.method == "PUT":
                if not rid.lower().startswith("eid:"):
                    raise NsError(
                        400,
                        "USER_ERROR",
                        "Upsert (PUT) requires an external ID in the URL: .../eid:{externalId}.",
                        url_path=f"record/v1/{rtype}/{rid}",
                    )
                external = rid[4:]
                if not EXTERNAL_ID.fullmatch(external):
                    raise NsError(
                        400,
                        "USER_ERROR",
                        "An external ID may contain only letters, numbers, underscore and hyphen.",
                        url_path=f"record/v1/{rtype}/{rid}",
                    )
                if "externalId" in body and body["externalId"] != external:
                    raise _bad("externalId", "The body's externalId differs from the URL's.")
                payload = {**body, "externalId": external}
                if current is None:
                    record = APPLY[rtype](state, payload, None, replace=replace)
                    check_unique(rtype, record)
                    numbered(rtype, record)
                else:
                    record = APPLY[rtype](state, payload, current, replace=replace)
            else:
                if current is None:
                    raise not_found(rtype, rid)
                record = APPLY[rtype](state, body, current, replace=replace)
            check_unique(rtype, record)
            outcome = store(rtype, record, request, current)
            if request.method == "PATCH":
                return Outcome(204)
            return outcome

        return await write(request, update)

    async def sublist(request: Request) -> Response:
        rtype = record_type_of(request)
        rid = str(request.path_params["rid"])
        name = str(request.path_params["sublist"])
        with state.lock:
            record = find(rtype, rid)
            if record is None:
                raise not_found(rtype, rid)
            if name not in SUBLISTS.get(rtype, ()):
                raise NsError(
                    404,
                    "NONEXISTENT_ID",
                    f"The sub-resource {name} does not exist on {rtype}.",
                    url_path=f"record/v1/{rtype}/{rid}/{name}",
                )
            return JSONResponse(renderer(request).sublist(rtype, record, name, True))

    # -- query, system, async -----------------------------------------------------------
    async def suiteql(request: Request) -> Response:
        if "transient" not in request.headers.get("prefer", "").lower():
            raise NsError(
                400,
                "INVALID_HEADER",
                "SuiteQL requests need the header Prefer: transient.",
                header="Prefer",
            )
        body = await read_body(request)
        if not isinstance(body, dict) or not isinstance(body.get("q"), str):
            raise NsError(400, "INVALID_CONTENT", 'Send {"q": "SELECT ..."}.', path="q")
        rows = run_suiteql(state, body["q"])
        items = [{"links": [], **row} for row in rows]
        page = _page(request, items, QUERY_PATH)
        return JSONResponse(page)

    async def governance(request: Request) -> Response:
        with state.lock:
            return JSONResponse(
                {
                    "accountConcurrencyLimit": state.concurrency_limit,
                    "accountUnallocatedConcurrencyLimit": state.concurrency_limit,
                    "integrationLimitType": "accountLimit",
                    "inFlightRequests": state.in_flight,
                }
            )

    def job_of(request: Request) -> dict[str, Any]:
        job_id = str(request.path_params["job"])
        with state.lock:
            job = state.jobs.get(job_id)
        if job is None:
            raise NsError(
                404,
                "NONEXISTENT_ID",
                f"The asynchronous job {job_id} does not exist.",
                url_path=f"async/v1/job/{job_id}",
            )
        if "task" in request.path_params and str(request.path_params["task"]) != "1":
            raise NsError(404, "NONEXISTENT_ID", "The task does not exist.")
        return job

    def job_url(request: Request, job: dict[str, Any], *rest: str) -> str:
        tail = "".join(f"/{p}" for p in rest)
        return f"{str(request.base_url).rstrip('/')}{ASYNC_PREFIX}/{job['id']}{tail}"

    def progress(job: dict[str, Any]) -> str:
        return "succeeded" if Outcome.from_dict(job["outcome"]).status < 400 else "failed"

    async def job_view(request: Request) -> Response:
        job = job_of(request)
        return JSONResponse(
            {
                "links": [{"rel": "self", "href": job_url(request, job)}],
                "completed": True,
                "id": job["id"],
                "progress": progress(job),
                "startTime": job["startTime"],
                "endTime": job["endTime"],
                "task": {"links": [{"rel": "self", "href": job_url(request, job, "task")}]},
            }
        )

    async def job_tasks(request: Request) -> Response:
        job = job_of(request)
        return JSONResponse(
            {
                "links": [{"rel": "self", "href": job_url(request, job, "task")}],
                "count": 1,
                "hasMore": False,
                "offset": 0,
                "totalResults": 1,
                "items": [{"links": [{"rel": "self", "href": job_url(request, job, "task", "1")}]}],
            }
        )

    async def job_task(request: Request) -> Response:
        job = job_of(request)
        return JSONResponse(
            {
                "links": [
                    {"rel": "related", "href": job_url(request, job, "task", "1", "result")},
                    {"rel": "self", "href": job_url(request, job, "task", "1")},
                ],
                "completed": True,
                "id": "1",
                "progress": progress(job),
                "startTime": job["startTime"],
                "endTime": job["endTime"],
            }
        )

    async def job_result(request: Request) -> Response:
        return Outcome.from_dict(job_of(request)["outcome"]).response()

    # -- stand-in extras -------------------------------------------------------------------
    async def extras_page(request: Request) -> Response:
        return HTMLResponse(_render_extras(state))

    async def add_tax_registration(request: Request) -> Response:
        rid = str(request.path_params["rid"])
        raw = await request.body()
        is_form = request.headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"
        )
        try:
            data: Any = _parse_form(raw) if is_form else json.loads(raw or b"{}")
            if not isinstance(data, dict):
                raise ValueError("send a JSON object")
        except ValueError as exc:
            return JSONResponse({"error": f"bad input: {exc}"}, status_code=400)
        line = {
            "nexusCountry": data.get("nexusCountry"),
            "taxRegistrationNumber": data.get("taxRegistrationNumber"),
        }
        if data.get("effectiveFrom"):
            line["effectiveFrom"] = data["effectiveFrom"]
        with state.lock:
            current = state.table("subsidiary").get(rid)
            if current is None:
                return JSONResponse({"error": "no such subsidiary"}, status_code=404)
            try:
                record = apply_subsidiary(
                    state,
                    {"taxRegistration": {"items": [line]}},
                    current,
                    replace=frozenset(),
                )
            except NsError as exc:
                return JSONResponse(exc.body(), status_code=exc.status)
            record["lastModifiedDate"] = iso(utcnow())
            state.table("subsidiary")[rid] = record
        if is_form:
            return RedirectResponse(f"{EXTRA_PREFIX}/", status_code=303)
        return JSONResponse(renderer(request).record("subsidiary", record, expand=True), 201)

    async def settings(request: Request) -> Response:
        if request.method == "POST":
            try:
                data = json.loads(await request.body() or b"{}")
                if not isinstance(data, dict):
                    raise ValueError("send a JSON object")
                with state.lock:
                    for key in SETTINGS:
                        if key in data:
                            value = int(data[key])
                            if value < 0:
                                raise ValueError(f"{key} must be >= 0")
                            setattr(state, key, value)
            except (ValueError, TypeError) as exc:
                return JSONResponse({"error": f"bad settings: {exc}"}, status_code=400)
        return JSONResponse({key: getattr(state, key) for key in SETTINGS})

    async def lose_responses(request: Request) -> Response:
        if request.method == "DELETE":
            with state.lock:
                state.lost_rules.clear()
            return JSONResponse({"rules": []})
        try:
            data = json.loads(await request.body() or b"{}")
            if not isinstance(data, dict):
                raise ValueError("send a JSON object")
            allowed = {k: v for k, v in data.items() if k in LostResponseRule.__dataclass_fields__}
            rule = LostResponseRule(**allowed)
            re.compile(rule.path)
        except (ValueError, TypeError, re.error) as exc:
            return JSONResponse({"error": f"bad rule: {exc}"}, status_code=400)
        with state.lock:
            state.lost_rules.append(rule)
        return JSONResponse(rule.__dict__, status_code=201)

    async def certificates(request: Request) -> Response:
        try:
            data = json.loads(await request.body() or b"{}")
            kid, pem = data["kid"], data["pem"]
            if not isinstance(kid, str) or not SAFE_KID.fullmatch(kid):
                raise ValueError("kid may hold letters, digits, '.', '_' and '-'")
            if not isinstance(pem, str) or load_public_key(pem) is None:
                raise ValueError("pem is not a readable public key or certificate")
        except (ValueError, TypeError, KeyError) as exc:
            return JSONResponse({"error": f"bad certificate: {exc}"}, status_code=400)
        with state.lock:
            state.trusted_keys[kid] = pem
        return JSONResponse({"kid": kid, "trusted": True}, status_code=201)

    async def governance_stats(request: Request) -> Response:
        with state.lock:
            return JSONResponse(
                {
                    "concurrency_limit": state.concurrency_limit,
                    "in_flight": state.in_flight,
                    "peak_in_flight": state.peak_in_flight,
                    "rejected": state.rejected,
                }
            )

    # -- the bulk RESTlet ------------------------------------------------------------------
    async def restlet(request: Request) -> Response:
        key = (request.query_params.get("script"), request.query_params.get("deploy"))
        if key not in state.restlets:
            return restlet_error(
                400,
                "SSS_INVALID_SCRIPTLET_ID",
                "That Suitelet is invalid, disabled, or no longer exists.",
            )
        if "application/json" not in request.headers.get("content-type", "").lower():
            return restlet_error(
                415,
                "INVALID_CONTENT_TYPE",
                "Invalid content type. You can only use application/json, application/xml or "
                "text/plain with RESTlets.",
            )
        try:
            body = json.loads(await request.body(), parse_float=Decimal)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return restlet_error(400, "TL_BAD_REQUEST", "The request body is not JSON.")
        action = body.get("action", "create") if isinstance(body, dict) else "create"
        if action not in BULK_ACTIONS:
            return restlet_error(400, "TL_BAD_REQUEST", 'action must be "create" or "upsert".')
        types = BULK_UPSERT_TYPES if action == "upsert" else BULK_TYPES
        rtype = None
        if isinstance(body, dict) and isinstance(body.get("recordType"), str):
            rtype = types.get(body["recordType"].lower())
        records = body.get("records") if isinstance(body, dict) else None
        if rtype is None:
            allowed = (
                '"customer", "job", "customrecord_tl_billing_milestone" or '
                '"customrecord_tl_revenue_schedule"'
                if action == "upsert"
                else '"timeBill" or "expenseReport"'
            )
            return restlet_error(
                400, "TL_BAD_REQUEST", f"recordType must be {allowed} to {action}."
            )
        if not isinstance(records, list) or not 1 <= len(records) <= MAX_BATCH:
            return restlet_error(
                400, "TL_BAD_REQUEST", f"records must be a list of 1 to {MAX_BATCH} records."
            )
        replace = body.get("replace", [])
        if action != "upsert" and "replace" in body:
            return restlet_error(400, "TL_BAD_REQUEST", "replace is for the upsert action.")
        if not isinstance(replace, list) or not all(isinstance(n, str) for n in replace):
            return restlet_error(400, "TL_BAD_REQUEST", "replace must be a list of sublist names.")
        with state.lock:
            state.period_memo = {}
            try:
                if action == "upsert":
                    results, exhausted = upsert_records(rtype, records, frozenset(replace))
                else:
                    results, exhausted = post_records(rtype, records)
            finally:
                state.period_memo = None
        lost = state.take_lost_response(request.method, request.url.path)
        if lost is not None:
            return restlet_error(
                lost.status, "UNEXPECTED_ERROR", "The response was lost (stand-in fault)."
            )
        if exhausted:
            return restlet_error(
                400, "SSS_USAGE_LIMIT_EXCEEDED", "Script Execution Usage Limit Exceeded"
            )
        return JSONResponse({"results": results})

    class UsageExhausted(Exception):
        """The script ran out of usage units before this record's save."""

    def run_script(
        records: list[Any], write: Callable[..., dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], bool]:
        """The script's loop, shared by both actions: each record must be an object with an
        externalId; `write(item, external, now, spend)` handles one and answers its result
        (calling `spend()` right before a save, which stops the loop at the usage budget);
        an error stays with its record. Runs under the state lock."""
        now = iso(utcnow())
        usage = [RESTLET_LOOKUP_UNITS]

        def spend() -> None:
            limit = state.restlet_usage_limit
            if limit and usage[0] + RESTLET_SAVE_UNITS > limit:
                raise UsageExhausted
            usage[0] += RESTLET_SAVE_UNITS

        results: list[dict[str, Any]] = []
        for item in records:
            external = item.get("externalId") if isinstance(item, dict) else None
            if not isinstance(item, dict) or not isinstance(external, str):
                results.append(
                    {
                        "externalId": external if isinstance(external, str) else None,
                        "status": "error",
                        "error": {
                            "code": "TL_BAD_RECORD",
                            "message": "Each record is an object with an externalId.",
                        },
                    }
                )
                continue
            try:
                results.append({"externalId": external, **write(item, external, now, spend)})
            except UsageExhausted:
                return results, True
            except NsError as exc:
                results.append(
                    {"externalId": external, "status": "error", "error": script_error(exc)}
                )
        return results, False

    def post_records(rtype: str, records: list[Any]) -> tuple[list[dict[str, Any]], bool]:
        """Create: a record whose externalId exists answers "exists" (first write wins)."""

        def create(item: dict[str, Any], external: str, now: str, spend: Any) -> dict[str, Any]:
            existing = state.by_external_id(rtype, external)
            if existing is not None:
                return {"id": existing["id"], "status": "exists"}
            record = APPLY[rtype](state, item, None, replace=frozenset())
            spend()
            numbered(rtype, record)
            save(rtype, record, now)
            return {"id": record["id"], "status": "created"}

        return run_script(records, create)

    def upsert_records(
        rtype: str, records: list[Any], replace: frozenset[str] = frozenset()
    ) -> tuple[list[dict[str, Any]], bool]:
        """Upsert: a new externalId is created and an existing one updated through the same
        validation as the record service's `PUT .../eid:<externalId>` (an update ADDS sublist
        lines without an id, as there, except in the sublists named in `replace`). A record
        the body leaves as it was is not saved ("unchanged", no save units)."""

        def upsert(item: dict[str, Any], external: str, now: str, spend: Any) -> dict[str, Any]:
            current = state.by_external_id(rtype, external)
            record = APPLY[rtype](state, item, current, replace=replace)
            if current is not None and record == current:
                return {"id": current["id"], "status": "unchanged"}
            check_unique(rtype, record)
            spend()
            if current is None:
                numbered(rtype, record)
                check_unique(rtype, record)
            save(rtype, record, now, current)
            return {"id": record["id"], "status": "created" if current is None else "updated"}

        return run_script(records, upsert)

    # -- control: payments and accounting periods -----------------------------------------
    async def control_input(request: Request) -> tuple[dict[str, Any], bool]:
        raw = await request.body()
        is_form = request.headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"
        )
        data: Any = _parse_form(raw) if is_form else json.loads(raw or b"{}", parse_float=Decimal)
        if not isinstance(data, dict):
            raise ValueError("send a JSON object")
        return data, is_form

    async def pay_invoice(request: Request) -> Response:
        rid = str(request.path_params["rid"])
        try:
            data, is_form = await control_input(request)
            amount = to_decimal(data.get("amount"))
            if amount is None or amount <= 0 or amount != amount.quantize(CENT):
                raise ValueError("amount must be a positive amount with at most two decimals")
            raw_day = data.get("date")
            day = parse_day(raw_day) if raw_day else utcnow().date()
            if day is None:
                raise ValueError("date must be YYYY-MM-DD")
        except (ValueError, TypeError) as exc:
            return JSONResponse({"error": f"bad payment: {exc}"}, status_code=400)
        with state.lock:
            invoice = find("invoice", rid)
            if invoice is None:
                return JSONResponse({"error": "no such invoice"}, status_code=404)
            remaining = to_decimal(invoice.get("amountRemaining")) or Decimal(0)
            if amount > remaining:
                return JSONResponse(
                    {"error": f"the payment exceeds what remains ({money_text(remaining)})"},
                    status_code=400,
                )
            try:
                period = state.check_period(day)
            except NsError as exc:
                return JSONResponse(exc.body(), status_code=exc.status)
            now = iso(utcnow())
            payment = {
                "customer": invoice.get("entity"),
                "subsidiary": invoice.get("subsidiary"),
                "currency": invoice.get("currency"),
                "tranDate": day.isoformat(),
                "postingPeriod": period,
                "payment": money_text(amount),
                "total": money_text(amount),
                "status": "B",
                "apply": [{"id": "1", "doc": invoice["id"], "amount": money_text(amount)}],
            }
            numbered("customerpayment", payment)
            save("customerpayment", payment, now)
            updated = dict(invoice)
            paid = (to_decimal(invoice.get("amountPaid")) or Decimal(0)) + amount
            updated["amountPaid"] = money_text(paid)
            updated["amountRemaining"] = money_text(remaining - amount)
            updated["status"] = "B" if remaining - amount == 0 else "A"
            save("invoice", updated, now, invoice)
        if is_form:
            return RedirectResponse(f"{EXTRA_PREFIX}/", status_code=303)
        return JSONResponse(
            {
                "invoice": {
                    "id": updated["id"],
                    "tranId": updated.get("tranId"),
                    "status": STATUS_NAMES["invoice"].get(updated["status"]),
                    "amountPaid": updated["amountPaid"],
                    "amountRemaining": updated["amountRemaining"],
                },
                "payment": {"id": payment["id"], "tranId": payment["tranId"]},
            },
            status_code=201,
        )

    async def accounting_period(request: Request) -> Response:
        rid = str(request.path_params["rid"])
        try:
            data, is_form = await control_input(request)
            closed = data.get("closed")
            if isinstance(closed, str):
                closed = {"true": True, "false": False}.get(closed.lower(), closed)
            if not isinstance(closed, bool):
                raise ValueError("closed must be true or false")
        except (ValueError, TypeError) as exc:
            return JSONResponse({"error": f"bad period: {exc}"}, status_code=400)
        with state.lock:
            period = state.table("accountingperiod").get(rid)
            if period is None:
                return JSONResponse({"error": "no such accounting period"}, status_code=404)
            for key in ("closed", "allLocked", "arLocked", "apLocked"):
                period[key] = closed
            period["lastModifiedDate"] = iso(utcnow())
            answer = dict(period)
        if is_form:
            return RedirectResponse(f"{EXTRA_PREFIX}/", status_code=303)
        return JSONResponse(answer)

    async def http_error(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 500)
        message = "The requested URL does not exist." if status == 404 else str(exc)
        code = "INVALID_URL" if status == 404 else DEFAULT_CODES.get(status, "")
        return JSONResponse(error_body(status, code, message), status_code=status)

    def guarded(
        handler: Callable[[Request], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            try:
                return await handler(request)
            except NsError as exc:
                return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

        return run

    routes: list[BaseRoute] = [
        Route(TOKEN_PATH, guarded(token), methods=["POST"]),
        Route(f"{RECORD_PREFIX}/{{rtype}}", api(collection), methods=["GET", "POST"]),
        Route(
            f"{RECORD_PREFIX}/{{rtype}}/{{rid}}",
            api(instance),
            methods=["GET", "PATCH", "PUT", "DELETE"],
        ),
        Route(f"{RECORD_PREFIX}/{{rtype}}/{{rid}}/{{sublist}}", api(sublist), methods=["GET"]),
        Route(QUERY_PATH, api(suiteql), methods=["POST"]),
        Route(GOVERNANCE_PATH, api(governance), methods=["GET"]),
        Route(f"{ASYNC_PREFIX}/{{job}}", api(job_view), methods=["GET"]),
        Route(f"{ASYNC_PREFIX}/{{job}}/task", api(job_tasks), methods=["GET"]),
        Route(f"{ASYNC_PREFIX}/{{job}}/task/{{task}}", api(job_task), methods=["GET"]),
        Route(f"{ASYNC_PREFIX}/{{job}}/task/{{task}}/result", api(job_result), methods=["GET"]),
        Route(f"{EXTRA_PREFIX}/", extras_page, methods=["GET"]),
        Route(
            f"{EXTRA_PREFIX}/subsidiary/{{rid}}/tax-registration",
            add_tax_registration,
            methods=["POST"],
        ),
        Route(f"{EXTRA_PREFIX}/settings", settings, methods=["GET", "POST"]),
        Route(f"{EXTRA_PREFIX}/lose-responses", lose_responses, methods=["POST", "DELETE"]),
        Route(f"{EXTRA_PREFIX}/certificates", certificates, methods=["POST"]),
        Route(f"{EXTRA_PREFIX}/governance", governance_stats, methods=["GET"]),
        Route(RESTLET_PATH, api(restlet, restlet=True), methods=["POST"]),
        Route(f"{EXTRA_PREFIX}/invoice/{{rid}}/pay", pay_invoice, methods=["POST"]),
        Route(f"{EXTRA_PREFIX}/accounting-period/{{rid}}", accounting_period, methods=["POST"]),
    ]
    app = build_app(state, routes, _fault_body)
    app.add_exception_handler(HTTPException, http_error)
    return app


def _render_extras(state: NetSuiteState) -> str:
    esc = html.escape
    parts = [
        "<!doctype html><meta charset=utf-8><title>NetSuite stand-in</title>",
        "<style>body{font:14px system-ui;margin:2rem}td,th{padding:.3rem;text-align:left;"
        "border-bottom:1px solid #ddd;vertical-align:top}</style>",
        f"<h1>NetSuite stand-in (account {esc(state.account_id)})</h1>",
        f"<p>Concurrency limit {state.concurrency_limit}; in flight {state.in_flight}; "
        f"rejected so far {state.rejected}. <a href='{CONTROL_PREFIX}/'>All records</a></p>",
        "<h2>Subsidiaries and their tax registrations</h2><table>",
        "<tr><th>Id</th><th>Name</th><th>Country</th><th>Tax registrations</th>"
        "<th>Add a tax registration</th></tr>",
    ]
    with state.lock:
        subs = [dict(s) for s in state.table("subsidiary").values()]
    for sub in subs:
        lines = sublist_lines(state, sub, "taxRegistration")
        regs = (
            ", ".join(
                esc(f"{line.get('nexusCountry')} {line.get('taxRegistrationNumber')}")
                for line in lines
            )
            or "<strong>none</strong>"
        )
        sid = esc(str(sub["id"]))
        country = esc(str(country_id(sub.get("country")) or ""))
        parts.append(
            f"<tr><td>{sid}</td><td>{esc(str(sub.get('name')))}</td><td>{country}</td>"
            f"<td>{regs}</td><td><form method=post "
            f"action='{EXTRA_PREFIX}/subsidiary/{sid}/tax-registration'>"
            f"<label>Country <input name=nexusCountry value='{country}' size=3></label> "
            "<label>Number <input name=taxRegistrationNumber required></label> "
            "<button>Add</button></form></td></tr>"
        )
    parts.append("</table>")
    parts.extend(_render_periods(state))
    parts.extend(_render_invoices(state))
    parts.extend(_render_purchase_orders(state))
    return "".join(parts)


def _render_periods(state: NetSuiteState) -> list[str]:
    esc = html.escape
    with state.lock:
        periods = [dict(p) for p in state.table("accountingperiod").values()]
    parts = [
        "<h2>Accounting periods</h2><table><tr><th>Period</th><th>Dates</th><th>State</th>"
        "<th></th></tr>"
    ]
    for period in sorted(periods, key=lambda p: str(p.get("startDate"))):
        pid = esc(str(period.get("id")))
        closed = bool(period.get("closed"))
        parts.append(
            f"<tr><td>{esc(str(period.get('periodName')))}</td>"
            f"<td>{esc(str(period.get('startDate')))} to {esc(str(period.get('endDate')))}</td>"
            f"<td>{'closed' if closed else 'open'}</td><td><form method=post "
            f"action='{EXTRA_PREFIX}/accounting-period/{pid}'>"
            f"<input type=hidden name=closed value='{'false' if closed else 'true'}'>"
            f"<button>{'Reopen' if closed else 'Close'}</button></form></td></tr>"
        )
    parts.append("</table>")
    return parts


def _render_invoices(state: NetSuiteState) -> list[str]:
    esc = html.escape
    with state.lock:
        invoices = [dict(i) for i in state.table("invoice").values()]
    parts = [
        "<h2>Invoices</h2><table><tr><th>Number</th><th>Customer</th><th>Due</th>"
        "<th>Total</th><th>Remaining</th><th>Status</th><th>Record a payment</th></tr>"
    ]
    for invoice in invoices[-50:]:
        iid = esc(str(invoice.get("id")))
        remaining = esc(str(invoice.get("amountRemaining")))
        status = STATUS_NAMES["invoice"].get(str(invoice.get("status")), "")
        form = (
            f"<form method=post action='{EXTRA_PREFIX}/invoice/{iid}/pay'>"
            f"<label>Amount <input name=amount value='{remaining}' size=10></label> "
            "<button>Pay</button></form>"
            if invoice.get("status") == "A"
            else ""
        )
        parts.append(
            f"<tr><td>{esc(str(invoice.get('tranId')))}</td>"
            f"<td>{esc(str(invoice.get('entity')))}</td>"
            f"<td>{esc(str(invoice.get('dueDate')))}</td>"
            f"<td>{esc(str(invoice.get('total')))}</td><td>{remaining}</td>"
            f"<td>{esc(status)}</td><td>{form}</td></tr>"
        )
    parts.append("</table>")
    return parts


def _render_purchase_orders(state: NetSuiteState) -> list[str]:
    esc = html.escape
    with state.lock:
        orders = [dict(o) for o in state.table(PURCHASE_ORDER).values()]
        vendors = {vid: ref_name("vendor", v) for vid, v in state.table("vendor").items()}
    parts = [
        "<h2>Purchase orders</h2><table><tr><th>Number</th><th>External id</th><th>Vendor</th>"
        "<th>Date</th><th>Lines (project: hours x rate = amount)</th><th>Total</th>"
        "<th>Status</th></tr>"
    ]
    for order in orders[-50:]:
        lines = "<br>".join(
            esc(
                f"{line.get('customer')}: {line.get('quantity')} x {line.get('rate')} = "
                f"{line.get('amount')}{' (closed)' if line.get('isClosed') else ''}"
            )
            for line in order.get("item") or []
            if isinstance(line, dict)
        )
        status = STATUS_NAMES[PURCHASE_ORDER].get(str(order.get("status")), "")
        parts.append(
            f"<tr><td>{esc(str(order.get('tranId')))}</td>"
            f"<td>{esc(str(order.get('externalId') or ''))}</td>"
            f"<td>{esc(vendors.get(str(order.get('entity')), str(order.get('entity'))))}</td>"
            f"<td>{esc(str(order.get('tranDate')))}</td><td>{lines}</td>"
            f"<td>{esc(str(order.get('total')))}</td><td>{esc(status)}</td></tr>"
        )
    parts.append("</table>")
    return parts


def create_legacy_app(trusted_keys: dict[str, str] | None = None) -> Starlette:
    """A second NetSuite account beside the first (the legacy ERP of a phased migration):
    another app with its own state, records and tokens."""
    return create_app(NetSuiteState(trusted_keys, account_id=LEGACY_ACCOUNT_ID))
