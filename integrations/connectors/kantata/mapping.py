"""Kantata mapping: canonical Project and Milestone to Kantata workspace and story bodies;
Kantata milestone stories back to canonical Milestones, completed ones to
MilestoneCompletions; time entries, expenses, assignments and participations to their
canonical shapes.

Money crosses as integers of the currency's subunits computed from Decimal exactly (never
through float): Kantata's `currency_base_unit` is 100 for most currencies, 1 for zero-decimal
ones such as JPY and 1000 for three-decimal ones such as KWD. A workspace's writable budget
is `price`, in currency units (Kantata answers `price_in_cents` itself, read-only); it is
sent as an exact decimal string built from the subunit integer. Stories carry
`budget_estimate_in_cents`.

Everything read from Kantata is untrusted: `milestones_from_stories` validates through the
canonical schema and raises MappingError naming the offending story and field.

Second round (PSA -> ERP): `milestone_completion_from_story`, `time_entry_from_kantata`,
`expense_from_kantata` and `assignment_from_kantata` build the canonical records; money comes
from subunit integers exactly, hours from minutes in Decimal with the canonical two decimals
(exact for multiples of 3 minutes, else rounded half-up to the hundredth: the canonical
Quantity has two places). A zero `cost_rate_in_cents` means no rate set and maps to None;
notes longer than the canonical 255 characters are cut. A time entry's `approved_at` is its
`updated_at` as read through the `approved` filter: Kantata keeps no approval time on the
time entry itself (approval is a resolution of the entry's timesheet submission, which the
time entry does not carry), and the approval is a change of the entry, so its last change when
Throughline first reads it approved is the approval (or, in a project that needs no time
approval, its creation or a later edit): an upper bound of the approval time that is never
before it. An entry without a readable, timezone-aware `updated_at` has none.
`cost_rate_from_kantata` reads a member's hourly cost in one currency (a subcontractor's, to
price a purchase order) from the account membership and its cost rates, exactly from
subunits.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from integrations.canonical.errors import MappingError
from integrations.canonical.schemas import (
    Assignment,
    CostRate,
    Expense,
    Milestone,
    MilestoneCompletion,
    Project,
    TimeEntry,
    validate,
)

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


# -- delivery and finance records (PSA -> ERP) -----------------------------------------------
HUNDREDTH = Decimal("0.01")
NOTES_LIMIT = 255  # the canonical short text; longer Kantata notes are cut


def hours_from_minutes(minutes: int) -> Decimal:
    """Minutes as hours with the canonical two decimals, computed in Decimal: exact for
    multiples of 3 minutes, otherwise rounded half-up to the hundredth (at most 18 s)."""
    if isinstance(minutes, bool) or not isinstance(minutes, int) or minutes < 0:
        raise ValueError(f"minutes must be a whole number of minutes, got {minutes!r}")
    return (Decimal(minutes) / 60).quantize(HUNDREDTH, rounding=ROUND_HALF_UP)


def _fail(entity: str, field: str, problem: str, source: str, kind: str = "value") -> MappingError:
    return MappingError(
        entity=entity, problems=[{"field": field, "problem": problem, "type": kind}], source=source
    )


def _record(value: Any, entity: str, source: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(entity, entity, "not an object", source, "type")
    return value


def _kantata_id(
    record: dict[str, Any], key: str, entity: str, source: str, *, required: bool = True
) -> str | None:
    raw = record.get(key)
    if raw is None and not required:
        return None
    text = str(raw) if isinstance(raw, int | str) and not isinstance(raw, bool) else ""
    if not text.isdigit():
        raise _fail(entity, key, "not a Kantata id", source, "id")
    return text


def _whole(record: dict[str, Any], key: str, entity: str, source: str) -> int:
    raw = record.get(key)
    if isinstance(raw, str) and raw.strip().isdigit():
        raw = int(raw)
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
        raise _fail(entity, key, "not a whole number of zero or more", source, "int")
    return raw


def _flag(record: dict[str, Any], key: str, entity: str, source: str) -> bool:
    raw = record.get(key)
    if not isinstance(raw, bool):
        raise _fail(entity, key, "not true or false", source, "bool")
    return raw


def _notes(record: dict[str, Any]) -> str:
    notes = record.get("notes")
    return notes.strip()[:NOTES_LIMIT] if isinstance(notes, str) else ""


def _currency(record: dict[str, Any], entity: str, source: str) -> str:
    currency = record.get("currency")
    if not isinstance(currency, str) or len(currency) != 3 or not currency.isupper():
        raise _fail(entity, "currency", "not a 3-letter currency code", source, "currency")
    return currency


def time_entry_from_kantata(entry: dict[str, Any], *, project_key: str) -> TimeEntry:
    """A canonical TimeEntry from a Kantata time entry: hours from `time_in_minutes`,
    `cost_rate_in_cents` (per hour, in the entry's currency subunits; 0 means none set)
    as the cost rate, `approved` as given (see `KantataClient.approved_time_entries`)."""
    source = f"kantata:time_entry:{entry.get('id') if isinstance(entry, dict) else '?'}"
    entry = _record(entry, "time_entry", source)
    currency = _currency(entry, "time_entry", source)
    minutes = _whole(entry, "time_in_minutes", "time_entry", source)
    cost_cents = entry.get("cost_rate_in_cents")
    cost_rate = None
    if cost_cents not in (None, 0):
        cost_rate = from_subunits(
            _whole(entry, "cost_rate_in_cents", "time_entry", source), currency
        )
    data = {
        "source_id": _kantata_id(entry, "id", "time_entry", source),
        "project_key": project_key,
        "psa_project_id": _kantata_id(entry, "workspace_id", "time_entry", source),
        "person_id": _kantata_id(entry, "user_id", "time_entry", source),
        "work_date": entry.get("date_performed"),
        "hours": hours_from_minutes(minutes),
        "billable": _flag(entry, "billable", "time_entry", source),
        "approved": _flag(entry, "approved", "time_entry", source),
        "task_id": _kantata_id(entry, "story_id", "time_entry", source, required=False),
        "cost_rate": cost_rate,
        "currency": currency,
        "notes": _notes(entry),
        "approved_at": _timestamp(entry.get("updated_at")),
    }
    return validate(TimeEntry, data, source=source)


def _timestamp(value: Any) -> dt.datetime | None:
    """A Kantata ISO 8601 timestamp in UTC; None when absent, unreadable or without offset."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        return None
    return parsed.astimezone(dt.UTC)


def expense_from_kantata(expense: dict[str, Any], *, project_key: str) -> Expense:
    """A canonical Expense from a Kantata expense: `amount_in_cents` in the expense's
    currency subunits, `is_billable`, `approved` (added by the client for expenses the
    `approved` filter vouches for; absent means not approved) and `receipt_id` (present
    only with include=receipt: a missing key is refused rather than read as no receipt)."""
    source = f"kantata:expense:{expense.get('id') if isinstance(expense, dict) else '?'}"
    expense = _record(expense, "expense", source)
    currency = _currency(expense, "expense", source)
    if "receipt_id" not in expense:
        raise _fail("expense", "receipt_id", "not included (ask with include=receipt)", source)
    category = expense.get("category")
    data = {
        "source_id": _kantata_id(expense, "id", "expense", source),
        "project_key": project_key,
        "psa_project_id": _kantata_id(expense, "workspace_id", "expense", source),
        "person_id": _kantata_id(expense, "user_id", "expense", source),
        "spent_on": expense.get("date"),
        "category": category.strip() if isinstance(category, str) else category,
        "amount": from_subunits(_whole(expense, "amount_in_cents", "expense", source), currency),
        "currency": currency,
        "billable": _flag(expense, "is_billable", "expense", source),
        "approved": expense.get("approved") is True,
        "receipt_attached": expense.get("receipt_id") is not None,
        "notes": _notes(expense),
    }
    return validate(Expense, data, source=source)


def _completion_day(story: dict[str, Any]) -> Any:
    """The day the story was completed: `completed_at` (from its state changes, added by
    `KantataClient.milestone_story`), else its `updated_at`; the date in the timestamp's own
    offset (the account's local day)."""
    for key in ("completed_at", "updated_at"):
        raw = story.get(key)
        if isinstance(raw, str):
            try:
                return dt.datetime.fromisoformat(raw.replace("Z", "+00:00")).date()
            except ValueError:
                return raw  # refused by the schema, naming the field
    return None


def milestone_completion_from_story(
    story: dict[str, Any], workspace: dict[str, Any], *, project_key: str
) -> MilestoneCompletion:
    """A MilestoneCompletion from a completed milestone story and its workspace: the amount
    is the story's `budget_estimate_in_cents` in the workspace currency, exactly."""
    source = f"kantata:story:{story.get('id') if isinstance(story, dict) else '?'}"
    story = _record(story, "milestone_completion", source)
    workspace = _record(workspace, "milestone_completion", source)
    entity = "milestone_completion"
    if story.get("story_type") != "milestone":
        raise _fail(entity, "story_type", "the story is not a milestone", source)
    if story.get("state") != "completed":
        raise _fail(entity, "state", f"the milestone is {story.get('state')!r}", source)
    wid = _kantata_id(workspace, "id", entity, source)
    if _kantata_id(story, "workspace_id", entity, source) != wid:
        raise _fail(entity, "workspace_id", f"the story is not in workspace {wid}", source)
    currency = _currency(workspace, entity, source)
    if story.get("budget_estimate_in_cents") is None and "budget_estimate_in_cents" in story:
        raise _fail(entity, "amount", "the milestone has no budget to bill", source, "amount")
    amount = _story_amount(story, currency)
    if isinstance(amount, str):
        raise _fail(entity, "amount", amount, source, "amount")
    data = {
        "project_key": project_key,
        "psa_project_id": wid,
        "psa_milestone_id": _kantata_id(story, "id", entity, source),
        "name": story.get("title"),
        "amount": amount,
        "currency": currency,
        "completed_on": _completion_day(story),
    }
    return validate(MilestoneCompletion, data, source=source)


def assignment_from_kantata(a: dict[str, Any]) -> Assignment:
    """A canonical Assignment from a Kantata task assignment (as `KantataClient.assignments`
    yields it: with `workspace_id` and `story` added) or a participation (a project member,
    no task). Hours: `allocated_minutes` (the scheduled hours) when any, else
    `estimated_minutes`; an assignment that is no longer current maps to 0 hours, since the
    canonical Assignment has no active flag. Task dates give the start and end."""
    source = f"kantata:assignment:{a.get('id') if isinstance(a, dict) else '?'}"
    a = _record(a, "assignment", source)
    entity = "assignment"
    if "assignee_id" in a or "story_id" in a:
        story = a.get("story") if isinstance(a.get("story"), dict) else {}
        if a.get("workspace_id") is None and story.get("workspace_id") is None:
            raise _fail(entity, "workspace_id", "the task's project is unknown", source)
        project = {"workspace_id": a.get("workspace_id") or story.get("workspace_id")}
        hours: Decimal | None = None
        if a.get("current") is False:
            hours = Decimal("0.00")
        elif a.get("allocated_minutes"):
            hours = hours_from_minutes(_whole(a, "allocated_minutes", entity, source))
        elif a.get("estimated_minutes") is not None:
            hours = hours_from_minutes(_whole(a, "estimated_minutes", entity, source))
        data = {
            "source_id": f"assignment:{_kantata_id(a, 'id', entity, source)}",
            "psa_project_id": _kantata_id(project, "workspace_id", entity, source),
            "person_id": _kantata_id(a, "assignee_id", entity, source),
            "task_id": _kantata_id(a, "story_id", entity, source),
            "allocated_hours": hours,
            "start_date": story.get("start_date"),
            "end_date": story.get("due_date"),
        }
        return validate(Assignment, data, source=source)
    source = f"kantata:participation:{a.get('id')}"
    data = {
        "source_id": f"participation:{_kantata_id(a, 'id', entity, source)}",
        "psa_project_id": _kantata_id(a, "workspace_id", entity, source),
        "person_id": _kantata_id(a, "user_id", entity, source),
    }
    return validate(Assignment, data, source=source)


def cost_rate_from_kantata(
    membership: dict[str, Any],
    rates: dict[str, dict[str, Any]],
    *,
    currency: str,
    effective_from: dt.date,
) -> CostRate | None:
    """A member's hourly cost in `currency` from their account membership (read with
    `include=cost_rates`: `cost_rate_ids`) and the included cost rates; None when Kantata holds
    no rate in that currency, or a zero one (no rate set). Kantata's rates carry no date: the
    caller says from when the rate applies. The user id is the canonical person id."""
    rid = membership.get("id") if isinstance(membership, dict) else "?"
    source = f"kantata:account_membership:{rid}"
    membership = _record(membership, "cost_rate", source)
    user = _kantata_id(membership, "user_id", "cost_rate", source)
    ids = membership.get("cost_rate_ids")
    if not isinstance(ids, list):
        raise _fail(
            "cost_rate", "cost_rate_ids", "read the membership with include=cost_rates", source
        )
    for cid in ids:
        rate = rates.get(str(cid)) if isinstance(rates, dict) else None
        if not isinstance(rate, dict) or rate.get("currency") != currency:
            continue
        subunits = _whole(rate, "amount_in_subunits", "cost_rate", source)
        if subunits == 0:
            return None
        data = {
            "employee_source_id": user,
            "hourly_cost": from_subunits(subunits, currency),
            "currency": currency,
            "effective_from": effective_from,
        }
        return validate(CostRate, data, source=source)
    return None
