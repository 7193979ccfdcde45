"""Re-routing on request: after the rules change, move the exceptions still being worked to
the queue the rules now give.

Only active exceptions (open, in progress, retry queued) move; resolved and ignored ones stay
where they were worked. An exception a person assigned by hand stays put with its assignee: a
manual assignment is never overruled by the rules. A moved exception's SLA clock starts afresh
in its new queue. Each move is audited; a dry run counts the moves without making them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils import timezone

from console import audit
from console.models import User

from . import rules, sla
from .choices import ACTIVE_STATUSES
from .models import IntegrationException, Queue, RoutingRule

CHUNK = 2000


@dataclass
class RerouteReport:
    """What a re-route did (or, in a dry run, would do)."""

    dry_run: bool
    checked: int = 0
    moved: int = 0
    #: would move, but a person assigned them by hand, so they stay
    kept_manual: int = 0
    #: (from queue name, to queue name) -> how many
    moves: Counter[tuple[str, str]] = field(default_factory=Counter)

    @property
    def summary(self) -> str:
        verb = "would move" if self.dry_run else "moved"
        noun = "exception" if self.checked == 1 else "exceptions"
        text = f"{self.checked} active {noun} checked: {self.moved} {verb}"
        if self.kept_manual:
            text += f", {self.kept_manual} kept where they are (assigned by hand)"
        return text + "."

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "checked": self.checked,
            "moved": self.moved,
            "kept_manual": self.kept_manual,
            "moves": [
                {"from_queue": source, "to_queue": target, "count": count}
                for (source, target), count in sorted(self.moves.items())
            ],
            "summary": self.summary,
        }


def reroute(
    *, actor: User | None, dry_run: bool = False, actor_label: str | None = None
) -> RerouteReport:
    """Place every active exception by the current rules; see the module's docstring."""
    report = RerouteReport(dry_run=dry_run)
    ordered = [r for r in rules.ordered_rules() if r.enabled]
    fallthrough: dict[tuple[str, str], Queue] = {}  # by (owner, region): one query each
    active = (
        IntegrationException.objects.filter(status__in=ACTIVE_STATUSES)
        .select_related("queue__team", "run")
        .order_by("pk")
    )
    with transaction.atomic():
        for exc in active.iterator(chunk_size=CHUNK):
            report.checked += 1
            facts = rules.Facts.of_exception(exc)
            rule = rules.first_match(facts, ordered)
            if rule is not None:
                target = rule.queue
            else:
                key = (facts.owner, facts.region)
                if key not in fallthrough:
                    fallthrough[key] = rules.fallthrough(facts)[0]
                target = fallthrough[key]
            if target.pk == exc.queue_id:
                if not dry_run and rule is not None and exc.routed_by_id != rule.pk:
                    IntegrationException.objects.filter(pk=exc.pk).update(routed_by=rule)
                continue
            if exc.assigned_manually and exc.assignee_id:
                report.kept_manual += 1
                continue
            report.moved += 1
            report.moves[(exc.queue.name, target.name)] += 1
            if not dry_run:
                _move(exc, target, rule, actor=actor, actor_label=actor_label)
        if not dry_run and report.checked:
            audit.record(
                "routing.rerouted",
                f"Open exceptions re-routed: {report.summary}",
                actor=actor,
                actor_label=actor_label,
                report=report.as_dict(),
            )
    return report


def _move(
    exc: IntegrationException,
    target: Queue,
    rule: RoutingRule | None,
    *,
    actor: User | None,
    actor_label: str | None,
) -> None:
    source = exc.queue
    # It reaches the new queue now: that queue's SLA clock starts afresh.
    values: dict[str, Any] = {
        "queue": target,
        "routed_by": rule,
        "due_at": sla.due_at(target, timezone.now()),
        "escalated_at": None,
    }
    # An assignee the rules gave (not a person's choice) cannot follow into another team.
    clear_assignee = bool(exc.assignee_id) and target.team_id != source.team_id
    if clear_assignee:
        values["assignee"] = None
    IntegrationException.objects.filter(pk=exc.pk, status__in=ACTIVE_STATUSES).update(**values)
    if rule is not None:
        reason = f"by rule “{rule.name}” (version {rule.version})"
    else:
        reason = "as no rule places it (the owning team's queue, or the fallback queue)"
    audit.record(
        "exception.rerouted",
        f"Exception #{exc.pk} re-routed from {source} to {target} {reason}",
        actor=actor,
        actor_label=actor_label,
        obj=exc,
        correlation_id=exc.run.correlation_id if exc.run_id else "",
        from_queue=source.slug,
        to_queue=target.slug,
        rule=rule.name if rule else None,
        rule_version=rule.version if rule else None,
        assignee_cleared=clear_assignee,
    )
