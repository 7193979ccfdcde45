"""Changing routing rules: who may, what a valid rule is, and the audited, versioned writes.

Every change (create, edit, enable or disable, move, delete) raises the rule's version and
appends an audit event with the values before and after, so the audit trail is the rule's
history. The console pages, the REST API and the routing file import all write through here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Max, QuerySet

from console import audit
from console.choices import Role, TeamKind
from console.models import AuditEvent, User
from integrations.choices import Region
from integrations.models import Connection, LegalEntity

from .choices import Category, ExceptionCode
from .models import Queue, RoutingRule
from .rules import default_rules

#: the audit trail's name for a rule (AuditEvent.object_type)
RULE_OBJECT_TYPE = RoutingRule._meta.label_lower
ENTITY_TYPE = re.compile(r"^[a-z][a-z0-9_]*$")
UP, DOWN = "up", "down"


def can_edit_rules(user: User | Any) -> bool:
    """Superusers and admins of an IT team change routing rules and queues."""
    return bool(user and user.is_authenticated and user.acts_for_team_kind(TeamKind.IT, Role.ADMIN))


EDIT_REFUSED = "Only superusers and admins of an IT team may change routing rules."


class RuleInvalid(ValueError):
    """A rule that cannot be saved; `errors` maps each field to its messages."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
        self.errors = errors


@dataclass
class RuleSpec:
    """What a person asks a rule to be (before validation)."""

    name: str
    queue: Queue | None
    enabled: bool = True
    codes: list[str] = field(default_factory=list)
    category: str = ""
    entity_types: list[str] = field(default_factory=list)
    legal_entity_codes: list[str] = field(default_factory=list)
    regions: list[str] = field(default_factory=list)
    connection: Connection | None = None
    min_amount: Decimal | None = None
    max_amount: Decimal | None = None

    @classmethod
    def of(cls, rule: RoutingRule) -> RuleSpec:
        return cls(
            name=rule.name,
            queue=rule.queue,
            enabled=rule.enabled,
            codes=list(rule.codes),
            category=rule.category,
            entity_types=list(rule.entity_types),
            legal_entity_codes=list(rule.legal_entity_codes),
            regions=list(rule.regions),
            connection=rule.connection,
            min_amount=rule.min_amount,
            max_amount=rule.max_amount,
        )

    def values(self) -> dict[str, Any]:
        """The model fields this spec sets."""
        return {
            "name": self.name,
            "queue": self.queue,
            "enabled": self.enabled,
            "codes": self.codes,
            "category": self.category,
            "entity_types": self.entity_types,
            "legal_entity_codes": self.legal_entity_codes,
            "regions": self.regions,
            "connection": self.connection,
            "min_amount": self.min_amount,
            "max_amount": self.max_amount,
        }


def _clean_list(values: Any, *, upper: bool = False) -> list[str]:
    if values in (None, ""):
        return []
    if isinstance(values, str):
        values = values.split(",")
    cleaned = {str(v).strip().upper() if upper else str(v).strip() for v in values}
    return sorted(v for v in cleaned if v)


def condition_errors(spec: RuleSpec) -> dict[str, list[str]]:
    """Normalise the spec's conditions in place (lists trimmed, de-duplicated, sorted; legal
    entity codes upper-case) and say what is wrong with them."""
    errors: dict[str, list[str]] = {}
    spec.codes = _clean_list(spec.codes)
    spec.entity_types = _clean_list(spec.entity_types)
    spec.legal_entity_codes = _clean_list(spec.legal_entity_codes, upper=True)
    spec.regions = _clean_list(spec.regions)
    spec.category = (spec.category or "").strip()
    unknown = [c for c in spec.codes if c not in ExceptionCode.values]
    if unknown:
        errors["codes"] = [f"Unknown exception code {_quoted(unknown)}."]
    if spec.category and spec.category not in Category.values:
        errors["category"] = [
            f"Unknown category “{spec.category}”: use business or technical, or leave it empty."
        ]
    bad = [t for t in spec.entity_types if not ENTITY_TYPE.match(t)]
    if bad:
        errors["entity_types"] = [
            f"Entity types are lower-case words such as invoice or legal_entity, "
            f"not {_quoted(bad)}."
        ]
    if spec.legal_entity_codes:
        known = set(LegalEntity.objects.values_list("code", flat=True))
        unknown = [c for c in spec.legal_entity_codes if c not in known]
        if unknown:
            listed = ", ".join(sorted(known)) or "none"
            errors["legal_entity_codes"] = [
                f"Unknown legal entity {_quoted(unknown)}; known: {listed}."
            ]
    unknown = [r for r in spec.regions if r not in Region.values]
    if unknown:
        errors["regions"] = [
            f"Unknown region {_quoted(unknown)}; known: {', '.join(Region.values)}."
        ]
    low, high = spec.min_amount, spec.max_amount
    if low is not None and high is not None and low > high:
        errors["max_amount"] = [f"The maximum amount ({high}) is below the minimum ({low})."]
    return errors


