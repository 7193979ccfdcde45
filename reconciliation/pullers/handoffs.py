"""What Throughline knows of a PSA project, for the pullers: its deal (through the project
bindings) and the deal's legal entity and customer (from the hand-off run that provisioned it).
Each is looked up once per pull and remembered, so a page of records costs no query per record.
(Which ERP receives the deal's documents: reconciliation.pullers.scoping.ErpScope.)"""

from __future__ import annotations

from dataclasses import dataclass

from integrations.canonical import schemas
from integrations.models import Connection
from integrations.workflows.erp_customers import customer_key

from .reruns import handoff
from .scoping import keys_of


@dataclass(frozen=True)
class Deal:
    """The deal behind a PSA project."""

    key: str
    legal_entity: str
    #: the canonical customer key (what the ERP customer's binding carries)
    customer: str
    customer_name: str


class Deals:
    """The deals of a PSA's projects."""

    def __init__(self, psa: Connection) -> None:
        self.psa = psa
        self._projects: dict[str, str] | None = None
        self._deals: dict[str, Deal | None] = {}

    def of_workspace(self, workspace_id: str) -> Deal | None:
        """The deal of a PSA project, or None when Throughline did not provision it."""
        if self._projects is None:
            self._projects = keys_of(self.psa, "project")
        deal_key = self._projects.get(str(workspace_id))
        return self.of_deal(deal_key) if deal_key else None

    def of_deal(self, deal_key: str) -> Deal | None:
        if deal_key not in self._deals:
            self._deals[deal_key] = _deal(deal_key)
        return self._deals[deal_key]


def _deal(deal_key: str) -> Deal | None:
    run = handoff(deal_key)
    if run is None or "fetch_deal" not in run.context:
        return None
    opp = schemas.Opportunity.model_validate(run.context["fetch_deal"]["opportunity"])
    return Deal(
        key=deal_key,
        legal_entity=opp.legal_entity_code,
        customer=customer_key(opp),
        customer_name=opp.customer.name,
    )
