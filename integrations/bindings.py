"""External-id bindings: the Binder, the only place a canonical key is resolved to a vendor id."""

from __future__ import annotations

from django.db import IntegrityError, transaction

from .models import Connection, ExternalBinding, SyncRun


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
