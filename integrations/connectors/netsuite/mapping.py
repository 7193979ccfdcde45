"""Mapping between NetSuite REST records and the canonical model.

- subsidiary -> LegalEntity: `name`, `country` ({id: "GB"} or "GB"), `currency` (a reference;
  its ISO code comes from the `currencies` map built by `currency_ids`, or from a refName that
  is already an ISO code), tax = the first line of the SuiteTax `taxRegistration` sublist
  (`taxRegistrationNumber`, `nexusCountry`), or None when the sublist is empty. The subsidiary
  must be fetched with `expandSubResources=true` (`NetSuiteClient.get_subsidiary`): an
  unexpanded sublist is refused rather than read as "no registration".
- Customer -> customer body: companyName (NetSuite allows 83 characters; longer names raise
  MappingError, nothing is truncated), externalId, subsidiary and currency references,
  isPerson false, and the VAT number as a taxRegistration line (REST web services expose only
  SuiteTax tax fields). Payment terms are sent only when the caller resolved the term's
  internal id (`terms_id`); the city is not sent (addresses are subrecords).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from integrations.canonical.errors import MappingError
from integrations.canonical.schemas import Customer, LegalEntity, validate

SOURCE = "netsuite"
MAX_COMPANY_NAME = 83
EXTERNAL_ID = re.compile(r"^[A-Za-z0-9_\-]{1,255}$")
ISO_CURRENCY = re.compile(r"^[A-Z]{3}$")


def _problem(entity: str, field: str, problem: str, kind: str = "value_error") -> MappingError:
    return MappingError(
        entity=entity,
        problems=[{"field": field, "problem": problem, "type": kind}],
        source=SOURCE,
    )


def _ref(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


def _code(value: Any) -> str | None:
    """A country-like code from "GB" or {"id": "GB", ...}."""
    if isinstance(value, dict):
        value = value.get("id")
    return value.strip().upper() if isinstance(value, str) and value.strip() else None


def _tax_lines(sub: Mapping[str, Any]) -> list[dict[str, Any]]:
    sublist = sub.get("taxRegistration")
    if sublist is None:
        raise _problem(
            "legal_entity",
            "taxRegistration",
            "the subsidiary has no taxRegistration sublist: fetch it with "
            "expandSubResources=true (and SuiteTax enabled)",
            "missing",
        )
    if isinstance(sublist, dict):
        if "items" not in sublist:
            raise _problem(
                "legal_entity",
                "taxRegistration",
                "the taxRegistration sublist was not expanded (fetch with expandSubResources)",
                "missing",
            )
        sublist = sublist["items"]
    if not isinstance(sublist, list) or not all(isinstance(line, dict) for line in sublist):
        raise _problem("legal_entity", "taxRegistration", "expected a list of lines", "type_error")
    return sublist


def legal_entity_from_subsidiary(
    sub: dict[str, Any],
    *,
    code: str,
    region: str,
    currencies: Mapping[str, str] | None = None,
) -> LegalEntity:
    """A canonical LegalEntity from an expanded subsidiary record.

    `currencies` maps ISO code -> NetSuite currency id (as `currency_ids` returns); it is
    needed unless the currency reference's refName is itself an ISO code.
    """
    if not isinstance(sub, Mapping):
        raise _problem("legal_entity", "payload", "expected a subsidiary object", "type_error")
    currency_ref = _ref(sub.get("currency"))
    currency: str | None = None
    if currency_ref is not None:
        currency_id = currency_ref.get("id")
        by_id = {str(v): k for k, v in (currencies or {}).items()}
        currency = by_id.get(str(currency_id)) if currency_id is not None else None
        ref_name = currency_ref.get("refName")
        if currency is None and isinstance(ref_name, str) and ISO_CURRENCY.fullmatch(ref_name):
            currency = ref_name
        if currency is None:
            raise _problem(
                "legal_entity",
                "currency",
                f"NetSuite currency {currency_id!r} has no known ISO code: pass "
                "currencies=currency_ids(...)",
            )
    tax: dict[str, Any] | None = None
    lines = _tax_lines(sub)
    if lines:
        first = lines[0]
        tax = {
            "registration_number": first.get("taxRegistrationNumber"),
            "country": _code(first.get("nexusCountry")),
        }
    data = {
        "code": code,
        "name": sub.get("name"),
        "country": _code(sub.get("country")),
        "currency": currency,
        "region": region,
        "tax": tax,
    }
    return validate(LegalEntity, data, source=SOURCE)


def customer_to_netsuite(
    customer: Customer,
    *,
    external_id: str,
    subsidiary_id: str,
    currency_id: str,
    terms_id: str | None = None,
) -> dict[str, Any]:
    """The body of a NetSuite customer create/upsert for a canonical Customer."""
    problems: list[dict[str, Any]] = []
    if not isinstance(external_id, str) or not EXTERNAL_ID.fullmatch(external_id):
        problems.append(
            {
                "field": "external_id",
                "problem": "NetSuite external ids hold only letters, digits, '_' and '-'",
                "type": "value_error",
            }
        )
    if len(customer.name) > MAX_COMPANY_NAME:
        problems.append(
            {
                "field": "name",
                "problem": f"NetSuite company names hold at most {MAX_COMPANY_NAME} characters "
                f"(this one has {len(customer.name)})",
                "type": "string_too_long",
            }
        )
    for field, value in (("subsidiary_id", subsidiary_id), ("currency_id", currency_id)):
        if not isinstance(value, str) or not value.isdigit():
            problems.append(
                {
                    "field": field,
                    "problem": "expected a NetSuite internal id",
                    "type": "value_error",
                }
            )
    if customer.tax_registration and not customer.country:
        problems.append(
            {
                "field": "country",
                "problem": "a tax registration needs the customer's country (nexusCountry)",
                "type": "missing",
            }
        )
    if customer.tax_registration and len(customer.tax_registration) > 40:
        problems.append(
            {
                "field": "tax_registration",
                "problem": "NetSuite tax registration numbers hold at most 40 characters",
                "type": "string_too_long",
            }
        )
    if problems:
        raise MappingError(entity="customer", problems=problems, source=SOURCE)
    body: dict[str, Any] = {
        "externalId": external_id,
        "companyName": customer.name,
        "isPerson": False,
        "subsidiary": {"id": subsidiary_id},
        "currency": {"id": currency_id},
    }
    if customer.tax_registration:
        body["taxRegistration"] = {
            "items": [
                {
                    "nexusCountry": {"id": customer.country},
                    "taxRegistrationNumber": customer.tax_registration,
                }
            ]
        }
    if terms_id is not None:
        body["terms"] = {"id": terms_id}
    return body


def currency_ids(items: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """ISO code -> NetSuite currency internal id, from currency records or SuiteQL rows
    (`SELECT id, symbol FROM currency`)."""
    out: dict[str, str] = {}
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise _problem("currency", f"items[{index}]", "expected an object", "type_error")
        symbol = item.get("symbol")
        cid = item.get("id")
        if not isinstance(symbol, str) or not ISO_CURRENCY.fullmatch(symbol.strip().upper()):
            raise _problem(
                "currency", f"items[{index}].symbol", f"not an ISO currency code: {symbol!r}"
            )
        if isinstance(cid, bool) or not isinstance(cid, str | int) or not str(cid).strip():
            raise _problem("currency", f"items[{index}].id", "missing internal id", "missing")
        out[symbol.strip().upper()] = str(cid).strip()
    return out
