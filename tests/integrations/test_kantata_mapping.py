"""Kantata mapping: exact money in currency subunits, the marker in the workspace body, and
untrusted stories refused with MappingError instead of half-formed milestones."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from integrations.canonical.errors import MappingError
from integrations.canonical.schemas import Budget, Milestone, Project
from integrations.connectors.kantata.mapping import (
    currency_base_unit,
    from_subunits,
    make_marker,
    milestones_from_stories,
    project_ref,
    story_from_milestone,
    to_subunits,
    workspace_from_project,
)


def project(**changes: Any) -> Project:
    data: dict[str, Any] = {
        "key": "OPP-1001",
        "name": "Globex ERP rollout",
        "customer_name": "Globex Corporation",
        "legal_entity_code": "US01",
        "start_date": dt.date(2026, 2, 1),
        "end_date": dt.date(2026, 9, 30),
        "budget": Budget(amount=Decimal("1234567.89"), currency="USD"),
    }
    data.update(changes)
    return Project(**data)


def story(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": "42",
        "workspace_id": "7",
        "title": "Go-live",
        "story_type": "milestone",
        "due_date": "2026-09-01",
        "budget_estimate_in_cents": 2_000_005,
        "billable": True,
    }
    data.update(changes)
    return data


def test_workspace_body_carries_title_dates_money_customer_and_marker() -> None:
    marker = make_marker("OPP-1001")
    body = workspace_from_project(project(), marker=marker)
    assert body["title"] == "Globex ERP rollout"
    assert body["start_date"] == "2026-02-01" and body["due_date"] == "2026-09-30"
    assert body["budgeted"] is True and body["currency"] == "USD"
    assert body["price"] == "1234567.89"  # currency units, built from exact subunits
    assert body["client_role_name"] == "Globex Corporation"
    assert marker in body["description"] and "US01" in body["description"]
    assert "price_in_cents" not in body  # read-only at Kantata


def test_money_is_converted_exactly_without_float() -> None:
    tenth_plus_fifth = Decimal("0.1") + Decimal("0.2")
    assert to_subunits(tenth_plus_fifth, "USD", entity="project", field="budget") == 30
    big = Decimal("9999999999999999.99")
    assert to_subunits(big, "USD", entity="project", field="budget") == 999999999999999999
    assert from_subunits(999999999999999999, "USD") == big
    assert to_subunits(Decimal("5000"), "JPY", entity="project", field="budget") == 5000
    assert to_subunits(Decimal("1.25"), "KWD", entity="project", field="budget") == 1250
    assert [currency_base_unit(c) for c in ("USD", "JPY", "KWD", None)] == [100, 1, 1000, 100]


def test_a_budget_the_currency_cannot_hold_is_a_mapping_error() -> None:
    yen = project(budget=Budget(amount=Decimal("5000.50"), currency="JPY"))
    with pytest.raises(MappingError) as error:
        workspace_from_project(yen, marker="[throughline OPP-1001]")
    assert error.value.fields == ["budget"]
    whole_yen = project(budget=Budget(amount=Decimal("5000"), currency="JPY"))
    assert workspace_from_project(whole_yen, marker="m")["price"] == "5000"


def test_open_ended_projects_have_no_due_date_and_reversed_dates_are_refused() -> None:
    assert "due_date" not in workspace_from_project(project(end_date=None), marker="m")
    with pytest.raises(MappingError) as error:
        workspace_from_project(project(end_date=dt.date(2026, 1, 1)), marker="m")
    assert error.value.fields == ["end_date"]
    with pytest.raises(ValueError):
        workspace_from_project(project(), marker="  ")


def test_story_from_milestone_is_a_milestone_story_in_subunits() -> None:
    milestone = Milestone(
        name="Go-live", due_date=dt.date(2026, 9, 1), amount=Decimal("20000.05"), billable=False
    )
    assert story_from_milestone(milestone) == {
        "title": "Go-live",
        "story_type": "milestone",
        "due_date": "2026-09-01",
        "budget_estimate_in_cents": 2_000_005,
        "billable": False,
    }
    yen = Milestone(name="M", due_date=dt.date(2026, 9, 1), amount=Decimal("300"))
    assert story_from_milestone(yen, currency="JPY")["budget_estimate_in_cents"] == 300


def test_milestones_round_trip_through_stories() -> None:
    milestones = [
        Milestone(name="Kick-off", due_date=dt.date(2026, 2, 15), amount=Decimal("0.01")),
        Milestone(name="Go-live", due_date=dt.date(2026, 9, 1), amount=Decimal("20000.05"),
                  billable=False),
    ]  # fmt: skip
    stories = [
        {**story_from_milestone(m), "id": str(i), "workspace_id": "7"}
        for i, m in enumerate(milestones)
    ]
    assert milestones_from_stories(stories, currency="USD") == milestones


def test_other_story_types_are_skipped_and_a_null_budget_is_zero() -> None:
    stories = [story(story_type="task", due_date=None), story(budget_estimate_in_cents=None)]
    (milestone,) = milestones_from_stories(stories)
    assert milestone.amount == Decimal("0.00") and milestone.name == "Go-live"


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ("not a story", "story"),
        (story(due_date=None), "due_date"),
        (story(due_date="next week"), "due_date"),
        (story(title="   "), "name"),
        (story(title=None), "name"),
        (story(budget_estimate_in_cents=12.5), "amount"),
        (story(budget_estimate_in_cents=-100), "amount"),
        (story(budget_estimate_in_cents=True), "amount"),
        (story(billable="maybe"), "billable"),
        ({k: v for k, v in story().items() if k != "budget_estimate_in_cents"}, "amount"),
    ],
)
def test_garbage_stories_raise_mapping_error_naming_the_field(bad: Any, field: str) -> None:
    with pytest.raises(MappingError) as error:
        milestones_from_stories([story(id="1"), bad], currency="USD")
    assert error.value.fields == [field]
    assert error.value.entity == "milestone"


def test_a_subunit_amount_the_canonical_model_cannot_hold_is_refused() -> None:
    with pytest.raises(MappingError):
        milestones_from_stories([story(budget_estimate_in_cents=1234)], currency="KWD")


def test_project_ref_is_the_kantata_id() -> None:
    assert project_ref({"id": "123", "title": "x"}) == "123"
    assert project_ref({"id": 123}) == "123"
    for garbage in ({"id": None}, {"id": "12a"}, {"id": True}, {}, "123"):
        with pytest.raises(MappingError):
            project_ref(garbage)  # type: ignore[arg-type]


def test_marker_names_the_project_key() -> None:
    assert make_marker(" OPP-7 ") == "[throughline OPP-7]"
    with pytest.raises(ValueError):
        make_marker("")
