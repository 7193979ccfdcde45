"""Salesforce stand-in: a local copy of the Salesforce REST API for tests and the demo.

It serves Salesforce's real paths, handshake, envelopes, headers and error bodies:

* `POST /services/oauth2/token` - OAuth 2.0 JWT bearer flow (`grant_type=urn:ietf:params:
  oauth:grant-type:jwt-bearer`, `assertion` = RS256 JWT with iss = consumer key, sub =
  username, aud = https://login.salesforce.com, https://test.salesforce.com or this stand-in's
  own base URL, exp at most ~3 minutes ahead). The signature is checked with the trusted key
  for the consumer key: `trusted_keys[consumer_key]`, else the file
  `$STANDIN_KEYS_DIR/salesforce/<consumer key>.pem` (default dir `var/standin-keys`; a PEM
  public key or certificate, like the certificate uploaded to a connected app). Errors answer
  400 `{"error", "error_description"}`: `invalid_client_id` (unknown consumer key),
  `invalid_grant` (bad signature, audience, expiry or user), `unsupported_grant_type`.
  The answer carries `instance_url` = this stand-in's base URL (or `state.instance_url`).
* `GET /services/data/` - API versions (no auth, not counted).
* `GET /services/data/vNN.N/limits` - `DailyApiRequests {Max, Remaining}`.
* `GET /services/data/vNN.N/query?q=SOQL` and `GET .../query/{locator}` - see "SOQL".
* `GET|PATCH|DELETE /services/data/vNN.N/sobjects/{Object}/{Id}` (GET takes `?fields=`),
  `POST .../sobjects/{Object}` (201 `{id, success, errors}`), and
  `GET|PATCH .../sobjects/{Object}/{ExtIdField}/{value}` - upsert: 201 created, 200 updated,
  300 with the list of matching record URLs when several match, `?updateOnly=true` answers 404
  instead of creating; Id or the external-id field in the body answers 400.
* `PATCH /services/data/vNN.N/composite/sobjects` - sObject Collections update, see below.

Every authenticated answer carries `Sforce-Limit-Info: api-usage=N/LIMIT`; past the daily
limit it is 403 `REQUEST_LIMIT_EXCEEDED`. No, bad, revoked or expired token: 401
`INVALID_SESSION_ID`. Error bodies are arrays of `{message, errorCode[, fields]}`.

sObject Collections update. Confirmed from the REST API Developer Guide ("Update Records
Using sObject Collections"): body `{"allOrNone": bool (optional, default false), "records":
[{"attributes": {"type": "Opportunity"}, "id": "006...", <fields>}, ...]}`, up to 200 records,
of one or several types; each needs an attributes map with a type and an id; records are
updated in the order listed and the answer is 200 with one SaveResult per record in that
order, `{"id", "success": true, "errors": []}` or `{"success": false, "errors":
[{"statusCode", "message", "fields"}]}`; a request that is not well formed answers 400 (the
usual error array); with allOrNone any failure rolls the whole request back. Seen in public
client code and bug reports, not in the guide: more than 200 records answer 400
EXCEEDED_ID_LIMIT "record limit reached. cannot submit more than 200 records into this
call"; the records rolled back answer statusCode ALL_OR_NONE_OPERATION_ROLLED_BACK, "Record
rolled back because not all records were valid and the request was using AllOrNone header",
fields []. What the stand-in does beyond that (best guesses): each record goes through the
same checks as a single `PATCH .../sobjects/{Object}/{Id}` (writable fields, types, restricted
picklists, currencies) and its error becomes the record's SaveResult error (errorCode ->
statusCode, fields [] when the single answer has none); a record without an id answers
MISSING_ARGUMENT "Id not specified in an update call", an id that is not an id of the type
MALFORMED_ID (fields ["Id"]), an id of no record ENTITY_IS_DELETED "entity is deleted". A
failed SaveResult carries `id` only when the id named a record (clients should go by
position). With allOrNone every record is checked before any is written: the failing ones
answer their own errors, the others ALL_OR_NONE_OPERATION_ROLLED_BACK, and nothing changes
(no SystemModstamp, no OpportunityHistory row, no outbound event). Without it the records are
checked and written one after the other. A written record is stamped, gets its history row and
fires its event as after a single PATCH. Not modelled: the limit of 10 type chunks per
request, duplicate ids in one request (written twice, in order), POST/GET/DELETE on the
collection. One request counts as one API call against the daily limit, whatever it holds.

SOQL: an honest subset - `SELECT f, Parent.f, ... FROM Object [WHERE cmp AND cmp ...]
[ORDER BY f [ASC|DESC] [NULLS FIRST|LAST], ...] [LIMIT n]`, comparisons `= != <> < > <= >=` and
`IN (...)` against string, number, true/false, null, date (`2026-11-26`) and datetime
(`2026-11-26T10:00:00Z`) literals, type-checked against the field like Salesforce does (a
quoted datetime is an error). Parent fields (`Account.Name`, `Opportunity.Name`,
`Opportunity__r.Name`) resolve through their lookup field.
Field and object names are case-insensitive, string `=` is case-insensitive, 15-char ids
match their 18-char form. Anything else (OR, NOT, LIKE, functions, sub-queries, date
literals such as TODAY) answers 400 `MALFORMED_QUERY`. Pages hold `state.page_size` records
(200 by default); `nextRecordsUrl` is `/services/data/vNN.N/query/01g...-<offset>`.

Records: `Id` (18-char ids, key prefixes 001 Account, 003 Contact, 006 Opportunity, 0Q0 Quote,
008 OpportunityHistory, a01 Contract_Amendment__c, a02 Throughline_Invoice__c; 15-char forms
are accepted), `CreatedDate`, `LastModifiedDate`, `SystemModstamp` (second precision,
`2026-11-25T10:22:00.000+0000`) stamped on every write - also on edits through the
`/__standin__/records/...` control surface, so the demo can "close" a deal by hand. Setting
an Opportunity's `StageName` to "Closed Won" sets IsClosed and IsWon, "Closed Lost" IsClosed
only, any other stage neither. Writable custom fields: `VAT_Number__c` (Account),
`Legal_Entity__c`, `Project_Template__c`, `Throughline_ERP_Customer_Id__c`,
`Throughline_PSA_Project_Id__c` (Opportunity) and `Throughline_Key__c` (all three; an external
id, not unique, for upserts; `Throughline_PSA_Project_Id__c` is an external id too).
Active currencies: GBP (corporate), USD, EUR. Restricted picklists refuse other values with
400 INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST.

Standard objects beyond the first three (Salesforce Object Reference):
* `Quote` - `Name`, `OpportunityId` (required, create-only), `Status` (Draft, Needs Review,
  In Review, Approved, Rejected, Presented, Accepted, Denied; default Draft), `QuoteNumber`
  (auto number `00000001`, read-only), `GrandTotal` (read-only; real Salesforce sums the quote
  line items - the stand-in has none and copies the Opportunity's Amount at creation),
  `ExpirationDate`, `CurrencyIsoCode` (the Opportunity's).
* `OpportunityHistory` - "the stage history of an opportunity": Salesforce writes a row
  whenever StageName, Amount, CloseDate (or Probability/ForecastCategory) of an Opportunity
  changes, and on creation; it is query-only (POST/PATCH/DELETE answer 400
  INVALID_TYPE_FOR_OPERATION "entity type cannot be inserted/updated/deleted" - errorCode and
  wording from memory, not confirmed). Fields: `OpportunityId`, `StageName`, `Amount`,
  `CloseDate`, `Probability`, `ForecastCategory`, `PrevAmount`, `PrevCloseDate`,
  `CurrencyIsoCode`, `IsDeleted`, `CreatedDate` (when the change happened), `SystemModstamp`;
  it has no LastModifiedDate. (`OpportunityFieldHistory` - Field/OldValue/NewValue - exists
  too but only for fields with field history tracking switched on, so OpportunityHistory is
  the reliable source for "when did this deal become Closed Won". Note a won deal gets more
  Closed Won rows when its Amount or CloseDate is edited later: the win is the first row of
  the last run of Closed Won rows.)

The "Throughline managed package" (custom objects and fields this project installs):
* Opportunity: `Legal_Entity__c`, `Project_Template__c`, `Throughline_ERP_Customer_Id__c`,
  `Throughline_PSA_Project_Id__c`, `Throughline_Key__c` (see above), `Billing_Model__c`
  (restricted picklist: Fixed Fee, Time and Materials, Retainer) and `Planned_Margin__c`
  (percent: the margin the deal was sold at, 35 meaning 35 %; optional; served as a JSON
  number, like Salesforce's percent fields).
* `Contract_Amendment__c` - `Name` (auto number AMD-00001, read-only), `Opportunity__c`
  (master-detail to Opportunity, relationship `Opportunity__r`; required, create-only),
  `New_Total_Value__c` (currency, required), `Effective_Date__c` (date, required),
  `Status__c` (restricted picklist Draft | Approved, default Draft), `Reason__c` (text 255),
  `Milestone_Plan__c` (long text area 32768: JSON `[{"name", "percent", "offset_days"}]`,
  optional; like every long text area it cannot be filtered or sorted in SOQL),
  `CurrencyIsoCode`.
* `Throughline_Invoice__c` - `Name` (text, required), `Opportunity__c` (master-detail with
  reparenting allowed, so an upsert may repeat it), `Invoice_Number__c` (required),
  `Amount__c` (currency), `CurrencyIsoCode`, `Status__c` (restricted picklist Open | Paid |
  Overdue, default Open), `Due_Date__c`, `Paid_Date__c`, `Throughline_Key__c` (external id
  for upserts).
A detail record of a master-detail relationship takes its master's currency (the stand-in
sets CurrencyIsoCode of Quote and both custom objects from the Opportunity and answers 400
FIELD_INTEGRITY_EXCEPTION to a different one - from memory of Salesforce's multi-currency
rules, not confirmed from a source).

Outbound events (the managed package's record-triggered Flow): when an Opportunity becomes
Closed Won, or a Contract_Amendment__c becomes Approved - by the REST API, the control
surface or the control endpoints below - and a receiver is configured, the stand-in POSTs
    {"event": "opportunity.closed_won" | "contract_amendment.approved",
     "sobject": "Opportunity" | "Contract_Amendment__c", "id": "<18-char id>",
     "systemModstamp": "2026-11-25T10:22:00.000+0000", "occurredAt": "2026-11-25T10:22:00.000Z"}
with `Content-Type: application/json`, `X-Throughline-Timestamp: <unix seconds>` and
`X-Throughline-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>`, from a
background thread, never delaying the API answer. A failed delivery (connection error,
timeout, 408, 429 or 5xx) is retried 3 times with exponential backoff (`webhook_backoff`
seconds, doubling); any other 4xx is final. Each attempt is signed afresh. What is real and
what is modelled: Salesforce Flow's HTTP Callout action (Flow Builder + Named/External
Credentials) can POST JSON, but a record-triggered flow may only call out from its
"run asynchronously" path (callouts are refused in the synchronous path), and neither Flow
nor Named Credentials compute an HMAC: the package's signing is an Apex invocable action
(`Crypto.generateMac('hmacSHA256', ...)`), and the retry policy is the package's choice, not
a Salesforce feature. Outbound Messages (workflow rules) would be SOAP and are not modelled.

Control endpoints of this stand-in (besides the shared ones):
* `POST /__standin__/salesforce/webhooks {"url", "secret"}` configures the receiver; `GET`
  shows the URL and the recent delivery attempts (never the secret); `DELETE` removes it.
  The configuration survives snapshot/restore (the snapshot file holds the secret in clear:
  demo data only) but not `/__standin__/reset`, which also drops events still queued.
* `POST /__standin__/salesforce/close-deal {"account_id"?, "amount"?, "legal_entity"?,
  "template"?, "billing_model"?, "sales_cycle_days"?, "planned_margin"?, "close_date"?}`
  creates an Opportunity (created `sales_cycle_days` ago, default 21, with an Accepted Quote
  created half-way), then moves it to Closed Won (history rows; the webhook fires); answers
  201 `{"id", "quote_id"}`. Defaults: Northwind, 50000.00 in the account's currency, the
  legal entity of the account's country (GB UK01, US US01, DE DE01), FIXED-3, the billing
  model of the template, a planned margin of 30 % (null: none), CloseDate today (a past
  `close_date` is a deal entered late; a future one is refused).
* `POST /__standin__/salesforce/approve-amendment {"id"}` sets the amendment's Status__c to
  Approved (the webhook fires; approving an approved amendment changes nothing).

Seed (ids are fixed; timestamps lie a day before the last reset, one minute apart; won
deals closed four days before it, open ones close 44 days after it):

    Account  0015g00000Tl001AAB  Northwind Consulting Ltd   London     GB  GBP  GB123456789
    Account  0015g00000Tl002AAB  Globex Corporation         Springfield US USD  US-94-1234567
    Account  0015g00000Tl003AAB  Initech GmbH               Berlin     DE  EUR  DE811907980
    Account  0015g00000Tl004AAB  Umbrella Advisory LLC      Raccoon City US USD (none)
    Account  0015g00000Tl005AAB  Contoso Partners Ltd       Manchester GB  GBP  GB987654321
    Contact  0035g00000Tl001AAB .. 0035g00000Tl005AAB, one per account, same order
    Opportunity (Legal_Entity__c, Project_Template__c, Billing_Model__c; ERP/PSA ids null;
    Planned_Margin__c 35, 30, 40, 25, 35 and 45 % in this order):
      0065g00000Tl001AAB Northwind Finance transformation Closed Won 120000.00 GBP UK01 FIXED-3
      0065g00000Tl002AAB Globex    ERP rollout phase 1    Closed Won 250000.00 USD US01 TM-STD
      0065g00000Tl003AAB Initech   Cloud migration        Closed Won  90000.00 EUR DE01 FIXED-3
      0065g00000Tl004AAB Umbrella  Audit readiness        Closed Won  45000.00 USD US01 LEGACY-X
      0065g00000Tl005AAB Contoso   Data platform   Negotiation/Review 180000.00 GBP UK01 FIXED-3
      0065g00000Tl006AAB Globex    Support retainer       Prospecting 60000.00 USD US01 TM-STD
      (billing models: Fixed Fee, Time and Materials, Fixed Fee, Fixed Fee, Fixed Fee,
      Retainer). The won deals were created 30 days before their win, which happened at
      15:00 UTC on their CloseDate (plus a minute per deal); the open ones 20 days before the
      reset.
    Quote 0Q05g00000Tl001CAB .. 0Q05g00000Tl004CAB: one Accepted quote per won deal, same
      order, QuoteNumber 00000001.., GrandTotal = Amount, created 10 days before the win.
    OpportunityHistory rows: won deals Prospecting (created) -> Proposal/Price Quote (the
      quote) -> Closed Won (the win); Contoso Prospecting -> Negotiation/Review (5 days
      before the reset); the retainer Prospecting.
    Contract_Amendment__c a015g00000Tl001AAB (AMD-00001) on 0065g00000Tl001AAB: Draft,
      New_Total_Value__c 135000.00 GBP, effective 14 days after the reset, reason "Scope
      extension: second legal entity", Milestone_Plan__c Design 30 % +30 d, Build 50 % +75 d,
      Go-live 20 % +120 d.

(c) is the demo's Finance failure (DE01's ERP subsidiary has no tax registration), (d) the
PMO failure (no project template LEGACY-X). The trusted demo consumer key is
"throughline-demo-consumer-key" for user "integration@throughline.demo".

The control surface of `common.build_app` applies (`/__standin__/faults`, `/calls`, `/reset`,
`/revoke-tokens`, `/records/{Account|Contact|Opportunity|Quote|...}[/{id}]`); faults answer
with the Salesforce error array unless the rule gives a body.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import queue
import re
import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import jwt
from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from .common import StandinState, bearer_token, build_app, json_body

logger = logging.getLogger(__name__)

VENDOR = "salesforce"
DEMO_CONSUMER_KEY = "throughline-demo-consumer-key"
DEMO_USERNAME = "integration@throughline.demo"
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
LOGIN_AUDIENCES = ("https://login.salesforce.com", "https://test.salesforce.com")
#: the furthest in the future a JWT's exp may lie (Salesforce wants about 3 minutes)
MAX_ASSERTION_LIFETIME = 300
CORPORATE_CURRENCY = "GBP"
ACTIVE_CURRENCIES = frozenset({"GBP", "USD", "EUR"})

API_VERSIONS: tuple[tuple[str, str], ...] = (
    ("58.0", "Summer '23"),
    ("59.0", "Winter '24"),
    ("60.0", "Spring '24"),
    ("61.0", "Summer '24"),
    ("62.0", "Winter '25"),
    ("63.0", "Spring '25"),
    ("64.0", "Summer '25"),
)
SUPPORTED_VERSIONS = frozenset(f"v{v}" for v, _ in API_VERSIONS)

# -- object model -------------------------------------------------------------------------

TIMESTAMP_FIELDS = ("CreatedDate", "LastModifiedDate", "SystemModstamp")

#: field -> type; types: id, string, currency, date, datetime, boolean, reference,
#: currency_code, picklist, textarea (long text area), percent
SOBJECTS: dict[str, dict[str, str]] = {
    "Account": {
        "Id": "id",
        "Name": "string",
        "BillingCity": "string",
        "BillingCountry": "string",
        "VAT_Number__c": "string",
        "CurrencyIsoCode": "currency_code",
        "Throughline_Key__c": "string",
        "CreatedDate": "datetime",
        "LastModifiedDate": "datetime",
        "SystemModstamp": "datetime",
    },
    "Contact": {
        "Id": "id",
        "FirstName": "string",
        "LastName": "string",
        "Email": "string",
        "Phone": "string",
        "AccountId": "reference",
        "CurrencyIsoCode": "currency_code",
        "Throughline_Key__c": "string",
        "CreatedDate": "datetime",
        "LastModifiedDate": "datetime",
        "SystemModstamp": "datetime",
    },
    "Opportunity": {
        "Id": "id",
        "Name": "string",
        "StageName": "string",
        "IsClosed": "boolean",
        "IsWon": "boolean",
        "Amount": "currency",
        "CloseDate": "date",
        "CurrencyIsoCode": "currency_code",
        "AccountId": "reference",
        "Legal_Entity__c": "string",
        "Project_Template__c": "string",
        "Billing_Model__c": "picklist",
        "Planned_Margin__c": "percent",
        "Throughline_ERP_Customer_Id__c": "string",
        "Throughline_PSA_Project_Id__c": "string",
        "Throughline_Key__c": "string",
        "CreatedDate": "datetime",
        "LastModifiedDate": "datetime",
        "SystemModstamp": "datetime",
    },
    "Quote": {
        "Id": "id",
        "Name": "string",
        "OpportunityId": "reference",
        "Status": "picklist",
        "QuoteNumber": "string",
        "GrandTotal": "currency",
        "ExpirationDate": "date",
        "CurrencyIsoCode": "currency_code",
        "CreatedDate": "datetime",
        "LastModifiedDate": "datetime",
        "SystemModstamp": "datetime",
    },
    "OpportunityHistory": {
        "Id": "id",
        "OpportunityId": "reference",
        "StageName": "picklist",
        "Amount": "currency",
        "CloseDate": "date",
        "Probability": "percent",
        "ForecastCategory": "picklist",
        "PrevAmount": "currency",
        "PrevCloseDate": "date",
        "CurrencyIsoCode": "currency_code",
        "IsDeleted": "boolean",
        "CreatedDate": "datetime",
        "SystemModstamp": "datetime",
    },
    "Contract_Amendment__c": {
        "Id": "id",
        "Name": "string",
        "Opportunity__c": "reference",
        "New_Total_Value__c": "currency",
        "Effective_Date__c": "date",
        "Status__c": "picklist",
        "Reason__c": "string",
        "Milestone_Plan__c": "textarea",
        "CurrencyIsoCode": "currency_code",
        "CreatedDate": "datetime",
        "LastModifiedDate": "datetime",
        "SystemModstamp": "datetime",
    },
    "Throughline_Invoice__c": {
        "Id": "id",
        "Name": "string",
        "Opportunity__c": "reference",
        "Invoice_Number__c": "string",
        "Amount__c": "currency",
        "CurrencyIsoCode": "currency_code",
        "Status__c": "picklist",
        "Due_Date__c": "date",
        "Paid_Date__c": "date",
        "Throughline_Key__c": "string",
        "CreatedDate": "datetime",
        "LastModifiedDate": "datetime",
        "SystemModstamp": "datetime",
    },
}
KEY_PREFIXES = {
    "Account": "001",
    "Contact": "003",
    "Opportunity": "006",
    "Quote": "0Q0",
    "OpportunityHistory": "008",
    "Contract_Amendment__c": "a01",
    "Throughline_Invoice__c": "a02",
}
READ_ONLY_FIELDS = frozenset({"Id", "IsClosed", "IsWon", *TIMESTAMP_FIELDS})
#: calculated or auto-number fields, per object
OBJECT_READ_ONLY_FIELDS: dict[str, frozenset[str]] = {
    "Quote": frozenset({"QuoteNumber", "GrandTotal"}),
    "Contract_Amendment__c": frozenset({"Name"}),
}
#: fields that can be set on create only (a quote's Opportunity, the master of a master-detail
#: without reparenting; Throughline_Invoice__c allows reparenting, so upserts may carry it)
CREATE_ONLY_FIELDS: dict[str, frozenset[str]] = {
    "Quote": frozenset({"OpportunityId"}),
    "Contract_Amendment__c": frozenset({"Opportunity__c"}),
}
#: objects whose records Salesforce writes itself: query-only through the API
QUERY_ONLY_OBJECTS = frozenset({"OpportunityHistory"})
#: detail object -> the field naming its Opportunity, whose currency it takes
CURRENCY_FROM_PARENT = {
    "Quote": "OpportunityId",
    "Contract_Amendment__c": "Opportunity__c",
    "Throughline_Invoice__c": "Opportunity__c",
}
REQUIRED_FIELDS = {
    "Account": ("Name",),
    "Contact": ("LastName",),
    "Opportunity": ("Name", "StageName", "CloseDate"),
    "Quote": ("Name", "OpportunityId"),
    "Contract_Amendment__c": ("Opportunity__c", "New_Total_Value__c", "Effective_Date__c"),
    "Throughline_Invoice__c": ("Name", "Opportunity__c", "Invoice_Number__c"),
}
#: values of restricted picklists (the API refuses any other)
PICKLIST_VALUES: dict[tuple[str, str], tuple[str, ...]] = {
    ("Opportunity", "Billing_Model__c"): ("Fixed Fee", "Time and Materials", "Retainer"),
    ("Quote", "Status"): (
        "Draft",
        "Needs Review",
        "In Review",
        "Approved",
        "Rejected",
        "Presented",
        "Accepted",
        "Denied",
    ),
    ("Contract_Amendment__c", "Status__c"): ("Draft", "Approved"),
    ("Throughline_Invoice__c", "Status__c"): ("Open", "Paid", "Overdue"),
}
PICKLIST_DEFAULTS: dict[tuple[str, str], str] = {
    ("Quote", "Status"): "Draft",
    ("Contract_Amendment__c", "Status__c"): "Draft",
    ("Throughline_Invoice__c", "Status__c"): "Open",
}
EXTERNAL_ID_FIELDS = {
    "Account": frozenset({"Throughline_Key__c"}),
    "Contact": frozenset({"Throughline_Key__c"}),
    "Opportunity": frozenset({"Throughline_Key__c", "Throughline_PSA_Project_Id__c"}),
    "Throughline_Invoice__c": frozenset({"Throughline_Key__c"}),
}
#: object -> relationship name -> (foreign key field, parent object)
RELATIONSHIPS = {
    "Contact": {"Account": ("AccountId", "Account")},
    "Opportunity": {"Account": ("AccountId", "Account")},
    "Quote": {"Opportunity": ("OpportunityId", "Opportunity")},
    "OpportunityHistory": {"Opportunity": ("OpportunityId", "Opportunity")},
    "Contract_Amendment__c": {"Opportunity__r": ("Opportunity__c", "Opportunity")},
    "Throughline_Invoice__c": {"Opportunity__r": ("Opportunity__c", "Opportunity")},
}
REFERENCE_TARGETS = {
    "AccountId": "Account",
    "OpportunityId": "Opportunity",
    "Opportunity__c": "Opportunity",
}
LONG_TEXT_LENGTH = 32_768

#: stage -> (Probability, ForecastCategory), as a new org's stage picklist sets them
STAGES: dict[str, tuple[int, str]] = {
    "Prospecting": (10, "Pipeline"),
    "Qualification": (10, "Pipeline"),
    "Needs Analysis": (20, "Pipeline"),
    "Value Proposition": (50, "Pipeline"),
    "Id. Decision Makers": (60, "Pipeline"),
    "Perception Analysis": (70, "Pipeline"),
    "Proposal/Price Quote": (75, "Pipeline"),
    "Negotiation/Review": (90, "Pipeline"),
    "Closed Won": (100, "Closed"),
    "Closed Lost": (0, "Omitted"),
}
#: fields whose change makes Salesforce write an OpportunityHistory row
HISTORY_FIELDS = ("StageName", "Amount", "CloseDate")

# -- outbound events (the managed package's flow) -----------------------------------------

WEBHOOK_PATH = "/__standin__/salesforce/webhooks"
SIGNATURE_HEADER = "X-Throughline-Signature"
TIMESTAMP_HEADER = "X-Throughline-Timestamp"
EVENT_CLOSED_WON = "opportunity.closed_won"
EVENT_AMENDMENT_APPROVED = "contract_amendment.approved"
#: a delivery that answers one of these (or does not answer) is tried again
RETRY_STATUSES = frozenset({408, 429})
#: country -> legal entity, for the close-deal control endpoint
DEMO_ENTITIES = {"GB": "UK01", "US": "US01", "DE": "DE01"}
TEMPLATE_BILLING_MODELS = {"TM-STD": "Time and Materials"}


# -- ids and timestamps -------------------------------------------------------------------

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_ID_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_ID15 = re.compile(r"^[A-Za-z0-9]{15}$")
_ID18 = re.compile(r"^[A-Za-z0-9]{18}$")


def id18(id15: str) -> str:
    """Salesforce's case-safe 18-char id: three suffix chars encode which chars are upper."""
    suffix = ""
    for chunk in range(3):
        bits = 0
        for i, char in enumerate(id15[chunk * 5 : chunk * 5 + 5]):
            if "A" <= char <= "Z":
                bits |= 1 << i
        suffix += _ID_SUFFIX[bits]
    return id15 + suffix


