"""The routing file: queues and routing rules as one JSON document, to keep under version
control and review like code.

Export writes a stable document (queues by slug, rules in the order they are tried, every key
in a fixed order; teams, queues and connections named by slug or name, never by id), so two
exports of the same setup are identical and a change reads as a small diff.

Import replaces everything with the file: queues are matched by slug (created or updated;
a queue missing from the file is deleted, which is refused while it still holds exceptions,
incidents or saved views), rules by name (created, updated as a new version, or deleted) and
ordered as listed. Everything is validated first and every problem reported at once; nothing
changes unless all of it is valid, and then all of it changes in one transaction, audited.
A dry run returns the same difference without applying it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator, validate_email, validate_slug
from django.db import IntegrityError, transaction

from console import audit
from console.models import Team, User
from integrations.models import Connection

from .models import Queue, RoutingRule
from .rule_editing import RuleSpec, condition_errors, delete_rule, save_rule, snapshot

FORMAT = "throughline.routing"
VERSION = 1

QUEUE_FIELDS = [
    "slug",
    "name",
    "team",
    "description",
    "sla_hours",
    "escalate_after_hours",
    "escalation_emails",
    "alert_emails",
    "alert_webhook_url",
    "is_fallback",
]
RULE_FIELDS = [
    "name",
    "enabled",
    "queue",
    "codes",
    "category",
    "entity_types",
    "legal_entity_codes",
    "regions",
    "connection",
    "min_amount",
    "max_amount",
]


# -- export ------------------------------------------------------------------------------------


def queue_entry(queue: Queue) -> dict[str, Any]:
    return {
        "slug": queue.slug,
        "name": queue.name,
        "team": queue.team.slug,
        "description": queue.description,
        "sla_hours": queue.sla_hours,
        "escalate_after_hours": queue.escalate_after_hours,
        "escalation_emails": queue.escalation_emails,
        "alert_emails": queue.alert_emails,
        "alert_webhook_url": queue.alert_webhook_url,
        "is_fallback": queue.is_fallback,
    }


def rule_entry(rule: RoutingRule) -> dict[str, Any]:
    values = snapshot(rule)
    return {name: values[name] for name in RULE_FIELDS}


def export_document() -> dict[str, Any]:
    """Every queue and every rule (see the module's docstring)."""
    queues = Queue.objects.select_related("team").order_by("slug")
    rules = RoutingRule.objects.select_related("queue", "connection").order_by("position", "id")
    return {
        "format": FORMAT,
        "version": VERSION,
        "queues": [queue_entry(q) for q in queues],
        "rules": [rule_entry(r) for r in rules],
    }


def dumps(document: dict[str, Any]) -> str:
    """The document as the file holds it: indented, keys in their fixed order, one newline."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


# -- import ------------------------------------------------------------------------------------


class ImportRefused(ValueError):
    """The file cannot be imported; `errors` lists every problem, each saying where."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


@dataclass
class Changes:
    """What an import changes in one kind of record (queues by slug, rules by name)."""

    created: list[str] = field(default_factory=list)
    changed: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    def as_dict(self, key: str) -> dict[str, Any]:
        return {
            "created": self.created,
            "changed": [{key: name, "changes": diff} for name, diff in self.changed.items()],
            "deleted": self.deleted,
            "unchanged": self.unchanged,
        }

    def words(self, noun: str) -> str:
        parts = [
            f"{len(self.created)} created",
            f"{len(self.changed)} changed",
            f"{len(self.deleted)} deleted",
            f"{len(self.unchanged)} unchanged",
        ]
        return f"{noun}: " + ", ".join(parts)


@dataclass
class ImportResult:
    dry_run: bool
    queues: Changes
    rules: Changes

    @property
    def summary(self) -> str:
        return f"{self.queues.words('Queues')}; {self.rules.words('rules')}."

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "applied": not self.dry_run,
            "summary": self.summary,
            "queues": self.queues.as_dict("slug"),
            "rules": self.rules.as_dict("name"),
        }


@dataclass
class _Plan:
    queues: list[dict[str, Any]]  # cleaned entries, in the file's order
    rules: list[tuple[RuleSpec, str]]  # cleaned rules and their queue's slug, in order
    queue_changes: Changes
    rule_changes: Changes
    existing_queues: dict[str, Queue]
    existing_rules: dict[str, RoutingRule]  # by lower-case name
    duplicate_rules: list[RoutingRule]  # later rules of a name two rules share


