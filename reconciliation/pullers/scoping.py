"""What the pullers share about keys and scope: canonical keys through the external-id
bindings (in bulk), which records belong in a definition's ERP (coexistence routing), and an
ERP's currency codes. (Reading the values themselves: reconciliation.pullers.values; the deal
behind a PSA project: reconciliation.pullers.handoffs.)

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

from collections.abc import Iterable
from typing import Any

from integrations import bindings
from integrations.connectors.netsuite import mapping as netsuite_mapping
from integrations.models import Connection, ExternalBinding
from integrations.routing import erp_for

CHUNK = 500


def keys_of(
    connection: Connection, entity_type: str, external_ids: Iterable[str] | None = None
) -> dict[str, str]:
    """{external id: canonical key} of the bound ones among `external_ids` (reverse lookup);
    without `external_ids`, of every binding of the kind in the connection (people, projects,
    legal entities, customers: tables of thousands, read once per pull)."""
    if external_ids is None:
        return dict(
            ExternalBinding.objects.filter(connection=connection, entity_type=entity_type)
            .values_list("external_id", "canonical_key")
            .iterator(chunk_size=5000)
        )
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


def external_ids_of(
    connection: Connection, entity_type: str, keys: Iterable[str]
) -> dict[str, str]:
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
    """Whether records of a legal entity belong in `erp` today (see the module docstring);
    each route is looked up once per pull."""

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
