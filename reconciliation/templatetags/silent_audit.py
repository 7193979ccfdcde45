"""{% silent_audit_card %}: the latest silent-failure audit, as a card (connector health page
and KPI overview)."""

from __future__ import annotations

from django import template

from reconciliation import silent_audit

register = template.Library()


@register.inclusion_tag("reconciliation/_silent_audit_card.html")
def silent_audit_card() -> dict[str, object]:
    return silent_audit.card()