def _entries(document: Any, key: str, errors: list[str]) -> list[Any]:
    value = document.get(key, [])
    if not isinstance(value, list):
        errors.append(f"{key}: must be a list.")
        return []
    return value


def _unknown_keys(where: str, entry: dict[str, Any], allowed: list[str], errors: list[str]) -> None:
    extra = sorted(set(entry) - set(allowed))
    if extra:
        errors.append(f"{where}: unknown field {', '.join(extra)}.")


def _clean_queue(
    where: str, entry: Any, teams: dict[str, Team], errors: list[str]
) -> dict[str, Any] | None:
    if not isinstance(entry, dict):
        errors.append(f"{where}: must be an object.")
        return None
    _unknown_keys(where, entry, QUEUE_FIELDS, errors)
    slug = str(entry.get("slug") or "")
    where = f"{where} “{slug}”" if slug else where
    cleaned: dict[str, Any] = {"slug": slug}
    try:
        validate_slug(slug)
    except ValidationError:
        errors.append(f"{where}: slug must be letters, digits, hyphens or underscores.")
    name = str(entry.get("name") or "").strip()
    if not name or len(name) > 80:
        errors.append(f"{where}: name is required (at most 80 characters).")
    cleaned["name"] = name
    team = teams.get(str(entry.get("team") or ""))
    if team is None:
        errors.append(
            f"{where}: unknown team “{entry.get('team')}”; known: {', '.join(sorted(teams))}."
        )
    cleaned["team"] = team
    cleaned["description"] = str(entry.get("description") or "")
    sla = entry.get("sla_hours", 24)
    if not isinstance(sla, int) or isinstance(sla, bool) or sla < 1:
        errors.append(f"{where}: sla_hours must be a whole number of hours, at least 1.")
    cleaned["sla_hours"] = sla
    escalate = entry.get("escalate_after_hours")
    if escalate is not None and (
        not isinstance(escalate, int) or isinstance(escalate, bool) or escalate < 0
    ):
        errors.append(f"{where}: escalate_after_hours must be a whole number of hours, or null.")
    cleaned["escalate_after_hours"] = escalate
    for key in ("escalation_emails", "alert_emails"):
        text = str(entry.get(key) or "")
        for address in filter(None, (a.strip() for a in text.split(","))):
            try:
                validate_email(address)
            except ValidationError:
                errors.append(f"{where}: {key} holds “{address}”, not an e-mail address.")
        cleaned[key] = text
    url = str(entry.get("alert_webhook_url") or "")
    if url:
        try:
            URLValidator(schemes=["http", "https"])(url)
        except ValidationError:
            errors.append(f"{where}: alert_webhook_url is not an http(s) URL.")
    cleaned["alert_webhook_url"] = url
    fallback = entry.get("is_fallback", False)
    if not isinstance(fallback, bool):
        errors.append(f"{where}: is_fallback must be true or false.")
    cleaned["is_fallback"] = bool(fallback)
    return cleaned


def _decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool | float):
        raise InvalidOperation  # floats are not exact money: write "1000.00"
    amount = Decimal(str(value))
    if not amount.is_finite() or amount != amount.quantize(Decimal("0.01")):
        raise InvalidOperation
    return amount


