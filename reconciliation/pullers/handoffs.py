"""What Throughline knows of a PSA project, for the pullers: its deal (through the project
bindings), the deal's legal entity and customer (from the hand-off run that provisioned it),
and which ERP receives the project's documents (coexistence routing). Each is looked up once
per pull and remembered, so a page of records costs no query per record."""

from __future__ import annotations

from dataclasses import dataclass

from integrations.canonical import schemas
from integrations.models import Connection, ExternalBinding, SyncRun
from integrations.routing import erp_for
from integrations.workflows.erp_customers import customer_key

HANDOFF_WORKFLOW = "create_service_engagement"


@dataclass(frozen=True)
class Deal:
    """The deal behind a PSA project."""

    key: str
    legal_entity: str
    #: the canonical customer key (what the ERP customer's binding carries)
    customer: str
    customer_name: str


def bound(connection: Connection, entity_type: str) -> dict[str, str]:
    """{external id: canonical key} of every binding of one kind in a connection (people,
    projects, legal entities, customers: tables of thousands, read once per pull)."""
    return dict(
        ExternalBinding.objects.filter(connection=connection, entity_type=entity_type)
        .values_list("external_id", "canonical_key")
        .iterator(chunk_size=5000)
    )


class Deals:
    """The deals of a PSA's projects, and the ERP each legal entity's documents go to."""

    def __init__(self, psa: Connection) -> None:
        self.psa = psa
        self._projects: dict[str, str] | None = None
        self._deals: dict[str, Deal | None] = {}
        self._erps: dict[tuple[str, str], int] = {}

    def of_workspace(self, workspace_id: str) -> Deal | None:
        """The deal of a PSA project, or None when Throughline did not provision it."""
        if self._projects is None:
            self._projects = bound(self.psa, "project")
        deal_key = self._projects.get(str(workspace_id))
        return self.of_deal(deal_key) if deal_key else None

    def of_deal(self, deal_key: str) -> Deal | None:
        if deal_key not in self._deals:
            self._deals[deal_key] = _deal(deal_key)
        return self._deals[deal_key]

    def erp_id(self, legal_entity: str, document: str) -> int:
        """The id of the ERP connection receiving `document` records of the legal entity
        today (coexistence routing)."""
        memo = (legal_entity, document)
        if memo not in self._erps:
            self._erps[memo] = erp_for(legal_entity, document).pk
        return self._erps[memo]


def _deal(deal_key: str) -> Deal | None:
    run = SyncRun.objects.filter(workflow=HANDOFF_WORKFLOW, correlation_id=deal_key).first()
    if run is None or "fetch_deal" not in run.context:
        return None
    opp = schemas.Opportunity.model_validate(run.context["fetch_deal"]["opportunity"])
    return Deal(
        key=deal_key,
        legal_entity=opp.legal_entity_code,
        customer=customer_key(opp),
        customer_name=opp.customer.name,
    )
