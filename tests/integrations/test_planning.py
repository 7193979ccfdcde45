"""The project plan a won deal becomes: milestone amounts add up to the deal, to the cent."""

import datetime as dt
from decimal import Decimal

import pytest

from integrations.canonical import schemas
from integrations.models import ProjectTemplate
from integrations.workflows.planning import plan_project, split_amount


def test_split_amount_rounds_half_up_and_last_share_takes_the_remainder():
    shares = split_amount(Decimal("100.00"), [Decimal(1) * 100 / 3] * 2 + [Decimal("33.34")])
    assert sum(shares) == Decimal("100.00")
    assert shares[:2] == [Decimal("33.33"), Decimal("33.33")]


@pytest.mark.parametrize("total", ["0.01", "0.05", "99999.99", "120000.00", "1234567.89"])
def test_split_amount_never_loses_a_cent(total):
    shares = split_amount(Decimal(total), [Decimal("20"), Decimal("30"), Decimal("50")])
    assert sum(shares) == Decimal(total)
    assert all(isinstance(s, Decimal) for s in shares)


def _opportunity(amount="120000.00"):
    return schemas.validate(
        schemas.Opportunity,
        {
            "source_id": "006000000000001AAA",
            "name": "Finance transformation",
            "stage": "Closed Won",
            "is_won": True,
            "is_closed": True,
            "amount": Decimal(amount),
            "currency": "GBP",
            "close_date": dt.date(2026, 11, 2),
            "customer": {"source_id": "001000000000001AAA", "name": "Northwind Consulting Ltd"},
            "legal_entity_code": "UK01",
            "project_template": "FIXED-3",
        },
    )


@pytest.mark.django_db
def test_plan_project_from_template():
    template = ProjectTemplate.objects.create(
        code="FIXED-3",
        name="Fixed fee",
        billing_model="fixed_fee",
        duration_days=90,
        milestones=[
            {"name": "Kick-off", "percent": "20", "offset_days": 0},
            {"name": "Design", "percent": "30", "offset_days": 30},
            {"name": "Go-live", "percent": "50", "offset_days": 75},
        ],
    )
    project = plan_project(_opportunity("1000.01"), template)
    assert project.key == "deal:006000000000001AAA"
    assert project.budget.amount == Decimal("1000.01")
    assert [m.amount for m in project.milestones] == [
        Decimal("200.00"),
        Decimal("300.00"),
        Decimal("500.01"),
    ]
    assert project.milestones[1].due_date == dt.date(2026, 12, 2)
    assert project.end_date == dt.date(2027, 1, 31)


@pytest.mark.django_db
def test_template_percentages_must_add_up_to_100():
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="not 100"):
        ProjectTemplate.objects.create(
            code="BAD",
            name="Bad",
            billing_model="fixed_fee",
            milestones=[{"name": "A", "percent": "60"}, {"name": "B", "percent": "30"}],
        )
