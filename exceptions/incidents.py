"""Incidents: the second level of grouping. Exceptions that share one root cause (an ERP
accounting period closed, a vendor outage, one legal entity without its tax registration,
one missing project template) gather into one incident: one alert when it opens, one place
that shows how many records it blocks and how much money, resolved (with a second alert)
when the last of its exceptions is resolved.

The cause key is derived from the failure's facts by one function per failure code
(`CAUSES`); a code without a shared cause (a deal's own bad data, one person missing in the
ERP) gets no incident. A cause may be named by another code than the exception's: a posting
batch refused because the period is closed joins the closed-period incident of the invoices.
At most one incident per cause key is open at a time (a unique constraint); a cause that
comes back after its incident resolved opens a new one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import Count, Sum
from django.utils import timezone

from console import audit
from integrations.models import Connection, SyncStep
from integrations.workflows.failures import StepFailure

from .choices import ACTIVE_STATUSES, AlertEvent, ExceptionCode, ExceptionStatus, IncidentStatus
from .models import Incident, IntegrationException
from .money import CENT

logger = logging.getLogger(__name__)

C = ExceptionCode


@dataclass(frozen=True)
class Cause:
    """A root cause several exceptions can share: its code, stable key and title."""

    code: ExceptionCode
    key: str
    title: str


@dataclass(frozen=True)
class Facts:
    """What a cause function may look at: the failure and where it happened."""

    failure: StepFailure
    step_name: str = ""
    connection: Connection | None = None

    @property
    def details(self) -> dict:
        return self.failure.details if isinstance(self.failure.details, dict) else {}

    @property
    def connection_label(self) -> str:
        return self.connection.name if self.connection is not None else ""


def _key(code: str, *parts: object) -> str:
    raw = ":".join([code, *(str(p) for p in parts)])
    if len(raw) <= 200:
        return raw
    return f"{code}:{hashlib.sha256(raw.encode()).hexdigest()[:40]}"


# -- cause functions, one per failure code ---------------------------------------------------

PERIOD_NAME = re.compile(r"[Tt]he period (?P<name>[\w .-]+?) is (?:closed|locked)")
PERIOD_CLOSED_WORDS = re.compile(r"accounting period|period .* (?:closed|locked)", re.IGNORECASE)
DATED = re.compile(r"dated (?P<month>\d{4}-\d{2})-\d{2}")
SETTING_NAME = re.compile(r"setting (?P<name>[a-z_][a-z0-9_]*)")


def closed_period(facts: Facts) -> Cause | None:
    """An invoice (or posting) dated in a closed period: per ERP and period."""
    if facts.connection is None:
        return None
    details = facts.details
    match = PERIOD_NAME.search(facts.failure.message)
    period = str(details.get("period") or (match.group("name") if match else ""))
    if not period:
        date = str(details.get("invoice_date") or details.get("date") or "")
        dated = DATED.search(facts.failure.message)
        period = date[:7] or (dated.group("month") if dated else "")  # the date's month
    period = period or "unknown period"
    return Cause(
        C.CLOSED_ACCOUNTING_PERIOD,
        _key(C.CLOSED_ACCOUNTING_PERIOD, facts.connection.pk, period),
        f"Accounting period {period} is closed in {facts.connection_label}",
    )


def posting_refused(facts: Facts) -> Cause | None:
    """Postings refused because their period is closed share the closed-period incident;
    other refusals (an inactive employee, a bad reference) are each their own matter."""
    if PERIOD_CLOSED_WORDS.search(facts.failure.message):
        return closed_period(facts)
    return None


def vendor_outage(label: str) -> Callable[[Facts], Cause | None]:
    """A vendor down, refusing for volume or refusing the credentials: per connection."""

    def cause(facts: Facts) -> Cause | None:
        if facts.connection is None:
            return None
        rule_code = {
            "transient": C.VENDOR_UNAVAILABLE,
            "rate_limited": C.RATE_LIMIT_EXHAUSTED,
            "auth": C.AUTHENTICATION_FAILED,
        }[facts.failure.code]
        return Cause(
            rule_code,
            _key(rule_code, facts.connection.pk),
            f"{facts.connection_label}: {label}",
        )

    return cause


def legal_entity_in_erp(facts: Facts) -> Cause | None:
    """A legal entity's ERP set-up is missing (tax registration, subsidiary binding): per
    ERP and legal entity."""
    code = C(_CODE_OF[facts.failure.code])
    entity = facts.failure.entity_ref
    if not entity:
        return None
    where = facts.connection_label or "the ERP"
    title = {
        C.TAX_CONFIGURATION_MISSING: f"Legal entity {entity} has no tax registration in {where}",
        C.LEGAL_ENTITY_NOT_IN_ERP: f"Legal entity {entity} has no subsidiary in {where}",
    }[code]
    return Cause(code, _key(code, facts.connection.pk if facts.connection else "-", entity), title)


def unknown_legal_entity(facts: Facts) -> Cause | None:
    entity = facts.failure.entity_ref
    if not entity:
        return None
    return Cause(
        C.LEGAL_ENTITY_UNKNOWN,
        _key(C.LEGAL_ENTITY_UNKNOWN, entity),
        f"Deals name legal entity {entity}, which Throughline does not know",
    )


def missing_template(facts: Facts) -> Cause | None:
    template = facts.failure.entity_ref
    if not template:
        return None
    return Cause(
        C.PROJECT_TEMPLATE_NOT_FOUND,
        _key(C.PROJECT_TEMPLATE_NOT_FOUND, template),
        f"Project template {template} does not exist",
    )


def erp_setting_missing(facts: Facts) -> Cause | None:
    """A setting of the ERP connection is missing: per connection and setting."""
    details = facts.details
    match = SETTING_NAME.search(facts.failure.message)
    setting = str(details.get("setting") or (match.group("name") if match else ""))
    where = str(details.get("connection") or facts.failure.entity_ref or facts.connection_label)
    if not setting or not where:
        return None
    return Cause(
        C.ERP_CONFIGURATION_MISSING,
        _key(C.ERP_CONFIGURATION_MISSING, where, setting),
        f"{where} has no {setting} configured",
    )


def vendor_missing(facts: Facts) -> Cause | None:
    """Subcontractors' firms missing as vendors in the ERP: per ERP and firm(s)."""
    details = facts.details
    vendors = details.get("vendors") or ([details["vendor"]] if details.get("vendor") else [])
    where = str(details.get("connection") or facts.connection_label)
    if not vendors or not where:
        return None
    names = ", ".join(sorted(str(v).removeprefix("vendor:") for v in vendors))
    return Cause(
        C.ERP_CONFIGURATION_MISSING,
        _key(C.ERP_CONFIGURATION_MISSING, where, "vendor", names),
        f"Vendor {names} is missing in {where}",
    )


