"""Template tags of the queues' SLA: `{% sla_badge exc %}` shows where an exception stands
against its queue's SLA (breached, due soon, or its due time)."""

from __future__ import annotations

from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString

from exceptions.choices import ACTIVE_STATUSES, SlaState
from exceptions.models import IntegrationException
from exceptions.sla import sla_state

register = template.Library()

#: SLA state -> badge class of the console's stylesheet
BADGES = {SlaState.BREACHED: "badge-failed", SlaState.DUE_SOON: "badge-pending"}


@register.simple_tag
def sla_badge(exc: IntegrationException, show_due: bool = True) -> SafeString | str:
    """A badge for a breached or soon-due exception, its due time otherwise; nothing for one
    no clock runs on (resolved, ignored, or without a due time)."""
    if exc.due_at is None or exc.status not in ACTIVE_STATUSES:
        return ""
    state = sla_state(exc)
    due = f"{exc.due_at:%Y-%m-%d %H:%M} UTC"
    if state in BADGES:
        return format_html(
            '<span class="badge {}" title="Due {}">{}</span>', BADGES[state], due, state.label
        )
    if not show_due:
        return ""
    return format_html('<span class="muted small" title="Due {}">due {}</span>', due, due)


@register.filter
def sla_state_of(exc: IntegrationException) -> str:
    """The SLA state's value ("ok", "due_soon", "breached"), for conditions in templates."""
    return str(sla_state(exc))
