"""What each team starts with on the home page: finance sees its active exceptions per legal
entity, PMO its active exceptions (provisioning failures) per region, leadership the totals of
the leadership view, and every team the KPIs it owns.

Each breakdown is one grouped count over the active exceptions (open, in progress, retry
queued) of the team's own queues, like exceptions.queue_counts: the (queue, ...) indexes of
IntegrationException answer it without reading resolved or ignored ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.db.models import Count
from django.urls import reverse

from console.choices import TeamKind
from exceptions.choices import ACTIVE_STATUSES
from exceptions.models import IntegrationException, Queue

from . import kpis, leadership
from .kpi_queries import can_see_money

#: KPIs a team looks at besides the ones it owns (kpis.Kpi.owner)
ALSO_FOR: dict[str, tuple[str, ...]] = {
    TeamKind.SALES_OPS: ("quote_to_project", "won_to_project"),
    TeamKind.IT: ("provisioning_success_rate", "time_entry_latency"),
    TeamKind.FINANCE: ("backlog",),
}


@dataclass(frozen=True)
class Breakdown:
    """Active exceptions of one of the team's queues for one legal entity or region."""

    queue_name: str
    value: str
    count: int
    url: str


def _breakdown(queues: list[Queue], field: str, param: str) -> list[Breakdown]:
    if not queues:
        return []
    by_id = {queue.pk: queue for queue in queues}
    rows = (
        IntegrationException.objects.filter(status__in=ACTIVE_STATUSES, queue_id__in=list(by_id))
        .values("queue", field)
        .annotate(n=Count("queue"))
        .order_by()
    )
    out = []
    for row in rows:
        queue = by_id[row["queue"]]
        value = row[field] or ""
        url = queue.get_absolute_url()
        if value:
            url += "?" + urlencode({param: value})
        out.append(Breakdown(queue.name, value, row["n"], url))
    out.sort(key=lambda b: (b.value == "", b.value, b.queue_name))
    return out


def team_kpis(kinds: set[str]) -> list[dict[str, Any]]:
    """The KPIs relevant to the given team kinds, in catalogue order."""
    wanted = {key for kind in kinds for key in ALSO_FOR.get(kind, ())}
    return [
        {
            "name": kpi.name,
            "url": reverse("dashboards:kpi", args=[kpi.key]),
            "needs": kpi.needs,
        }
        for kpi in kpis.KPIS
        if kpi.owner in kinds or kpi.key in wanted
    ]


def leadership_start(user: Any, kinds: set[str]) -> dict[str, Any]:
    """Leadership members start with the leadership view: its totals per currency over the
    default period (dashboards.leadership), and the link to the whole view."""
    if TeamKind.LEADERSHIP not in kinds:
        return {"leadership_member": False}
    start, end = leadership.default_period()
    result = leadership.build(start, end, sees_money=can_see_money(user))
    return {
        "leadership_member": True,
        "leadership_url": reverse("dashboards:leadership"),
        "leadership_columns": [c for c in result.columns if c.live],
        "leadership_totals": [
            {"row": row, "cells": [(c, row.cells[c.key]) for c in result.columns if c.live]}
            for row in result.totals
        ],
    }


def team_sections(user: Any) -> dict[str, Any]:
    """The home page's team sections for `user` (empty lists for teams they are not in)."""
    if not getattr(user, "is_authenticated", False):
        return {"finance_by_entity": [], "pmo_by_region": [], "team_kpis": []}
    kinds = set(user.memberships.values_list("team__kind", flat=True))
    queues = list(
        Queue.objects.filter(
            team__kind__in=[TeamKind.FINANCE, TeamKind.PMO], team__memberships__user=user
        )
        .select_related("team")
        .distinct()
    )
    finance = [q for q in queues if q.team.kind == TeamKind.FINANCE]
    pmo = [q for q in queues if q.team.kind == TeamKind.PMO]
    return {
        **leadership_start(user, kinds),
        "finance_member": TeamKind.FINANCE in kinds,
        "pmo_member": TeamKind.PMO in kinds,
        "finance_by_entity": _breakdown(finance, "legal_entity_code", "legal_entity_code"),
        "pmo_by_region": _breakdown(pmo, "region", "region"),
        "team_kpis": team_kpis(kinds),
        "kpis_url": reverse("dashboards:kpis"),
    }
