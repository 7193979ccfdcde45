"""Kantata finance mapping: hours from minutes in Decimal, exact money in each currency's
subunits, and untrusted time entries, expenses, stories and assignments refused with
MappingError (never KeyError or a half-formed canonical record)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from integrations.canonical.errors import MappingError
from integrations.connectors.kantata.mapping import (
    assignment_from_kantata,
    expense_from_kantata,
    hours_from_minutes,
    milestone_completion_from_story,
    time_entry_from_kantata,
)


def entry(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": "501",
        "workspace_id": "14",
        "user_id": "2",
        "story_id": None,
        "date_performed": "2026-02-27",
        "time_in_minutes": 90,
        "billable": True,
        "approved": True,
        "cost_rate_in_cents": 7_250,
        "currency": "USD",
        "notes": "",
    }
    data.update(changes)
    return data


def expense(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": "601",
        "workspace_id": "14",
        "user_id": "3",
        "date": "2026-02-03",
        "category": "Lodging",
        "amount_in_cents": 45_000,
        "currency": "JPY",
        "is_billable": True,
        "approved": True,
        "receipt_id": None,
        "notes": "Hotel",
    }
    data.update(changes)
    return data


STORY = {
    "id": "17",
    "workspace_id": "14",
    "title": "Go-live",
    "story_type": "milestone",
    "state": "completed",
    "budget_estimate_in_cents": 1_234_567,
    "completed_at": "2026-03-31T23:30:00-05:00",
    "updated_at": "2026-04-02T10:00:00+00:00",
}
WORKSPACE = {"id": "14", "currency": "KWD"}


@pytest.mark.parametrize(
    ("minutes", "hours"),
    [(0, "0.00"), (3, "0.05"), (45, "0.75"), (60, "1.00"), (90, "1.50"), (50, "0.83"),
     (10, "0.17"), (1, "0.02"), (480, "8.00"), (1_000_003, "16666.72")],
)  # fmt: skip
def test_hours_from_minutes_in_decimal(minutes: int, hours: str) -> None:
    assert hours_from_minutes(minutes) == Decimal(hours)
    assert str(hours_from_minutes(minutes)) == hours


@pytest.mark.parametrize("minutes", [-1, 1.5, "60", True, None])
def test_hours_from_minutes_refuses_non_minutes(minutes: Any) -> None:
    with pytest.raises(ValueError):
        hours_from_minutes(minutes)


def test_time_entry_maps_every_field() -> None:
    mapped = time_entry_from_kantata(entry(story_id="17", notes=" x" * 200), project_key="P-1")
    assert mapped.hours == Decimal("1.50") and mapped.cost_rate == Decimal("72.50")
    assert mapped.task_id == "17" and mapped.work_date == dt.date(2026, 2, 27)
    assert len(mapped.notes) == 255
    assert time_entry_from_kantata(entry(cost_rate_in_cents=0), project_key="P").cost_rate is None
    yen = time_entry_from_kantata(entry(currency="JPY", cost_rate_in_cents=9_000), project_key="P")
    assert yen.cost_rate == Decimal("9000")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"id": None}, "id"),
        ({"workspace_id": "ws-14"}, "workspace_id"),
        ({"user_id": True}, "user_id"),
        ({"time_in_minutes": -5}, "time_in_minutes"),
        ({"time_in_minutes": "1.5"}, "time_in_minutes"),
        ({"approved": "yes"}, "approved"),
        ({"billable": None}, "billable"),
        ({"currency": "usd"}, "currency"),
        ({"date_performed": "27/02/2026"}, "work_date"),
        ({"cost_rate_in_cents": 12.5}, "cost_rate_in_cents"),
        ({"story_id": "none"}, "story_id"),
        ({"time_in_minutes": 10**13}, "hours"),
    ],
)
def test_a_malformed_time_entry_is_a_mapping_error(changes: dict, field: str) -> None:
    with pytest.raises(MappingError) as refused:
        time_entry_from_kantata(entry(**changes), project_key="P-1")
    assert field in str(refused.value.problems)
    assert "kantata:time_entry" in refused.value.source


def test_an_entry_that_is_not_an_object_is_a_mapping_error() -> None:
    with pytest.raises(MappingError):
        time_entry_from_kantata(["501"], project_key="P")  # type: ignore[arg-type]


def test_expense_maps_money_in_the_expense_currency() -> None:
    mapped = expense_from_kantata(expense(receipt_id="9"), project_key="P-2")
    assert mapped.amount == Decimal("45000") and mapped.currency == "JPY"
    assert mapped.receipt_attached is True and mapped.approved is True
    unapproved = expense_from_kantata({**expense(), "approved": None}, project_key="P-2")
    assert unapproved.approved is False
    kept_cents = expense_from_kantata(expense(currency="EUR", amount_in_cents=1), project_key="P")
    assert kept_cents.amount == Decimal("0.01")


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({k: v for k, v in expense().items() if k != "receipt_id"}, "receipt_id"),
        (expense(amount_in_cents=-100), "amount_in_cents"),
        (expense(currency="KWD", amount_in_cents=1_234), "amount"),  # three decimals
        (expense(category=None), "category"),
        (expense(is_billable="true"), "is_billable"),
        (expense(date=None), "spent_on"),
        (expense(user_id=""), "user_id"),
    ],
)
def test_a_malformed_expense_is_a_mapping_error(data: dict, field: str) -> None:
    with pytest.raises(MappingError) as refused:
        expense_from_kantata(data, project_key="P-2")
    assert field in str(refused.value.problems)


def test_completion_takes_the_local_day_and_exact_amount() -> None:
    mapped = milestone_completion_from_story(
        {**STORY, "budget_estimate_in_cents": 1_234_560}, WORKSPACE, project_key="P-3"
    )
    assert mapped.amount == Decimal("1234.56") and mapped.currency == "KWD"
    assert mapped.completed_on == dt.date(2026, 3, 31)  # the account's day, not UTC's
    fallback = {k: v for k, v in STORY.items() if k != "completed_at"}
    fallback["budget_estimate_in_cents"] = 1_000
    assert milestone_completion_from_story(
        fallback, WORKSPACE, project_key="P"
    ).completed_on == dt.date(2026, 4, 2)


@pytest.mark.parametrize(
    ("story", "workspace", "field"),
    [
        (STORY, WORKSPACE, "amount"),  # 1,234.567 KWD has three decimals
        ({**STORY, "budget_estimate_in_cents": None}, WORKSPACE, "amount"),
        ({k: v for k, v in STORY.items() if k != "budget_estimate_in_cents"}, WORKSPACE, "amount"),
        ({**STORY, "story_type": "task"}, WORKSPACE, "story_type"),
        ({**STORY, "state": "started"}, WORKSPACE, "state"),
        (STORY, {"id": "15", "currency": "KWD"}, "workspace_id"),
        (STORY, {"id": "14"}, "currency"),
        ({**STORY, "budget_estimate_in_cents": 1_000, "title": ""}, WORKSPACE, "name"),
        ({**STORY, "budget_estimate_in_cents": 1_000, "completed_at": "done"}, WORKSPACE,
         "completed_on"),
        ("17", WORKSPACE, "milestone_completion"),
    ],
)  # fmt: skip
def test_a_completion_that_does_not_fit_is_a_mapping_error(
    story: Any, workspace: dict, field: str
) -> None:
    with pytest.raises(MappingError) as refused:
        milestone_completion_from_story(story, workspace, project_key="P-3")
    assert field in str(refused.value.problems)


def test_assignment_hours_prefer_scheduled_minutes() -> None:
    story = {"workspace_id": "14", "start_date": None, "due_date": "2026-05-01"}
    task = {"id": "9", "story_id": "17", "assignee_id": "3", "current": True,
            "allocated_minutes": 300, "estimated_minutes": 600, "workspace_id": "14",
            "story": story}  # fmt: skip
    assert assignment_from_kantata(task).allocated_hours == Decimal("5.00")
    estimated = assignment_from_kantata({**task, "allocated_minutes": 0})
    assert estimated.allocated_hours == Decimal("10.00")
    unknown = assignment_from_kantata({**task, "allocated_minutes": 0, "estimated_minutes": None})
    assert unknown.allocated_hours is None
    from_story = assignment_from_kantata({**task, "workspace_id": None})
    assert from_story.psa_project_id == "14" and from_story.end_date == dt.date(2026, 5, 1)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"id": "9", "story_id": "17", "assignee_id": "3"}, "workspace_id"),
        ({"id": "9", "story_id": "17", "assignee_id": None, "workspace_id": "14"}, "assignee_id"),
        ({"id": "9", "story_id": "17", "assignee_id": "3", "workspace_id": "14",
          "estimated_minutes": -1}, "estimated_minutes"),
        ({"id": "x", "workspace_id": "14", "user_id": "3"}, "id"),
        ({"id": "10", "user_id": "3"}, "workspace_id"),
        (None, "assignment"),
    ],
)  # fmt: skip
def test_a_malformed_assignment_is_a_mapping_error(data: Any, field: str) -> None:
    with pytest.raises(MappingError) as refused:
        assignment_from_kantata(data)
    assert field in str(refused.value.problems)