def no_connection(facts: Facts) -> Cause | None:
    system = facts.failure.entity_ref
    return Cause(
        C.CONNECTION_MISSING,
        _key(C.CONNECTION_MISSING, system),
        f"No enabled {system.upper() or 'system'} connection is configured",
    )


def vendor_changed_api(facts: Facts) -> Cause | None:
    """A vendor answering with data of the wrong shape: per connection and operation."""
    operation = str(facts.details.get("operation") or "")
    if facts.connection is None or not operation:
        return None
    return Cause(
        C.VENDOR_RESPONSE_INVALID,
        _key(C.VENDOR_RESPONSE_INVALID, facts.connection.pk, operation),
        f"{facts.connection_label} answers {operation} with data of an unexpected shape",
    )


def internal_bug(facts: Facts) -> Cause | None:
    """One defect in Throughline failing many runs: per step and error type."""
    kind = facts.failure.message.split(":", 1)[0].strip()[:60]
    if not kind:
        return None
    where = facts.step_name or facts.failure.entity_type or "a step"
    return Cause(
        C.INTERNAL_ERROR,
        _key(C.INTERNAL_ERROR, where, kind),
        f"Throughline fails with {kind} in {where}",
    )


#: failure code -> exception code, where one function serves several
_CODE_OF = {
    "tax_configuration_missing": C.TAX_CONFIGURATION_MISSING,
    "legal_entity_not_in_erp": C.LEGAL_ENTITY_NOT_IN_ERP,
}

