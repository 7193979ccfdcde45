"""System-of-record policy: which system owns each canonical entity, and where needed each
field. The defaults below follow DESIGN.md (CRM: commercial terms; PSA: delivery; ERP: the
financial record); they are stored as SystemOfRecordRule rows, editable in the console, and
the stored rules win over the defaults."""

from __future__ import annotations

from django.db.models import QuerySet

DEFAULTS: dict[tuple[str, str], str] = {
    ("customer", "*"): "erp",
    ("customer", "name"): "crm",
    ("contact", "*"): "crm",
    ("opportunity", "*"): "crm",
    ("opportunity", "erp_customer_id"): "erp",
    ("opportunity", "psa_project_id"): "psa",
    ("quote", "*"): "crm",
    ("contract", "*"): "crm",
    ("project", "*"): "psa",
    ("project", "budget"): "crm",
    ("milestone", "*"): "psa",
    ("assignment", "*"): "psa",
    ("time_entry", "*"): "psa",
    ("expense", "*"): "psa",
    ("invoice", "*"): "erp",
    ("revenue_schedule", "*"): "erp",
    ("legal_entity", "*"): "erp",
    ("tax_configuration", "*"): "erp",
    ("exchange_rate", "*"): "erp",
    ("cost_centre", "*"): "erp",
}


def _rules() -> QuerySet:
    from integrations.models import SystemOfRecordRule

    return SystemOfRecordRule.objects.all()


def owner_of(entity: str, field: str = "*") -> str | None:
    """The system that owns `entity.field`: a field rule first, then the entity's rule."""
    stored = {(r.entity, r.field): r.owner for r in _rules().filter(entity=entity)}
    for key in ((entity, field), (entity, "*")):
        if key in stored:
            return stored[key]
        if key in DEFAULTS:
            return DEFAULTS[key]
    return None


def may_update(system: str, entity: str, field: str = "*") -> bool:
    """Whether a change coming from `system` to `entity.field` may be propagated."""
    owner = owner_of(entity, field)
    return owner is None or owner == system
