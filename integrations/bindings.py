"""External-id bindings: the Binder, the only place a canonical key is resolved to a vendor id."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils import timezone

from .models import Connection, ExternalBinding, SyncRun
from .rowupdates import save_rows


def lookup(connection: Connection, entity_type: str, canonical_key: str) -> str | None:
    """The external id of `canonical_key` in `connection`, if bound."""
    return (
        ExternalBinding.objects.filter(
            connection=connection, entity_type=entity_type, canonical_key=canonical_key
        )
        .values_list("external_id", flat=True)
        .first()
    )


def bind(
    connection: Connection,
    entity_type: str,
    canonical_key: str,
    external_id: str,
    *,
    run: SyncRun | None = None,
) -> ExternalBinding:
    """Record (or confirm) that `canonical_key` is `external_id` in `connection`.

    Binding the same pair twice is a no-op; binding a key to a different id updates it (the
    vendor record was replaced), which the caller decides.
    """
    try:
        with transaction.atomic():
            binding, created = ExternalBinding.objects.get_or_create(
                connection=connection,
                entity_type=entity_type,
                canonical_key=canonical_key,
                defaults={"external_id": external_id, "created_by_run": run},
            )
    except IntegrityError:
        binding = ExternalBinding.objects.get(
            connection=connection, entity_type=entity_type, canonical_key=canonical_key
        )
        created = False
    if not created and binding.external_id != external_id:
        binding.external_id = external_id
        binding.save(update_fields=["external_id", "updated_at"])
    return binding


def lookup_many(
    connection: Connection, entity_type: str, canonical_keys: list[str]
) -> dict[str, str]:
    """`lookup` for many keys in one query: {canonical key: external id} of the bound ones."""
    return dict(
        ExternalBinding.objects.filter(
            connection=connection, entity_type=entity_type, canonical_key__in=canonical_keys
        ).values_list("canonical_key", "external_id")
    )


def bind_many(
    connection: Connection,
    entity_type: str,
    pairs: dict[str, str],
    *,
    runs: dict[str, SyncRun] | None = None,
) -> None:
    """`bind` for many (canonical key -> external id) pairs in a few queries; `runs` names
    the run that created each binding."""
    if not pairs:
        return
    runs = runs or {}
    with transaction.atomic():
        current = {
            b.canonical_key: b
            for b in ExternalBinding.objects.select_for_update(of=("self",)).filter(
                connection=connection, entity_type=entity_type, canonical_key__in=list(pairs)
            )
        }
        changed = []
        for key, binding in current.items():
            if binding.external_id != pairs[key]:
                binding.external_id = pairs[key]
                binding.updated_at = timezone.now()
                changed.append(binding)
        if changed:
            save_rows(changed, ["external_id", "updated_at"])
        ExternalBinding.objects.bulk_create(
            [
                ExternalBinding(
                    connection=connection,
                    entity_type=entity_type,
                    canonical_key=key,
                    external_id=external_id,
                    created_by_run=runs.get(key),
                )
                for key, external_id in pairs.items()
                if key not in current
            ]
        )


def canonical_key(connection: Connection, entity_type: str, external_id: str) -> str | None:
    """The canonical key bound to `external_id` in `connection`, if any (the reverse lookup)."""
    return (
        ExternalBinding.objects.filter(
            connection=connection, entity_type=entity_type, external_id=external_id
        )
        .values_list("canonical_key", flat=True)
        .first()
    )


def unbind(connection: Connection, entity_type: str, canonical_key: str) -> None:
    """Forget a binding (the record was removed from the connected system)."""
    ExternalBinding.objects.filter(
        connection=connection, entity_type=entity_type, canonical_key=canonical_key
    ).delete()
