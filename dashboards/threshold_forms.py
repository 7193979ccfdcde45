"""The console's form of an SLA threshold (a KPI's or a queue's warning and breach boundaries).

The form only presents the fields: what a threshold may be is decided in one place,
dashboards.thresholds.check_threshold, which the model's clean() calls (so this ModelForm, the
admin and the API's serializer all refuse the same things with the same words), and the views
save and delete through dashboards.thresholds.save_threshold / delete_threshold, the audited
path the API uses. Who may change a threshold is dashboards.thresholds.can_manage; the teams
offered here are exactly the teams for which it holds (`manageable_teams`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.db.models import QuerySet

from console.choices import Role
from console.models import Team
from exceptions.models import Queue
from integrations.choices import Region
from integrations.models import Connection, LegalEntity

from . import kpis
from .models import KpiRollup, KpiThreshold
from .thresholds import SETTINGS


def manageable_teams(user: Any) -> QuerySet[Team]:
    """The teams whose thresholds `user` may change: every team for a superuser, else the
    teams they are an admin of (dashboards.thresholds.can_manage, as one query)."""
    if not getattr(user, "is_authenticated", False):
        return Team.objects.none()
    if user.is_superuser:
        return Team.objects.order_by("name")
    return Team.objects.filter(memberships__user=user, memberships__role=Role.ADMIN).order_by(
        "name"
    )


def _rollup_values(column: str) -> list[str]:
    """The values of a dimension the KPI rollups carry (as the KPI pages' filters offer)."""
    rows = KpiRollup.objects.filter(grain=KpiRollup.Grain.DAY).exclude(**{column: ""})
    return list(rows.order_by().values_list(column, flat=True).distinct())


def _with_current(choices: list[tuple[str, str]], current: str) -> list[tuple[str, str]]:
    """Keep a stored value selectable even when it is no longer among the offered ones."""
    if current and current not in {value for value, _ in choices}:
        return [*choices, (current, current)]
    return choices


class KpiThresholdForm(forms.ModelForm):
    """A threshold on a KPI (optionally for one legal entity, region or connection) or on a
    queue's active or SLA-breached count, owned by a team the user administers."""

    kpi = forms.ChoiceField(
        required=False,
        label="KPI",
        help_text="The KPI to watch; leave empty to watch a queue instead.",
    )
    legal_entity_code = forms.ChoiceField(required=False, label="Legal entity")
    region = forms.ChoiceField(required=False)

    class Meta:
        model = KpiThreshold
        fields = list(SETTINGS)
        labels = {"measure": "Watches", "enabled": "Enabled (evaluated every minute)"}
        help_texts = {
            "queue": "Or a queue (leave the KPI empty).",
            "measure": "A KPI threshold watches the KPI's value; a queue threshold its active "
            "exceptions or those past their SLA.",
            "connection": "Narrows a KPI to one connection (what it means depends on the KPI).",
            "warning": "In the KPI's unit (hours, %, …; a number of exceptions for a queue).",
            "breach": "Where lower is better, at or above the warning; where higher is better, "
            "at or below it.",
            "direction": "Needed for a KPI without a direction (a count): which way is good.",
            "team": "Its alerts go to this team's queue addresses. Money KPIs: Finance or "
            "Leadership teams only.",
        }

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        instance: KpiThreshold = self.instance
        live = [(kpi.key, f"{kpi.name} ({kpi.unit})") for kpi in kpis.KPIS if kpi.live]
        self.fields["kpi"].choices = [
            ("", "— none: watch a queue —"),
            *_with_current(live, instance.kpi),
        ]
        # the legal entities known, and any other code the KPIs' records carry
        names = dict(LegalEntity.objects.values_list("code", "name"))
        for code in _rollup_values("legal_entity_code"):
            names.setdefault(code, "")
        entities = [(code, f"{code} {name}".strip()) for code, name in sorted(names.items())]
        regions = dict(Region.choices)
        for region in _rollup_values("region"):
            regions.setdefault(region, region)
        self.fields["legal_entity_code"].choices = [
            ("", "All legal entities"),
            *_with_current(entities, instance.legal_entity_code),
        ]
        self.fields["region"].choices = [
            ("", "All regions"),
            *_with_current(sorted(regions.items()), instance.region),
        ]
        self.fields["queue"].queryset = Queue.objects.select_related("team").order_by("name")
        self.fields["queue"].empty_label = "— none: watch a KPI —"
        self.fields["connection"].queryset = Connection.objects.order_by("name")
        self.fields["connection"].empty_label = "All connections"
        self.fields["team"].queryset = manageable_teams(user)
        self.fields["team"].empty_label = "Choose the owning team"

    def _boundary(self, name: str) -> Decimal | None:
        """A boundary as the database keeps it (4 places), so the audit trail's before and
        after compare like the API's ("8" and "8.0000" are the same boundary)."""
        value = self.cleaned_data.get(name)
        if value is None:
            return None
        places = KpiThreshold._meta.get_field(name).decimal_places
        return value.quantize(Decimal(1).scaleb(-places))

    def clean_warning(self) -> Decimal | None:
        return self._boundary("warning")

    def clean_breach(self) -> Decimal | None:
        return self._boundary("breach")
