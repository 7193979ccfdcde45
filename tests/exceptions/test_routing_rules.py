"""Routing rules: each condition, the order, the fallthrough to the owning team and the
fallback queue, the tester's trace, re-routing (manual assignments stay), who may edit, the
versions in the audit trail, and the routing file's export, import and refusals."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from console.choices import Role, TeamKind
from console.models import AuditEvent, User
from exceptions import rerouting, routing_file, rule_editing, rules, services
from exceptions.choices import Category, ExceptionCode, ExceptionStatus
from exceptions.classification import RULES as CLASSIFICATION_RULES
from exceptions.masking import MASK
from exceptions.models import IntegrationException, Queue, RoutingRule
from exceptions.rule_editing import RuleInvalid, RuleSpec
from exceptions.rules import Facts
from integrations.choices import Region, Vendor
from integrations.models import LegalEntity
from integrations.workflows.failures import StepFailure
from tests.factories import (
    make_connection,
    make_exception,
    make_queue,
    make_run,
    make_team,
    make_user,
)

pytestmark = pytest.mark.django_db

C = ExceptionCode


@pytest.fixture
def queues() -> dict[str, Queue]:
    finance, pmo = make_team(TeamKind.FINANCE), make_team(TeamKind.PMO)
    sales, it = make_team(TeamKind.SALES_OPS), make_team(TeamKind.IT)
    return {
        "finance": make_queue(finance, "Finance"),
        "finance-uk": make_queue(finance, "Finance UK"),
        "finance-us": make_queue(finance, "Finance US"),
        "pmo-emea": make_queue(pmo, "PMO EMEA"),
        "pmo-americas": make_queue(pmo, "PMO Americas"),
        "sales-ops": make_queue(sales, "Sales Ops"),
        "it-integration": make_queue(it, "IT Integration"),
    }


@pytest.fixture
def legal_entities() -> None:
    for code, country, currency, region in [
        ("US01", "US", "USD", Region.AMERICAS),
        ("UK01", "GB", "GBP", Region.EMEA),
        ("DE01", "DE", "EUR", Region.EMEA),
    ]:
        LegalEntity.objects.create(
            code=code, name=f"Demo {code}", country=country, currency=currency, region=region
        )


@pytest.fixture
def it_admin() -> User:
    return make_user("itadmin", team=make_team(TeamKind.IT), role=Role.ADMIN)


@pytest.fixture
def viewer() -> User:
    return make_user("vera", team=make_team(TeamKind.FINANCE), role=Role.VIEWER)


def rule(queue: Queue, position: int = 1, **conditions: Any) -> RoutingRule:
    """A rule written directly (the audited path is tested on its own)."""
    conditions.setdefault("name", f"rule {position} to {queue.slug}")
    return RoutingRule.objects.create(position=position, queue=queue, **conditions)


def api(user: User | None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


def page(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


TAX_UK = Facts(
    code=C.TAX_CONFIGURATION_MISSING,
    category=Category.BUSINESS,
    entity_type="legal_entity",
    legal_entity_code="UK01",
    region="EMEA",
    owner=TeamKind.FINANCE,
)


# -- matching ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("conditions", "facts", "matches"),
    [
        ({}, {}, True),  # no conditions: every exception
        ({"codes": [C.TAX_CONFIGURATION_MISSING, C.CLOSED_ACCOUNTING_PERIOD]}, {}, True),
        ({"codes": [C.CLOSED_ACCOUNTING_PERIOD]}, {}, False),
        ({"category": Category.BUSINESS}, {}, True),
        ({"category": Category.TECHNICAL}, {}, False),
        ({"entity_types": ["invoice", "legal_entity"]}, {}, True),
        ({"entity_types": ["invoice"]}, {}, False),
        ({"legal_entity_codes": ["US01", "UK01"]}, {}, True),
        ({"legal_entity_codes": ["US01"]}, {}, False),
        ({"regions": ["EMEA"]}, {}, True),
        ({"regions": ["Americas", "APAC"]}, {}, False),
        ({"min_amount": Decimal("1000.00")}, {"amount": Decimal("1000.00")}, True),
        ({"min_amount": Decimal("1000.00")}, {"amount": Decimal("999.99")}, False),
        ({"max_amount": Decimal("1000.00")}, {"amount": Decimal("1000.00")}, True),
        ({"max_amount": Decimal("1000.00")}, {"amount": Decimal("1000.01")}, False),
        (
            {"min_amount": Decimal("0"), "max_amount": Decimal("50")},
            {"amount": Decimal("25")},
            True,
        ),
        # a rule about amounts never matches an exception without one
        ({"max_amount": Decimal("1000.00")}, {}, False),
        # every condition must hold
        ({"regions": ["EMEA"], "legal_entity_codes": ["US01"]}, {}, False),
    ],
)
def test_each_condition_matches_as_documented(
    queues: dict[str, Queue], conditions: dict[str, Any], facts: dict[str, Any], matches: bool
) -> None:
    candidate = rule(queues["finance-uk"], **conditions)
    subject = Facts(**{**TAX_UK.__dict__, **facts})
    assert rules.match(candidate, subject) is matches


def test_connection_condition(queues: dict[str, Queue]) -> None:
    erp = make_connection(Vendor.NETSUITE)
    other = make_connection(Vendor.NETSUITE)
    candidate = rule(queues["it-integration"], connection=erp)
    assert rules.match(candidate, Facts(**{**TAX_UK.__dict__, "connection_id": erp.pk}))
    assert not rules.match(candidate, Facts(**{**TAX_UK.__dict__, "connection_id": other.pk}))
    assert not rules.match(candidate, TAX_UK)


def test_first_enabled_matching_rule_wins(queues: dict[str, Queue]) -> None:
    rule(queues["sales-ops"], 1, name="disabled catch-all", enabled=False)
    rule(queues["finance-us"], 2, legal_entity_codes=["US01"])
    uk = rule(queues["finance-uk"], 3, legal_entity_codes=["UK01"])
    rule(queues["finance"], 4, codes=[C.TAX_CONFIGURATION_MISSING])
    assert rules.place(TAX_UK) == (queues["finance-uk"], uk)


def test_no_matching_rule_falls_through_to_the_owning_teams_queue(
    queues: dict[str, Queue],
) -> None:
    rule(queues["it-integration"], 1, codes=[C.VENDOR_UNAVAILABLE])
    template = Facts(code=C.PROJECT_TEMPLATE_NOT_FOUND, region="Americas", owner=TeamKind.PMO)
    placement = rules.explain(template)
    assert (placement.queue, placement.rule) == (queues["pmo-americas"], None)
    assert placement.decided_by == rules.RoutingDecision.OWNER


def test_owner_without_queue_goes_to_the_fallback_queue() -> None:
    make_queue(make_team(TeamKind.FINANCE), "Finance")
    facts = Facts(code=C.DEAL_DATA_INVALID, owner=TeamKind.SALES_OPS)
    queue, chosen = rules.place(facts)
    assert (queue.slug, chosen) == ("unrouted", None)
    marked = make_queue(make_team(TeamKind.IT), "Triage")
    Queue.objects.filter(pk=marked.pk).update(is_fallback=True)
    assert rules.place(facts)[0] == marked
    assert rules.explain(facts).decided_by == rules.RoutingDecision.FALLBACK


def test_opening_an_exception_uses_the_rules_and_records_the_rule(
    queues: dict[str, Queue],
) -> None:
    uk = rule(queues["finance-uk"], 1, legal_entity_codes=["UK01"])
    run = make_run(legal_entity_code="UK01", region="EMEA")
    failure = StepFailure(
        kind="business",
        code="tax_configuration_missing",
        message="no tax",
        entity_type="legal_entity",
        entity_ref="UK01",
    )
    exc = services.open_exception(failure, run=run, key=(run.correlation_id, "check"))
    assert (exc.queue, exc.routed_by) == (queues["finance-uk"], uk)
    opened = AuditEvent.objects.get(action="exception.opened", object_id=str(exc.pk))
    assert opened.data["routed_by"] == f"{uk.name} (version 1)"
    # a rule overrules the classification's owner: PMO's template failure to Sales Ops
    everything = rule(queues["sales-ops"], 2, codes=[C.PROJECT_TEMPLATE_NOT_FOUND])
    other = make_run(region="Americas")
    template = services.open_exception(
        StepFailure(kind="business", code="project_template_not_found", message="m"),
        run=other,
        key=(other.correlation_id, "provision"),
    )
    assert (template.queue, template.routed_by) == (queues["sales-ops"], everything)


def test_default_rules_route_exactly_as_the_classification_does(
    queues: dict[str, Queue], legal_entities: None
) -> None:
    before = {}
    cases = [
        (name, legal_entity, region)
        for name in CLASSIFICATION_RULES
        for legal_entity, region in [("DE01", "EMEA"), ("US01", "Americas"), ("", "")]
    ]
    for name, legal_entity, region in cases:
        rule_ = CLASSIFICATION_RULES[name]
        facts = rules.Facts(
            code=rule_.code,
            category=rule_.category,
            legal_entity_code=legal_entity,
            region=region,
            owner=rule_.owner,
        )
        before[(name, legal_entity, region)] = rules.place(facts)[0]
    assert rule_editing.install_default_rules() == 7
    assert rule_editing.install_default_rules() == 0  # once: people's changes are kept
    for name, legal_entity, region in cases:
        rule_ = CLASSIFICATION_RULES[name]
        facts = rules.Facts(
            code=rule_.code,
            category=rule_.category,
            legal_entity_code=legal_entity,
            region=region,
            owner=rule_.owner,
        )
        queue, _ = rules.place(facts)
        assert queue.team.kind == rule_.owner, name
        if legal_entity != "US01":
            assert queue == before[(name, legal_entity, region)], name
    # the example: finance failures of the US entity go to Finance US
    us = rules.place(Facts(code=C.CLOSED_ACCOUNTING_PERIOD, legal_entity_code="US01"))
    assert us[0] == queues["finance-us"]


# -- the tester --------------------------------------------------------------------------------


def test_explain_traces_every_rule_with_the_failing_condition(queues: dict[str, Queue]) -> None:
    us = rule(queues["finance-us"], 1, legal_entity_codes=["US01"])
    off = rule(queues["sales-ops"], 2, enabled=False)
    uk = rule(queues["finance-uk"], 3, legal_entity_codes=["UK01"], regions=["EMEA"])
    also = rule(queues["finance"], 4, codes=[C.TAX_CONFIGURATION_MISSING])
    placement = rules.explain(TAX_UK)
    assert placement.rule == uk
    assert "Finance UK" in placement.explanation
    verdicts = {step.rule: step for step in placement.trace}
    assert verdicts[us].outcome == rules.RuleVerdict.NO_MATCH
    assert [c.condition for c in verdicts[us].failed] == ["legal_entity_codes"]
    assert verdicts[off].outcome == rules.RuleVerdict.DISABLED
    assert verdicts[uk].outcome == rules.RuleVerdict.PLACED
    assert verdicts[also].outcome == rules.RuleVerdict.ALSO_MATCHES


def test_tester_api_by_facts_and_by_exception(queues: dict[str, Queue], viewer: User) -> None:
    us = rule(queues["finance-us"], 1, legal_entity_codes=["US01"], min_amount=Decimal("100"))
    body = api(viewer).post(
        "/api/v1/routing-rules/test/",
        {"code": C.INVOICE_REJECTED_BY_ERP, "legal_entity_code": "us01", "amount": "99.99"},
        format="json",
    )
    assert body.status_code == 200, body.content
    result = body.json()
    # no rule: the code's owner (Finance) decides; the trace says which condition failed
    assert result["queue"] == "finance" and result["rule"] is None
    assert result["decided_by"] == "owner"
    assert result["facts"]["owner"] == TeamKind.FINANCE
    assert result["trace"][0]["failed_conditions"] == ["amount"]

    exc = make_exception(queues["finance"], legal_entity_code="US01", amount=Decimal("500.00"))
    by_id = api(viewer).post("/api/v1/routing-rules/test/", {"exception": exc.pk}, format="json")
    assert by_id.json()["rule"]["id"] == us.pk
    assert by_id.json()["queue"] == "finance-us"
    missing = api(viewer).post("/api/v1/routing-rules/test/", {"exception": 999999})
    assert missing.status_code == 400


def test_tester_page_shows_the_verdict_of_each_rule(queues: dict[str, Queue], viewer: User) -> None:
    rule(queues["finance-us"], 1, name="US finance", legal_entity_codes=["US01"])
    exc = make_exception(queues["finance"], legal_entity_code="UK01")
    response = page(viewer).get(reverse("exceptions:rules-test"), {"exception": exc.pk})
    assert response.status_code == 200
    body = response.content.decode()
    assert "US finance" in body and "No match" in body
    assert "Legal entity: rule wants US01; the exception has UK01" in body
    assert response.context["placement"].queue == queues["finance"]


# -- re-routing --------------------------------------------------------------------------------


def test_reroute_moves_active_exceptions_but_not_manual_assignments(
    queues: dict[str, Queue], it_admin: User
) -> None:
    waiting = make_exception(queues["finance"], legal_entity_code="UK01")
    retrying = make_exception(
        queues["finance"], legal_entity_code="UK01", status=ExceptionStatus.RETRYING
    )
    person = make_user(team=queues["finance"].team)
    taken = make_exception(
        queues["finance"], legal_entity_code="UK01", assignee=person, assigned_manually=True
    )
    done = make_exception(
        queues["finance"], legal_entity_code="UK01", status=ExceptionStatus.RESOLVED
    )
    ignored = make_exception(
        queues["finance"], legal_entity_code="UK01", status=ExceptionStatus.IGNORED
    )
    elsewhere = make_exception(queues["finance"], legal_entity_code="DE01")
    uk = rule(queues["finance-uk"], 1, legal_entity_codes=["UK01"])

    preview = rerouting.reroute(actor=it_admin, dry_run=True)
    assert (preview.checked, preview.moved, preview.kept_manual) == (4, 2, 1)
    assert preview.moves == {("Finance", "Finance UK"): 2}
    assert IntegrationException.objects.filter(queue=queues["finance-uk"]).count() == 0
    assert not AuditEvent.objects.filter(action="exception.rerouted").exists()

    report = rerouting.reroute(actor=it_admin)
    assert report.moved == 2
    for exc in (waiting, retrying, taken, done, ignored, elsewhere):
        exc.refresh_from_db()
    assert (waiting.queue, waiting.routed_by) == (queues["finance-uk"], uk)
    assert waiting.due_at is not None  # the new queue's SLA clock runs
    assert retrying.queue == queues["finance-uk"]
    assert (taken.queue, taken.assignee) == (queues["finance"], person)
    assert done.queue == ignored.queue == elsewhere.queue == queues["finance"]
    moves = AuditEvent.objects.filter(action="exception.rerouted")
    assert {e.object_id for e in moves} == {str(waiting.pk), str(retrying.pk)}
    assert all(e.actor == it_admin and e.data["to_queue"] == "finance-uk" for e in moves)
    assert rerouting.reroute(actor=it_admin).moved == 0  # nothing left to move


def test_reroute_api_preview_for_everyone_apply_for_editors(
    queues: dict[str, Queue], viewer: User, it_admin: User
) -> None:
    exc = make_exception(queues["finance"], legal_entity_code="UK01")
    rule(queues["finance-uk"], 1, legal_entity_codes=["UK01"])
    url = "/api/v1/routing-rules/reroute/"
    preview = api(viewer).post(url, {"dry_run": True}, format="json")
    assert preview.status_code == 200 and preview.json()["moved"] == 1
    assert api(viewer).post(url, {}, format="json").status_code == 403
    exc.refresh_from_db()
    assert exc.queue == queues["finance"]
    applied = api(it_admin).post(url, {}, format="json")
    assert applied.status_code == 200
    assert applied.json()["moves"] == [
        {"from_queue": "Finance", "to_queue": "Finance UK", "count": 1}
    ]
    exc.refresh_from_db()
    assert exc.queue == queues["finance-uk"]


def test_reroute_page_previews_then_moves(queues: dict[str, Queue], it_admin: User) -> None:
    exc = make_exception(queues["finance"], legal_entity_code="UK01")
    rule(queues["finance-uk"], 1, legal_entity_codes=["UK01"])
    client = page(it_admin)
    preview = client.get(reverse("exceptions:rules-reroute"), {"preview": "1"})
    assert "1 would move" in preview.content.decode()
    client.post(reverse("exceptions:rules-reroute"))
    exc.refresh_from_db()
    assert exc.queue == queues["finance-uk"]


# -- who may edit ------------------------------------------------------------------------------


def test_only_superusers_and_it_admins_edit_rules(
    queues: dict[str, Queue], viewer: User, it_admin: User, legal_entities: None
) -> None:
    it_resolver = make_user(team=make_team(TeamKind.IT), role=Role.RESOLVER)
    boss = User.objects.create_superuser("boss", "boss@example.com", "pw-for-tests-1")
    body = {"name": "UK", "queue": "finance-uk", "legal_entity_codes": ["UK01"]}
    for user in (viewer, it_resolver):
        assert api(user).post("/api/v1/routing-rules/", body, format="json").status_code == 403
        assert page(user).get(reverse("exceptions:rule-new")).status_code == 403
        assert api(user).get("/api/v1/routing-rules/").status_code == 200
        assert page(user).get(reverse("exceptions:rules")).status_code == 200
    assert not RoutingRule.objects.exists()
    created = api(it_admin).post("/api/v1/routing-rules/", body, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["version"] == 1
    pk = created.json()["id"]
    assert api(viewer).delete(f"/api/v1/routing-rules/{pk}/").status_code == 403
    assert api(boss).delete(f"/api/v1/routing-rules/{pk}/").status_code == 204
    assert APIClient().get("/api/v1/routing-rules/").status_code in (401, 403)


def test_rule_pages_create_edit_and_show_history(
    queues: dict[str, Queue], it_admin: User, legal_entities: None
) -> None:
    client = page(it_admin)
    response = client.post(
        reverse("exceptions:rule-new"),
        {
            "name": "UK finance",
            "queue": queues["finance-uk"].pk,
            "enabled": "on",
            "codes": [C.TAX_CONFIGURATION_MISSING],
            "legal_entity_codes": ["UK01"],
            "entity_types": "legal_entity, invoice",
        },
    )
    created = RoutingRule.objects.get(name="UK finance")
    assert response.status_code == 302
    assert created.entity_types == ["invoice", "legal_entity"]
    client.post(
        reverse("exceptions:rule-edit", args=[created.pk]),
        {"name": "UK finance", "queue": queues["finance"].pk, "enabled": "on"},
    )
    created.refresh_from_db()
    assert (created.queue, created.codes, created.version) == (queues["finance"], [], 2)
    detail = client.get(reverse("exceptions:rule", args=[created.pk])).content.decode()
    assert "created (version 1)" in detail and "(version 2)" in detail
    assert "queue: finance-uk → finance" in detail
    listing = client.get(reverse("exceptions:rules")).content.decode()
    assert "Every exception" in listing and "UK finance" in listing


def test_rule_form_explains_invalid_input(
    queues: dict[str, Queue], it_admin: User, legal_entities: None
) -> None:
    response = page(it_admin).post(
        reverse("exceptions:rule-new"),
        {
            "name": "",
            "queue": queues["finance"].pk,
            "min_amount": "500",
            "max_amount": "100",
            "entity_types": "Not A Type",
        },
    )
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert "name" in errors and "max_amount" in errors and "entity_types" in errors
    assert not RoutingRule.objects.exists()


def test_api_refuses_unknown_codes_legal_entities_and_inverted_amounts(
    queues: dict[str, Queue], it_admin: User, legal_entities: None
) -> None:
    client = api(it_admin)
    bad = client.post(
        "/api/v1/routing-rules/",
        {
            "name": "bad",
            "queue": "finance",
            "codes": ["no_such_code"],
            "legal_entity_codes": ["XX99"],
            "min_amount": "10.00",
            "max_amount": "1.00",
        },
        format="json",
    )
    assert bad.status_code == 400
    assert "codes" in bad.json()
    bad = client.post(
        "/api/v1/routing-rules/",
        {"name": "bad", "queue": "finance", "legal_entity_codes": ["XX99"], "max_amount": "1"},
        format="json",
    )
    assert "Unknown legal entity “XX99”" in bad.json()["legal_entity_codes"][0]
    bad = client.post(
        "/api/v1/routing-rules/",
        {"name": "bad", "queue": "finance", "min_amount": "10.00", "max_amount": "1.00"},
        format="json",
    )
    assert "below the minimum" in bad.json()["max_amount"][0]
    rule(queues["finance"], 1, name="Taken")
    dup = client.post("/api/v1/routing-rules/", {"name": "taken", "queue": "finance"})
    assert "already called" in dup.json()["name"][0]
    assert RoutingRule.objects.count() == 1


# -- versions and audit ------------------------------------------------------------------------


def test_every_change_raises_the_version_and_is_audited(
    queues: dict[str, Queue], it_admin: User, legal_entities: None
) -> None:
    first = rule_editing.create_rule(RuleSpec(name="A", queue=queues["finance"]), actor=it_admin)
    second = rule_editing.create_rule(
        RuleSpec(name="B", queue=queues["finance-uk"], legal_entity_codes=["uk01"]),
        actor=it_admin,
    )
    assert (first.position, second.position, second.legal_entity_codes) == (1, 2, ["UK01"])
    changes = rule_editing.update_rule(
        second,
        RuleSpec(name="B", queue=queues["finance-us"], legal_entity_codes=["US01"]),
        actor=it_admin,
    )
    assert changes == {
        "queue": ["finance-uk", "finance-us"],
        "legal_entity_codes": [["UK01"], ["US01"]],
    }
    # saving the same values is not a new version
    assert (
        rule_editing.update_rule(
            second,
            RuleSpec(name="B", queue=queues["finance-us"], legal_entity_codes=["US01"]),
            actor=it_admin,
        )
        == {}
    )
    assert rule_editing.set_enabled(second, False, actor=it_admin)
    assert rule_editing.move_rule(second, rule_editing.UP, actor=it_admin)
    assert not rule_editing.move_rule(second, rule_editing.UP, actor=it_admin)  # already first
    second.refresh_from_db()
    first.refresh_from_db()
    assert (second.version, second.position, second.enabled) == (4, 1, False)
    assert (first.version, first.position) == (2, 2)

    history = list(rule_editing.history(second.pk).order_by("at", "id"))
    assert [e.action for e in history] == [
        "routing_rule.created",
        "routing_rule.changed",
        "routing_rule.changed",
        "routing_rule.changed",
    ]
    assert [e.data["version"] for e in history] == [1, 2, 3, 4]
    assert all(e.actor == it_admin for e in history)
    edit = history[1]
    assert edit.data["before"]["queue"] == "finance-uk"
    assert edit.data["after"]["queue"] == "finance-us"
    assert history[2].data["changes"] == {"enabled": [True, False]}

    response = api(it_admin).get(f"/api/v1/routing-rules/{second.pk}/history/")
    assert [row["version"] for row in response.json()] == [4, 3, 2, 1]

    rule_editing.delete_rule(second, actor=it_admin)
    deleted = rule_editing.history(history[0].object_id).first()
    assert deleted.action == "routing_rule.deleted"
    assert deleted.data["before"]["name"] == "B"


def test_move_api_and_position_on_create(queues: dict[str, Queue], it_admin: User) -> None:
    client = api(it_admin)
    a = client.post("/api/v1/routing-rules/", {"name": "a", "queue": "finance"}).json()
    b = client.post("/api/v1/routing-rules/", {"name": "b", "queue": "finance"}).json()
    c = client.post(
        "/api/v1/routing-rules/", {"name": "c", "queue": "finance", "position": 1}
    ).json()
    order = [r["name"] for r in client.get("/api/v1/routing-rules/").json()["results"]]
    assert order == ["c", "a", "b"]
    moved = client.post(f"/api/v1/routing-rules/{b['id']}/move/", {"direction": "up"})
    assert moved.status_code == 200
    order = [r["name"] for r in client.get("/api/v1/routing-rules/").json()["results"]]
    assert order == ["c", "b", "a"]
    refused = client.patch(f"/api/v1/routing-rules/{a['id']}/", {"position": 1})
    assert refused.status_code == 400
    assert c["position"] == 1


# -- the routing file --------------------------------------------------------------------------


def _setup(queues: dict[str, Queue]) -> None:
    erp = make_connection(Vendor.NETSUITE, name="NetSuite (demo)")
    rule(
        queues["finance-uk"],
        1,
        name="Big UK invoices",
        codes=[C.INVOICE_REJECTED_BY_ERP],
        legal_entity_codes=["UK01"],
        min_amount=Decimal("10000.00"),
        connection=erp,
    )
    rule(queues["pmo-emea"], 2, name="PMO EMEA", regions=["EMEA"], category=Category.BUSINESS)
    Queue.objects.filter(pk=queues["finance-uk"].pk).update(
        sla_hours=8, alert_emails="uk-finance@example.com"
    )


def test_export_is_stable_and_names_things_not_ids(queues: dict[str, Queue]) -> None:
    _setup(queues)
    document = routing_file.export_document()
    assert [q["slug"] for q in document["queues"]] == sorted(q.slug for q in queues.values())
    first = document["rules"][0]
    assert first["queue"] == "finance-uk" and first["connection"] == "NetSuite (demo)"
    assert first["min_amount"] == "10000.00"
    assert routing_file.dumps(document) == routing_file.dumps(routing_file.export_document())
    assert "id" not in first


def test_export_import_round_trip(
    queues: dict[str, Queue], it_admin: User, legal_entities: None
) -> None:
    _setup(queues)
    exported = api(it_admin).get("/api/v1/routing/export/").json()
    text = routing_file.dumps(exported)
    # change things: a rule edited, one added, one queue's SLA
    RoutingRule.objects.filter(name="PMO EMEA").update(regions=["APAC"])
    rule(queues["sales-ops"], 3, name="Extra")
    Queue.objects.filter(slug="finance-uk").update(sla_hours=48)

    preview = api(it_admin).post("/api/v1/routing/import/?dry_run=true", exported, format="json")
    assert preview.status_code == 200, preview.content
    diff = preview.json()
    assert diff["applied"] is False
    assert diff["rules"]["deleted"] == ["Extra"]
    assert diff["rules"]["changed"] == [
        {"name": "PMO EMEA", "changes": {"regions": [["APAC"], ["EMEA"]]}}
    ]
    assert diff["queues"]["changed"] == [{"slug": "finance-uk", "changes": {"sla_hours": [48, 8]}}]
    assert RoutingRule.objects.filter(name="Extra").exists()  # a dry run changes nothing

    applied = api(it_admin).post("/api/v1/routing/import/", exported, format="json")
    assert applied.status_code == 200 and applied.json()["applied"] is True
    assert routing_file.dumps(routing_file.export_document()) == text
    pmo = RoutingRule.objects.get(name="PMO EMEA")
    assert pmo.version == 2  # changed by the import: a new version, audited
    assert AuditEvent.objects.filter(action="routing.imported", actor=it_admin).count() == 1
    assert AuditEvent.objects.filter(action="routing_rule.deleted").count() == 1


def test_import_refuses_unknown_queue_or_code_and_changes_nothing(
    queues: dict[str, Queue], it_admin: User, viewer: User, legal_entities: None
) -> None:
    _setup(queues)
    document = routing_file.export_document()
    before = routing_file.dumps(document)
    audit_events = AuditEvent.objects.count()
    broken = json.loads(before)
    broken["rules"][0]["queue"] = "finance-de"
    broken["rules"][1]["codes"] = ["made_up"]
    broken["queues"] = [q for q in broken["queues"] if q["slug"] != "sales-ops"]
    broken["queues"][0]["name"] = "Renamed"  # would change, but must not
    response = api(it_admin).post("/api/v1/routing/import/", broken, format="json")
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert any("“finance-de” is not one of the file's queues" in e for e in errors)
    assert any("Unknown exception code “made_up”" in e for e in errors)
    assert routing_file.dumps(routing_file.export_document()) == before
    assert AuditEvent.objects.count() == audit_events
    assert api(viewer).post("/api/v1/routing/import/", document, format="json").status_code == 403


def test_import_keeps_queues_that_hold_exceptions(queues: dict[str, Queue]) -> None:
    make_exception(queues["sales-ops"], code=C.DEAL_DATA_INVALID)
    document = routing_file.export_document()
    document["queues"] = [q for q in document["queues"] if q["slug"] != "sales-ops"]
    with pytest.raises(routing_file.ImportRefused) as refused:
        routing_file.import_document(document, actor=None)
    assert "“sales-ops” is not in the file but still holds 1 exceptions" in refused.value.errors[0]
    empty = dict(document, queues=[q for q in document["queues"] if q["slug"] != "finance-us"])
    empty["queues"].append(routing_file.queue_entry(queues["sales-ops"]))
    result = routing_file.import_document(empty, actor=None)
    assert result.queues.deleted == ["finance-us"]
    assert not Queue.objects.filter(slug="finance-us").exists()


def test_management_commands_round_trip(
    queues: dict[str, Queue], tmp_path: Path, legal_entities: None
) -> None:
    _setup(queues)
    target = tmp_path / "routing.json"
    call_command("export_routing", str(target))
    saved = target.read_text()
    RoutingRule.objects.all().delete()
    call_command("import_routing", str(target), "--dry-run")
    assert not RoutingRule.objects.exists()
    call_command("import_routing", str(target))
    assert routing_file.dumps(routing_file.export_document()) == saved
    assert AuditEvent.objects.filter(actor_label="manage.py import_routing").exists()
    target.write_text('{"format": "nope"}')
    with pytest.raises(CommandError, match="nothing was changed"):
        call_command("import_routing", str(target))


def test_validate_reports_every_problem_at_once(legal_entities: None) -> None:
    with pytest.raises(RuleInvalid) as invalid:
        rule_editing.validate(
            RuleSpec(
                name="",
                queue=None,
                codes=["nope"],
                category="odd",
                regions=["Mars"],
                legal_entity_codes=["ZZ01"],
            )
        )
    assert set(invalid.value.errors) == {
        "name",
        "queue",
        "codes",
        "category",
        "regions",
        "legal_entity_codes",
    }


def test_import_page_shows_the_difference_then_applies(
    queues: dict[str, Queue], it_admin: User, legal_entities: None
) -> None:
    _setup(queues)
    client = page(it_admin)
    download = client.get(reverse("exceptions:rules-export"))
    assert download["Content-Disposition"].startswith("attachment;")
    document = json.loads(download.content)
    document["rules"][1]["regions"] = ["Americas"]
    text = json.dumps(document)
    preview = client.post(
        reverse("exceptions:rules-import"), {"document": text, "action": "preview"}
    )
    assert "Change rule “PMO EMEA”: regions: EMEA → Americas" in preview.content.decode()
    assert RoutingRule.objects.get(name="PMO EMEA").regions == ["EMEA"]
    client.post(reverse("exceptions:rules-import"), {"document": text, "action": "apply"})
    assert RoutingRule.objects.get(name="PMO EMEA").regions == ["Americas"]
    broken = client.post(
        reverse("exceptions:rules-import"), {"document": "{not json", "action": "preview"}
    )
    assert "This is not valid JSON" in broken.content.decode()


def test_viewers_see_rules_without_edit_controls(queues: dict[str, Queue], viewer: User) -> None:
    target = rule(queues["finance"], 1, name="Everything to Finance")
    client = page(viewer)
    listing = client.get(reverse("exceptions:rules")).content.decode()
    assert "Everything to Finance" in listing
    assert reverse("exceptions:rule-edit", args=[target.pk]) not in listing
    assert "you can read them and test them" in listing
    assert client.post(reverse("exceptions:rule-move", args=[target.pk])).status_code == 403
    assert client.post(reverse("exceptions:rule-toggle", args=[target.pk])).status_code == 403
    assert client.post(reverse("exceptions:rules-reroute")).status_code == 403
    assert client.get(reverse("exceptions:rule", args=[target.pk])).status_code == 200
    assert client.get(reverse("exceptions:rules-test")).status_code == 200


def test_tester_masks_a_stored_amount_without_finance_rights(queues: dict[str, Queue]) -> None:
    rule(queues["finance-us"], 1, min_amount=Decimal("100"))
    exc = make_exception(queues["finance"], amount=Decimal("4321.00"))
    pmo_viewer = make_user(team=make_team(TeamKind.PMO), role=Role.VIEWER)
    result = (
        api(pmo_viewer)
        .post("/api/v1/routing-rules/test/", {"exception": exc.pk}, format="json")
        .json()
    )
    assert result["queue"] == "finance-us"
    assert "4321" not in json.dumps(result)
    assert result["facts"]["amount"] == MASK
    assert result["trace"][0]["checks"][0]["actual"] == MASK
    body = page(pmo_viewer).get(reverse("exceptions:rules-test"), {"exception": exc.pk})
    assert "4321" not in body.content.decode()
    finance_viewer = make_user(team=queues["finance"].team, role=Role.VIEWER)
    shown = (
        api(finance_viewer)
        .post("/api/v1/routing-rules/test/", {"exception": exc.pk}, format="json")
        .json()
    )
    assert shown["facts"]["amount"] == "4321.00"
