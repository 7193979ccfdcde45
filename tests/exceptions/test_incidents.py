"""Incidents, the second level of grouping: exceptions sharing a root cause gather into one
incident that shows what it blocks and how much money, alerts once (not once per record),
and resolves, with a second alert, when its last exception is resolved. Exceptions whose
records later sync are resolved automatically and say so."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from django.core import mail

from console.choices import Role, TeamKind
from console.models import AuditEvent, Membership, User
from exceptions import alerts, incidents, lifecycle, services
from exceptions.choices import AlertChannel, AlertEvent, ExceptionCode, ExceptionStatus
from exceptions.models import Alert, Incident, IntegrationException, Queue
from integrations.choices import Vendor
from integrations.models import Connection, PostingBatch, SyncRun
from integrations.signals import entries_posted, runs_succeeded
from integrations.workflows.failures import StepFailure
from tests.factories import make_connection, make_queue, make_run, make_team

pytestmark = pytest.mark.django_db

PERIOD_CLOSED = (
    "The transaction date you specified is not within the date range of your accounting "
    "period. The period Sep 2026 is closed."
)
WEBHOOK = "https://hooks.example.com/services/T000/B000/XXXX"


@pytest.fixture
def finance() -> Queue:
    queue = make_queue(make_team(TeamKind.FINANCE))
    queue.alert_emails = "finance-team@example.com, controller@example.com"
    queue.alert_webhook_url = WEBHOOK
    queue.save()
    return queue


@pytest.fixture
def it_queue() -> Queue:
    return make_queue(make_team(TeamKind.IT), name="IT Integration")


@pytest.fixture
def erp() -> Connection:
    return make_connection(Vendor.NETSUITE, name="NetSuite")


def invoice_failure(erp: Connection, n: int) -> StepFailure:
    return StepFailure(
        kind="business",
        code="closed_accounting_period",
        message=f"NetSuite refused the invoice dated 2026-09-{n + 1:02d}: {PERIOD_CLOSED}",
        entity_type="invoice",
        entity_ref=f"TL-INV-{n}",
        connection_id=erp.pk,
        details={"vendor_code": "USER_ERROR", "field": "tranDate"},
    )


def milestone_run(amount: str, currency: str = "EUR") -> SyncRun:
    """A billing run that loaded its milestone (the money the invoice carries)."""
    return make_run(
        "release_milestone_billing",
        steps=("load_milestone", "ensure_invoice_customer", "create_invoice"),
        context={"load_milestone": {"completion": {"amount": amount, "currency": currency}}},
    )


def open_invoice_exception(erp: Connection, n: int, amount: str, currency: str = "EUR"):
    run = milestone_run(amount, currency)
    step = run.steps.get(name="create_invoice")
    return services.open_exception(
        invoice_failure(erp, n), run=run, step=step, key=(run.correlation_id, step.name)
    )


def test_ten_invoices_in_a_closed_period_are_one_incident_with_one_alert(
    finance, erp, webhook, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        opened = [open_invoice_exception(erp, n, "1000.10") for n in range(8)]
        opened += [open_invoice_exception(erp, n, "250.00", "GBP") for n in range(8, 10)]

    assert Incident.objects.count() == 1
    incident = Incident.objects.get()
    assert {e.incident_id for e in opened} == {incident.pk}
    assert incident.code == ExceptionCode.CLOSED_ACCOUNTING_PERIOD
    assert incident.title == "Accounting period Sep 2026 is closed in NetSuite"
    assert incident.queue == finance
    impact = incidents.impacts([incident])[incident.pk]
    assert impact.blocked == 10
    assert impact.money == {"EUR": Decimal("8000.80"), "GBP": Decimal("500.00")}
    assert all(isinstance(v, Decimal) for v in impact.money.values())

    # one alert per channel, not ten
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["finance-team@example.com", "controller@example.com"]
    assert "Incident opened: Accounting period Sep 2026 is closed in NetSuite" in message.subject
    assert "Blocks 10 records" in message.body
    assert "8000.80 EUR" in message.body and "500.00 GBP" in message.body
    assert f"/exceptions/incidents/{incident.pk}/" in message.body
    assert len(webhook) == 1
    sent = json.loads(webhook[0].read().decode())
    assert "Accounting period Sep 2026" in sent["text"]
    assert sent["event"] == "opened"
    assert sent["incident"]["blocked_records"] == 10
    alerts_sent = Alert.objects.filter(incident=incident, event=AlertEvent.OPENED)
    assert alerts_sent.count() == 2
    assert all(a.sent_at is not None and not a.error for a in alerts_sent)
    assert AuditEvent.objects.filter(action="incident.opened").count() == 1


def test_a_repeat_keeps_its_incident_and_moves_last_seen(finance, erp):
    run = milestone_run("10.00")
    step = run.steps.get(name="create_invoice")
    first = services.open_exception(invoice_failure(erp, 1), run=run, step=step, key=("k",))
    seen = Incident.objects.get().last_seen
    again = services.open_exception(invoice_failure(erp, 1), run=run, step=step, key=("k",))
    assert again.pk == first.pk and again.occurrences == 2
    incident = Incident.objects.get()
    assert again.incident_id == incident.pk
    assert incident.last_seen >= seen


def test_postings_refused_for_the_closed_period_join_the_invoices_incident(finance, erp):
    open_invoice_exception(erp, 1, "100.00")
    posting = StepFailure(
        kind="business",
        code="posting_refused_by_erp",
        message=f"NetSuite refused 3 time entries (USER_ERROR): {PERIOD_CLOSED}",
        entity_type="posting_batch",
        entity_ref="time:1:2:1:3:3",
        connection_id=erp.pk,
        details={
            "vendor_code": "USER_ERROR",
            "entries": ["1", "2", "3"],
            "amounts": {"EUR": "300.00"},
        },
    )
    exc = services.open_exception(posting, key=("time:1:2:1:3:3", "USER_ERROR"))
    incident = Incident.objects.get()
    assert exc.incident_id == incident.pk
    assert (exc.amount, exc.currency) == (Decimal("300.00"), "EUR")
    assert incidents.impacts([incident])[incident.pk].money == {"EUR": Decimal("400.00")}


def test_resolving_every_exception_resolves_the_incident_and_says_so(
    finance, erp, webhook, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        opened = [open_invoice_exception(erp, n, "10.00") for n in range(3)]
    incident = Incident.objects.get()
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        services.resolve(opened[:2], reason="Retried after the period reopened.")
    incident.refresh_from_db()
    assert incident.status == "open"
    assert mail.outbox == []

    with django_capture_on_commit_callbacks(execute=True):
        services.resolve(opened[2:], reason="The run succeeded after the retry.")
    incident.refresh_from_db()
    assert incident.status == "resolved" and incident.resolved_at is not None
    why = incidents.resolution_of(incident)
    assert "all 3 of its records are resolved" in why
    assert "The run succeeded after the retry." in why
    event = AuditEvent.objects.get(action="incident.resolved")
    assert str(incident.pk) == event.object_id and "all 3" in event.summary
    # the "resolved" alert: one e-mail, one webhook post
    assert len(mail.outbox) == 1
    assert mail.outbox[0].subject.startswith("[Throughline] Incident resolved:")
    assert "all 3 of its records are resolved" in mail.outbox[0].body
    assert [r.read() for r in webhook][-1].count(b'"event":"resolved"') == 1
    assert Alert.objects.filter(incident=incident, event=AlertEvent.RESOLVED).count() == 2


def test_the_cause_coming_back_after_resolution_opens_a_new_incident(finance, erp):
    first = open_invoice_exception(erp, 1, "10.00")
    services.resolve([first], reason="fixed")
    again = open_invoice_exception(erp, 2, "10.00")
    assert Incident.objects.count() == 2
    assert again.incident.status == "open" and again.incident_id != first.incident_id


def test_ignored_exceptions_keep_the_incident_open(finance, erp):
    one = open_invoice_exception(erp, 1, "10.00")
    two = open_invoice_exception(erp, 2, "10.00")
    IntegrationException.objects.filter(pk=two.pk).update(status=ExceptionStatus.IGNORED)
    services.resolve([one], reason="fixed")
    assert Incident.objects.get().status == "open"


@pytest.mark.parametrize(
    ("failure", "expected_code", "title"),
    [
        (
            StepFailure(
                kind="business",
                code="tax_configuration_missing",
                message="no tax",
                entity_type="legal_entity",
                entity_ref="DE01",
            ),
            ExceptionCode.TAX_CONFIGURATION_MISSING,
            "Legal entity DE01 has no tax registration in NetSuite",
        ),
        (
            StepFailure(
                kind="business",
                code="legal_entity_not_in_erp",
                message="unbound",
                entity_type="legal_entity",
                entity_ref="UK01",
            ),
            ExceptionCode.LEGAL_ENTITY_NOT_IN_ERP,
            "Legal entity UK01 has no subsidiary in NetSuite",
        ),
        (
            StepFailure(
                kind="business",
                code="project_template_not_found",
                message="no template",
                entity_type="project_template",
                entity_ref="LEGACY-X",
            ),
            ExceptionCode.PROJECT_TEMPLATE_NOT_FOUND,
            "Project template LEGACY-X does not exist",
        ),
        (
            StepFailure(kind="connector", code="transient", message="503"),
            ExceptionCode.VENDOR_UNAVAILABLE,
            "NetSuite: vendor unavailable",
        ),
        (
            StepFailure(kind="connector", code="rate_limited", message="429"),
            ExceptionCode.RATE_LIMIT_EXHAUSTED,
            "NetSuite: rate limit exhausted",
        ),
        (
            StepFailure(kind="connector", code="auth", message="401"),
            ExceptionCode.AUTHENTICATION_FAILED,
            "NetSuite: authentication failed",
        ),
        (
            StepFailure(
                kind="business",
                code="erp_configuration_missing",
                message="NetSuite has no milestone billing item configured (connection "
                "setting milestone_item_id).",
                entity_type="connection",
                entity_ref="NetSuite",
            ),
            ExceptionCode.ERP_CONFIGURATION_MISSING,
            "NetSuite has no milestone_item_id configured",
        ),
        (
            StepFailure(
                kind="business",
                code="purchase_order_vendor_not_in_erp",
                message="missing vendor",
                entity_type="project",
                entity_ref="77",
                details={"connection": "NetSuite", "vendors": ["vendor:Apex Data Consulting"]},
            ),
            ExceptionCode.ERP_CONFIGURATION_MISSING,
            "Vendor Apex Data Consulting is missing in NetSuite",
        ),
    ],
)
def test_shared_causes_gather_exceptions_of_different_records(
    finance, it_queue, erp, failure, expected_code, title
):
    for n in range(3):
        run = make_run()
        failure.connection_id = erp.pk
        services.open_exception(failure, run=run, step=run.steps.get(), key=(str(n),))
    incident = Incident.objects.get()
    assert (incident.code, incident.title) == (expected_code, title)
    assert IntegrationException.objects.filter(incident=incident).count() == 3


def test_same_code_different_cause_is_a_different_incident(finance, erp):
    other = make_connection(Vendor.NETSUITE, name="NetSuite Legacy")
    for connection, entity in ((erp, "DE01"), (erp, "UK01"), (other, "DE01")):
        failure = StepFailure(
            kind="business",
            code="tax_configuration_missing",
            message="no tax",
            entity_type="legal_entity",
            entity_ref=entity,
            connection_id=connection.pk,
        )
        run = make_run()
        services.open_exception(
            failure, run=run, step=run.steps.get(), key=(connection.name, entity)
        )
    assert Incident.objects.count() == 3


def test_failures_without_a_shared_cause_get_no_incident(finance):
    sales = make_queue(make_team(TeamKind.SALES_OPS))
    assert sales
    run = make_run()
    failure = StepFailure(
        kind="business",
        code="deal_data_invalid",
        message="Amount missing",
        entity_type="opportunity",
        entity_ref="006A",
    )
    exc = services.open_exception(failure, run=run, step=run.steps.get(), key=("a",))
    assert exc.incident is None
    assert not Incident.objects.exists()


def test_an_open_incident_for_the_cause_is_joined_not_duplicated(finance, erp):
    cause = incidents.cause_of(invoice_failure(erp, 0))
    existing = Incident.objects.create(
        cause_key=cause.key, code=cause.code, title=cause.title, queue=finance
    )
    exc = open_invoice_exception(erp, 0, "5.00")
    assert exc.incident_id == existing.pk
    assert Incident.objects.count() == 1


def test_the_money_of_a_deal_comes_from_the_run_that_fetched_it(finance, erp):
    run = make_run(
        context={"fetch_deal": {"opportunity": {"amount": "120000.00", "currency": "USD"}}},
        steps=("fetch_deal", "check_legal_entity"),
    )
    failure = StepFailure(
        kind="business",
        code="tax_configuration_missing",
        message="no tax",
        entity_type="legal_entity",
        entity_ref="DE01",
        connection_id=erp.pk,
    )
    exc = services.open_exception(failure, run=run, step=run.steps.last(), key=("x",))
    assert (exc.amount, exc.currency) == (Decimal("120000.00"), "USD")


# -- automatic resolution --------------------------------------------------------------------


@pytest.fixture
def psa() -> Connection:
    return make_connection(Vendor.KANTATA, name="Kantata")


def posting_exception(erp: Connection, key: str, entries: list[str]) -> IntegrationException:
    failure = StepFailure(
        kind="business",
        code="posting_refused_by_erp",
        message="NetSuite refused 2 time entries (INVALID_FLD_VALUE): inactive employee",
        entity_type="posting_batch",
        entity_ref=key,
        connection_id=erp.pk,
        details={"vendor_code": "INVALID_FLD_VALUE", "entries": entries, "record_type": "timeBill"},
    )
    return services.open_exception(failure, key=(key, "INVALID_FLD_VALUE"))


def posted_batch(psa: Connection, erp: Connection, ids: list[str], key: str) -> PostingBatch:
    return PostingBatch.objects.create(
        psa=psa,
        erp=erp,
        record_type="timeBill",
        key=key,
        entries=[{"entry": {"source_id": i}, "erp_id": f"9{i}"} for i in ids],
        status=PostingBatch.Status.POSTED,
    )


def test_a_posting_exception_resolves_when_all_its_entries_post(finance, erp, psa):
    exc = posting_exception(erp, f"time:{psa.pk}:{erp.pk}:1:2:2", ["1", "2"])
    first = posted_batch(psa, erp, ["1", "5"], "time:later:1")
    entries_posted.send(sender=PostingBatch, batch=first, entry_ids=["1", "5"])
    exc.refresh_from_db()
    assert exc.status != ExceptionStatus.RESOLVED  # entry 2 still waits

    second = posted_batch(psa, erp, ["2"], "time:later:2")
    entries_posted.send(sender=PostingBatch, batch=second, entry_ids=["2"])
    exc.refresh_from_db()
    assert exc.status == ExceptionStatus.RESOLVED
    assert "posted to NetSuite: resolved automatically" in exc.resolution
    assert AuditEvent.objects.filter(action="exception.resolved", object_id=str(exc.pk)).exists()


def test_assignment_exceptions_are_not_settled_by_postings(finance, erp, psa):
    failure = StepFailure(
        kind="business",
        code="person_not_in_erp",
        message="2 resource assignments of project 77 cannot be placed in the ERP.",
        entity_type="project",
        entity_ref="77",
        connection_id=psa.pk,
        details={"entries": ["1", "2"], "count": 2},
    )
    exc = services.open_exception(failure, key=(psa.name, "assignment", "person_not_in_erp", "77"))
    batch = posted_batch(psa, erp, ["1", "2"], "time:x")
    entries_posted.send(sender=PostingBatch, batch=batch, entry_ids=["1", "2"])
    exc.refresh_from_db()
    assert exc.status == ExceptionStatus.OPEN


def test_policy_refusals_of_a_project_resolve_when_the_entries_post(finance, erp, psa):
    pmo = make_queue(make_team(TeamKind.PMO))
    assert pmo
    failure = StepFailure(
        kind="business",
        code="project_not_in_erp",
        message="2 approved time entries of project 77 cannot be posted.",
        entity_type="project",
        entity_ref="77",
        connection_id=psa.pk,
        details={"entries": ["11", "12"], "count": 2, "record_type": "timeBill"},
    )
    exc = services.open_exception(failure, key=(psa.name, "project_not_in_erp", "77"))
    batch = posted_batch(psa, erp, ["11", "12"], "time:y")
    entries_posted.send(sender=PostingBatch, batch=batch, entry_ids=["11", "12"])
    exc.refresh_from_db()
    assert exc.status == ExceptionStatus.RESOLVED


def test_a_runless_exception_resolves_when_a_run_syncs_the_same_record(finance, erp):
    failure = StepFailure(
        kind="business",
        code="tax_configuration_missing",
        message="no tax",
        entity_type="legal_entity",
        entity_ref="DE01",
        connection_id=erp.pk,
    )
    run = make_run()
    in_run = services.open_exception(failure, run=run, step=run.steps.get(), key=("r",))
    runless = services.open_exception(failure, key=("no run",))
    violation = IntegrationException.objects.create(
        queue=finance,
        code=ExceptionCode.SYSTEM_OF_RECORD_VIOLATION,
        category="business",
        title="changed",
        explanation="x",
        entity_type="legal_entity",
        entity_ref="DE01",
        connection=erp,
        fingerprint="sor-1",
    )
    runs_succeeded.send(sender=SyncRun, runs=[run])
    for exc in (in_run, runless, violation):
        exc.refresh_from_db()
    assert in_run.status == runless.status == ExceptionStatus.RESOLVED
    assert "synced successfully in a later run" in runless.resolution
    assert violation.status == ExceptionStatus.OPEN
    # and the incident they shared resolved with them
    assert in_run.incident_id == runless.incident_id
    assert Incident.objects.get().status == "resolved"  # the violation was never in it


def test_alert_channels_are_recorded_once_per_event_and_target(finance, erp):
    exc = open_invoice_exception(erp, 1, "1.00")
    again = alerts.announce(exc.incident, AlertEvent.OPENED)
    assert again == []
    assert set(Alert.objects.filter(incident=exc.incident).values_list("channel", flat=True)) == {
        AlertChannel.EMAIL,
        AlertChannel.WEBHOOK,
    }


def test_a_reopened_exception_of_a_resolved_incident_opens_it_again(finance, erp):
    exc = open_invoice_exception(erp, 1, "10.00")
    services.resolve([exc], reason="fixed")
    old = Incident.objects.get()
    assert old.status == "resolved"
    IntegrationException.objects.filter(pk=exc.pk).update(status=ExceptionStatus.OPEN)
    exc.refresh_from_db()
    incident = incidents.reattach(exc)
    assert incident is not None and incident.pk != old.pk
    assert (incident.status, incident.cause_key) == ("open", old.cause_key)
    exc.refresh_from_db()
    assert exc.incident_id == incident.pk
    assert Alert.objects.filter(incident=incident, event=AlertEvent.OPENED).exists()


def test_reopening_by_hand_puts_the_exception_back_in_an_open_incident(finance, erp, webhook):
    member = User.objects.create_user("fin-resolver")
    Membership.objects.create(user=member, team=finance.team, role=Role.RESOLVER)
    exc = open_invoice_exception(erp, 1, "10.00")
    services.resolve([exc], reason="fixed")
    assert Incident.objects.get().status == "resolved"
    exc.refresh_from_db()
    lifecycle.reopen(exc, member)
    exc.refresh_from_db()
    assert exc.status == ExceptionStatus.OPEN
    assert exc.incident.status == "open"  # not left in the resolved incident
    assert Incident.objects.count() == 2
