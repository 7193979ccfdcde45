"""Kantata mapping: canonical Project and Milestone to Kantata workspace and story bodies, and
Kantata milestone stories back to canonical Milestones.

Money crosses as integers of the currency's subunits computed from Decimal exactly (never
through float): Kantata's `currency_base_unit` is 100 for most currencies, 1 for zero-decimal
ones such as JPY and 1000 for three-decimal ones such as KWD. A workspace's writable budget
is `price`, in currency units (Kantata answers `price_in_cents` itself, read-only); it is
sent as an exact decimal string built from the subunit integer. Stories carry
`budget_estimate_in_cents`.

Everything read from Kantata is untrusted: `milestones_from_stories` validates through the
canonical schema and raises MappingError naming the offending story and field.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from integrations.canonical.errors import MappingError
from integrations.canonical.schemas import Milestone, Project, validate

ZERO_DECIMAL_CURRENCIES = frozenset(
    {"BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "VND", "VUV",
     "XAF", "XOF", "XPF"}
)  # fmt: skip
THREE_DECIMAL_CURRENCIES = frozenset({"BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"})


def currency_base_unit(currency: str | None) -> int:
    """Subunits in one unit of `currency` (Kantata's `currency_base_unit`); 100 if unknown."""
    if currency in ZERO_DECIMAL_CURRENCIES:
        return 1
    if currency in THREE_DECIMAL_CURRENCIES:
        return 1000
    return 100


def _digits(currency: str | None) -> int:
    return {1: 0, 100: 2, 1000: 3}[currency_base_unit(currency)]


def to_subunits(amount: Decimal, currency: str | None, *, entity: str, field: str) -> int:
    """`amount` in the currency's subunits, exactly; MappingError if it does not divide."""
    if not isinstance(amount, Decimal) or not amount.is_finite():
        raise MappingError(
            entity=entity,
            problems=[{"field": field, "problem": "not a finite Decimal", "type": "decimal"}],
        )
    subunits = amount * currency_base_unit(currency)
    if subunits != subunits.to_integral_value():
        raise MappingError(
            entity=entity,
            problems=[
                {
                    "field": field,
                    "problem": f"{amount} has more decimals than {currency} allows",
                    "type": "decimal_places",
                }
            ],
        )
    return int(subunits)


def from_subunits(subunits: int, currency: str | None) -> Decimal:
    """Subunits back to an amount with the currency's decimals (exact)."""
    return Decimal(subunits).scaleb(-_digits(currency))


def make_marker(project_key: str) -> str:
    """Throughline's marker for the workspace of `project_key` (kept in its description)."""
    key = project_key.strip()
    if not key:
        raise ValueError("a project key is required")
    return f"[throughline {key}]"


def workspace_from_project(project: Project, *, marker: str) -> dict[str, Any]:
    """The Kantata workspace body for `project`; the description carries `marker`."""
    marker = marker.strip()
    if not marker:
        raise ValueError("a marker is required")
    if project.end_date is not None and project.end_date < project.start_date:
        raise MappingError(
            entity="project",
            problems=[
                {"field": "end_date", "problem": "ends before it starts", "type": "date_order"}
            ],
            source=f"throughline:{project.key}",
        )
    currency = project.budget.currency
    subunits = to_subunits(project.budget.amount, currency, entity="project", field="budget")
    lines = [
        f"Customer: {project.customer_name}",
        f"Legal entity: {project.legal_entity_code}",
    ]
    if project.budget.hours is not None:
        lines.append(f"Budgeted hours: {project.budget.hours}")
    lines.append(f"Provisioned by Throughline {marker}")
    fields: dict[str, Any] = {
        "title": project.name,
        "description": "\n".join(lines),
        "budgeted": True,
        "currency": currency,
        "price": format(Decimal(subunits).scaleb(-_digits(currency)), f".{_digits(currency)}f"),
        "start_date": project.start_date.isoformat(),
        "client_role_name": project.customer_name,
        "creator_role": "maven",
    }
    if project.end_date is not None:
        fields["due_date"] = project.end_date.isoformat()
    return fields


def story_from_milestone(milestone: Milestone, *, currency: str | None = None) -> dict[str, Any]:
    """The Kantata milestone story body for `milestone` (without workspace_id)."""
    return {
        "title": milestone.name,
        "story_type": "milestone",
        "due_date": milestone.due_date.isoformat(),
        "budget_estimate_in_cents": to_subunits(
            milestone.amount, currency, entity="milestone", field="amount"
        ),
        "billable": milestone.billable,
    }


def project_ref(workspace: dict[str, Any]) -> str:
    """The Kantata id of a workspace (what Throughline stores as the PSA project id)."""
    raw = workspace.get("id") if isinstance(workspace, dict) else None
    text = str(raw) if isinstance(raw, int | str) and not isinstance(raw, bool) else ""
    if not text.isdigit():
        raise MappingError(
            entity="project",
            problems=[{"field": "id", "problem": "not a Kantata id", "type": "id"}],
            source="kantata:workspace",
        )
    return text


def _story_amount(story: dict[str, Any], currency: str | None) -> Any:
    """The milestone amount, or a problem string. A missing key means Kantata hid the budget
    (the API user cannot see story budgets): refuse rather than read it as zero."""
    if "budget_estimate_in_cents" not in story:
        return "budget_estimate_in_cents is not visible to the API user"
    raw = story["budget_estimate_in_cents"]
    if raw is None:
        return Decimal("0.00")
    if isinstance(raw, str) and raw.strip().isdigit():
        raw = int(raw)
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
        return "budget_estimate_in_cents is not a whole number of subunits"
    return from_subunits(raw, currency)


def milestones_from_stories(
    stories: Iterable[Any], *, currency: str | None = None, source: str = "kantata"
) -> list[Milestone]:
    """Canonical milestones from Kantata stories; other story types are skipped."""
    milestones: list[Milestone] = []
    for position, story in enumerate(stories):
        where = f"{source}:stories[{position}]"
        if not isinstance(story, dict):
            raise MappingError(
                entity="milestone",
                problems=[{"field": "story", "problem": "not an object", "type": "type"}],
                source=where,
            )
        if story.get("story_type") != "milestone":
            continue
        where = f"{source}:story:{story.get('id', position)}"
        amount = _story_amount(story, currency)
        if isinstance(amount, str):
            raise MappingError(
                entity="milestone",
                problems=[{"field": "amount", "problem": amount, "type": "amount"}],
                source=where,
            )
        data = {
            "name": story.get("title"),
            "due_date": story.get("due_date"),
            "amount": amount,
            "billable": story.get("billable", True),
        }
        milestones.append(validate(Milestone, data, source=where))
    return milestones