def normalize_id(value: str) -> str | None:
    """The 18-char form of a 15- or 18-char id, or None when it is not id-shaped."""
    if _ID15.match(value):
        return id18(value)
    if _ID18.match(value):
        return id18(value[:15])
    return None


def make_id(prefix: str, number: int) -> str:
    """A deterministic 18-char id: key prefix, pod "5g", and the number in base 62."""
    digits = ""
    while True:
        number, rem = divmod(number, 62)
        digits = _BASE62[rem] + digits
        if number == 0:
            break
    return id18(f"{prefix}5g00000Tl{digits.rjust(3, '0')}")


NORTHWIND_ACCOUNT = make_id("001", 1)


def _demo_amount(value: Any) -> Decimal:
    """The close-deal amount: a positive number with at most two decimals (default 50000)."""
    if value is None:
        return Decimal("50000.00")
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError("amount must be a number")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise ValueError("amount must be a number") from exc
    if not amount.is_finite() or amount <= 0 or amount >= Decimal("1e13"):
        raise ValueError("amount must be a positive number below 10^13")
    if amount != amount.quantize(Decimal("0.01")):
        raise ValueError("amount must have at most two decimals")
    return amount.quantize(Decimal("0.01"))


#: the close-deal endpoint's planned margin when none is given (%)
DEFAULT_PLANNED_MARGIN = 30.0