#: failure code (see classification.RULES) -> how to derive its shared cause
CAUSES: dict[str, Callable[[Facts], Cause | None]] = {
    "closed_accounting_period": closed_period,
    "posting_refused_by_erp": posting_refused,
    "transient": vendor_outage("vendor unavailable"),
    "rate_limited": vendor_outage("rate limit exhausted"),
    "auth": vendor_outage("authentication failed"),
    "tax_configuration_missing": legal_entity_in_erp,
    "legal_entity_not_in_erp": legal_entity_in_erp,
    "legal_entity_unknown": unknown_legal_entity,
    "project_template_not_found": missing_template,
    "erp_configuration_missing": erp_setting_missing,
    "purchase_order_vendor_not_in_erp": vendor_missing,
    "vendor_not_in_erp": vendor_missing,
    "connection_missing": no_connection,
    "bad_response": vendor_changed_api,
    "internal_error": internal_bug,
}


def cause_of(
    failure: StepFailure, *, step: SyncStep | None = None, connection: Connection | None = None
) -> Cause | None:
    """The shared root cause of a failure, or None when it has none."""
    derive = CAUSES.get(failure.code)
    if derive is None:
        return None
    if connection is None and failure.connection_id:
        connection = Connection.objects.filter(pk=failure.connection_id).first()
    return derive(Facts(failure, step_name=step.name if step else "", connection=connection))


# -- attaching and resolving -----------------------------------------------------------------


def incident_for(
    exc: IntegrationException,
    failure: StepFailure,
    *,
    step: SyncStep | None = None,
    now: dt.datetime | None = None,
) -> Incident | None:
    """The open incident of the failure's cause (opened now if none is), its last_seen
    moved to now; None when the failure has no shared cause. The caller saves
    `exc.incident`. Runs inside the caller's transaction; an incident opened here is
    audited and its "opened" alert goes out after commit."""
    cause = cause_of(failure, step=step, connection=exc.connection)
    if cause is None:
        return None
    now = now or timezone.now()
    incident = _open_incident(cause, exc, now)
    if incident.last_seen < now:
        Incident.objects.filter(pk=incident.pk, last_seen__lt=now).update(last_seen=now)
        incident.last_seen = now
    return incident


def _open_incident(cause: Cause, exc: IntegrationException, now: dt.datetime) -> Incident:
    existing = (
        Incident.objects.select_for_update(of=("self",))
        .filter(cause_key=cause.key, status=IncidentStatus.OPEN)
        .first()
    )
    if existing is not None:
        return existing
    try:
        with transaction.atomic():  # a savepoint: a racing opener wins the constraint
            incident = Incident.objects.create(
                cause_key=cause.key,
                code=cause.code,
                title=cause.title[:300],
                queue=exc.queue,
                first_seen=now,
                last_seen=now,
            )
    except IntegrityError:
        return Incident.objects.select_for_update(of=("self",)).get(
            cause_key=cause.key, status=IncidentStatus.OPEN
        )
    audit.record(
        "incident.opened",
        f"Incident #{incident.pk} opened in {incident.queue}: {incident.title}",
        obj=incident,
        correlation_id=exc.run.correlation_id if exc.run_id else "",
        cause_key=cause.key,
        first_exception=exc.pk,
    )
    logger.info("incident %s opened in %s: %s", incident.pk, incident.queue, cause.key)
    from . import alerts

    alerts.announce(incident, AlertEvent.OPENED)
    return incident


def reattach(exc: IntegrationException, *, now: dt.datetime | None = None) -> Incident | None:
    """A resolved exception opened again (a person reopened it) whose incident has resolved
    joins the open incident of the same cause (opened again, with its alert, if none is).
    Call it after the exception is saved active; the caller's transaction holds it."""
    old = exc.incident
    if old is None or old.status == IncidentStatus.OPEN:
        return old
    now = now or timezone.now()
    cause = Cause(ExceptionCode(old.code), old.cause_key, old.title)
    incident = _open_incident(cause, exc, now)
    IntegrationException.objects.filter(pk=exc.pk).update(incident=incident)
    exc.incident = incident
    return incident


