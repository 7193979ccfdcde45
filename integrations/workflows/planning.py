"""Turn a won deal and a project template into the canonical project plan (domain logic)."""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal

from integrations.canonical import schemas
from integrations.models import ProjectTemplate

CENT = Decimal("0.01")


def split_amount(total: Decimal, percents: list[Decimal]) -> list[Decimal]:
    """Split `total` by `percents` into cent amounts that add up to `total` exactly.

    Each share is rounded half-up to the cent; the last share takes what rounding left over.
    """
    if not percents:
        return []
    shares = [(total * p / Decimal(100)).quantize(CENT, rounding=ROUND_HALF_UP) for p in percents]
    shares[-1] = total - sum(shares[:-1], Decimal(0))
    return shares


def plan_project(
    opportunity: schemas.Opportunity,
    template: ProjectTemplate,
    *,
    start: dt.date | None = None,
) -> schemas.Project:
    """The project a won deal becomes: budget = deal amount, milestones from the template."""
    start = start or opportunity.close_date
    items = template.milestones
    amounts = split_amount(opportunity.amount, [Decimal(str(m["percent"])) for m in items])
    milestones = tuple(
        schemas.validate(
            schemas.Milestone,
            {
                "name": str(m["name"]),
                "due_date": start + dt.timedelta(days=int(m.get("offset_days", 0))),
                "amount": amount,
                "billable": bool(m.get("billable", True)),
            },
            source="project template",
        )
        for m, amount in zip(items, amounts, strict=True)
    )
    return schemas.validate(
        schemas.Project,
        {
            "key": f"deal:{opportunity.source_id}",
            "name": f"{opportunity.customer.name}: {opportunity.name}"[:255],
            "customer_name": opportunity.customer.name,
            "legal_entity_code": opportunity.legal_entity_code,
            "start_date": start,
            "end_date": start + dt.timedelta(days=template.duration_days),
            "budget": {"amount": opportunity.amount, "currency": opportunity.currency},
            "milestones": milestones,
        },
        source="project plan",
    )


def _month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def _months(start: dt.date, end: dt.date) -> list[dt.date]:
    months, current = [], _month_start(start)
    while current <= end:
        months.append(current)
        current = (current + dt.timedelta(days=32)).replace(day=1)
    return months


def revenue_schedule(
    opportunity: schemas.Opportunity, template: ProjectTemplate, project: schemas.Project
) -> schemas.RevenueSchedule:
    """When the contract's revenue is recognised, from its billing model.

    Fixed fee: each milestone's amount in the month it is due. Time and materials and
    retainers: evenly over the months of the engagement. Amounts add up to the deal value
    to the cent (split_amount).
    """
    total = opportunity.amount
    if template.billing_model == "fixed_fee":
        by_month: dict[dt.date, Decimal] = {}
        for milestone in project.milestones:
            month = _month_start(milestone.due_date)
            by_month[month] = by_month.get(month, Decimal(0)) + milestone.amount
        lines = sorted(by_month.items())
    else:
        months = _months(project.start_date, project.end_date or project.start_date)
        shares = split_amount(total, [Decimal(100) / len(months)] * len(months))
        lines = list(zip(months, shares, strict=True))
    return schemas.validate(
        schemas.RevenueSchedule,
        {
            "contract_key": f"TL-CON-{opportunity.source_id}",
            "billing_model": template.billing_model,
            "currency": opportunity.currency,
            "total": total,
            "lines": [{"period_start": month, "amount": amount} for month, amount in lines],
        },
        source="revenue schedule",
    )