def _demo_margin(value: Any) -> float | None:
    """The close-deal planned margin: a percent from -100 to 100 with at most two decimals,
    or None (the deal has none)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError("planned_margin must be a number")
    try:
        margin = Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise ValueError("planned_margin must be a number") from exc
    if not margin.is_finite() or not -100 <= margin <= 100:
        raise ValueError("planned_margin must lie from -100 to 100, with at most two decimals")
    if margin != margin.quantize(Decimal("0.01")):
        raise ValueError("planned_margin must lie from -100 to 100, with at most two decimals")
    return float(margin)


def _demo_close_date(value: Any) -> date | None:
    """The close-deal CloseDate (a deal entered late: its CloseDate lies in the past)."""
    if value is None:
        return None
    try:
        if not isinstance(value, str):
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError("close_date must be a date like 2026-08-15") from None


def format_datetime(value: datetime) -> str:
    """Salesforce's datetime format: `2026-11-25T10:22:00.000+0000` (UTC, whole seconds)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def parse_datetime(value: str) -> datetime:
    """Parse a Salesforce or SOQL datetime (`...Z`, `+0000`, `+00:00`, optional millis)."""
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    match = re.match(r"^(.*[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?)([+-])(\d{2}):?(\d{2})$", text)
    if match:
        text = f"{match.group(1)}{match.group(2)}{match.group(3)}:{match.group(4)}"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError(f"datetime without offset: {value!r}")
    return parsed.astimezone(UTC)


Listener = Callable[["SObjectRecord", "dict[str, Any] | None"], None]


