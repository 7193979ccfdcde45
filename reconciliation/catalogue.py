"""The comparisons Throughline knows: for each, the entity, the two systems, how each side is
pulled, the fields compared, who owns a difference and how a record is re-synced.

A Definition (a row, with its connections and tolerances) names one of these by `kind`.
Pullers and re-syncers are import paths, resolved when used, so the catalogue stays a table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.utils.module_loading import import_string


@dataclass(frozen=True)
class Comparison:
    kind: str
    name: str
    #: the canonical entity type (bindings' entity_type) the key belongs to
    entity: str
    source_system: str
    target_system: str
    description: str
    #: what the compared date is, in words
    date_means: str
    #: the extra fields compared beyond amount, status and date
    extra_fields: tuple[str, ...]
    #: the team that owns a difference (console.choices.TeamKind value): its queue gets them
    owner: str
    #: "module.function" pulling one side: see reconciliation.pullers
    source_puller: str
    target_puller: str
    #: "module.function(definition, keys) -> dict[key, str]": re-sync the records with these keys
    resync: str
    compares_amount: bool = True
    compares_date: bool = True

    def puller(self, side: str) -> Callable[..., Any]:
        return import_string(self.source_puller if side == "source" else self.target_puller)

    def resyncer(self) -> Callable[..., Any]:
        return import_string(self.resync)


P = "reconciliation.pullers"

COMPARISONS: tuple[Comparison, ...] = (
    Comparison(
        kind="invoices",
        name="Invoices: PSA billing milestones vs ERP invoices",
        entity="milestone",
        source_system="psa",
        target_system="erp",
        description=(
            "Every billing milestone completed in the PSA has exactly one invoice in the ERP "
            "for the same amount (before tax, in the legal entity's currency) and status."
        ),
        date_means="the milestone's completion date vs the invoice's transaction date",
        extra_fields=("customer",),
        owner="finance",
        source_puller=f"{P}.invoices.psa_milestones",
        target_puller=f"{P}.invoices.erp_invoices",
        resync=f"{P}.invoices.resync",
    ),
    Comparison(
        kind="time_entries",
        name="Time: approved PSA time entries vs ERP time bills",
        entity="time_entry",
        source_system="psa",
        target_system="erp",
        description=(
            "Every approved time entry in the PSA is posted once to the ERP, same hours, "
            "person, project and day."
        ),
        date_means="the day the time was performed",
        extra_fields=("hours", "person", "project"),
        owner="pmo",
        source_puller=f"{P}.time_entries.psa_time_entries",
        target_puller=f"{P}.time_entries.erp_time_bills",
        resync=f"{P}.time_entries.resync",
        compares_amount=False,
    ),
    Comparison(
        kind="customers",
        name="Customers: CRM accounts vs ERP customers",
        entity="customer",
        source_system="crm",
        target_system="erp",
        description=(
            "Every account with a closed-won deal is an ERP customer under the same name, "
            "legal entity and currency."
        ),
        date_means="not compared",
        extra_fields=("name", "country", "legal_entity", "currency"),
        owner="sales_ops",
        source_puller=f"{P}.customers.crm_accounts",
        target_puller=f"{P}.customers.erp_customers",
        resync=f"{P}.customers.resync",
        compares_amount=False,
        compares_date=False,
    ),
    Comparison(
        kind="contracts",
        name="Contracts and amendments: CRM deals vs ERP billing plans",
        entity="deal",
        source_system="crm",
        target_system="erp",
        description=(
            "Every closed-won deal, with its amendments, is contracted in the ERP for the "
            "same total: the project's billing milestones add up to the deal amount."
        ),
        date_means="the deal's close date vs the ERP project's start date",
        extra_fields=(),
        owner="finance",
        source_puller=f"{P}.contracts.crm_deals",
        target_puller=f"{P}.contracts.erp_contracts",
        resync=f"{P}.contracts.resync",
    ),
    Comparison(
        kind="projects",
        name="Projects: PSA projects vs ERP projects",
        entity="project",
        source_system="psa",
        target_system="erp",
        description=(
            "Every PSA project of a handed-off deal exists in the ERP under the same name, "
            "legal entity and status."
        ),
        date_means="the project's start date",
        extra_fields=("name", "legal_entity"),
        owner="pmo",
        source_puller=f"{P}.projects.psa_projects",
        target_puller=f"{P}.projects.erp_projects",
        resync=f"{P}.projects.resync",
        compares_amount=False,
    ),
)

BY_KIND: dict[str, Comparison] = {c.kind: c for c in COMPARISONS}
KIND_CHOICES: list[tuple[str, str]] = [(c.kind, c.name) for c in COMPARISONS]


def get(kind: str) -> Comparison:
    return BY_KIND[kind]
