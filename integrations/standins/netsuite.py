"""The NetSuite stand-in: a local copy of SuiteTalk REST web services for tests and the demo.

It serves, under its own base URL (standing for https://<account>.suitetalk.api.netsuite.com):

- `POST /services/rest/auth/oauth2/v1/token`: OAuth 2.0 client credentials (M2M). The client
  assertion is a JWT whose header `kid` names a certificate id (PS256/384/512, RS256 or
  ES256/384/512); claims `iss` = client id, `scope` containing `rest_webservices`, `aud` = the
  token endpoint URL (this stand-in's URL, or the real account URL), `iat`, `exp` at most one
  hour after `iat`. Keys come from `trusted_keys` or `<STANDIN_KEYS_DIR>/netsuite/<kid>.pem`
  (a PEM public key or certificate). Answers `{access_token, token_type, expires_in}`; errors
  are `{"error": ...}` with 400 (invalid_request, invalid_grant, invalid_scope,
  unsupported_grant_type) or 401 (invalid_client).
- `/services/rest/record/v1/{type}` for customer, subsidiary, currency, nexus and term: list
  (`limit` 1..1000, `offset`), get by internal id or `eid:<externalId>`
  (`expandSubResources=true` expands sublists, otherwise a sublist is `{"links": [...]}`),
  POST create (204 + Location), PATCH (204; sublist lines with an `id` are updated, lines
  without are added, `?replace=taxRegistration` replaces the sublist), PUT
  `eid:<externalId>` upsert (204 + Location), DELETE (204). Writes are allowed on customer and
  subsidiary; the other types are read-only here.
- Idempotency: `X-NetSuite-Idempotency-Key` with or without `Prefer: respond-async`. With
  respond-async the answer is 202 + `Location: /services/rest/async/v1/job/{id}`; the job, its
  task and `.../task/{id}/result` (the replayed original answer) can be read back. A repeated
  key answers 400 IDEMPOTENCY_ERROR with the earlier job in `Location` and does nothing.
- `POST /services/rest/query/v1/suiteql` (header `Prefer: transient`): a small SuiteQL subset,
  see `run_suiteql`. Columns come back lower-case, booleans as 'T'/'F', null columns omitted,
  datetimes as M/D/YYYY (a US account's date format, no time) unless formatted with TO_CHAR;
  TO_TIMESTAMP literals and stored datetimes are read as UTC (real NetSuite applies the
  user's time zone). Record datetimes are ISO 8601 UTC ("Using Datetime Fields").
- `GET /services/rest/system/v1/governanceLimits`: the documented shape plus
  `inFlightRequests` (a stand-in extension). More than `concurrency_limit` simultaneous
  requests to the record, query, system and async services answer 429
  CONCURRENCY_LIMIT_EXCEEDED without Retry-After (the token endpoint is not governed; see the
  connector's docstring for what is and is not confirmed about the real status code).

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
- No customers; new customers get internal ids from 1001 up.
- Account "TSTDRV1234567", client id "throughline-demo-client", trusted certificate id
  "throughline-demo-cert" (its key is read from the keys directory unless passed in).

Customer fields served: id, externalId, entityId, companyName, isPerson, subsidiary, currency,
email, phone, comments, terms, isInactive, taxRegistration (the SuiteTax sublist: id,
nexusCountry, taxRegistrationNumber), defaultTaxReg (read-only, the first registration),
dateCreated, lastModifiedDate. REST web services expose only SuiteTax fields, so the customer's
VAT number lives in the taxRegistration sublist, not in the legacy `vatRegNumber`.

Stand-in extras under `/__standin__/netsuite/`: an HTML page with the subsidiaries and a form
to add a tax registration; `settings` (GET/POST concurrency_limit, latency_ms,
token_lifetime); `lose-responses` (POST a rule `{path, method, times, status}`: matching writes
are committed and then answered with `status`, 503 by default, as when a response is lost;
DELETE clears); `certificates` (POST `{"kid", "pem"}` to trust a key, as uploading a
certificate to NetSuite); `governance` (in-flight, peak and rejected counts).
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import os
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
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
CLIENT_ID = "throughline-demo-client"
CERTIFICATE_ID = "throughline-demo-cert"

TOKEN_PATH = "/services/rest/auth/oauth2/v1/token"
RECORD_PREFIX = "/services/rest/record/v1"
QUERY_PATH = "/services/rest/query/v1/suiteql"
GOVERNANCE_PATH = "/services/rest/system/v1/governanceLimits"
ASYNC_PREFIX = "/services/rest/async/v1/job"
EXTRA_PREFIX = f"{CONTROL_PREFIX}/netsuite"

MAX_NAME = 83
MAX_PAGE = 1000
MAX_ASSERTION_LIFETIME = 3600
JWT_ALGORITHMS = ["PS256", "PS384", "PS512", "RS256", "ES256", "ES384", "ES512"]
EXTERNAL_ID = re.compile(r"^[A-Za-z0-9_\-]{1,255}$")
SAFE_KID = re.compile(r"^[A-Za-z0-9_.\-]{1,100}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

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


RECORD_TYPES = ("customer", "subsidiary", "currency", "nexus", "term")
WRITABLE_TYPES = ("customer", "subsidiary")


class NetSuiteState(StandinState):
    """Records, tokens, async jobs, idempotency keys and the concurrency governor."""

    vendor = "netsuite"
    persistent_attrs = ("jobs", "idempotency")

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
        super().__init__()

    # -- seed -------------------------------------------------------------------------------
    def seed(self) -> None:
        self.jobs: dict[str, dict[str, Any]] = {}
        self.idempotency: dict[str, str] = {}
        self.lost_rules: list[LostResponseRule] = []
        self.peak_in_flight = 0
        self.rejected = 0
        self._job_seq = 0
        self._seq: dict[str, int] = {"customer": 1000}
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
        with self.lock:
            current = self._seq.get(record_type)
            if current is None:
                numeric = [int(k) for k in self.table(record_type) if k.isdigit()]
                current = max(numeric, default=0)
            current += 1
            self._seq[record_type] = current
            return str(current)

    def new_job(self, outcome: Outcome, started: datetime) -> str:
        with self.lock:
            self._job_seq += 1
            job_id = str(self._job_seq)
            self.jobs[job_id] = {
                "id": job_id,
                "outcome": outcome,
                "startTime": iso(started),
                "endTime": iso(utcnow()),
            }
            return job_id

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

    def sublist(
        self, record_type: str, record: dict[str, Any], name: str, expand: bool
    ) -> dict[str, Any]:
        href = self.url(record_type, record["id"], name)
        if not expand:
            return {"links": self.links(href)}
        items = self.tax_lines(record_type, record)
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
        for key, value in record.items():
            if key in ("id", "taxRegistration") or value is None:
                continue
            if key in refs:
                rendered = self.ref(refs[key], value)
                if rendered is not None:
                    out[key] = rendered
            elif key == "country":
                if (c := self.country(value)) is not None:
                    out[key] = c
            else:
                out[key] = value
        if record_type in ("customer", "subsidiary"):
            out["taxRegistration"] = self.sublist(record_type, record, "taxRegistration", expand)
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
}


def ref_name(record_type: str, record: dict[str, Any]) -> str:
    if record_type == "customer":
        return f"{record.get('entityId') or ''} {record.get('companyName') or ''}".strip()
    if record_type == "nexus":
        return str(record.get("description") or record.get("country") or "")
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


def _bool(body: dict[str, Any], key: str) -> bool:
    value = body[key]
    if not isinstance(value, bool):
        raise _bad(key, f"Invalid value for field {key}: expected true or false.")
    return value


def _reference(state: NetSuiteState, body: dict[str, Any], key: str, target: str) -> str:
    value = body[key]
    if not isinstance(value, dict) or ref_id(value) is None:
        raise _bad(key, f'Invalid value for field {key}: expected a reference like {{"id": "1"}}.')
    rid = str(ref_id(value))
    if rid not in state.table(target):
        raise _bad(key, f"Invalid {key} reference key {rid}.")
    return rid


def _date(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise _bad(path, f"Invalid date value for {path}: expected YYYY-MM-DD.")
    try:
        return date.fromisoformat(value[:10]).isoformat()
    except ValueError:
        raise _bad(path, f"Invalid date value for {path}: expected YYYY-MM-DD.") from None


def _check_fields(body: dict[str, Any], allowed: frozenset[str], record_type: str) -> None:
    for key in body:
        if key == "links":
            continue
        if key in READ_ONLY:
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
    if "externalId" in body:
        value = body["externalId"]
        if not isinstance(value, str) or not EXTERNAL_ID.fullmatch(value):
            raise _bad(
                "externalId",
                "An external ID may contain only letters, numbers, underscore and hyphen.",
            )
        record["externalId"] = value
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
    if "externalId" in body:
        value = body["externalId"]
        if not isinstance(value, str) or not EXTERNAL_ID.fullmatch(value):
            raise _bad(
                "externalId",
                "An external ID may contain only letters, numbers, underscore and hyphen.",
            )
        record["externalId"] = value
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


APPLY: dict[str, Callable[..., dict[str, Any]]] = {
    "customer": apply_customer,
    "subsidiary": apply_subsidiary,
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
DATETIME_COLUMNS = frozenset({"datecreated", "lastmodifieddate"})

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
                f"Table {table!r} is not available in the stand-in (customer, subsidiary, "
                "currency)."
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

    Supported: SELECT * | col [AS alias] | TO_CHAR(col, 'fmt') [AS alias], ...; FROM customer |
    subsidiary | currency [alias]; WHERE cond AND cond ...; cond = operand op operand or
    col IS [NOT] NULL, op in = != <> < <= > >=, operand = column, 'string', number,
    TO_TIMESTAMP('...', 'YYYY-MM-DD HH24:MI:SS') or TO_DATE('...', 'YYYY-MM-DD') (read as UTC);
    ORDER BY col [ASC|DESC], ... (default: by id). Anything else is a 400 INVALID_PARAMETER.
    """
    parsed = _Parser(query).parse()
    table = parsed.table
    with state.lock:
        records = [dict(r) for r in state.table(table).values()]
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
        table = state.table(rtype)
        if rid.lower().startswith("eid:"):
            external = rid[4:]
            for record in table.values():
                if record.get("externalId") == external:
                    return record
            return None
        return table.get(rid)

    def not_found(rtype: str, rid: str) -> NsError:
        return NsError(
            404,
            "NONEXISTENT_ID",
            f"The record instance does not exist. Provide a valid record instance ID. "
            f"({rtype} {rid})",
            url_path=f"record/v1/{rtype}/{rid}",
        )

    # -- the governed wrapper --------------------------------------------------------------
    def api(
        handler: Callable[[Request], Awaitable[Response]], *, authed: bool = True
    ) -> Callable[[Request], Awaitable[Response]]:
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
                if authed and not state.token_valid(bearer_token(request)):
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
        access = state.issue_token(lifetime=state.token_lifetime)
        return JSONResponse(
            {"access_token": access, "token_type": "bearer", "expires_in": state.token_lifetime}
        )

    # -- record service ------------------------------------------------------------------
    async def read_body(request: Request) -> Any:
        raw = await request.body()
        if not raw:
            raise NsError(400, "INVALID_CONTENT", "The request body is empty.")
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise NsError(
                400,
                "INVALID_CONTENT",
                f"The request body is not valid JSON: {exc.msg} at position {exc.pos}.",
            ) from None

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

    def store(rtype: str, record: dict[str, Any], request: Request) -> Outcome:
        now = iso(utcnow())
        record["lastModifiedDate"] = now
        if rtype == "customer":
            record.setdefault("dateCreated", now)
        state.table(rtype)[record["id"]] = record
        location = renderer(request).url(rtype, record["id"])
        return Outcome(204, None, {"Location": location})

    def check_unique(rtype: str, record: dict[str, Any]) -> None:
        for other in state.table(rtype).values():
            if other["id"] == record.get("id"):
                continue
            if record.get("externalId") and other.get("externalId") == record["externalId"]:
                raise NsError(
                    400,
                    "DUP_RCRD",
                    "A record with this external ID already exists.",
                    path="externalId",
                )
            if (
                rtype == "customer"
                and record.get("entityId")
                and other.get("entityId") == record["entityId"]
            ):
                raise NsError(
                    400,
                    "DUP_ENTITY",
                    "This entity already exists: the Customer ID is in use.",
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
            record["id"] = state.next_id(rtype)
            if rtype == "customer" and not record.get("entityId"):
                record["entityId"] = f"CUST{record['id']}"
            check_unique(rtype, record)
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
                if rtype == "subsidiary":
                    users = [
                        c["id"]
                        for c in state.table("customer").values()
                        if ref_id(c.get("subsidiary")) == record["id"]
                    ]
                    if users:
                        raise NsError(
                            400,
                            "THIS_RECORD_CANNOT_BE_DELETED_BECAUSE_IT_HAS_DEPENDENT_RECORDS",
                            "This record cannot be deleted because it has dependent records.",
                        )
                del state.table(rtype)[record["id"]]
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
                    record["id"] = state.next_id(rtype)
                    if rtype == "customer" and not record.get("entityId"):
                        record["entityId"] = f"CUST{record['id']}"
                else:
                    record = APPLY[rtype](state, payload, current, replace=replace)
            else:
                if current is None:
                    raise not_found(rtype, rid)
                record = APPLY[rtype](state, body, current, replace=replace)
            check_unique(rtype, record)
            outcome = store(rtype, record, request)
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
            if name != "taxRegistration" or rtype not in ("customer", "subsidiary"):
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
        return "succeeded" if job["outcome"].status < 400 else "failed"

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
        return job_of(request)["outcome"].response()

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
                    for key in ("concurrency_limit", "latency_ms", "token_lifetime"):
                        if key in data:
                            value = int(data[key])
                            if value < 0:
                                raise ValueError(f"{key} must be >= 0")
                            setattr(state, key, value)
            except (ValueError, TypeError) as exc:
                return JSONResponse({"error": f"bad settings: {exc}"}, status_code=400)
        return JSONResponse(
            {
                "concurrency_limit": state.concurrency_limit,
                "latency_ms": state.latency_ms,
                "token_lifetime": state.token_lifetime,
            }
        )

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
    return "".join(parts)