def resolve_cleared(incident_ids: Iterable[int], *, now: dt.datetime | None = None) -> int:
    """Resolve the open incidents among `incident_ids` none of whose exceptions is still
    unresolved; each says why (its last exception's resolution), is audited and sends its
    "resolved" alert after commit. Returns how many resolved."""
    ids = {pk for pk in incident_ids if pk}
    if not ids:
        return 0
    now = now or timezone.now()
    resolved = 0
    with transaction.atomic():
        # lock first (FOR UPDATE takes no aggregates), then count what is still unresolved
        candidates = list(
            Incident.objects.select_for_update(of=("self",))
            .filter(pk__in=ids, status=IncidentStatus.OPEN)
            .select_related("queue")
            .order_by("pk")
        )
        pending = set(
            IntegrationException.objects.filter(incident__in=candidates)
            .exclude(status=ExceptionStatus.RESOLVED)
            .values_list("incident_id", flat=True)
            .distinct()
        )
        for incident in candidates:
            if incident.pk in pending:
                continue
            last = (
                IntegrationException.objects.filter(incident=incident)
                .order_by("-resolved_at", "-pk")
                .first()
            )
            incident.status = IncidentStatus.RESOLVED
            incident.resolved_at = now
            incident.save(update_fields=["status", "resolved_at"])
            why = resolution_of(incident, last)
            audit.record(
                "incident.resolved",
                f"Incident #{incident.pk} resolved: {why}",
                obj=incident,
                correlation_id=last.run.correlation_id if last and last.run_id else "",
            )
            from . import alerts

            alerts.announce(incident, AlertEvent.RESOLVED)
            resolved += 1
    return resolved


def resolution_of(incident: Incident, last: IntegrationException | None = None) -> str:
    """Why an incident resolved, in words: all its records are resolved, the last how."""
    if incident.status != IncidentStatus.RESOLVED:
        return ""
    if last is None:
        last = (
            IntegrationException.objects.filter(incident=incident)
            .order_by("-resolved_at", "-pk")
            .first()
        )
    count = IntegrationException.objects.filter(incident=incident).count()
    records = "its only record is" if count == 1 else f"all {count} of its records are"
    reason = f" The last: {last.resolution}" if last is not None and last.resolution else ""
    return f"The cause is fixed: {records} resolved.{reason}"


# -- what an incident blocks -----------------------------------------------------------------


@dataclass
class Impact:
    """What an incident holds up: records (exceptions) still waiting, their failures, and
    their money per currency. A resolved incident shows what it held up while open."""

    blocked: int = 0
    occurrences: int = 0
    records: int = 0
    money: dict[str, Decimal] = field(default_factory=dict)

    @property
    def money_list(self) -> list[tuple[str, Decimal]]:
        return sorted(self.money.items())


def impacts(incidents: Iterable[Incident]) -> dict[int, Impact]:
    """Impact per incident id, in two queries for any number of incidents."""
    incidents = list(incidents)
    open_ids = {i.pk for i in incidents if i.status == IncidentStatus.OPEN}
    result = {i.pk: Impact() for i in incidents}
    if not result:
        return result
    rows = (
        IntegrationException.objects.filter(incident__in=list(result))
        .values("incident_id", "status")
        .annotate(n=Count("pk"), seen=Sum("occurrences"))
    )
    for row in rows:
        impact = result[row["incident_id"]]
        impact.records += row["n"]
        active = row["status"] in ACTIVE_STATUSES
        if active:
            impact.blocked += row["n"]
        # an open incident counts what still waits; a resolved one what it held up
        if active or row["incident_id"] not in open_ids:
            impact.occurrences += row["seen"] or 0
    money: dict[int, dict[str, Decimal]] = defaultdict(dict)
    sums = (
        IntegrationException.objects.filter(incident__in=list(result), amount__isnull=False)
        .exclude(currency="")
        .values("incident_id", "status", "currency")
        .annotate(total=Sum("amount"))
    )
    for row in sums:
        if row["incident_id"] in open_ids and row["status"] not in ACTIVE_STATUSES:
            continue
        per = money[row["incident_id"]]
        total = Decimal(row["total"]).quantize(CENT)  # SQLite sums with extra digits
        per[row["currency"]] = per.get(row["currency"], Decimal("0.00")) + total
    for pk, per in money.items():
        result[pk].money = per
    return result
