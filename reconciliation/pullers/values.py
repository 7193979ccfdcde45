"""Reading the values a puller compares out of vendor records: ids, text, amounts, days, flags
and change times. A value the vendor's schema guarantees but that cannot be read raises
ResponseShapeError naming the record and field (`where` names the record in the message: its
id, or "NetSuite invoice 123"), so the run fails with the reason instead of reporting a false
difference. Optional values the vendor may leave empty read as None or ''.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Any

from integrations.canonical.errors import MappingError
from integrations.connectors.errors import ResponseShapeError
from integrations.connectors.salesforce import mapping as salesforce_mapping

CENT = Decimal("0.01")


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


def text(operation: str, record: dict[str, Any], field: str, where: str) -> str:
    """An optional text value ('' when absent), or ResponseShapeError when not text."""
    value = record.get(field)
    if value is None:
        return ""
    if isinstance(value, dict) and "id" in value:  # a NetSuite or Kantata reference
        value = value["id"]
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise shape_error(operation, record, f"{where}: {field} is not text: {value!r}")
    return str(value).strip()


def amount(
    operation: str, record: dict[str, Any], field: str, where: str, *, required: bool = False
) -> Decimal | None:
    """A money value (or hours) as Decimal, via its text form, never through float math; None
    when absent unless `required`."""
    value = record.get(field)
    if value is None or value == "":
        if required:
            raise shape_error(operation, record, f"{where}: {field} is missing or not a number")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise shape_error(operation, record, f"{where}: {field} is not a number: {value!r}")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise shape_error(
            operation, record, f"{where}: {field} is not a number: {value!r}"
        ) from None
    if not number.is_finite():
        raise shape_error(operation, record, f"{where}: {field} is not a finite number")
    exponent = number.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= -2:
        number = number.quantize(CENT)  # exact: 90000.0 reads as 90000.00
    return number


def day(
    operation: str,
    record: dict[str, Any],
    field: str,
    where: str,
    *,
    required: bool = False,
    with_time: bool = False,
) -> dt.date | None:
    """An ISO date (YYYY-MM-DD, or the date part of a datetime); with `with_time`, the day of
    a whole ISO 8601 timestamp in its own offset (the account's local day). None when absent
    unless `required`."""
    value = record.get(field)
    if value is None or value == "":
        if required:
            raise shape_error(operation, record, f"{where}: {field} is missing or not a date")
        return None
    if not isinstance(value, str):
        raise shape_error(operation, record, f"{where}: {field} is not a date: {value!r}")
    try:
        if with_time:
            return dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00")).date()
        return dt.date.fromisoformat(value.strip()[:10])
    except ValueError:
        raise shape_error(operation, record, f"{where}: {field} is not a date: {value!r}") from None


def utc_stamp(operation: str, record: dict[str, Any], field: str, where: str) -> dt.datetime | None:
    """An optional modification time: ISO 8601 with an offset, or NetSuite's UTC
    `YYYY-MM-DD HH24:MI:SS` (TO_CHAR in SuiteQL); aware UTC, or the error."""
    value = record.get(field)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise shape_error(operation, record, f"{where}: {field} is not a timestamp: {value!r}")
    raw = value.strip().replace("Z", "+00:00")
    try:
        parsed = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise shape_error(
            operation, record, f"{where}: {field} is not a timestamp: {value!r}"
        ) from None
    if parsed.tzinfo is None:
        if "T" in raw:  # an ISO timestamp without offset is ambiguous
            raise shape_error(operation, record, f"{where}: {field} has no time zone: {value!r}")
        parsed = parsed.replace(tzinfo=dt.UTC)  # NetSuite's TO_CHAR form, UTC by our query
    return parsed.astimezone(dt.UTC)


def stamp(raw: Any) -> dt.datetime | None:
    """A vendor change time that only moves the watermark (ISO 8601, or SuiteQL's
    'YYYY-MM-DD HH:MM:SS' in UTC) in UTC; None when absent or unreadable."""
    if not isinstance(raw, str) or not raw.strip():
        return None
    try:
        moment = dt.datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def salesforce_stamp(
    operation: str, record: dict[str, Any], field: str, where: str
) -> dt.datetime | None:
    """An optional Salesforce datetime (`2026-11-25T10:22:00.000+0000`) in UTC, or the error."""
    value = record.get(field)
    if value is None:
        return None
    try:
        return salesforce_mapping.parse_salesforce_datetime(value, field=field)
    except MappingError:
        raise shape_error(operation, record, f"{where}: {field} is not a datetime") from None


def flag(operation: str, record: dict[str, Any], field: str, where: str) -> bool:
    """A boolean that NetSuite's SuiteQL answers 'T'/'F' (a JSON boolean is accepted)."""
    value = record.get(field)
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if value in ("T", "F"):
        return value == "T"
    raise shape_error(operation, record, f"{where}: {field} is not T or F: {value!r}")


def newest(*stamps: dt.datetime | None) -> dt.datetime | None:
    """The latest of the change times given (None when there is none)."""
    present = [s for s in stamps if s is not None]
    return max(present) if present else None