class SObjectRecord(dict):
    """A stored record. `update()` - used by the API and by the control surface alike -
    stamps LastModifiedDate/SystemModstamp, re-derives Opportunity IsClosed/IsWon and tells
    the listener (which writes OpportunityHistory rows and fires the outbound events) what
    the record looked like before."""

    def __init__(
        self,
        sobject: str,
        clock: Callable[[], datetime],
        data: dict[str, Any],
        listener: Listener | None = None,
    ):
        super().__init__(data)
        self.sobject = sobject
        self._clock = clock
        self._listener = listener

    def update(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        changes = dict(*args, **kwargs)
        before = dict(self)
        super().update(changes)
        if "SystemModstamp" not in changes:
            stamp = format_datetime(self._clock())
            schema = SOBJECTS.get(self.sobject, {})
            super().update(
                {k: stamp for k in ("LastModifiedDate", "SystemModstamp") if k in schema}
            )
        self.derive()
        if self._listener is not None:
            self._listener(self, before)

    def derive(self) -> None:
        if self.sobject == "Opportunity":
            stage = self.get("StageName")
            super().update({"IsClosed": stage in ("Closed Won", "Closed Lost")})
            super().update({"IsWon": stage == "Closed Won"})


# -- state --------------------------------------------------------------------------------


class SalesforceState(StandinState):
    """One Salesforce org: its records, tokens, query cursors and outbound-event receiver."""

    vendor = VENDOR
    persistent_attrs = ("_sequences", "_webhook")

    def __init__(
        self,
        *,
        trusted_keys: dict[str, str] | None = None,
        usernames: set[str] | frozenset[str] | None = None,
        daily_limit: int = 15_000,
        page_size: int = 200,
        token_lifetime: float = 7200.0,
        instance_url: str | None = None,
        keys_dir: str | os.PathLike[str] | None = None,
        clock: Callable[[], datetime] | None = None,
        webhook_backoff: float = 1.0,
        webhook_retries: int = 3,
        webhook_timeout: float = 5.0,
    ) -> None:
        self.trusted_keys = dict(trusted_keys or {})
        self.usernames = set(usernames) if usernames is not None else {DEMO_USERNAME}
        self.page_size = page_size
        self.token_lifetime = token_lifetime
        self.instance_url = instance_url.rstrip("/") if instance_url else None
        self.keys_dir = keys_dir
        self.clock = clock or (lambda: datetime.now(UTC))
        self.org_id = make_id("00D", 1)
        self.user_id = make_id("005", 1)
        self._signing_secret = secrets.token_bytes(32)
        self.webhook_backoff = webhook_backoff
        self.webhook_retries = webhook_retries
        self.webhook_timeout = webhook_timeout
        self._webhook_cv = threading.Condition()
        self._webhook_queue: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self._webhook_thread: threading.Thread | None = None
        self._webhook_pending = 0
        self._webhook_generation = 0
        self.webhook_deliveries: deque[dict[str, Any]] = deque(maxlen=200)
        super().__init__(daily_limit=daily_limit)

    # -- lifecycle ------------------------------------------------------------------------
    def reset(self) -> None:
        with self.lock:
            self.cursors: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
            self._sequences: dict[str, int] = {}
            self._webhook: dict[str, str] | None = None
            with self._webhook_cv:
                self._webhook_generation += 1  # deliveries still queued are dropped
            self.webhook_deliveries.clear()
            super().reset()

    def restore(self, data: dict[str, Any]) -> None:
        """Take back a snapshot; its records become live SObjectRecords again."""
        super().restore(data)
        with self.lock:
            for sobject in SOBJECTS:
                table = self.collections.get(sobject)
                if table is None:
                    continue
                for rid, row in list(table.items()):
                    table[rid] = SObjectRecord(sobject, self.now, row, self._record_changed)
            hook = self._webhook
            if not (
                isinstance(hook, dict)
                and isinstance(hook.get("url"), str)
                and isinstance(hook.get("secret"), str)
            ):
                self._webhook = None

    def now(self) -> datetime:
        return self.clock().astimezone(UTC).replace(microsecond=0)

    # -- the control surface's record edits (see standins.common) --------------------------
    def stamp_modified(self, name: str, record: dict[str, Any]) -> None:
        """LastModifiedDate and SystemModstamp (an edit's SObjectRecord.update stamps them
        already; a copy is stamped here), without a history row or an outbound event."""
        schema = SOBJECTS.get(name, {})
        stamp = format_datetime(self.now())
        fields = [k for k in ("LastModifiedDate", "SystemModstamp") if k in schema]
        dict.update(record, dict.fromkeys(fields, stamp))

    def prepare_copy(self, name: str, record: dict[str, Any]) -> str:
        """A copy of an SObject gets an 18-char id of its type and CreatedDate now."""
        if name not in KEY_PREFIXES:
            return super().prepare_copy(name, record)
        rid = self.new_id(name)
        dict.update(record, {"Id": rid, "CreatedDate": format_datetime(self.now())})
        return rid

    def seed(self) -> None:
        reset_at = self.now()
        base = reset_at - timedelta(days=1)
        minute = iter(range(1000))

        def add(sobject: str, fields: dict[str, Any], created: datetime | None = None) -> str:
            at = base + timedelta(minutes=next(minute))
            return self.insert(sobject, fields, at=at, created_at=created, notify=False)["Id"]

        accounts = [
            ("Northwind Consulting Ltd", "London", "GB", "GB123456789", "GBP"),
            ("Globex Corporation", "Springfield", "US", "US-94-1234567", "USD"),
            ("Initech GmbH", "Berlin", "DE", "DE811907980", "EUR"),
            ("Umbrella Advisory LLC", "Raccoon City", "US", None, "USD"),
            ("Contoso Partners Ltd", "Manchester", "GB", "GB987654321", "GBP"),
        ]
        account_ids = [
            add(
                "Account",
                {
                    "Name": name,
                    "BillingCity": city,
                    "BillingCountry": country,
                    "VAT_Number__c": vat,
                    "CurrencyIsoCode": currency,
                },
            )
            for name, city, country, vat, currency in accounts
        ]
        contacts = [
            ("Ada", "Whitmore", "ada.whitmore@northwind.example"),
            ("Hank", "Scorpio", "hank.scorpio@globex.example"),
            ("Bill", "Lumbergh", "bill.lumbergh@initech.example"),
            ("Alice", "Abernathy", "alice.abernathy@umbrella.example"),
            ("Priya", "Raman", "priya.raman@contoso.example"),
        ]
        for account_id, (first, last, email), (_, _, _, _, currency) in zip(
            account_ids, contacts, accounts, strict=True
        ):
            add(
                "Contact",
                {
                    "FirstName": first,
                    "LastName": last,
                    "Email": email,
                    "AccountId": account_id,
                    "CurrencyIsoCode": currency,
                },
            )
        won_day = base - timedelta(days=3)
        close = won_day.date().isoformat()
        later = (base + timedelta(days=45)).date().isoformat()
        won_at = won_day.replace(hour=15, minute=0, second=0)
        open_created = reset_at - timedelta(days=20)
        fixed, tm, retainer = "Fixed Fee", "Time and Materials", "Retainer"
        opportunities = [
            (0, "Finance transformation", "Closed Won", 120000.00, "GBP", "UK01", "FIXED-3", fixed),
            (1, "ERP rollout phase 1", "Closed Won", 250000.00, "USD", "US01", "TM-STD", tm),
            (2, "Cloud migration", "Closed Won", 90000.00, "EUR", "DE01", "FIXED-3", fixed),
            (3, "Audit readiness", "Closed Won", 45000.00, "USD", "US01", "LEGACY-X", fixed),
            (4, "Data platform", "Negotiation/Review", 180000.00, "GBP", "UK01", "FIXED-3", fixed),
            (1, "Support retainer", "Prospecting", 60000.00, "USD", "US01", "TM-STD", retainer),
        ]  # fmt: skip
        planned_margins = (35.0, 30.0, 40.0, 25.0, 35.0, 45.0)
        opp_ids: list[str] = []
        for index, (row, margin) in enumerate(zip(opportunities, planned_margins, strict=True)):
            account, name, stage, amount, currency, entity, template, billing = row
            won = stage == "Closed Won"
            opp_ids.append(
                add(
                    "Opportunity",
                    {
                        "Name": name,
                        "StageName": stage,
                        "Amount": amount,
                        "CloseDate": close if won else later,
                        "CurrencyIsoCode": currency,
                        "AccountId": account_ids[account],
                        "Legal_Entity__c": entity,
                        "Project_Template__c": template,
                        "Billing_Model__c": billing,
                        "Planned_Margin__c": margin,
                    },
                    created=(won_at + timedelta(minutes=index) - timedelta(days=30))
                    if won
                    else open_created,
                )
            )
        # the business history of the deals: quotes, then the stage changes
        for index, opp_id in enumerate(opp_ids):
            opp = self.table("Opportunity")[opp_id]
            created = parse_datetime(opp["CreatedDate"])
            if not opp["IsWon"]:
                self.add_history(opp, at=created, stage="Prospecting")
                if opp["StageName"] != "Prospecting":
                    self.add_history(opp, at=reset_at - timedelta(days=5))
                continue
            win = won_at + timedelta(minutes=index)
            quoted = win - timedelta(days=10)
            add(
                "Quote",
                {
                    "Name": f"{opp['Name']} - proposal",
                    "OpportunityId": opp_id,
                    "Status": "Accepted",
                    "ExpirationDate": (quoted + timedelta(days=30)).date().isoformat(),
                },
                created=quoted,
            )
            self.add_history(opp, at=created, stage="Prospecting")
            self.add_history(opp, at=quoted, stage="Proposal/Price Quote")
            self.add_history(opp, at=win)
        plan = [
            {"name": "Design", "percent": 30, "offset_days": 30},
            {"name": "Build", "percent": 50, "offset_days": 75},
            {"name": "Go-live", "percent": 20, "offset_days": 120},
        ]
        add(
            "Contract_Amendment__c",
            {
                "Opportunity__c": opp_ids[0],
                "New_Total_Value__c": 135000.00,
                "Effective_Date__c": (reset_at + timedelta(days=14)).date().isoformat(),
                "Status__c": "Draft",
                "Reason__c": "Scope extension: second legal entity",
                "Milestone_Plan__c": json.dumps(plan),
            },
        )

    # -- records --------------------------------------------------------------------------
    def _next_sequence(self, sobject: str) -> int:
        with self.lock:
            number = self._sequences.get(sobject, 0) + 1
            self._sequences[sobject] = number
        return number

    def new_id(self, sobject: str) -> str:
        return make_id(KEY_PREFIXES[sobject], self._next_sequence(sobject))

    def insert(
        self,
        sobject: str,
        fields: dict[str, Any],
        *,
        at: datetime | None = None,
        created_at: datetime | None = None,
        notify: bool = True,
    ) -> SObjectRecord:
        """Store a new record with Salesforce's defaults (currency, picklist defaults, auto
        numbers, a detail record's currency from its Opportunity). `at` stamps it (now by
        default), `created_at` backdates CreatedDate; `notify` runs the listener (history
        row, outbound event) as for a record created through the API."""
        schema = SOBJECTS[sobject]
        with self.lock:
            number = self._next_sequence(sobject)
            data: dict[str, Any] = {name: None for name in schema}
            if "CurrencyIsoCode" in schema:
                data["CurrencyIsoCode"] = CORPORATE_CURRENCY
            for (obj, name), default in PICKLIST_DEFAULTS.items():
                if obj == sobject:
                    data[name] = default
            data.update(fields)
            parent_field = CURRENCY_FROM_PARENT.get(sobject)
            parent = self.table("Opportunity").get(data.get(parent_field) or "")
            if parent is not None and fields.get("CurrencyIsoCode") is None:
                data["CurrencyIsoCode"] = parent.get("CurrencyIsoCode")
            if sobject == "Quote":
                data["QuoteNumber"] = f"{number:08d}"
                data["GrandTotal"] = parent.get("Amount") if parent is not None else None
            elif sobject == "Contract_Amendment__c":
                data["Name"] = f"AMD-{number:05d}"
            data["Id"] = make_id(KEY_PREFIXES[sobject], number)
            stamp = format_datetime(at or self.now())
            for name in TIMESTAMP_FIELDS:
                if name in schema:
                    data[name] = stamp
            if created_at is not None:
                data["CreatedDate"] = format_datetime(created_at)
            record = SObjectRecord(sobject, self.now, data, self._record_changed)
            record.derive()
            self.table(sobject)[record["Id"]] = record
            if notify:
                self._record_changed(record, None)
        return record

    def new_record(self, sobject: str, fields: dict[str, Any]) -> SObjectRecord:
        """A record created through the API, now."""
        return self.insert(sobject, fields)

    def add_history(
        self,
        opp: dict[str, Any],
        *,
        at: datetime | None = None,
        stage: str | None = None,
        before: dict[str, Any] | None = None,
    ) -> SObjectRecord:
        """Write the OpportunityHistory row Salesforce writes for a change of `opp` (its
        current stage unless `stage` is given, at its SystemModstamp unless `at` is)."""
        stage = stage or opp.get("StageName")
        probability, forecast = STAGES.get(str(stage), (None, "Pipeline"))
        when = at or parse_datetime(str(opp.get("SystemModstamp")))
        fields = {
            "OpportunityId": opp["Id"],
            "StageName": stage,
            "Amount": opp.get("Amount"),
            "CloseDate": opp.get("CloseDate"),
            "Probability": probability,
            "ForecastCategory": forecast,
            "PrevAmount": before.get("Amount") if before else None,
            "PrevCloseDate": before.get("CloseDate") if before else None,
            "CurrencyIsoCode": opp.get("CurrencyIsoCode"),
            "IsDeleted": False,
        }
        return self.insert("OpportunityHistory", fields, at=when, notify=False)

    def _record_changed(self, record: SObjectRecord, before: dict[str, Any] | None) -> None:
        """What Salesforce (and the managed package's flow) does after a record is saved:
        stage history for Opportunities, outbound events on a win or an approval."""
        was = before or {}
        if record.sobject == "Opportunity":
            if before is None:
                self.add_history(record, at=parse_datetime(str(record["CreatedDate"])))
            elif any(was.get(name) != record.get(name) for name in HISTORY_FIELDS):
                self.add_history(record, before=before)
            if record.get("IsWon") and not was.get("IsWon"):
                self.emit(EVENT_CLOSED_WON, record)
        elif (
            record.sobject == "Contract_Amendment__c"
            and record.get("Status__c") == "Approved"
            and was.get("Status__c") != "Approved"
        ):
            self.emit(EVENT_AMENDMENT_APPROVED, record)

    # -- control endpoints ----------------------------------------------------------------
    def close_deal(
        self,
        *,
        account_id: str | None = None,
        amount: Any = None,
        legal_entity: str | None = None,
        template: str | None = None,
        billing_model: str | None = None,
        sales_cycle_days: Any = 21,
        planned_margin: Any = DEFAULT_PLANNED_MARGIN,
        close_date: Any = None,
    ) -> dict[str, str]:
        """A new Opportunity with an Accepted Quote, moved to Closed Won (see the module
        docstring). ValueError for bad input, LookupError for an unknown account."""
        if account_id is not None and not isinstance(account_id, str):
            raise ValueError("account_id must be a string")
        normal = normalize_id(account_id) if account_id is not None else NORTHWIND_ACCOUNT
        deal_amount = _demo_amount(amount)
        if isinstance(sales_cycle_days, bool) or not isinstance(sales_cycle_days, int):
            raise ValueError("sales_cycle_days must be an integer")
        if not 0 <= sales_cycle_days <= 730:
            raise ValueError("sales_cycle_days must lie from 0 to 730")
        margin = _demo_margin(planned_margin)
        closed_on = _demo_close_date(close_date)
        for name, value in (("legal_entity", legal_entity), ("template", template)):
            if value is not None and (not isinstance(value, str) or not 0 < len(value) <= 40):
                raise ValueError(f"{name} must be a string of 1 to 40 characters")
        with self.lock:
            account = self.table("Account").get(normal or "")
            if account is None:
                raise LookupError(f"no Account {account_id}")
            template = template or "FIXED-3"
            billing = billing_model or TEMPLATE_BILLING_MODELS.get(template, "Fixed Fee")
            models = PICKLIST_VALUES[("Opportunity", "Billing_Model__c")]
            if billing not in models:
                raise ValueError(f"billing_model must be one of {', '.join(models)}")
            entity = legal_entity or DEMO_ENTITIES.get(
                str(account.get("BillingCountry") or "").upper(), "UK01"
            )
            now = self.now()
            created = now - timedelta(days=sales_cycle_days)
            quoted = now - timedelta(days=sales_cycle_days // 2)
            closed_on = closed_on or now.date()
            if closed_on > now.date():
                raise ValueError("close_date must not lie in the future")
            number = self._sequences.get("Opportunity", 0) + 1
            opp = self.insert(
                "Opportunity",
                {
                    "Name": f"{account.get('Name')} - engagement {number}",
                    "StageName": "Prospecting",
                    "Amount": float(deal_amount),
                    "CloseDate": closed_on.isoformat(),
                    "CurrencyIsoCode": account.get("CurrencyIsoCode") or CORPORATE_CURRENCY,
                    "AccountId": account["Id"],
                    "Legal_Entity__c": entity,
                    "Project_Template__c": template,
                    "Billing_Model__c": billing,
                    "Planned_Margin__c": margin,
                },
                at=created,
                created_at=created,
            )
            quote = self.insert(
                "Quote",
                {
                    "Name": f"{opp['Name']} - proposal",
                    "OpportunityId": opp["Id"],
                    "Status": "Accepted",
                    "ExpirationDate": (quoted + timedelta(days=30)).date().isoformat(),
                },
                at=now,
                created_at=quoted,
            )
            opp.update({"StageName": "Closed Won"})
        return {"id": opp["Id"], "quote_id": quote["Id"]}

    def approve_amendment(self, amendment_id: Any) -> SObjectRecord:
        """Set a Contract_Amendment__c to Approved (KeyError when there is no such one)."""
        normal = normalize_id(amendment_id) if isinstance(amendment_id, str) else None
        with self.lock:
            record = self.table("Contract_Amendment__c").get(normal or "")
            if not isinstance(record, SObjectRecord):
                raise KeyError(amendment_id)
            if record.get("Status__c") != "Approved":
                record.update({"Status__c": "Approved"})
        return record

    # -- outbound events ------------------------------------------------------------------
    def configure_webhook(self, url: str | None, secret: str | None = None) -> None:
        """Point the outbound events at `url`, signed with `secret`; None switches them off."""
        with self.lock:
            self._webhook = {"url": url, "secret": secret or ""} if url else None

    def webhook_info(self) -> dict[str, Any]:
        with self.lock:
            hook = self._webhook
            return {
                "configured": hook is not None,
                "url": hook["url"] if hook else None,
                "deliveries": list(self.webhook_deliveries),
            }

    def emit(self, event: str, record: dict[str, Any]) -> None:
        """Queue one outbound event for the background sender (no-op when unconfigured)."""
        with self.lock:
            hook = self._webhook
        if not hook:
            return
        payload = {
            "event": event,
            "sobject": getattr(record, "sobject", ""),
            "id": record.get("Id"),
            "systemModstamp": record.get("SystemModstamp"),
            "occurredAt": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        }
        body = json.dumps(payload, separators=(",", ":")).encode()
        with self._webhook_cv:
            self._webhook_pending += 1
            item = (self._webhook_generation, hook["url"], hook["secret"], payload, body)
            if self._webhook_thread is None or not self._webhook_thread.is_alive():
                self._webhook_thread = threading.Thread(
                    target=self._webhook_worker, name="salesforce-webhooks", daemon=True
                )
                self._webhook_thread.start()
        self._webhook_queue.put(item)

    def wait_for_webhooks(self, timeout: float = 5.0) -> bool:
        """Wait until every queued event is delivered or given up; False on timeout."""
        with self._webhook_cv:
            return self._webhook_cv.wait_for(lambda: self._webhook_pending == 0, timeout)

    def _webhook_worker(self) -> None:
        while True:
            item = self._webhook_queue.get()
            try:
                self._deliver(*item)
            except Exception:  # the sender must outlive any one delivery
                logger.exception("delivering a Salesforce stand-in event failed")
            finally:
                with self._webhook_cv:
                    self._webhook_pending -= 1
                    self._webhook_cv.notify_all()

    def _deliver(
        self, generation: int, url: str, secret: str, payload: dict[str, Any], body: bytes
    ) -> None:
        attempts = 1 + max(int(self.webhook_retries), 0)
        for attempt in range(1, attempts + 1):
            if generation != self._webhook_generation:
                return  # the org was reset since the event
            timestamp = str(int(time.time()))
            digest = hmac.new(
                secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256
            ).hexdigest()
            status: int | None = None
            error = ""
            try:
                response = httpx.post(
                    url,
                    content=body,
                    headers={
                        "Content-Type": "application/json",
                        "User-Agent": "SFDC-Callout/62.0",
                        SIGNATURE_HEADER: f"sha256={digest}",
                        TIMESTAMP_HEADER: timestamp,
                    },
                    timeout=self.webhook_timeout,
                )
                status = response.status_code
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"[:300]
            delivered = status is not None and 200 <= status < 300
            final = delivered or (
                status is not None and status < 500 and status not in RETRY_STATUSES
            )
            with self.lock:
                self.webhook_deliveries.append(
                    {
                        "event": payload["event"],
                        "id": payload["id"],
                        "url": url,
                        "attempt": attempt,
                        "status": status,
                        "error": error,
                        "delivered": delivered,
                        "at": time.time(),
                    }
                )
            if final:
                return
            if attempt < attempts:
                time.sleep(max(float(self.webhook_backoff), 0.0) * 2 ** (attempt - 1))
        logger.warning("gave up delivering %s for %s to %s", payload["event"], payload["id"], url)

    # -- auth -----------------------------------------------------------------------------
    def public_key_pem(self, key_id: str) -> str | None:
        """The trusted PEM (public key or certificate) for a consumer key, if any."""
        if key_id in self.trusted_keys:
            return self.trusted_keys[key_id]
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,200}", key_id) or key_id.startswith("."):
            return None
        directory = Path(self.keys_dir or os.environ.get("STANDIN_KEYS_DIR", "var/standin-keys"))
        path = directory / VENDOR / f"{key_id}.pem"
        try:
            return path.read_text()
        except OSError:
            return None

    def sign(self, identity_url: str, issued_at: str) -> str:
        digest = hmac.new(
            self._signing_secret, (identity_url + issued_at).encode(), hashlib.sha256
        ).digest()
        return base64.b64encode(digest).decode()

    # -- query cursors --------------------------------------------------------------------
    def store_cursor(self, rows: list[dict[str, Any]]) -> str:
        with self.lock:
            cursor = make_id("01g", 1000 + self.next_number())
            self.cursors[cursor] = rows
            while len(self.cursors) > 50:
                self.cursors.popitem(last=False)
        return cursor


# -- error answers ------------------------------------------------------------------------

_DEFAULT_CODES = {
    300: "MULTIPLE_CHOICES",
    400: "BAD_REQUEST",
    401: "INVALID_SESSION_ID",
    403: "REQUEST_LIMIT_EXCEEDED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    415: "UNSUPPORTED_MEDIA_TYPE",
    500: "UNKNOWN_EXCEPTION",
    503: "SERVER_UNAVAILABLE",
}


def error_body(status: int, code: str, message: str) -> list[dict[str, Any]]:
    """Salesforce's REST error shape: a JSON array of `{message, errorCode}`."""
    return [{"message": message, "errorCode": code or _DEFAULT_CODES.get(status, "UNKNOWN")}]


class SalesforceApiError(Exception):
    """Raised inside handlers; becomes the Salesforce error array."""

    def __init__(
        self, status: int, code: str, message: str, fields: list[str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields

    def response(self) -> JSONResponse:
        item: dict[str, Any] = {"message": self.message, "errorCode": self.code}
        if self.fields is not None:
            item["fields"] = self.fields
        return JSONResponse([item], status_code=self.status)


def _not_found() -> SalesforceApiError:
    return SalesforceApiError(404, "NOT_FOUND", "The requested resource does not exist")


def _oauth_error(error: str, description: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status)


# -- SOQL subset --------------------------------------------------------------------------


class SoqlError(SalesforceApiError):
    def __init__(self, message: str, code: str = "MALFORMED_QUERY") -> None:
        super().__init__(400, code, message)


_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
    |(?P<string>'(?:[^'\\]|\\.)*')
    |(?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:?\d{2}))
    |(?P<date>\d{4}-\d{2}-\d{2})
    |(?P<number>-?\d+(?:\.\d+)?)
    |(?P<op>!=|<>|<=|>=|=|<|>)
    |(?P<punct>[,()])
    |(?P<ident>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
    """,
    re.VERBOSE | re.DOTALL,
)
_ESCAPES = {"'": "'", '"': '"', "\\": "\\", "n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f"}
_UNSUPPORTED = frozenset(
    {"OR", "NOT", "LIKE", "INCLUDES", "EXCLUDES", "GROUP", "HAVING", "OFFSET", "WITH", "FOR",
     "TYPEOF", "USING", "SCOPE", "ROLLUP", "CUBE", "FORMAT"}
)  # fmt: skip


@dataclass(frozen=True)
class SoqlToken:
    kind: str
    text: str
    value: Any = None

    def keyword(self) -> str:
        return self.text.upper() if self.kind == "ident" else ""


def tokenize(soql: str) -> list[SoqlToken]:
    tokens: list[SoqlToken] = []
    pos = 0
    while pos < len(soql):
        match = _TOKEN.match(soql, pos)
        if match is None:
            raise SoqlError(f"unexpected character at position {pos}: {soql[pos : pos + 10]!r}")
        pos = match.end()
        kind = match.lastgroup or ""
        text = match.group()
        if kind == "ws":
            continue
        value: Any = None
        if kind == "string":
            value = _unescape(text[1:-1])
        elif kind == "number":
            value = Decimal(text)
        elif kind == "datetime":
            value = parse_datetime(text)
        elif kind == "date":
            try:
                value = date.fromisoformat(text)
            except ValueError as exc:
                raise SoqlError(f"invalid date literal {text}") from exc
        elif kind == "op" and text == "<>":
            text = "!="
        tokens.append(SoqlToken(kind, text, value))
    return tokens


def _unescape(body: str) -> str:
    out: list[str] = []
    chars = iter(body)
    for char in chars:
        if char != "\\":
            out.append(char)
            continue
        nxt = next(chars, "")
        if nxt not in _ESCAPES:
            raise SoqlError(f"invalid escape sequence \\{nxt} in string literal")
        out.append(_ESCAPES[nxt])
    return "".join(out)


@dataclass(frozen=True)
class FieldRef:
    relationship: str | None
    name: str
    type: str

    @property
    def label(self) -> str:
        return f"{self.relationship}.{self.name}" if self.relationship else self.name


@dataclass
class Condition:
    field: FieldRef
    op: str
    value: Any  # a python value, or a list of them for IN


@dataclass
class Query:
    sobject: str
    fields: list[FieldRef]
    where: list[Condition] = field(default_factory=list)
    #: (field, descending, nulls first), most significant first
    order: list[tuple[FieldRef, bool, bool]] = field(default_factory=list)
    limit: int | None = None


def _canonical(names: dict[str, str] | list[str] | set[str], raw: str) -> str | None:
    lower = raw.lower()
    for name in names:
        if name.lower() == lower:
            return name
    return None


def resolve_field(sobject: str, raw: str) -> FieldRef:
    parts = raw.split(".")
    if len(parts) > 2:
        raise SoqlError(f"relationship paths deeper than one level are not supported: {raw}")
    if len(parts) == 2:
        relationship = _canonical(list(RELATIONSHIPS.get(sobject, {})), parts[0])
        if relationship is None:
            raise SoqlError(
                f"Didn't understand relationship '{parts[0]}' in field path.", "INVALID_FIELD"
            )
        target = RELATIONSHIPS[sobject][relationship][1]
        name = _canonical(SOBJECTS[target], parts[1])
        if name is None:
            raise SoqlError(f"No such column '{parts[1]}' on entity '{target}'.", "INVALID_FIELD")
        return FieldRef(relationship, name, SOBJECTS[target][name])
    name = _canonical(SOBJECTS[sobject], raw)
    if name is None:
        raise SoqlError(
            f"No such column '{raw}' on entity '{sobject}'. If you are attempting to use a "
            "custom field, be sure to append the '__c' after the custom field name.",
            "INVALID_FIELD",
        )
    return FieldRef(None, name, SOBJECTS[sobject][name])


class _Parser:
    def __init__(self, tokens: list[SoqlToken]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> SoqlToken | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> SoqlToken:
        token = self.peek()
        if token is None:
            raise SoqlError("unexpected end of query")
        self.pos += 1
        return token

    def expect_keyword(self, *words: str) -> str:
        token = self.take()
        if token.keyword() not in words:
            raise SoqlError(f"unexpected token: '{token.text}', expected {' or '.join(words)}")
        return token.keyword()

    def at_keyword(self, *words: str) -> bool:
        token = self.peek()
        return token is not None and token.keyword() in words

    def at_text(self, text: str) -> bool:
        token = self.peek()
        return token is not None and token.text == text

    def identifier(self) -> str:
        token = self.take()
        if token.kind != "ident":
            raise SoqlError(f"unexpected token: '{token.text}'")
        if token.keyword() in _UNSUPPORTED:
            raise SoqlError(f"'{token.text}' is not supported by the stand-in's SOQL subset")
        return token.text

    def parse(self) -> Query:
        self.expect_keyword("SELECT")
        raw_fields = [self.select_item()]
        while self.at_text(","):
            self.take()
            raw_fields.append(self.select_item())
        self.expect_keyword("FROM")
        raw_object = self.identifier()
        sobject = _canonical(SOBJECTS, raw_object)
        if sobject is None:
            raise SoqlError(f"sObject type '{raw_object}' is not supported.", "INVALID_TYPE")
        fields: list[FieldRef] = []
        for raw in raw_fields:
            ref = resolve_field(sobject, raw)
            if ref in fields:
                raise SoqlError(f"duplicate field selected: {ref.label}")
            fields.append(ref)
        query = Query(sobject, fields)
        if self.at_keyword("WHERE"):
            self.take()
            query.where.append(self.condition(sobject))
            while self.at_keyword("AND"):
                self.take()
                query.where.append(self.condition(sobject))
        if self.at_keyword("ORDER"):
            self.take()
            self.expect_keyword("BY")
            query.order.append(self.order_item(sobject))
            while self.at_text(","):
                self.take()
                query.order.append(self.order_item(sobject))
        if self.at_keyword("LIMIT"):
            self.take()
            token = self.take()
            if token.kind != "number" or "." in token.text or token.text.startswith("-"):
                raise SoqlError(f"LIMIT must be a non-negative integer, not '{token.text}'")
            query.limit = int(token.text)
        token = self.peek()
        if token is not None:
            if token.keyword() in _UNSUPPORTED:
                raise SoqlError(f"'{token.text}' is not supported by the stand-in's SOQL subset")
            raise SoqlError(f"unexpected token: '{token.text}'")
        return query

    def order_item(self, sobject: str) -> tuple[FieldRef, bool, bool]:
        ref = resolve_field(sobject, self.identifier())
        if ref.type == "textarea":
            raise SoqlError(
                f"field '{ref.label}' can not be sorted in a query call", "INVALID_FIELD"
            )
        descending = False
        if self.at_keyword("ASC", "DESC"):
            descending = self.take().keyword() == "DESC"
        nulls_first = not descending
        if self.at_keyword("NULLS"):
            self.take()
            nulls_first = self.expect_keyword("FIRST", "LAST") == "FIRST"
        return ref, descending, nulls_first

    def select_item(self) -> str:
        if self.at_text("("):
            raise SoqlError("sub-queries are not supported by the stand-in's SOQL subset")
        name = self.identifier()
        if self.at_text("("):
            raise SoqlError(f"function {name}() is not supported by the stand-in's SOQL subset")
        return name

    def condition(self, sobject: str) -> Condition:
        if self.at_text("("):
            raise SoqlError("parenthesised conditions are not supported by the stand-in")
        ref = resolve_field(sobject, self.identifier())
        if ref.type == "textarea":
            raise SoqlError(
                f"field '{ref.label}' can not be filtered in a query call", "INVALID_FIELD"
            )
        op_token = self.take()
        if op_token.keyword() == "IN":
            open_paren = self.take()
            if open_paren.text != "(":
                raise SoqlError(f"unexpected token: '{open_paren.text}', expected (")
            values = [self.literal(ref)]
            while True:
                token = self.take()
                if token.text == ")":
                    break
                if token.text != ",":
                    raise SoqlError(f"unexpected token: '{token.text}'")
                values.append(self.literal(ref))
            return Condition(ref, "IN", values)
        if op_token.kind != "op":
            if op_token.keyword() in _UNSUPPORTED:
                raise SoqlError(f"'{op_token.text}' is not supported by the stand-in's SOQL subset")
            raise SoqlError(f"unexpected token: '{op_token.text}', expected an operator")
        value = self.literal(ref)
        if value is None and op_token.text not in ("=", "!="):
            raise SoqlError(f"null can only be compared with = or !=, not {op_token.text}")
        return Condition(ref, op_token.text, value)

    def literal(self, ref: FieldRef) -> Any:
        token = self.take()
        if token.keyword() == "NULL":
            return None
        expected = {
            "id": "string",
            "reference": "string",
            "string": "string",
            "picklist": "string",
            "currency_code": "string",
            "currency": "number",
            "percent": "number",
            "boolean": "boolean",
            "date": "date",
            "datetime": "datetime",
        }[ref.type]
        kind = token.kind
        if kind == "ident" and token.keyword() in ("TRUE", "FALSE"):
            kind = "boolean"
        if kind != expected:
            if kind == "ident":
                raise SoqlError(
                    f"'{token.text}' is not a value the stand-in's SOQL subset understands"
                )
            quoting = "be enclosed" if expected == "string" else "not be enclosed"
            type_name = {"datetime": "dateTime", "number": "double"}.get(expected, expected)
            raise SoqlError(
                f"value of filter criterion for field '{ref.label}' must be of type {type_name} "
                f"and should {quoting} in quotes",
                "INVALID_FIELD",
            )
        if kind == "boolean":
            return token.keyword() == "TRUE"
        if ref.type in ("id", "reference"):
            normal = normalize_id(token.value)
            if normal is None:
                raise SoqlError(f"invalid ID field: {token.value}", "INVALID_QUERY_FILTER_OPERATOR")
            return normal
        return token.value


def parse_soql(soql: str) -> Query:
    """Parse the stand-in's SOQL subset, or raise SoqlError (MALFORMED_QUERY, ...)."""
    return _Parser(tokenize(soql)).parse()


def _comparable(ref: FieldRef, value: Any) -> Any:
    """A stored value in the form its literal has (Decimal, date, datetime, casefolded)."""
    if value is None:
        return None
    try:
        if ref.type in ("currency", "percent"):
            return Decimal(str(value))
        if ref.type == "date":
            return date.fromisoformat(str(value))
        if ref.type == "datetime":
            return parse_datetime(str(value))
    except (ValueError, InvalidOperation):
        return None
    if ref.type in ("string", "picklist", "currency_code") and isinstance(value, str):
        return value.casefold()
    return value


_COMPARATORS: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    ">": lambda a, b: a > b,
    "<=": lambda a, b: a <= b,
    ">=": lambda a, b: a >= b,
}


def _matches(condition: Condition, value: Any) -> bool:
    ref = condition.field
    actual = _comparable(ref, value)
    if condition.op == "IN":
        wanted = [_comparable(ref, v) if isinstance(v, str) else v for v in condition.value]
        return actual in wanted
    expected = condition.value
    if isinstance(expected, str):
        expected = _comparable(ref, expected)
    if expected is None or actual is None:
        if condition.op == "=":
            return actual is None and expected is None
        if condition.op == "!=":
            return (actual is None) != (expected is None)
        return False
    try:
        return _COMPARATORS[condition.op](actual, expected)
    except TypeError:
        return False


def run_query(state: SalesforceState, query: Query, version: str) -> list[dict[str, Any]]:
    """Evaluate a parsed query against the state: filter, sort, limit, render."""
    with state.lock:
        rows = list(state.table(query.sobject).values())

        def value_of(record: dict[str, Any], ref: FieldRef) -> Any:
            if ref.relationship is None:
                return record.get(ref.name)
            fk, target = RELATIONSHIPS[query.sobject][ref.relationship]
            parent = state.table(target).get(record.get(fk) or "")
            return parent.get(ref.name) if parent else None

        selected = [r for r in rows if all(_matches(c, value_of(r, c.field)) for c in query.where)]
        # one stable sort per key, least significant first, gives the multi-field order
        for ref, descending, nulls_first in reversed(query.order):

            def key(record: dict[str, Any], ref: FieldRef = ref) -> Any:
                return _comparable(ref, value_of(record, ref))

            present = [r for r in selected if key(r) is not None]
            missing = [r for r in selected if key(r) is None]
            present.sort(key=key, reverse=descending)
            selected = missing + present if nulls_first else present + missing
        if query.limit is not None:
            selected = selected[: query.limit]
        return [render_record(state, query, record, version) for record in selected]


def _attributes(sobject: str, record_id: str, version: str) -> dict[str, str]:
    return {"type": sobject, "url": f"/services/data/{version}/sobjects/{sobject}/{record_id}"}


def render_record(
    state: SalesforceState, query: Query, record: dict[str, Any], version: str
) -> dict[str, Any]:
    out: dict[str, Any] = {"attributes": _attributes(query.sobject, record["Id"], version)}
    for ref in query.fields:
        if ref.relationship is None:
            out[ref.name] = record.get(ref.name)
            continue
        fk, target = RELATIONSHIPS[query.sobject][ref.relationship]
        parent = state.table(target).get(record.get(fk) or "")
        if parent is None:
            out[ref.relationship] = None
            continue
        nested = out.get(ref.relationship)
        if nested is None:
            nested = out[ref.relationship] = {
                "attributes": _attributes(target, parent["Id"], version)
            }
        nested[ref.name] = parent.get(ref.name)
    return out


# -- write validation ---------------------------------------------------------------------


#: most records one sObject Collections request may carry
COLLECTION_LIMIT = 200
ROLLED_BACK = "ALL_OR_NONE_OPERATION_ROLLED_BACK"
ROLLED_BACK_MESSAGE = (
    "Record rolled back because not all records were valid and the request was using "
    "AllOrNone header"
)


def _save_error(code: str, message: str, fields: list[str] | None = None) -> dict[str, Any]:
    """One error of a SaveResult: `statusCode`, where a whole-call error has `errorCode`."""
    return {"statusCode": code, "message": message, "fields": list(fields or [])}


def collection_update(state: SalesforceState, body: Any) -> list[dict[str, Any]]:
    """sObject Collections update (see the module docstring): the SaveResults, in order.
    A request that is not well formed raises SalesforceApiError (400)."""
    if not isinstance(body, dict):
        raise SalesforceApiError(
            400, "JSON_PARSER_ERROR", "The request body must be a JSON object with records"
        )
    all_or_none = body.get("allOrNone", False)
    if not isinstance(all_or_none, bool):
        raise SalesforceApiError(
            400, "JSON_PARSER_ERROR", "Cannot deserialize instance of boolean for allOrNone"
        )
    records = body.get("records")
    if not isinstance(records, list):
        raise SalesforceApiError(
            400, "JSON_PARSER_ERROR", "records: a list of sObjects is required"
        )
    if len(records) > COLLECTION_LIMIT:
        raise SalesforceApiError(
            400,
            "EXCEEDED_ID_LIMIT",
            "record limit reached. cannot submit more than 200 records into this call",
        )
    # (sobject, raw id, fields) for each record, checked for shape before anything is written
    items: list[tuple[str, Any, dict[str, Any]]] = []
    for raw in records:
        if not isinstance(raw, dict):
            raise SalesforceApiError(
                400, "JSON_PARSER_ERROR", "Each record must be a JSON object of fields"
            )
        attributes = raw.get("attributes")
        kind = attributes.get("type") if isinstance(attributes, dict) else None
        if not isinstance(kind, str) or not kind:
            raise SalesforceApiError(
                400,
                "INVALID_TYPE",
                "Each record must contain an attributes map with a value for type",
            )
        sobject = _canonical(SOBJECTS, kind)
        if sobject is None:
            raise SalesforceApiError(
                400, "INVALID_TYPE", f"sObject type '{kind}' is not supported."
            )
        id_key = _canonical([k for k in raw if isinstance(k, str)], "id")
        fields = {k: v for k, v in raw.items() if k not in ("attributes", id_key)}
        items.append((sobject, raw.get(id_key) if id_key else None, fields))

    def check(sobject: str, raw_id: Any, fields: dict[str, Any]) -> tuple[Any, Any, Any]:
        """(record, values, error): what one record would write, or its error."""
        if raw_id in (None, ""):
            return None, None, _save_error("MISSING_ARGUMENT", "Id not specified in an update call")
        normal = normalize_id(raw_id) if isinstance(raw_id, str) else None
        if normal is None or not normal.startswith(KEY_PREFIXES[sobject]):
            message = f"{sobject} ID: id value of incorrect type: {raw_id}"
            return None, None, _save_error("MALFORMED_ID", message, ["Id"])
        record = state.table(sobject).get(normal)
        if not isinstance(record, SObjectRecord):
            return None, None, _save_error("ENTITY_IS_DELETED", "entity is deleted")
        try:
            values = validate_write(state, sobject, fields, creating=False, current=record)
        except SalesforceApiError as exc:
            return record, None, _save_error(exc.code, exc.message, exc.fields)
        return record, values, None

    def result(record: Any, error: dict[str, Any] | None) -> dict[str, Any]:
        out: dict[str, Any] = {"id": record["Id"]} if record is not None else {}
        out.update({"success": error is None, "errors": [error] if error else []})
        return out

    results: list[dict[str, Any]] = []
    with state.lock:
        if all_or_none:
            checked = [check(*item) for item in items]
            if any(error is not None for _r, _v, error in checked):
                rolled_back = _save_error(ROLLED_BACK, ROLLED_BACK_MESSAGE)
                return [result(record, error or rolled_back) for record, _v, error in checked]
            for record, values, _error in checked:
                record.update(values)
                results.append(result(record, None))
            return results
        for item in items:
            record, values, error = check(*item)
            if error is None:
                record.update(values)
            results.append(result(record, error))
    return results


def _resolve_sobject(raw: str) -> str:
    sobject = _canonical(SOBJECTS, raw)
    if sobject is None:
        raise _not_found()
    return sobject


def _coerce(state: SalesforceState, sobject: str, name: str, value: Any) -> Any:
    kind = SOBJECTS[sobject][name]
    if value is None:
        return None
    if kind == "picklist":
        allowed = PICKLIST_VALUES.get((sobject, name))
        if not isinstance(value, str) or (allowed is not None and value not in allowed):
            raise SalesforceApiError(
                400,
                "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                f"{name}: bad value for restricted picklist field: {value}",
                fields=[name],
            )
        return value
    if kind == "textarea":
        if not isinstance(value, str):
            raise SalesforceApiError(
                400,
                "JSON_PARSER_ERROR",
                f"Cannot deserialize instance of string from {type(value).__name__} value "
                f"for field {name}",
            )
        if len(value) > LONG_TEXT_LENGTH:
            raise SalesforceApiError(
                400, "STRING_TOO_LONG", f"{name}: data value too large", fields=[name]
            )
        return value
    if kind == "string":
        if not isinstance(value, str):
            raise SalesforceApiError(
                400,
                "JSON_PARSER_ERROR",
                f"Cannot deserialize instance of string from {type(value).__name__} value "
                f"for field {name}",
            )
        if len(value) > 255:
            raise SalesforceApiError(
                400, "STRING_TOO_LONG", f"{name}: data value too large", fields=[name]
            )
        return value
    if kind in ("currency", "percent"):
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise SalesforceApiError(
                400, "JSON_PARSER_ERROR", f"Cannot deserialize instance of double for {name}"
            )
        try:
            amount = Decimal(str(value))
        except InvalidOperation as exc:
            raise SalesforceApiError(
                400, "JSON_PARSER_ERROR", f"Cannot deserialize instance of double from {value!r}"
            ) from exc
        if not amount.is_finite():
            raise SalesforceApiError(400, "NUMBER_OUTSIDE_VALID_RANGE", f"{name}: bad number")
        return float(amount.quantize(Decimal("0.01")))
    if kind == "date":
        try:
            if not isinstance(value, str):
                raise ValueError(value)
            return date.fromisoformat(value).isoformat()
        except ValueError as exc:
            raise SalesforceApiError(
                400, "JSON_PARSER_ERROR", f"Cannot deserialize value of type date from {value!r}"
            ) from exc
    if kind == "boolean":
        if not isinstance(value, bool):
            raise SalesforceApiError(
                400, "JSON_PARSER_ERROR", f"Cannot deserialize instance of boolean for {name}"
            )
        return value
    if kind == "currency_code":
        if value not in ACTIVE_CURRENCIES:
            raise SalesforceApiError(
                400,
                "FIELD_INTEGRITY_EXCEPTION",
                f"Currency ISO Code: invalid currency code: {value}",
                fields=[name],
            )
        return value
    if kind == "reference":
        normal = normalize_id(value) if isinstance(value, str) else None
        target = REFERENCE_TARGETS[name]
        if normal is None:
            raise SalesforceApiError(
                400,
                "MALFORMED_ID",
                f"{target} ID: id value of incorrect type: {value}",
                fields=[name],
            )
        if normal not in state.table(target):
            raise SalesforceApiError(
                400,
                "INVALID_CROSS_REFERENCE_KEY",
                "invalid cross reference id",
                fields=[name],
            )
        return normal
    raise SalesforceApiError(400, "INVALID_FIELD", f"field {name} cannot be written", [name])


def _refuse_query_only(sobject: str, action: str) -> None:
    if sobject in QUERY_ONLY_OBJECTS:
        raise SalesforceApiError(
            400, "INVALID_TYPE_FOR_OPERATION", f"entity type cannot be {action}: {sobject}"
        )


def validate_write(
    state: SalesforceState,
    sobject: str,
    body: Any,
    *,
    creating: bool,
    current: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Check a write body like Salesforce: known, writable, well-typed fields (`current` is
    the record an update changes)."""
    _refuse_query_only(sobject, "inserted" if creating else "updated")
    if not isinstance(body, dict):
        raise SalesforceApiError(
            400, "JSON_PARSER_ERROR", "The request body must be a JSON object of fields"
        )
    schema = SOBJECTS[sobject]
    unknown = [key for key in body if key != "attributes" and _canonical(schema, key) is None]
    if unknown:
        raise SalesforceApiError(
            400,
            "INVALID_FIELD",
            f"No such column '{unknown[0]}' on sobject of type {sobject}",
            fields=unknown,
        )
    values: dict[str, Any] = {}
    for key, value in body.items():
        if key == "attributes":
            continue
        name = _canonical(schema, key) or key
        read_only = READ_ONLY_FIELDS | OBJECT_READ_ONLY_FIELDS.get(sobject, frozenset())
        if not creating:
            read_only |= CREATE_ONLY_FIELDS.get(sobject, frozenset())
        if name in read_only:
            action = "create" if creating else "update"
            raise SalesforceApiError(
                400,
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                f"Unable to {action} fields: [{name}]. Please check the security settings of "
                "this field and verify that it is read/write for your profile or permission "
                "set.",
                fields=[name],
            )
        values[name] = _coerce(state, sobject, name, value)
    if creating:
        missing = [f for f in REQUIRED_FIELDS[sobject] if values.get(f) in (None, "")]
    else:
        missing = [f for f in REQUIRED_FIELDS[sobject] if f in values and values[f] in (None, "")]
    if missing:
        raise SalesforceApiError(
            400,
            "REQUIRED_FIELD_MISSING",
            f"Required fields are missing: [{', '.join(missing)}]",
            fields=missing,
        )
    parent_field = CURRENCY_FROM_PARENT.get(sobject)
    if parent_field:
        parent_id = values.get(parent_field) or (current or {}).get(parent_field)
        parent = state.table("Opportunity").get(parent_id or "")
        if parent is not None and values.get("CurrencyIsoCode") is None:
            if not creating and parent_field in values:  # reparented: the new master's
                values["CurrencyIsoCode"] = parent.get("CurrencyIsoCode")
        elif parent is not None and parent.get("CurrencyIsoCode") != values["CurrencyIsoCode"]:
            raise SalesforceApiError(
                400,
                "FIELD_INTEGRITY_EXCEPTION",
                f"Currency ISO Code: a {sobject} takes the currency of its Opportunity "
                f"({parent.get('CurrencyIsoCode')})",
                fields=["CurrencyIsoCode"],
            )
    return values


# -- app ----------------------------------------------------------------------------------

Handler = Callable[[Request, SalesforceState, str], Awaitable[Response]]


def create_app(state: SalesforceState | None = None) -> Starlette:
    """The Salesforce stand-in as a Starlette app (see the module docstring)."""
    state = state or SalesforceState()

    def own_base(request: Request) -> str:
        return f"{request.url.scheme}://{request.url.netloc}"

    # -- OAuth ------------------------------------------------------------------------
    async def token(request: Request) -> Response:
        params = dict(request.query_params)
        raw = await request.body()
        params.update(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
        if params.get("grant_type") != JWT_BEARER_GRANT:
            return _oauth_error("unsupported_grant_type", "grant type not supported")
        assertion = params.get("assertion", "")
        try:
            header = jwt.get_unverified_header(assertion)
            unverified = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            return _oauth_error("invalid_grant", "invalid assertion")
        consumer_key = unverified.get("iss")
        pem = state.public_key_pem(consumer_key) if isinstance(consumer_key, str) else None
        if pem is None:
            return _oauth_error("invalid_client_id", "client identifier invalid")
        if header.get("alg") != "RS256":
            return _oauth_error("invalid_grant", "invalid assertion")
        try:
            if "BEGIN CERTIFICATE" in pem:
                key: Any = x509.load_pem_x509_certificate(pem.encode()).public_key()
            else:
                key = load_pem_public_key(pem.encode())
        except ValueError:
            logger.warning("unreadable trusted key for consumer key %s", consumer_key)
            return _oauth_error("invalid_client", "invalid client credentials")
        try:
            claims = jwt.decode(
                assertion,
                key,
                algorithms=["RS256"],
                options={"require": ["iss", "sub", "aud", "exp"], "verify_aud": False},
            )
        except jwt.ExpiredSignatureError:
            return _oauth_error("invalid_grant", "expired assertion")
        except jwt.PyJWTError:
            return _oauth_error("invalid_grant", "invalid assertion")
        audiences = {a.rstrip("/") for a in (*LOGIN_AUDIENCES, own_base(request))}
        aud = claims.get("aud")
        aud_values = aud if isinstance(aud, list) else [aud]
        if not any(isinstance(a, str) and a.rstrip("/") in audiences for a in aud_values):
            return _oauth_error("invalid_grant", "audience is invalid")
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or exp > time.time() + MAX_ASSERTION_LIFETIME:
            return _oauth_error("invalid_grant", "assertion expiry is too far in the future")
        subject = claims.get("sub")
        if not isinstance(subject, str) or subject not in state.usernames:
            return _oauth_error("invalid_grant", "user hasn't approved this consumer")
        access_token = state.issue_token(state.token_lifetime)
        issued_at = str(int(time.time() * 1000))
        identity = f"{own_base(request)}/id/{state.org_id}/{state.user_id}"
        return JSONResponse(
            {
                "access_token": access_token,
                "scope": "api",
                "instance_url": state.instance_url or own_base(request),
                "id": identity,
                "token_type": "Bearer",
                "issued_at": issued_at,
                "signature": state.sign(identity, issued_at),
            }
        )

    # -- the REST API -----------------------------------------------------------------
    def api(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """Version check, session check, call budget and the Sforce-Limit-Info header."""

        async def endpoint(request: Request) -> Response:
            version = request.path_params.get("version", "")
            if version not in SUPPORTED_VERSIONS:
                return _not_found().response()
            if not state.token_valid(bearer_token(request)):
                return JSONResponse(
                    [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}],
                    status_code=401,
                )
            usage = state.count_call()
            limit_info = {"Sforce-Limit-Info": f"api-usage={usage}/{state.daily_limit}"}
            if state.over_limit():
                response: Response = JSONResponse(
                    [
                        {
                            "message": "TotalRequests Limit exceeded.",
                            "errorCode": "REQUEST_LIMIT_EXCEEDED",
                        }
                    ],
                    status_code=403,
                )
            else:
                try:
                    response = await handler(request, state, version)
                except SalesforceApiError as exc:
                    response = exc.response()
            response.headers.update(limit_info)
            return response

        return endpoint

    async def versions(request: Request) -> Response:
        return JSONResponse(
            [
                {"label": label, "url": f"/services/data/v{number}", "version": number}
                for number, label in API_VERSIONS
            ]
        )

    async def resources(request: Request, state: SalesforceState, version: str) -> Response:
        base = f"/services/data/{version}"
        return JSONResponse(
            {name: f"{base}/{name}" for name in ("limits", "query", "sobjects", "composite")}
        )

    async def limits(request: Request, state: SalesforceState, version: str) -> Response:
        remaining = max(state.daily_limit - state.api_usage, 0)
        return JSONResponse(
            {
                "DailyApiRequests": {"Max": state.daily_limit, "Remaining": remaining},
                "DailyBulkV2QueryJobs": {"Max": 10000, "Remaining": 10000},
                "DataStorageMB": {"Max": 5120, "Remaining": 5100},
            }
        )

    def page(rows: list[dict[str, Any]], offset: int, cursor: str | None, version: str) -> Any:
        size = max(int(state.page_size), 1)
        chunk = rows[offset : offset + size]
        body: dict[str, Any] = {"totalSize": len(rows), "done": True, "records": chunk}
        if offset + size < len(rows):
            cursor = cursor or state.store_cursor(rows)
            body["done"] = False
            body["nextRecordsUrl"] = f"/services/data/{version}/query/{cursor}-{offset + size}"
        return JSONResponse(body)

    async def query(request: Request, state: SalesforceState, version: str) -> Response:
        soql = request.query_params.get("q")
        if not soql:
            raise SoqlError("missing query parameter q")
        parsed = parse_soql(soql)
        return page(run_query(state, parsed, version), 0, None, version)

    async def query_more(request: Request, state: SalesforceState, version: str) -> Response:
        locator = request.path_params["locator"]
        cursor, _, offset_text = locator.rpartition("-")
        with state.lock:
            rows = state.cursors.get(cursor)
        if rows is None or not offset_text.isdigit() or int(offset_text) > len(rows):
            raise SalesforceApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return page(rows, int(offset_text), cursor, version)

    async def create(request: Request, state: SalesforceState, version: str) -> Response:
        sobject = _resolve_sobject(request.path_params["sobject"])
        values = validate_write(state, sobject, await _json(request), creating=True)
        record = state.new_record(sobject, values)
        return JSONResponse({"id": record["Id"], "success": True, "errors": []}, status_code=201)

    def find(sobject: str, raw_id: str) -> SObjectRecord:
        record_id = normalize_id(raw_id)
        with state.lock:
            record = state.table(sobject).get(record_id or "")
        if not isinstance(record, SObjectRecord):
            raise _not_found()
        return record

    def render(sobject: str, record: dict[str, Any], version: str, fields: str | None) -> Any:
        out: dict[str, Any] = {"attributes": _attributes(sobject, record["Id"], version)}
        if fields:
            names = [name.strip() for name in fields.split(",") if name.strip()]
            unknown = [n for n in names if _canonical(SOBJECTS[sobject], n) is None]
            if unknown:
                raise SalesforceApiError(
                    400,
                    "INVALID_FIELD",
                    f"No such column '{unknown[0]}' on entity '{sobject}'",
                    fields=unknown,
                )
            for name in names:
                canonical = _canonical(SOBJECTS[sobject], name) or name
                out[canonical] = record.get(canonical)
        else:
            out.update(record)
        return out

    async def record(request: Request, state: SalesforceState, version: str) -> Response:
        sobject = _resolve_sobject(request.path_params["sobject"])
        current = find(sobject, request.path_params["rid"])
        if request.method == "GET":
            fields = request.query_params.get("fields")
            return JSONResponse(render(sobject, current, version, fields))
        if request.method == "DELETE":
            _refuse_query_only(sobject, "deleted")
            with state.lock:
                state.table(sobject).pop(current["Id"], None)
            return Response(status_code=204)
        body = await _json(request)
        values = validate_write(state, sobject, body, creating=False, current=current)
        with state.lock:
            current.update(values)
        return Response(status_code=204)

    async def collection(request: Request, state: SalesforceState, version: str) -> Response:
        return JSONResponse(collection_update(state, await _json(request)))

    async def by_external_id(request: Request, state: SalesforceState, version: str) -> Response:
        sobject = _resolve_sobject(request.path_params["sobject"])
        raw_field = request.path_params["field"]
        ext_field = _canonical(EXTERNAL_ID_FIELDS.get(sobject, frozenset()), raw_field)
        if ext_field is None:
            raise SalesforceApiError(
                404,
                "NOT_FOUND",
                f"Provided external ID field does not exist or is not accessible: {raw_field}",
            )
        value = request.path_params["value"]
        with state.lock:
            matches = [
                r
                for r in state.table(sobject).values()
                if isinstance(r.get(ext_field), str) and r[ext_field].casefold() == value.casefold()
            ]
        if len(matches) > 1:
            return JSONResponse(
                [f"/services/data/{version}/sobjects/{sobject}/{r['Id']}" for r in matches],
                status_code=300,
            )
        if request.method == "GET":
            if not matches:
                raise _not_found()
            return JSONResponse(render(sobject, matches[0], version, None))
        body = await _json(request)
        if isinstance(body, dict):
            forbidden = [k for k in body if _canonical(["Id", ext_field], k) is not None]
            if forbidden:
                raise SalesforceApiError(
                    400,
                    "INVALID_FIELD",
                    f"The body of an upsert must not contain Id or the external ID field "
                    f"{ext_field}: {', '.join(forbidden)}",
                    fields=forbidden,
                )
        update_only = request.query_params.get("updateOnly", "").lower() == "true"
        if matches:
            values = validate_write(state, sobject, body, creating=False, current=matches[0])
            with state.lock:
                matches[0].update(values)
            return JSONResponse(
                {"id": matches[0]["Id"], "success": True, "errors": [], "created": False}
            )
        if update_only:
            raise _not_found()
        values = validate_write(state, sobject, body, creating=True)
        values[ext_field] = value
        created = state.new_record(sobject, values)
        return JSONResponse(
            {"id": created["Id"], "success": True, "errors": [], "created": True},
            status_code=201,
        )

    # -- this stand-in's control endpoints ------------------------------------------------
    async def control_json(request: Request, *, allow_empty: bool = False) -> dict[str, Any]:
        if allow_empty and not await request.body():
            return {}
        body = await json_body(request)
        if not isinstance(body, dict):
            raise ValueError("send a JSON object")
        return body

    async def webhooks(request: Request) -> Response:
        if request.method == "GET":
            return JSONResponse(state.webhook_info())
        if request.method == "DELETE":
            state.configure_webhook(None)
            return JSONResponse({"configured": False})
        try:
            body = await control_json(request)
            url, secret = body.get("url"), body.get("secret")
            if not isinstance(url, str) or not re.match(r"^https?://[^\s/]+", url):
                raise ValueError("url must be an http(s) URL")
            if not isinstance(secret, str) or not secret:
                raise ValueError("secret must be a non-empty string")
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        state.configure_webhook(url, secret)
        return JSONResponse({"configured": True, "url": url})

    async def close_deal(request: Request) -> Response:
        allowed = {
            "account_id",
            "amount",
            "legal_entity",
            "template",
            "billing_model",
            "sales_cycle_days",
            "planned_margin",
            "close_date",
        }
        try:
            body = await control_json(request, allow_empty=True)
            unknown = sorted(set(body) - allowed)
            if unknown:
                raise ValueError(f"unknown fields {', '.join(unknown)}")
            answer = state.close_deal(**body)
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        except LookupError as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        return JSONResponse(answer, status_code=201)

    async def approve_amendment(request: Request) -> Response:
        try:
            body = await control_json(request)
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        try:
            record = state.approve_amendment(body.get("id"))
        except KeyError:
            return JSONResponse({"error": "no such Contract_Amendment__c"}, status_code=404)
        return JSONResponse({"id": record["Id"], "Status__c": record["Status__c"]})

    data = "/services/data/{version}"
    routes: list[BaseRoute] = [
        Route(WEBHOOK_PATH, webhooks, methods=["GET", "POST", "DELETE"]),
        Route("/__standin__/salesforce/close-deal", close_deal, methods=["POST"]),
        Route("/__standin__/salesforce/approve-amendment", approve_amendment, methods=["POST"]),
        Route("/services/oauth2/token", token, methods=["POST"]),
        Route("/services/data", versions, methods=["GET"]),
        Route("/services/data/", versions, methods=["GET"]),
        Route(data, api(resources), methods=["GET"]),
        Route(data + "/", api(resources), methods=["GET"]),
        Route(data + "/limits", api(limits), methods=["GET"]),
        Route(data + "/limits/", api(limits), methods=["GET"]),
        Route(data + "/query", api(query), methods=["GET"]),
        Route(data + "/query/", api(query), methods=["GET"]),
        Route(data + "/query/{locator}", api(query_more), methods=["GET"]),
        Route(data + "/composite/sobjects", api(collection), methods=["PATCH"]),
        Route(data + "/composite/sobjects/", api(collection), methods=["PATCH"]),
        Route(data + "/sobjects/{sobject}", api(create), methods=["POST"]),
        Route(data + "/sobjects/{sobject}/", api(create), methods=["POST"]),
        Route(data + "/sobjects/{sobject}/{rid}", api(record), methods=["GET", "PATCH", "DELETE"]),
        Route(
            data + "/sobjects/{sobject}/{field}/{value:path}",
            api(by_external_id),
            methods=["GET", "PATCH"],
        ),
    ]
    app = build_app(state, routes, error_body)

    async def http_error(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 500)
        if request.url.path.startswith("/__standin__"):
            return JSONResponse({"error": str(getattr(exc, "detail", ""))}, status_code=status)
        message = {
            404: "The requested resource does not exist",
            405: f"HTTP Method '{request.method}' not allowed. Allowed are GET,HEAD,PATCH,DELETE",
        }.get(status, "An unexpected error occurred")
        return JSONResponse(error_body(status, "", message), status_code=status)

    app.add_exception_handler(404, http_error)
    app.add_exception_handler(405, http_error)
    return app


async def _json(request: Request) -> Any:
    try:
        return await json_body(request)
    except ValueError as exc:
        raise SalesforceApiError(400, "JSON_PARSER_ERROR", f"The request body: {exc}") from exc