def _quoted(values: list[str]) -> str:
    return ", ".join(f"“{v}”" for v in values)


def validate(spec: RuleSpec, *, instance: RoutingRule | None = None) -> RuleSpec:
    """The spec, normalised, or RuleInvalid with every problem at once."""
    errors = condition_errors(spec)
    spec.name = (spec.name or "").strip()
    if not spec.name:
        errors["name"] = ["Give the rule a name."]
    elif len(spec.name) > RoutingRule._meta.get_field("name").max_length:
        errors["name"] = ["The name is too long (at most 120 characters)."]
    else:
        others = RoutingRule.objects.filter(name__iexact=spec.name)
        if instance is not None and instance.pk is not None:
            others = others.exclude(pk=instance.pk)
        if others.exists():
            errors["name"] = [
                f"Another rule is already called “{spec.name}”: names identify rules in the "
                "routing file, so they must differ."
            ]
    if spec.queue is None:
        errors["queue"] = ["Choose the queue this rule sends exceptions to."]
    if errors:
        raise RuleInvalid(errors)
    return spec


# -- the audited writes ------------------------------------------------------------------------


def _amount(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def snapshot(rule: RoutingRule) -> dict[str, Any]:
    """A rule's values, JSON-safe, keyed by names not ids (as the routing file has them)."""
    return {
        "position": rule.position,
        "name": rule.name,
        "enabled": rule.enabled,
        "queue": rule.queue.slug if rule.queue_id else None,
        "codes": list(rule.codes),
        "category": rule.category,
        "entity_types": list(rule.entity_types),
        "legal_entity_codes": list(rule.legal_entity_codes),
        "regions": list(rule.regions),
        "connection": rule.connection.name if rule.connection_id else None,
        "min_amount": _amount(rule.min_amount),
        "max_amount": _amount(rule.max_amount),
    }


def changes_between(before: dict[str, Any], after: dict[str, Any]) -> dict[str, list[Any]]:
    return {k: [before.get(k), after[k]] for k in after if before.get(k) != after[k]}


def save_rule(
    rule: RoutingRule,
    *,
    actor: User | None,
    actor_label: str | None = None,
    what: str = "",
    **values: Any,
) -> dict[str, list[Any]]:
    """Set `values` on the rule and save it as a new version, audited; nothing happens (and
    {} is returned) when an existing rule would not change. Returns the changes."""
    creating = rule.pk is None
    before = {} if creating else snapshot(rule)
    for name, value in values.items():
        setattr(rule, name, value)
    after = snapshot(rule)
    changes = changes_between(before, after)
    if not creating and not changes:
        return {}
    if not creating:
        rule.version += 1
    rule.updated_by = actor if actor is not None and actor.is_authenticated else None
    rule.save()
    if creating:
        action, summary = "routing_rule.created", f"Routing rule “{rule.name}” created"
    else:
        action = "routing_rule.changed"
        summary = f"Routing rule “{rule.name}” {what or 'changed: ' + ', '.join(changes)}"
    audit.record(
        action,
        f"{summary} (version {rule.version})",
        actor=actor,
        actor_label=actor_label,
        obj=rule,
        version=rule.version,
        before=before or None,
        after=after,
        changes=changes,
    )
    return changes


def _locked_rules() -> list[RoutingRule]:
    return list(
        RoutingRule.objects.select_for_update(of=("self",))
        .select_related("queue", "connection")
        .order_by("position", "id")
    )


@transaction.atomic
def create_rule(spec: RuleSpec, *, actor: User | None, position: int | None = None) -> RoutingRule:
    """A new rule at `position` (rules from there on move down one), else after the last."""
    spec = validate(spec)
    rules = _locked_rules()
    last = RoutingRule.objects.aggregate(last=Max("position"))["last"] or 0
    if position is None or position > last:
        position = last + 1
    position = max(position, 1)
    if any(r.position == position for r in rules):
        for other in rules:
            if other.position >= position:
                save_rule(
                    other,
                    actor=actor,
                    position=other.position + 1,
                    what=f"moved to position {other.position + 1}",
                )
    rule = RoutingRule(position=position)
    save_rule(rule, actor=actor, **spec.values())
    return rule


@transaction.atomic
def update_rule(rule: RoutingRule, spec: RuleSpec, *, actor: User | None) -> dict[str, list[Any]]:
    """Change a rule's name, queue, conditions or state; returns what changed ({}: nothing)."""
    spec = validate(spec, instance=rule)
    rule = (
        RoutingRule.objects.select_for_update(of=("self",))
        .select_related("queue", "connection")
        .get(pk=rule.pk)
    )
    return save_rule(rule, actor=actor, **spec.values())


@transaction.atomic
def set_enabled(rule: RoutingRule, enabled: bool, *, actor: User | None) -> bool:
    """Enable or disable a rule; False when it already was."""
    rule = (
        RoutingRule.objects.select_for_update(of=("self",))
        .select_related("queue", "connection")
        .get(pk=rule.pk)
    )
    return bool(
        save_rule(rule, actor=actor, enabled=enabled, what="enabled" if enabled else "disabled")
    )


@transaction.atomic
def move_rule(rule: RoutingRule, direction: str, *, actor: User | None) -> bool:
    """Swap a rule with its neighbour above (UP) or below (DOWN); False at either end."""
    rules = _locked_rules()
    index = next(i for i, r in enumerate(rules) if r.pk == rule.pk)
    other_index = index - 1 if direction == UP else index + 1
    if other_index < 0 or other_index >= len(rules):
        return False
    positions = [r.position for r in rules]
    if len(set(positions)) != len(positions):
        # Positions repeat (rules made elsewhere): number them 1..n first, so a swap always
        # changes the order.
        for number, each in enumerate(rules, start=1):
            if each.position != number:
                save_rule(each, actor=actor, position=number, what=f"moved to position {number}")
    this, other = rules[index], rules[other_index]
    upper, lower = this.position, other.position
    save_rule(this, actor=actor, position=lower, what=f"moved {direction} to position {lower}")
    save_rule(other, actor=actor, position=upper, what=f"moved to position {upper}")
    return True


@transaction.atomic
def delete_rule(rule: RoutingRule, *, actor: User | None, actor_label: str | None = None) -> None:
    """Delete a rule; its last values stay in the audit trail. Exceptions it placed stay
    where they are (their `routed_by` is cleared)."""
    before = snapshot(rule)
    audit.record(
        "routing_rule.deleted",
        f"Routing rule “{rule.name}” deleted (was version {rule.version})",
        actor=actor,
        actor_label=actor_label,
        obj=rule,
        version=rule.version,
        before=before,
        after=None,
        changes={k: [v, None] for k, v in before.items()},
    )
    rule.delete()


def history(rule_id: int) -> QuerySet[AuditEvent]:
    """The rule's audit events, newest first (they outlive the rule)."""
    return AuditEvent.objects.filter(
        object_type=RULE_OBJECT_TYPE, object_id=str(rule_id)
    ).select_related("actor")


@transaction.atomic
def install_default_rules(*, actor_label: str = "demo seed") -> int:
    """Create the default rules (exceptions.rules.default_rules) when there are no rules at
    all, skipping those whose queue does not exist. Returns how many were created; a setup
    that has rules, even after people changed them, is left alone."""
    if RoutingRule.objects.exists():
        return 0
    queues = {q.slug: q for q in Queue.objects.all()}
    created = 0
    for entry in default_rules():
        queue = queues.get(entry["queue"])
        if queue is None:
            continue
        spec = RuleSpec(
            name=entry["name"],
            queue=queue,
            enabled=entry["enabled"],
            codes=entry["codes"],
            category=entry["category"],
            entity_types=entry["entity_types"],
            legal_entity_codes=entry["legal_entity_codes"],
            regions=entry["regions"],
        )
        rule = RoutingRule(position=created + 1)
        save_rule(rule, actor=None, actor_label=actor_label, **validate(spec).values())
        created += 1
    return created
