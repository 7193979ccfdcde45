"""The routing rule engine: which queue an exception belongs in, and by which rule.

Rules are tried in order of position. The first enabled rule whose every non-empty condition
matches the exception's facts places it in the rule's queue:

- lists (codes, entity types, legal entities, regions) match when the fact is any of them;
- category and connection match when equal;
- an amount range (minimum and maximum, both inclusive) matches only an exception that
  carries an amount: a rule with an amount condition never matches one without.

When no rule matches, the fallthrough decides (as in Sentry's ownership rules): the queue of
the team the classification names as owner (exceptions.routing.team_queue, preferring the
region's queue), else the fallback queue. So an empty rule list routes exactly as the
classification says, and rules only ever refine or overrule it.

`explain` gives the whole reasoning (every rule with each condition checked) for the rule
tester; `place` is what opening and re-routing an exception use.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from django.db import models
from django.db.models import QuerySet

from console.choices import TeamKind

from . import routing
from .choices import Category, ExceptionCode
from .classification import RULES as CLASSIFICATION_RULES
from .models import IntegrationException, Queue, RoutingRule


@dataclass(frozen=True)
class Facts:
    """What routing knows about an exception."""

    code: str = ""
    category: str = ""
    entity_type: str = ""
    legal_entity_code: str = ""
    region: str = ""
    connection_id: int | None = None
    amount: Decimal | None = None
    #: the team kind the classification names as owner (used when no rule matches)
    owner: str = ""

    @classmethod
    def of_exception(cls, exc: IntegrationException) -> Facts:
        """The facts of a stored exception. Its owner is not stored: it is the code's owner
        in the classification, or, for a code several teams own, the current queue's team
        when that is one of them."""
        current = exc.queue.team.kind if exc.queue_id else ""
        return cls(
            code=exc.code,
            category=exc.category,
            entity_type=exc.entity_type,
            legal_entity_code=exc.legal_entity_code,
            region=exc.region,
            connection_id=exc.connection_id,
            amount=exc.amount,
            owner=owner_of(exc.code, current),
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe (the amount as a string)."""
        return {
            "code": self.code,
            "category": self.category,
            "entity_type": self.entity_type,
            "legal_entity_code": self.legal_entity_code,
            "region": self.region,
            "connection": self.connection_id,
            "amount": None if self.amount is None else str(self.amount),
            "owner": self.owner,
        }


# -- what the classification says about codes ------------------------------------------------


def code_owners() -> dict[str, list[str]]:
    """Each exception code's owning team kinds, in classification order (most codes: one)."""
    owners: dict[str, list[str]] = {}
    for rule in CLASSIFICATION_RULES.values():
        kinds = owners.setdefault(str(rule.code), [])
        if str(rule.owner) not in kinds:
            kinds.append(str(rule.owner))
    # classify() turns a vendor's validation or conflict refusal into this one, for IT
    owners.setdefault(ExceptionCode.VENDOR_RESPONSE_INVALID, [TeamKind.IT])
    return owners


def code_categories() -> dict[str, str]:
    """Each code's usual category (the first classification rule that gives the code)."""
    categories: dict[str, str] = {}
    for rule in CLASSIFICATION_RULES.values():
        categories.setdefault(str(rule.code), str(rule.category))
    categories.setdefault(ExceptionCode.VENDOR_RESPONSE_INVALID, Category.TECHNICAL)
    return categories


def owner_of(code: str, current_kind: str = "") -> str:
    """The team kind owning `code`; for a code several teams own, `current_kind` when it is
    one of them, else the first. "" for a code the classification does not know."""
    kinds = code_owners().get(code, [])
    if current_kind and current_kind in kinds:
        return current_kind
    return kinds[0] if kinds else ""