def _clean_rule(
    where: str,
    entry: Any,
    queue_slugs: set[str],
    connections: dict[str, Connection],
    errors: list[str],
) -> tuple[RuleSpec, str] | None:
    if not isinstance(entry, dict):
        errors.append(f"{where}: must be an object.")
        return None
    _unknown_keys(where, entry, RULE_FIELDS, errors)
    name = str(entry.get("name") or "").strip()
    where = f"{where} “{name}”" if name else where
    if not name or len(name) > 120:
        errors.append(f"{where}: name is required (at most 120 characters).")
    queue = str(entry.get("queue") or "")
    if queue not in queue_slugs:
        errors.append(f"{where}: queue “{queue}” is not one of the file's queues.")
    connection = None
    if entry.get("connection") not in (None, ""):
        connection = connections.get(str(entry["connection"]))
        if connection is None:
            errors.append(f"{where}: unknown connection “{entry['connection']}”.")
    amounts: dict[str, Decimal | None] = {}
    for key in ("min_amount", "max_amount"):
        try:
            amounts[key] = _decimal(entry.get(key))
        except (InvalidOperation, ValueError):
            errors.append(f'{where}: {key} must be an amount such as "1000.00", or null.')
            amounts[key] = None
    lists: dict[str, list[str]] = {}
    for key in ("codes", "entity_types", "legal_entity_codes", "regions"):
        value = entry.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            errors.append(f"{where}: {key} must be a list of texts.")
            value = []
        lists[key] = value
    enabled = entry.get("enabled", True)
    if not isinstance(enabled, bool):
        errors.append(f"{where}: enabled must be true or false.")
    spec = RuleSpec(
        name=name,
        queue=None,
        enabled=bool(enabled),
        category=str(entry.get("category") or ""),
        connection=connection,
        min_amount=amounts["min_amount"],
        max_amount=amounts["max_amount"],
        **lists,
    )
    for key, messages in condition_errors(spec).items():
        errors.extend(f"{where}: {key}: {message}" for message in messages)
    return spec, queue


def _plan(document: Any) -> _Plan:
    errors: list[str] = []
    if not isinstance(document, dict):
        raise ImportRefused(["The file must hold a JSON object."])
    if document.get("format") != FORMAT:
        errors.append(f"format: expected “{FORMAT}”.")
    if document.get("version") != VERSION:
        errors.append(f"version: this Throughline reads version {VERSION}.")
    _unknown_keys("file", document, ["format", "version", "queues", "rules", "dry_run"], errors)
    teams = {t.slug: t for t in Team.objects.all()}
    queues: list[dict[str, Any]] = []
    for i, entry in enumerate(_entries(document, "queues", errors)):
        cleaned = _clean_queue(f"queues[{i}]", entry, teams, errors)
        if cleaned is not None:
            queues.append(cleaned)
    for key in ("slug", "name"):
        seen: set[str] = set()
        for q in queues:
            if q[key].lower() in seen:
                errors.append(f"queues: {key} “{q[key]}” appears twice.")
            seen.add(q[key].lower())
    if sum(q["is_fallback"] for q in queues) > 1:
        errors.append("queues: at most one queue can be the fallback queue.")
    slugs = {q["slug"] for q in queues}
    connections = {c.name: c for c in Connection.objects.all()}
    rules: list[tuple[RuleSpec, str]] = []
    for i, entry in enumerate(_entries(document, "rules", errors)):
        cleaned_rule = _clean_rule(f"rules[{i}]", entry, slugs, connections, errors)
        if cleaned_rule is not None:
            rules.append(cleaned_rule)
    seen = set()
    for spec, _slug in rules:
        if spec.name.lower() in seen:
            errors.append(f"rules: name “{spec.name}” appears twice; names identify rules.")
        seen.add(spec.name.lower())

    existing_queues = {q.slug: q for q in Queue.objects.select_related("team")}
    queue_changes = Changes()
    for q in queues:
        current = existing_queues.get(q["slug"])
        if current is None:
            queue_changes.created.append(q["slug"])
            continue
        after = {**q, "team": q["team"].slug if q["team"] else None}
        diff = {k: [v, after[k]] for k, v in queue_entry(current).items() if v != after[k]}
        if diff:
            queue_changes.changed[q["slug"]] = diff
        else:
            queue_changes.unchanged.append(q["slug"])
    for slug, queue in sorted(existing_queues.items()):
        if slug in slugs:
            continue
        queue_changes.deleted.append(slug)
        held = {
            "exceptions": queue.exceptions.count(),
            "incidents": queue.incidents.count(),
            "saved views": queue.savedview_set.count(),
        }
        if any(held.values()):
            what = ", ".join(f"{n} {noun}" for noun, n in held.items() if n)
            errors.append(
                f"queues: “{slug}” is not in the file but still holds {what}; keep it in the "
                "file, or move those first."
            )

    existing_rules: dict[str, RoutingRule] = {}
    duplicates: list[RoutingRule] = []
    for rule in RoutingRule.objects.select_related("queue", "connection").order_by(
        "position", "id"
    ):
        if rule.name.lower() in existing_rules:
            duplicates.append(rule)
        else:
            existing_rules[rule.name.lower()] = rule
    rule_changes = Changes()
    wanted = set()
    for position, (spec, slug) in enumerate(rules, start=1):
        wanted.add(spec.name.lower())
        current = existing_rules.get(spec.name.lower())
        after = _spec_entry(spec, slug, position)
        if current is None:
            rule_changes.created.append(spec.name)
            continue
        diff = {k: [v, after[k]] for k, v in snapshot(current).items() if v != after[k]}
        if diff:
            rule_changes.changed[spec.name] = diff
        else:
            rule_changes.unchanged.append(spec.name)
    for key, rule in existing_rules.items():
        if key not in wanted:
            rule_changes.deleted.append(rule.name)
    rule_changes.deleted.extend(r.name for r in duplicates)
    if errors:
        raise ImportRefused(errors)
    return _Plan(
        queues, rules, queue_changes, rule_changes, existing_queues, existing_rules, duplicates
    )


