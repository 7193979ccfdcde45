"""Classification and routing: each failure lands, in business words, with its owning team."""

import pytest

from console.choices import TeamKind
from exceptions import services
from exceptions.choices import Category, ExceptionCode, ExceptionStatus
from exceptions.classification import classify
from exceptions.routing import route
from integrations.workflows.failures import StepError, StepFailure, describe_failure
from tests.factories import make_queue, make_run, make_team


@pytest.mark.parametrize(
    ("code", "expected", "owner", "category"),
    [
        (
            "tax_configuration_missing",
            ExceptionCode.TAX_CONFIGURATION_MISSING,
            TeamKind.FINANCE,
            Category.BUSINESS,
        ),
        (
            "project_template_not_found",
            ExceptionCode.PROJECT_TEMPLATE_NOT_FOUND,
            TeamKind.PMO,
            Category.BUSINESS,
        ),
        (
            "deal_data_invalid",
            ExceptionCode.DEAL_DATA_INVALID,
            TeamKind.SALES_OPS,
            Category.BUSINESS,
        ),
        ("auth", ExceptionCode.AUTHENTICATION_FAILED, TeamKind.IT, Category.TECHNICAL),
        ("transient", ExceptionCode.VENDOR_UNAVAILABLE, TeamKind.IT, Category.TECHNICAL),
        ("rate_limited", ExceptionCode.RATE_LIMIT_EXHAUSTED, TeamKind.IT, Category.TECHNICAL),
        (
            "customer_rejected_by_erp",
            ExceptionCode.CUSTOMER_REJECTED_BY_ERP,
            TeamKind.FINANCE,
            Category.BUSINESS,
        ),
        ("something_new", ExceptionCode.INTERNAL_ERROR, TeamKind.IT, Category.TECHNICAL),
    ],
)
def test_classify(code, expected, owner, category):
    result = classify(
        StepFailure(
            kind="x", code=code, message="detail", entity_type="legal_entity", entity_ref="DE01"
        )
    )
    assert (result.code, result.owner, result.category) == (expected, owner, category)
    assert "DE01" in result.title
    assert result.suggested_fix


def test_describe_failure_of_a_bug_is_an_internal_error():
    failure = describe_failure(ZeroDivisionError("division by zero"))
    assert failure.kind == "internal"
    assert failure.code == "internal_error"
    assert "ZeroDivisionError" in failure.message


def test_describe_failure_keeps_business_details():
    failure = describe_failure(
        StepError(
            "tax_configuration_missing", "no tax", entity_type="legal_entity", entity_ref="DE01"
        )
    )
    assert (failure.kind, failure.code, failure.entity_ref) == (
        "business",
        "tax_configuration_missing",
        "DE01",
    )


@pytest.mark.django_db
def test_route_prefers_the_teams_regional_queue_and_falls_back_to_unrouted():
    pmo = make_team(TeamKind.PMO)
    emea = make_queue(pmo, "PMO EMEA")
    americas = make_queue(pmo, "PMO Americas")
    assert route(TeamKind.PMO, region="Americas") == americas
    assert route(TeamKind.PMO, region="EMEA") == emea
    assert route(TeamKind.PMO) == americas  # first by name
    fallback = route(TeamKind.SALES_OPS)
    assert fallback.slug == "unrouted"
    assert fallback.team.kind == TeamKind.IT


@pytest.mark.django_db
def test_the_same_failure_for_the_same_thing_is_one_exception_with_occurrences():
    make_queue(make_team(TeamKind.FINANCE), "Finance")
    run = make_run(legal_entity_code="DE01", region="EMEA")
    failure = StepFailure(
        kind="business",
        code="tax_configuration_missing",
        message="m",
        entity_type="legal_entity",
        entity_ref="DE01",
    )
    first = services.open_exception(
        failure, run=run, key=(run.correlation_id, "check_legal_entity")
    )
    again = services.open_exception(
        failure, run=run, key=(run.correlation_id, "check_legal_entity")
    )
    assert first.pk == again.pk
    assert again.occurrences == 2
    assert again.queue.name == "Finance"
    services.resolve([again], reason="fixed")
    third = services.open_exception(
        failure, run=run, key=(run.correlation_id, "check_legal_entity")
    )
    assert third.pk != first.pk
    assert third.status == ExceptionStatus.OPEN