def facts_from(
    *,
    code: str = "",
    category: str = "",
    entity_type: str = "",
    legal_entity_code: str = "",
    region: str = "",
    connection_id: int | None = None,
    amount: Decimal | None = None,
    owner: str = "",
) -> Facts:
    """Facts a person describes (the rule tester): a blank category or owner is what the
    classification gives the code."""
    return Facts(
        code=code,
        category=category or code_categories().get(code, ""),
        entity_type=entity_type.strip(),
        legal_entity_code=legal_entity_code.strip().upper(),
        region=region,
        connection_id=connection_id,
        amount=amount,
        owner=owner or owner_of(code),
    )


# -- matching ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """One condition of a rule, checked against the facts."""

    condition: str  # the rule's field: codes, category, ...
    label: str  # in words: "Exception code"
    expected: str  # the rule's value, in words
    actual: str  # the fact, in words
    ok: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "condition": self.condition,
            "label": self.label,
            "expected": self.expected,
            "actual": self.actual,
            "ok": self.ok,
        }


def _words(values: Iterable[str], choices: dict[str, str] | None = None) -> str:
    return " or ".join((choices or {}).get(v, v) for v in values)


def _blank(value: Any) -> str:
    return "—" if value in ("", None) else str(value)


def checks(rule: RoutingRule, facts: Facts) -> list[Check]:
    """Every non-empty condition of `rule`, checked against `facts`, in a fixed order."""
    codes = dict(ExceptionCode.choices)
    result: list[Check] = []
    if rule.codes:
        result.append(
            Check(
                "codes",
                "Exception code",
                _words(rule.codes, codes),
                codes.get(facts.code, _blank(facts.code)),
                facts.code in rule.codes,
            )
        )
    if rule.category:
        labels = dict(Category.choices)
        result.append(
            Check(
                "category",
                "Category",
                labels.get(rule.category, rule.category),
                labels.get(facts.category, _blank(facts.category)),
                facts.category == rule.category,
            )
        )
    if rule.entity_types:
        result.append(
            Check(
                "entity_types",
                "Entity type",
                _words(rule.entity_types),
                _blank(facts.entity_type),
                facts.entity_type in rule.entity_types,
            )
        )
    if rule.legal_entity_codes:
        wanted = [c.upper() for c in rule.legal_entity_codes]
        result.append(
            Check(
                "legal_entity_codes",
                "Legal entity",
                _words(wanted),
                _blank(facts.legal_entity_code),
                facts.legal_entity_code.upper() in wanted,
            )
        )
    if rule.regions:
        result.append(
            Check(
                "regions",
                "Region",
                _words(rule.regions),
                _blank(facts.region),
                facts.region in rule.regions,
            )
        )
    if rule.connection_id is not None:
        result.append(
            Check(
                "connection",
                "Connection",
                str(rule.connection) if rule.connection else f"#{rule.connection_id}",
                f"#{facts.connection_id}" if facts.connection_id else "—",
                facts.connection_id == rule.connection_id,
            )
        )
    if rule.min_amount is not None or rule.max_amount is not None:
        result.append(
            Check(
                "amount",
                "Amount",
                _amount_range(rule.min_amount, rule.max_amount),
                "no amount" if facts.amount is None else str(facts.amount),
                _amount_ok(rule.min_amount, rule.max_amount, facts.amount),
            )
        )
    return result


def _amount_range(low: Decimal | None, high: Decimal | None) -> str:
    if low is not None and high is not None:
        return f"from {low} to {high}"
    if low is not None:
        return f"at least {low}"
    return f"at most {high}"


def _amount_ok(low: Decimal | None, high: Decimal | None, amount: Decimal | None) -> bool:
    if amount is None:
        return False
    if low is not None and amount < low:
        return False
    return not (high is not None and amount > high)


def describe(rule: RoutingRule) -> list[str]:
    """The rule's conditions in words, one per condition ([] : it matches every exception)."""
    codes = dict(ExceptionCode.choices)
    words: list[str] = []
    if rule.codes:
        words.append(f"Code is {_words(rule.codes, codes)}")
    if rule.category:
        words.append(f"Category is {dict(Category.choices).get(rule.category, rule.category)}")
    if rule.entity_types:
        words.append(f"Entity type is {_words(rule.entity_types)}")
    if rule.legal_entity_codes:
        words.append(f"Legal entity is {_words(rule.legal_entity_codes)}")
    if rule.regions:
        words.append(f"Region is {_words(rule.regions)}")
    if rule.connection_id is not None:
        words.append(f"Connection is {rule.connection}")
    if rule.min_amount is not None or rule.max_amount is not None:
        words.append(f"Amount is {_amount_range(rule.min_amount, rule.max_amount)}")
    return words


