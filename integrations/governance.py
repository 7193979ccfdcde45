"""Governance of inbound changes: no sync loops, and the system of record decides.

Every change a connected system reports goes through `review_change` before it is
propagated:
1. **Echo**: fields whose new values are exactly what Throughline itself last wrote to that
   record (the write ledger) are Throughline's own write coming back: dropped.
2. **System of record**: of the remaining fields, those the reporting system does not own
   (integrations.canonical.policy) are not propagated; they are reported as a governance
   violation (the exception queues open an exception for the team working in that system).
3. The rest is propagated by the caller.

Writers call `record_write` after every cross-system write they make.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils import timezone

from .canonical.policy import owner_of
from .models import Connection, WriteLedger
from .rowupdates import save_rows
from .signals import governance_violation

logger = logging.getLogger(__name__)


def _hash(value: Any) -> str:
    raw = json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def record_write(
    connection: Connection, entity_type: str, external_id: str, fields: dict[str, Any]
) -> None:
    """Remember what Throughline wrote (call it after the vendor accepted the write)."""
    record_writes(connection, entity_type, {str(external_id): fields})


def record_writes(
    connection: Connection, entity_type: str, writes: dict[str, dict[str, Any]]
) -> None:
    """`record_write` for several records of one type at once (external id -> fields)."""
    if not writes:
        return
    hashes = {
        str(eid): {name: _hash(value) for name, value in fields.items()}
        for eid, fields in writes.items()
    }
    with transaction.atomic():
        ledgers = {
            ledger.external_id: ledger
            for ledger in WriteLedger.objects.select_for_update(of=("self",)).filter(
                connection=connection, entity_type=entity_type, external_id__in=list(hashes)
            )
        }
        for eid, ledger in ledgers.items():
            ledger.field_hashes = {**ledger.field_hashes, **hashes[eid]}
            ledger.written_at = timezone.now()
        save_rows(list(ledgers.values()), ["field_hashes", "written_at"])
        WriteLedger.objects.bulk_create(
            [
                WriteLedger(
                    connection=connection,
                    entity_type=entity_type,
                    external_id=eid,
                    field_hashes=field_hashes,
                )
                for eid, field_hashes in hashes.items()
                if eid not in ledgers
            ]
        )


def already_written(
    connection: Connection, entity_type: str, external_id: str, fields: dict[str, Any]
) -> bool:
    """Whether Throughline last wrote exactly these values to the record (skip the write)."""
    ledger = WriteLedger.objects.filter(
        connection=connection, entity_type=entity_type, external_id=str(external_id)
    ).first()
    if ledger is None:
        return False
    return all(ledger.field_hashes.get(k) == _hash(v) for k, v in fields.items())


@dataclass
class Review:
    """The verdict on one inbound change."""

    propagate: dict[str, Any] = field(default_factory=dict)
    echoes: list[str] = field(default_factory=list)
    violations: dict[str, str] = field(default_factory=dict)  # field -> owning system

    @property
    def is_pure_echo(self) -> bool:
        return bool(self.echoes) and not self.propagate and not self.violations


def review_change(
    connection: Connection,
    entity_type: str,
    external_id: str,
    changes: dict[str, Any],
    *,
    canonical_fields: dict[str, str] | None = None,
) -> Review:
    """Sort a reported change into echoes, system-of-record violations and what to propagate.

    `changes` maps the vendor's field names to their new values; `canonical_fields` maps
    those names to canonical field names for the policy (default: the same names).
    """
    canonical_fields = canonical_fields or {}
    ledger = WriteLedger.objects.filter(
        connection=connection, entity_type=entity_type, external_id=str(external_id)
    ).first()
    written = ledger.field_hashes if ledger else {}
    review = Review()
    for name, value in changes.items():
        if written.get(name) == _hash(value):
            review.echoes.append(name)
            continue
        canonical = canonical_fields.get(name, name)
        owner = owner_of(entity_type, canonical)
        if owner is not None and owner != connection.system:
            review.violations[name] = owner
            continue
        review.propagate[name] = value
    if review.violations:
        governance_violation.send(
            sender=Connection,
            connection=connection,
            entity_type=entity_type,
            external_id=str(external_id),
            violations=review.violations,
            values={k: changes[k] for k in review.violations},
        )
    if review.echoes:
        logger.info(
            "dropped the echo of Throughline's own write: %s %s %s",
            connection.name,
            entity_type,
            external_id,
        )
    return review