def _spec_entry(spec: RuleSpec, queue: str, position: int) -> dict[str, Any]:
    return {
        "position": position,
        "name": spec.name,
        "enabled": spec.enabled,
        "queue": queue,
        "codes": spec.codes,
        "category": spec.category,
        "entity_types": spec.entity_types,
        "legal_entity_codes": spec.legal_entity_codes,
        "regions": spec.regions,
        "connection": spec.connection.name if spec.connection else None,
        "min_amount": None if spec.min_amount is None else str(spec.min_amount),
        "max_amount": None if spec.max_amount is None else str(spec.max_amount),
    }


def import_document(
    document: Any,
    *,
    actor: User | None,
    dry_run: bool = False,
    actor_label: str | None = None,
) -> ImportResult:
    """Validate the whole file, then (unless a dry run) apply it in one transaction.

    Raises ImportRefused, with every problem, and changes nothing when the file is invalid.
    """
    plan = _plan(document)
    result = ImportResult(dry_run, plan.queue_changes, plan.rule_changes)
    if dry_run:
        return result
    try:
        with transaction.atomic():
            _apply(plan, actor=actor, actor_label=actor_label)
            audit.record(
                "routing.imported",
                f"Routing file imported: {result.summary}",
                actor=actor,
                actor_label=actor_label,
                result=result.as_dict(),
            )
    except IntegrityError as error:
        raise ImportRefused([f"The database refused the change: {error}"]) from error
    return result


def _apply(plan: _Plan, *, actor: User | None, actor_label: str | None) -> None:
    wanted = {spec.name.lower() for spec, _slug in plan.rules}
    stale = [r for k, r in plan.existing_rules.items() if k not in wanted]
    for rule in [*stale, *plan.duplicate_rules]:
        delete_rule(rule, actor=actor, actor_label=actor_label)
    queues: dict[str, Queue] = {}
    for entry in plan.queues:
        queue = plan.existing_queues.get(entry["slug"]) or Queue(slug=entry["slug"])
        creating = queue.pk is None
        before = None if creating else queue_entry(queue)
        for key, value in entry.items():
            setattr(queue, key, value)
        queue.save()
        queues[queue.slug] = queue
        after = queue_entry(queue)
        if creating or before != after:
            audit.record(
                "queue.created" if creating else "queue.changed",
                f"Queue {queue} {'created' if creating else 'changed'} by a routing file import",
                actor=actor,
                actor_label=actor_label,
                obj=queue,
                before=before,
                after=after,
            )
    for position, (spec, slug) in enumerate(plan.rules, start=1):
        rule = plan.existing_rules.get(spec.name.lower()) or RoutingRule(position=position)
        values = spec.values()
        values["queue"] = queues[slug]
        save_rule(
            rule,
            actor=actor,
            actor_label=actor_label,
            what="changed by a routing file import",
            position=position,
            **values,
        )
    for slug in plan.queue_changes.deleted:
        queue = plan.existing_queues[slug]
        audit.record(
            "queue.deleted",
            f"Queue {queue} deleted by a routing file import",
            actor=actor,
            actor_label=actor_label,
            obj=queue,
            before=queue_entry(queue),
            after=None,
        )
        queue.delete()