def match(rule: RoutingRule, facts: Facts) -> bool:
    """Whether every non-empty condition of `rule` matches (whether it is enabled aside)."""
    return all(check.ok for check in checks(rule, facts))


# -- placing -----------------------------------------------------------------------------------


class RoutingDecision(models.TextChoices):
    """What placed an exception."""

    RULE = "rule", "A routing rule"
    OWNER = "owner", "The owning team's queue (no rule matched)"
    FALLBACK = "fallback", "The fallback queue (no rule matched, no team queue)"


class RuleVerdict(models.TextChoices):
    """A rule's outcome in the tester's trace."""

    PLACED = "placed", "Decides"  # the first enabled rule that matched
    ALSO_MATCHES = "also_matches", "Matches, but an earlier rule decided"
    NO_MATCH = "no_match", "No match"  # a condition failed
    DISABLED = "disabled", "Disabled, skipped"


BY_RULE, BY_OWNER, BY_FALLBACK = (
    RoutingDecision.RULE,
    RoutingDecision.OWNER,
    RoutingDecision.FALLBACK,
)
PLACED, ALSO_MATCHES = RuleVerdict.PLACED, RuleVerdict.ALSO_MATCHES
NO_MATCH, DISABLED = RuleVerdict.NO_MATCH, RuleVerdict.DISABLED


@dataclass(frozen=True)
class RuleTrace:
    """One rule as the tester shows it."""

    rule: RoutingRule
    outcome: str
    checks: list[Check]

    @property
    def failed(self) -> list[Check]:
        return [check for check in self.checks if not check.ok]


@dataclass(frozen=True)
class Placement:
    """Where the facts go, why, and every rule's verdict."""

    facts: Facts
    queue: Queue
    rule: RoutingRule | None
    decided_by: str  # BY_RULE, BY_OWNER or BY_FALLBACK
    trace: list[RuleTrace] = field(default_factory=list)

    @property
    def explanation(self) -> str:
        if self.rule is not None:
            return (
                f"Rule {self.rule.position} “{self.rule.name}” (version {self.rule.version}) "
                f"places it in {self.queue}."
            )
        owner = TeamKind(self.facts.owner).label if self.facts.owner in TeamKind.values else ""
        if self.decided_by == BY_OWNER:
            return (
                f"No rule matches, so it goes to the queue of the team that owns this kind of "
                f"failure ({owner}): {self.queue}."
            )
        if owner:
            return (
                f"No rule matches and the owning team ({owner}) has no queue, so it goes to "
                f"the fallback queue {self.queue}."
            )
        return (
            f"No rule matches and no team owns it, so it goes to the fallback queue {self.queue}."
        )


def hide_amount(placement: Placement, mask: str) -> Placement:
    """The same placement with the exception's amount replaced by `mask` in the trace (for
    people without finance rights looking at a stored exception)."""
    trace = [
        replace(
            step,
            checks=[
                replace(check, actual=mask) if check.condition == "amount" else check
                for check in step.checks
            ],
        )
        for step in placement.trace
    ]
    return replace(placement, trace=trace)


def ordered_rules() -> QuerySet[RoutingRule]:
    """All rules in the order they are tried, with what the trace shows."""
    return RoutingRule.objects.select_related("queue__team", "connection").order_by(
        "position", "id"
    )


