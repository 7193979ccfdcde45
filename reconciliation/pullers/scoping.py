"""What the customer, contract and project pullers share: canonical keys through the
external-id bindings (in bulk), which records belong in a definition's ERP (coexistence
routing), and the checks that turn a malformed vendor value into a clear error.

Keys. A record's canonical key comes from the bindings Throughline wrote when it created the
record (`integrations.bindings`: one per connection, entity type and key). A record whose
binding is gone but which carries Throughline's external id is still keyed as Throughline's;
a record Throughline did not create gets a key of its own system (`erp-customer:1234`), so it
is missing in source rather than silently dropped.

Scope. Under a phased ERP migration (`integrations.routing`), a legal entity's documents go
to one ERP or another: a source record belongs in the definition's ERP when Throughline has
bound it there, or when today's route for its legal entity leads there (where a re-sync
would write it). Without routes every record belongs in the primary ERP.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from typing import Any

from integrations import bindings
from integrations.canonical.errors import MappingError
from integrations.connectors.errors import ResponseShapeError
from integrations.connectors.netsuite import mapping as netsuite_mapping
from integrations.connectors.salesforce import mapping as salesforce_mapping
from integrations.models import Connection, ExternalBinding
from integrations.routing import erp_for

CHUNK = 500
CENT = Decimal("0.01")


def keys_of(
    connection: Connection, entity_type: str, external_ids: Iterable[str]
) -> dict[str, str]:
    """{external id: canonical key} of the bound ones among `external_ids` (reverse lookup)."""
    wanted = list(dict.fromkeys(external_ids))
    found: dict[str, str] = {}
    for start in range(0, len(wanted), CHUNK):
        rows = ExternalBinding.objects.filter(
            connection=connection,
            entity_type=entity_type,
            external_id__in=wanted[start : start + CHUNK],
        ).values_list("external_id", "canonical_key")
        found.update(rows)
    return found


def bound(connection: Connection, entity_type: str, keys: Iterable[str]) -> dict[str, str]:
    """{canonical key: external id} of the bound ones among `keys`."""
    wanted = list(dict.fromkeys(keys))
    found: dict[str, str] = {}
    for start in range(0, len(wanted), CHUNK):
        found.update(bindings.lookup_many(connection, entity_type, wanted[start : start + CHUNK]))
    return found


def currency_codes(client: Any) -> dict[str, str]:
    """A NetSuite ERP's currencies, internal id -> ISO code (one SuiteQL query)."""
    iso = netsuite_mapping.currency_ids(client.suiteql("SELECT id, symbol FROM currency"))
    return {internal: code for code, internal in iso.items()}


class ErpScope:
    """Whether records of a legal entity belong in `erp` today (see the module docstring)."""

    def __init__(self, erp: Connection) -> None:
        self.erp = erp
        self._routes: dict[tuple[str, str], bool] = {}

    def routes_here(self, legal_entity: str, *documents: str) -> bool:
        """True when today's route for any of `documents` of `legal_entity` is this ERP."""
        for document in documents:
            memo = (legal_entity, document)
            if memo not in self._routes:
                self._routes[memo] = erp_for(legal_entity, document).pk == self.erp.pk
            if self._routes[memo]:
                return True
        return False


# -- checks: a value the vendor's schema guarantees, or ResponseShapeError ---------------------
def shape_error(operation: str, record: Any, message: str) -> ResponseShapeError:
    body = record if isinstance(record, dict | list | str) or record is None else repr(record)
    return ResponseShapeError(message, body=body, operation=operation)


def need_record(operation: str, record: Any, id_field: str) -> str:
    """The record's id (a non-empty string or integer), or ResponseShapeError."""
    if not isinstance(record, dict):
        raise shape_error(
            operation, record, f"expected a record object, got {type(record).__name__}"
        )
    rid = record.get(id_field)
    if isinstance(rid, bool) or not isinstance(rid, str | int) or not str(rid).strip():
        raise shape_error(operation, record, f"a record without {id_field}")
    return str(rid).strip()


def text(operation: str, record: dict[str, Any], field: str, rid: str) -> str:
    """An optional text value ('' when absent), or ResponseShapeError when not text."""
    value = record.get(field)
    if value is None:
        return ""
    if isinstance(value, dict) and "id" in value:  # a NetSuite or Kantata reference
        value = value["id"]
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise shape_error(operation, record, f"{rid}: {field} is not text: {value!r}")
    return str(value).strip()


def amount(operation: str, record: dict[str, Any], field: str, rid: str) -> Decimal | None:
    """An optional money value as Decimal (via its text form, never through float math)."""
    value = record.get(field)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise shape_error(operation, record, f"{rid}: {field} is not a number: {value!r}")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise shape_error(operation, record, f"{rid}: {field} is not a number: {value!r}") from None
    if not number.is_finite():
        raise shape_error(operation, record, f"{rid}: {field} is not a finite number")
    exponent = number.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= -2:
        number = number.quantize(CENT)  # exact: 90000.0 reads as 90000.00
    return number


def day(operation: str, record: dict[str, Any], field: str, rid: str) -> dt.date | None:
    """An optional ISO date (YYYY-MM-DD, or the date part of a datetime), or the error."""
    value = record.get(field)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise shape_error(operation, record, f"{rid}: {field} is not a date: {value!r}")
    try:
        return dt.date.fromisoformat(value.strip()[:10])
    except ValueError:
        raise shape_error(operation, record, f"{rid}: {field} is not a date: {value!r}") from None


def utc_stamp(operation: str, record: dict[str, Any], field: str, rid: str) -> dt.datetime | None:
    """An optional modification time: ISO 8601 with an offset, or NetSuite's UTC
    `YYYY-MM-DD HH24:MI:SS` (TO_CHAR in SuiteQL); aware UTC, or the error."""
    value = record.get(field)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise shape_error(operation, record, f"{rid}: {field} is not a timestamp: {value!r}")
    raw = value.strip().replace("Z", "+00:00")
    try:
        parsed = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise shape_error(
            operation, record, f"{rid}: {field} is not a timestamp: {value!r}"
        ) from None
    if parsed.tzinfo is None:
        if "T" in raw:  # an ISO timestamp without offset is ambiguous
            raise shape_error(operation, record, f"{rid}: {field} has no time zone: {value!r}")
        parsed = parsed.replace(tzinfo=dt.UTC)  # NetSuite's TO_CHAR form, UTC by our query
    return parsed.astimezone(dt.UTC)


def salesforce_stamp(
    operation: str, record: dict[str, Any], field: str, rid: str
) -> dt.datetime | None:
    """An optional Salesforce datetime (`2026-11-25T10:22:00.000+0000`) in UTC, or the error."""
    value = record.get(field)
    if value is None:
        return None
    try:
        return salesforce_mapping.parse_salesforce_datetime(value, field=field)
    except MappingError:
        raise shape_error(operation, record, f"{rid}: {field} is not a datetime") from None


def flag(operation: str, record: dict[str, Any], field: str, rid: str) -> bool:
    """A boolean that NetSuite's SuiteQL answers 'T'/'F' (a JSON boolean is accepted)."""
    value = record.get(field)
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if value in ("T", "F"):
        return value == "T"
    raise shape_error(operation, record, f"{rid}: {field} is not T or F: {value!r}")


def newest(*stamps: dt.datetime | None) -> dt.datetime | None:
    present = [s for s in stamps if s is not None]
    return max(present) if present else None
