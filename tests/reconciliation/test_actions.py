"""The actions on differences (re-sync, open exceptions, accept), on definitions (edit, run
now) and what reconciliation does when a run ends, over runs built from snapshot rows.

Every action is refused cleanly to people without the role, audited when done, and refuses
one by one what it cannot do."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from console.models import AuditEvent
from exceptions import services
from exceptions.choices import Category, ExceptionCode, ExceptionStatus
from exceptions.models import IntegrationException, RoutingRule
from integrations.connectors.errors import AuthError, NotFoundError
from reconciliation import actions, catalogue, runs
from reconciliation.differences import signature
from reconciliation.models import Acceptance, Difference, Run
from reconciliation.signals import run_finished

from . import scenario
from .scenario import differences, invoice_run, record

pytestmark = pytest.mark.django_db

#: what the test re-syncer answers per key (the real ones start workflows)
ANSWERS = {"m2": "queued: billing of milestone m2 requested", "m4": "not re-synced: locked"}
CALLS: list[tuple[str, list[str]]] = []


def answering_resync(definition, keys):  # the catalogue's re-syncer signature
    CALLS.append((definition.name, list(keys)))
    return {key: ANSWERS[key] for key in keys if key in ANSWERS}


def failing_resync(definition, keys):
    raise RuntimeError("ERP read-only for maintenance")


def use_resyncer(monkeypatch: pytest.MonkeyPatch, path: str) -> None:
    """Point the invoices comparison at another re-syncer (the catalogue is a table of
    import paths)."""
    comparison = dataclasses.replace(catalogue.BY_KIND["invoices"], resync=path)
    monkeypatch.setitem(catalogue.BY_KIND, "invoices", comparison)


# -- accept ------------------------------------------------------------------------------------


def test_accepting_needs_a_reason_and_holds_for_later_runs(people, run) -> None:
    diffs = differences(run)
    with pytest.raises(actions.InvalidInput):
        actions.accept([diffs["m4"]], people.finance, "   ")
    assert not Acceptance.objects.exists()

    [outcome] = actions.accept([diffs["m4"]], people.finance, "credit note CN-7 agreed")
    assert outcome.ok
    acceptance = Acceptance.objects.get()
    assert (acceptance.key, acceptance.kind, acceptance.reason) == (
        "m4",
        "field_mismatch",
        "credit note CN-7 agreed",
    )
    assert acceptance.signature == signature(diffs["m4"])
    assert acceptance.accepted_by == people.finance
    diff = Difference.objects.get(pk=diffs["m4"].pk)
    assert (diff.state, diff.acceptance) == (Difference.State.ACCEPTED, acceptance)
    event = AuditEvent.objects.get(action="reconciliation.accepted")
    assert event.actor == people.finance and event.data["reason"] == "credit note CN-7 agreed"
    # the run's summary stays what it found; the next run finding the same values counts it
    # accepted, and no longer at risk
    summary = (run.accepted, run.at_risk, run.match_rate)
    run.refresh_from_db()
    assert (run.accepted, run.at_risk, run.match_rate) == summary
    again = invoice_run(run.definition)
    assert again.accepted == 1 and again.match_rate > run.match_rate
    assert differences(again)["m4"].state == Difference.State.ACCEPTED
    uk = next(r for r in again.at_risk if r["legal_entity"] == "UK01")
    assert uk["amount_minor"] == 25000 + 7500 + 6000  # m2, m3, m8: m4's 0.50 accepted
    # accepting it again is refused, said per difference
    [refused] = actions.accept([differences(run)["m4"]], people.finance, "again")
    assert not refused.ok and "Already accepted" in refused.message


@pytest.mark.parametrize("who", ["pmo", "it_resolver"])
def test_only_finance_resolvers_it_admins_and_superusers_act(people, run, who) -> None:
    diff = differences(run)["m4"]
    for act in (
        lambda user: actions.accept([diff], user, "ok"),
        lambda user: actions.open_exceptions([diff], user),
        lambda user: actions.resync([diff], user),
        lambda user: actions.start_run(run.definition, user),
        lambda user: actions.update_definition(run.definition, user, {"enabled": False}),
    ):
        with pytest.raises(actions.NotAllowed):
            act(getattr(people, who))
    assert not AuditEvent.objects.filter(action__startswith="reconciliation.").exists()
    assert actions.accept([diff], people.it_admin, "IT knows why")[0].ok


# -- open exceptions ---------------------------------------------------------------------------


def test_a_difference_becomes_an_exception_of_the_owning_team(people, run) -> None:
    diffs = differences(run)
    outcomes = actions.open_exceptions([diffs["m2"], diffs["u1"], diffs["m4"]], people.finance)
    assert all(o.ok for o in outcomes), outcomes
    m2 = Difference.objects.select_related("exception__queue").get(pk=diffs["m2"].pk)
    exc = m2.exception
    assert m2.state == Difference.State.EXCEPTION_OPENED
    assert exc.code == ExceptionCode.RECONCILIATION_MISSING_IN_TARGET
    assert exc.category == Category.BUSINESS
    assert exc.queue.team.kind == "finance"  # invoices are finance's (catalogue owner)
    assert (exc.entity_type, exc.entity_ref) == ("milestone", "m2")
    assert (exc.amount, exc.currency) == (Decimal("250.00"), "GBP")
    assert exc.legal_entity_code == "UK01" and exc.region == "EMEA"
    assert exc.payload["target"]["record"] == ""
    assert exc.explanation.endswith(f"/reconciliation/differences/{m2.pk}/")
    assert exc.connection is None  # its Retry would poll a system; Re-sync is on the difference
    mismatch = Difference.objects.get(pk=diffs["m4"].pk).exception
    assert mismatch.code == ExceptionCode.RECONCILIATION_FIELD_MISMATCH
    assert (mismatch.amount, mismatch.currency) == (Decimal("0.50"), "GBP")
    assert "299.50" not in mismatch.explanation  # money only in the masked details
    opened = AuditEvent.objects.filter(action="reconciliation.exception_opened")
    assert opened.count() == 3 and opened.first().actor == people.finance
    # again: refused, one exception per difference
    [again] = actions.open_exceptions([Difference.objects.get(pk=m2.pk)], people.finance)
    assert not again.ok and f"#{exc.pk}" in again.message
    # resolving the exception leaves the difference as it is (the next run tells)
    services.resolve([exc], reason="invoice raised by hand", actor=people.finance)
    assert Difference.objects.get(pk=m2.pk).state == Difference.State.EXCEPTION_OPENED


def test_routing_rules_place_reconciliation_exceptions_by_legal_entity(people, run) -> None:
    RoutingRule.objects.create(
        name="Reconciliation of US01 goes to Finance US",
        position=1,
        queue=scenario.queue("finance-us"),
        codes=[ExceptionCode.RECONCILIATION_MISSING_IN_TARGET],
        legal_entity_codes=["US01"],
    )
    diffs = differences(run)
    actions.open_exceptions([diffs["u1"], diffs["m2"]], people.finance)
    us = Difference.objects.get(pk=diffs["u1"].pk).exception
    uk = Difference.objects.get(pk=diffs["m2"].pk).exception
    assert us.queue.slug == "finance-us" and us.routed_by.name.endswith("Finance US")
    assert (us.amount, us.currency) == (Decimal("500.00"), "USD")
    assert uk.queue.team.kind == "finance" and uk.queue.slug != "finance-us"


@pytest.mark.parametrize(
    ("kind", "owner", "queue"),
    [("customers", "sales_ops", "sales-ops"), ("time_entries", "pmo", "pmo-emea")],
)
def test_each_comparison_sends_its_differences_to_its_owner(people, kind, owner, queue) -> None:
    definition = scenario.definition(kind)
    run = scenario.finished_run(definition, [record("k1", None, name="Acme", hours="8")], [])
    [outcome] = actions.open_exceptions(list(differences(run).values()), people.finance)
    exc = Difference.objects.get(run=run).exception
    assert exc.queue.team.kind == owner and exc.queue.slug == queue, outcome
    assert exc.entity_type == catalogue.get(kind).entity
    assert exc.amount is None  # no amounts compared: none carried


def test_the_same_difference_in_a_later_run_adds_an_occurrence(people, run) -> None:
    actions.open_exceptions([differences(run)["m2"]], people.finance)
    again = invoice_run(run.definition)
    actions.open_exceptions([differences(again)["m2"]], people.finance)
    exc = IntegrationException.objects.get(code=ExceptionCode.RECONCILIATION_MISSING_IN_TARGET)
    assert exc.occurrences == 2
    assert differences(again)["m2"].exception == exc


def test_accepting_a_difference_resolves_its_exception(people, run) -> None:
    actions.open_exceptions([differences(run)["m4"]], people.finance)
    actions.accept([differences(run)["m4"]], people.finance, "rounding agreed with customer")
    exc = differences(run)["m4"].exception
    assert exc.status == ExceptionStatus.RESOLVED
    assert "rounding agreed" in exc.resolution


# -- re-sync -----------------------------------------------------------------------------------


def test_resync_queues_what_the_resyncer_accepts(people, run, monkeypatch) -> None:
    use_resyncer(monkeypatch, "tests.reconciliation.test_actions.answering_resync")
    CALLS.clear()
    diffs = differences(run)
    actions.accept([diffs["m5"]], people.finance, "paid early")
    chosen = [differences(run)[k] for k in ("m2", "m4", "m3", "m5", "m8")]
    outcomes = {o.difference.key: o for o in actions.resync(chosen, people.finance)}

    # one call for the definition, the refused ones left out
    assert [(run.definition.name, ["m2", "m3", "m4"])] == CALLS
    assert outcomes["m2"].ok and outcomes["m2"].message.startswith("queued")
    assert not outcomes["m4"].ok and outcomes["m4"].message == "not re-synced: locked"
    assert not outcomes["m3"].ok and "no outcome" in outcomes["m3"].message
    assert not outcomes["m5"].ok and "Accepted" in outcomes["m5"].message
    assert not outcomes["m8"].ok and "duplicate" in outcomes["m8"].message
    states = {k: d.state for k, d in differences(run).items()}
    assert states["m2"] == Difference.State.RESYNC_QUEUED
    assert states["m4"] == states["m3"] == Difference.State.OPEN
    audited = AuditEvent.objects.filter(action="reconciliation.resync")
    assert sorted(e.data["key"] for e in audited) == ["m2", "m3", "m4"]
    # queued once: not again
    [again] = actions.resync([differences(run)["m2"]], people.finance)
    assert not again.ok and "Already queued" in again.message


def test_resync_refuses_cleanly_when_it_cannot(people, run, monkeypatch) -> None:
    use_resyncer(monkeypatch, "tests.reconciliation.nowhere.resync")
    [missing] = actions.resync([differences(run)["m2"]], people.finance)
    assert not missing.ok and "not available" in missing.message
    use_resyncer(monkeypatch, "tests.reconciliation.test_actions.failing_resync")
    [failed] = actions.resync([differences(run)["m2"]], people.finance)
    assert not failed.ok and "ERP read-only for maintenance" in failed.message
    assert differences(run)["m2"].state == Difference.State.OPEN


def test_no_more_than_the_bulk_limit_at_once(people, run, monkeypatch) -> None:
    monkeypatch.setattr("reconciliation.actions.common.MAX_DIFFERENCES", 2)
    with pytest.raises(actions.InvalidInput):
        actions.accept(list(differences(run).values()), people.finance, "too many")


# -- definitions -------------------------------------------------------------------------------


def test_editing_a_definition_is_validated_audited_and_reschedules(people) -> None:
    definition = scenario.definition()
    with pytest.raises(actions.InvalidInput, match="crontab"):
        actions.update_definition(definition, people.finance, {"schedule": "every night"})
    changed = actions.update_definition(
        definition,
        people.finance,
        {"amount_tolerance_cents": 50, "schedule": "15 4 * * 1-5", "enabled": True},
    )
    assert changed == ["amount_tolerance_cents", "schedule"]
    task = PeriodicTask.objects.get(pk=definition.periodic_task_id)
    assert (task.crontab.minute, task.crontab.hour, task.crontab.day_of_week) == ("15", "4", "1-5")
    event = AuditEvent.objects.get(action="reconciliation.definition_changed")
    assert event.data["changes"]["amount_tolerance_cents"] == ["0", "50"]
    assert actions.update_definition(definition, people.finance, {"enabled": True}) == []


def test_run_now_queues_one_run_at_a_time(people, django_capture_on_commit_callbacks) -> None:
    definition = scenario.definition()
    with django_capture_on_commit_callbacks(execute=False):
        run = actions.start_run(definition, people.it_admin, full=True)
    assert (run.status, run.mode, run.trigger) == ("queued", "full", "manual")
    assert run.requested_by == people.it_admin
    with pytest.raises(actions.ActionRefused, match=f"Run #{run.pk}"):
        actions.start_run(definition, people.finance)
    Run.objects.filter(pk=run.pk).update(status=Run.Status.DONE)
    with django_capture_on_commit_callbacks(execute=False):
        assert actions.start_run(definition, people.finance).pk != run.pk


def test_editing_the_periodic_task_updates_the_definition() -> None:
    definition = scenario.definition()
    task = PeriodicTask.objects.get(pk=definition.periodic_task_id)
    task.crontab = CrontabSchedule.objects.create(minute="5", hour="1", timezone="UTC")
    task.enabled = False
    task.save()
    definition.refresh_from_db()
    assert (definition.schedule, definition.enabled) == ("5 1 * * *", False)
    task.crontab.hour = "2"
    task.crontab.save()
    definition.refresh_from_db()
    assert definition.schedule == "5 2 * * *"


# -- a failed run ------------------------------------------------------------------------------


def test_a_failed_run_opens_one_exception_for_it_until_a_run_succeeds(people) -> None:
    definition = scenario.definition()
    first = Run.objects.create(definition=definition, status=Run.Status.FAILED)
    run_finished.send(sender=Run, run=first, error=AuthError("token expired"))
    exc = IntegrationException.objects.get(entity_type="reconciliation_definition")
    assert exc.code == ExceptionCode.AUTHENTICATION_FAILED
    assert (exc.category, exc.queue.slug) == (Category.TECHNICAL, "it-integration")
    assert exc.entity_ref == definition.name
    assert f"run #{first.pk}" in exc.explanation
    # a not-found answer during a pull is still IT's, not Sales Ops'
    second = Run.objects.create(definition=definition, status=Run.Status.FAILED)
    run_finished.send(sender=Run, run=second, error=NotFoundError("no such saved search"))
    other = IntegrationException.objects.exclude(pk=exc.pk).get()
    assert (other.code, other.queue.slug) == (
        ExceptionCode.VENDOR_RESPONSE_INVALID,
        "it-integration",
    )
    run_finished.send(sender=Run, run=first, error=AuthError("token expired"))
    exc.refresh_from_db()
    assert exc.occurrences == 2
    done = invoice_run(definition)
    run_finished.send(sender=Run, run=done, error=None)
    assert set(IntegrationException.objects.values_list("status", flat=True)) == {
        ExceptionStatus.RESOLVED
    }


def test_a_run_that_cannot_pull_fails_into_its_queue(people) -> None:
    """runs.execute over an unreachable connection (or a comparison without pullers yet):
    the run fails with the reason, and IT gets the exception."""
    definition = scenario.definition("customers")
    run = Run.objects.create(definition=definition)
    with pytest.raises(Exception):  # noqa: B017  (whatever the pull raised is re-raised)
        runs.execute(run.pk)
    run.refresh_from_db()
    assert run.status == Run.Status.FAILED and run.error
    exc = IntegrationException.objects.get(entity_ref=definition.name)
    assert exc.queue.slug == "it-integration" and exc.category == Category.TECHNICAL