def explain(facts: Facts, rules: Sequence[RoutingRule] | None = None) -> Placement:
    """Where `facts` go and why, with every rule's verdict (checked even after the winner)."""
    rules = list(ordered_rules()) if rules is None else rules
    winner: RoutingRule | None = None
    trace: list[RuleTrace] = []
    for rule in rules:
        found = checks(rule, facts)
        if not rule.enabled:
            outcome = DISABLED
        elif not all(check.ok for check in found):
            outcome = NO_MATCH
        elif winner is None:
            winner, outcome = rule, PLACED
        else:
            outcome = ALSO_MATCHES
        trace.append(RuleTrace(rule, outcome, found))
    if winner is not None:
        return Placement(facts, winner.queue, winner, BY_RULE, trace)
    queue, decided_by = fallthrough(facts)
    return Placement(facts, queue, None, decided_by, trace)


def fallthrough(facts: Facts) -> tuple[Queue, RoutingDecision]:
    """Where an exception goes that no rule matches: its owning team's queue (preferring the
    region's), else the fallback queue."""
    queue = routing.team_queue(facts.owner, region=facts.region) if facts.owner else None
    if queue is not None:
        return queue, RoutingDecision.OWNER
    return routing.fallback_queue(), RoutingDecision.FALLBACK


def first_match(facts: Facts, rules: Iterable[RoutingRule]) -> RoutingRule | None:
    """The first enabled rule of `rules` (in their order) that matches `facts`."""
    return next((rule for rule in rules if rule.enabled and match(rule, facts)), None)


def place(
    facts: Facts, rules: Sequence[RoutingRule] | None = None
) -> tuple[Queue, RoutingRule | None]:
    """The queue for `facts` and the rule that chose it (None: no rule matched)."""
    rules = list(ordered_rules().filter(enabled=True)) if rules is None else rules
    winner = first_match(facts, rules)
    if winner is not None:
        return winner.queue, winner
    return fallthrough(facts)[0], None


# -- the demo's rules --------------------------------------------------------------------------

#: per owning team: (rule name, queue slug, extra conditions), in order. Legal-entity and
#: regional rules come before their team's general rule.
DEFAULT_LAYOUT: list[tuple[str, list[tuple[str, str, dict[str, Any]]]]] = [
    (
        TeamKind.FINANCE,
        [
            (
                "Finance failures of UK01 go to Finance UK",
                "finance-uk",
                {"legal_entity_codes": ["UK01"]},
            ),
            (
                "Finance failures of US01 go to Finance US",
                "finance-us",
                {"legal_entity_codes": ["US01"]},
            ),
            ("Other finance failures go to Finance", "finance", {}),
        ],
    ),
    (
        TeamKind.PMO,
        [
            ("PMO failures in EMEA go to PMO EMEA", "pmo-emea", {"regions": ["EMEA"]}),
            (
                "PMO failures in the Americas go to PMO Americas",
                "pmo-americas",
                {"regions": ["Americas"]},
            ),
        ],
    ),
    (TeamKind.SALES_OPS, [("Sales Ops failures go to Sales Ops", "sales-ops", {})]),
    (TeamKind.IT, [("Connection and system failures go to IT Integration", "it-integration", {})]),
]


def default_rules() -> list[dict[str, Any]]:
    """The demo's rules, in the routing file's format (see exceptions.routing_file).

    Derived from the classification, so they stay in step with it: each rule names the codes
    one team owns. Codes several teams own (a stuck transaction, a system-of-record violation,
    time that cannot be posted, a refused project) are left to the fallthrough, which follows
    the classification's owner for each failure.
    """
    by_owner: dict[str, list[str]] = {}
    for code, kinds in code_owners().items():
        if len(kinds) == 1:
            by_owner.setdefault(kinds[0], []).append(code)
    specs: list[dict[str, Any]] = []
    for owner, rules in DEFAULT_LAYOUT:
        codes = sorted(by_owner.get(owner, []))
        if not codes:
            continue
        for name, queue, extra in rules:
            specs.append(
                {
                    "name": name,
                    "queue": queue,
                    "enabled": True,
                    "codes": codes,
                    "category": "",
                    "entity_types": [],
                    "legal_entity_codes": [],
                    "regions": [],
                    "connection": None,
                    "min_amount": None,
                    "max_amount": None,
                    **extra,
                }
            )
    return specs
