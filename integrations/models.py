"""The engine's records: connections, reference data it owns, external-id bindings, runs and
their steps, watermarks and API-call telemetry."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models

from . import secrets as secret_box
from .choices import (
    AuthKind,
    BillingModel,
    ErpDocument,
    Region,
    RunStatus,
    StepStatus,
    SystemKind,
    Trigger,
    Vendor,
)


class Connection(models.Model):
    """One CRM, PSA or ERP instance Throughline talks to.

    Secrets are encrypted at rest (see integrations.secrets) and never shown again after they
    are set: forms, the admin and the API only ever show which secret names are stored.
    """

    name = models.CharField(max_length=100, unique=True)
    vendor = models.CharField(max_length=20, choices=Vendor.choices)
    system = models.CharField(max_length=10, choices=SystemKind.choices)
    base_url = models.URLField(max_length=500)
    auth_kind = models.CharField(max_length=20, choices=AuthKind.choices)
    settings = models.JSONField(default=dict, blank=True, help_text="non-secret configuration")
    secrets_ciphertext = models.TextField(blank=True, editable=False)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["system", "name"]

    def __str__(self) -> str:
        return self.name

    @property
    def secrets(self) -> dict[str, Any]:
        return secret_box.decrypt(self.secrets_ciphertext)

    def set_secrets(self, values: dict[str, Any]) -> None:
        """Replace the stored secrets (encrypted); call save() afterwards."""
        self.secrets_ciphertext = secret_box.encrypt(values)

    def update_secrets(self, values: dict[str, Any]) -> None:
        """Merge new secret values over the stored ones; empty values are ignored."""
        merged = self.secrets | {k: v for k, v in values.items() if v}
        self.set_secrets(merged)

    @property
    def secret_names(self) -> list[str]:
        return sorted(self.secrets) if self.secrets_ciphertext else []


class LegalEntity(models.Model):
    """A company of the group that contracts and invoices (ERP subsidiary / company code)."""

    code = models.CharField(max_length=20, unique=True)
    name = models.CharField(max_length=200)
    country = models.CharField(max_length=2)
    currency = models.CharField(max_length=3)
    region = models.CharField(max_length=10, choices=Region.choices)

    class Meta:
        ordering = ["code"]
        verbose_name_plural = "legal entities"

    def __str__(self) -> str:
        return f"{self.code} {self.name}"


class ProjectTemplate(models.Model):
    """How a sold engagement becomes a project: billing model, duration, milestone plan.

    `milestones` is a list of {"name", "percent", "offset_days"}; percents add up to 100 and
    the amounts are computed from the deal value (the last milestone takes the rounding).
    """

    code = models.CharField(max_length=40, unique=True)
    name = models.CharField(max_length=200)
    billing_model = models.CharField(max_length=30, choices=BillingModel.choices)
    duration_days = models.PositiveIntegerField(default=90)
    milestones = models.JSONField(default=list)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.full_clean()
        super().save(*args, **kwargs)

    def clean(self) -> None:
        if not isinstance(self.milestones, list) or not self.milestones:
            raise ValidationError({"milestones": "list at least one milestone"})
        total = Decimal(0)
        for i, item in enumerate(self.milestones):
            if not isinstance(item, dict) or not {"name", "percent"} <= set(item):
                raise ValidationError({"milestones": f"milestone {i + 1} needs name and percent"})
            try:
                total += Decimal(str(item["percent"]))
                int(item.get("offset_days", 0))
            except (ArithmeticError, ValueError, TypeError) as exc:
                raise ValidationError({"milestones": f"milestone {i + 1}: {exc}"}) from exc
        if total != Decimal(100):
            raise ValidationError({"milestones": f"percents add up to {total}, not 100"})


class SystemOfRecordRule(models.Model):
    """Which system owns an entity, or one field of it (field '*' means the whole entity)."""

    entity = models.CharField(max_length=40)
    field = models.CharField(max_length=80, default="*")
    owner = models.CharField(max_length=10, choices=SystemKind.choices)
    note = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["entity", "field"]
        constraints = [
            models.UniqueConstraint(fields=["entity", "field"], name="sor_unique_entity_field")
        ]

    def __str__(self) -> str:
        return f"{self.entity}.{self.field} owned by {self.get_owner_display()}"


class ExternalBinding(models.Model):
    """A canonical entity's id in one connected system (the only place ids are resolved)."""

    entity_type = models.CharField(max_length=40)
    canonical_key = models.CharField(max_length=120, help_text="Throughline's key")
    connection = models.ForeignKey(Connection, on_delete=models.PROTECT, related_name="bindings")
    external_id = models.CharField(max_length=120)
    created_by_run = models.ForeignKey(
        "SyncRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["entity_type", "canonical_key"]
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "entity_type", "external_id"],
                name="binding_unique_external",
            ),
            models.UniqueConstraint(
                fields=["connection", "entity_type", "canonical_key"],
                name="binding_unique_canonical",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.entity_type} {self.canonical_key} = {self.connection}:{self.external_id}"


class Watermark(models.Model):
    """How far a change stream of a connection has been read (polling)."""

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="+")
    stream = models.CharField(max_length=80)
    #: a change time (ISO 8601), or a stream's own JSON (the time and the ids seen at it)
    value = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["connection", "stream"], name="watermark_unique")
        ]

    def __str__(self) -> str:
        return f"{self.connection} {self.stream} @ {self.value}"


class SyncRun(models.Model):
    """One execution of a workflow for one business transaction (its correlation id).

    A workflow runs once per correlation id; retries and replays resume the same run, so a
    replay can never provision a second customer or project.
    """

    workflow = models.CharField(max_length=60, db_index=True)
    correlation_id = models.CharField(max_length=120, db_index=True)
    business_key = models.CharField(
        max_length=120,
        blank=True,
        db_index=True,
        help_text="the business transaction (deal) this run belongs to, for its trace",
    )
    trigger = models.CharField(max_length=10, choices=Trigger.choices)
    status = models.CharField(
        max_length=10, choices=RunStatus.choices, default=RunStatus.PENDING, db_index=True
    )
    source_connection = models.ForeignKey(
        Connection, null=True, blank=True, on_delete=models.PROTECT, related_name="runs"
    )
    title = models.CharField(max_length=255, blank=True)
    input = models.JSONField(default=dict, blank=True)
    context = models.JSONField(default=dict, blank=True)
    error = models.JSONField(default=dict, blank=True)
    legal_entity_code = models.CharField(max_length=20, blank=True, db_index=True)
    region = models.CharField(max_length=10, blank=True, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["workflow", "correlation_id"], name="run_unique_workflow_correlation"
            )
        ]

    def __str__(self) -> str:
        return f"{self.workflow} {self.correlation_id} ({self.status})"

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


class SyncStep(models.Model):
    """One step of a run: its status, attempts, timings, output and error."""

    run = models.ForeignKey(SyncRun, on_delete=models.CASCADE, related_name="steps")
    name = models.CharField(max_length=60)
    position = models.PositiveSmallIntegerField()
    status = models.CharField(max_length=10, choices=StepStatus.choices, default=StepStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    output = models.JSONField(default=dict, blank=True)
    error = models.JSONField(default=dict, blank=True)
    #: set when the step ran for several runs at once: the calls it shared carry the same key
    batch_key = models.CharField(max_length=40, blank=True, db_index=True)

    class Meta:
        ordering = ["run", "position"]
        constraints = [models.UniqueConstraint(fields=["run", "name"], name="step_unique_run_name")]

    def __str__(self) -> str:
        return f"{self.run_id}/{self.name} ({self.status})"


class ApiCall(models.Model):
    """Telemetry of one logical vendor API call (all its attempts)."""

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="calls")
    run = models.ForeignKey(
        SyncRun, null=True, blank=True, on_delete=models.CASCADE, related_name="calls"
    )
    step = models.ForeignKey(
        SyncStep, null=True, blank=True, on_delete=models.CASCADE, related_name="calls"
    )
    operation = models.CharField(max_length=80)
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=500)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.FloatField()
    attempts = models.PositiveSmallIntegerField(default=1)
    idempotency_key = models.CharField(max_length=120, blank=True)
    error_kind = models.CharField(max_length=20, blank=True)
    error_message = models.CharField(max_length=500, blank=True)
    rate_limit = models.JSONField(default=dict, blank=True)
    started_at = models.DateTimeField(db_index=True)
    #: a call made for a batch of runs (one bulk call serving them all) has no run or step of
    #: its own: it carries the batch step's key, and each run's step points at it
    batch_key = models.CharField(max_length=40, blank=True, db_index=True)
    #: how many runs the call served
    runs_served = models.PositiveIntegerField(default=1)

    class Meta:
        ordering = ["started_at", "id"]
        indexes = [models.Index(fields=["connection", "started_at"], name="apicall_conn_time")]

    def __str__(self) -> str:
        return f"{self.operation} {self.status_code} {self.latency_ms:.0f} ms"

    @property
    def retries(self) -> int:
        return max(self.attempts - 1, 0)


class OutboxMessage(models.Model):
    """A task for Celery, written in the same transaction as the change that caused it.

    The transactional outbox: if the transaction commits, the message exists; it is handed to
    the broker right after commit, and a sweeper re-sends what the broker did not take (an
    outage delays work, never loses it). Consumers are idempotent, so a message sent twice
    after a crash does no harm.
    """

    task = models.CharField(max_length=120)
    args = models.JSONField(default=list, blank=True)
    kwargs = models.JSONField(default=dict, blank=True)
    queue = models.CharField(max_length=80, blank=True)
    countdown = models.PositiveIntegerField(
        default=0, help_text="seconds the task waits after it is handed over (low priority)"
    )
    topic = models.CharField(max_length=80, blank=True, db_index=True)
    key = models.CharField(max_length=160, blank=True, help_text="correlation id")
    created_at = models.DateTimeField(auto_now_add=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(
                fields=["created_at"],
                condition=models.Q(sent_at__isnull=True),
                name="outbox_unsent_idx",
            )
        ]

    def __str__(self) -> str:
        state = "sent" if self.sent_at else "pending"
        return f"{self.task}({self.args}) {state}"


class ErpRoute(models.Model):
    """ERP coexistence: which ERP receives one kind of financial record for a legal entity,
    from a date. A phased migration adds routes with later dates (customers and invoices to
    the cloud ERP first, project accounting later); CRM and PSA flows do not change."""

    legal_entity = models.ForeignKey(
        LegalEntity, on_delete=models.CASCADE, related_name="erp_routes"
    )
    document = models.CharField(max_length=20, choices=ErpDocument.choices)
    connection = models.ForeignKey(
        Connection,
        on_delete=models.PROTECT,
        related_name="erp_routes",
        limit_choices_to={"system": SystemKind.ERP},
    )
    effective_from = models.DateField()
    note = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["legal_entity", "document", "-effective_from"]
        constraints = [
            models.UniqueConstraint(
                fields=["legal_entity", "document", "effective_from"],
                name="erp_route_unique_start",
            )
        ]

    def __str__(self) -> str:
        return (
            f"{self.legal_entity.code} {self.get_document_display()} -> {self.connection} "
            f"from {self.effective_from}"
        )

    def clean(self) -> None:
        if self.connection_id and self.connection.system != SystemKind.ERP:
            raise ValidationError({"connection": "an ERP route must name an ERP connection"})


class Expectation(models.Model):
    """A business transaction must reach a milestone by a deadline (a closed-won deal gets a
    project within an hour, a completed milestone an invoice within a day); one that has not
    is stuck, even when no call failed."""

    business_key = models.CharField(max_length=120, db_index=True)
    milestone = models.CharField(max_length=60)
    due_at = models.DateTimeField(db_index=True)
    met_at = models.DateTimeField(null=True, blank=True)
    stuck_at = models.DateTimeField(null=True, blank=True)
    legal_entity_code = models.CharField(max_length=20, blank=True)
    region = models.CharField(max_length=10, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["due_at"]
        constraints = [
            models.UniqueConstraint(fields=["business_key", "milestone"], name="expectation_unique")
        ]

    def __str__(self) -> str:
        state = "met" if self.met_at else ("stuck" if self.stuck_at else "pending")
        return f"{self.business_key} {self.milestone} by {self.due_at:%Y-%m-%d %H:%M} ({state})"


class BusinessTimestamp(models.Model):
    """When a business transaction passed a point (quote sent, closed-won, customer ready,
    project provisioned, invoiced, paid): the raw material of the cycle-time KPIs."""

    business_key = models.CharField(max_length=120, db_index=True)
    name = models.CharField(max_length=60)
    at = models.DateTimeField()
    source = models.CharField(max_length=60, blank=True)

    class Meta:
        ordering = ["at"]
        constraints = [
            models.UniqueConstraint(fields=["business_key", "name"], name="timestamp_unique")
        ]

    def __str__(self) -> str:
        return f"{self.business_key} {self.name} at {self.at:%Y-%m-%d %H:%M}"


class InboundEvent(models.Model):
    """An event handed to Throughline from outside (a vendor webhook, an iPaaS flow, an
    in-house app): kept as received, whether accepted or rejected, so nothing is lost and a
    repeat with the same idempotency key is recognised."""

    class Status(models.TextChoices):
        ACCEPTED = "accepted", "Accepted"
        REJECTED = "rejected", "Rejected"

    source = models.CharField(max_length=120)
    event_type = models.CharField(max_length=80)
    idempotency_key = models.CharField(max_length=200, db_index=True)
    payload = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices)
    error = models.CharField(max_length=1000, blank=True)
    run = models.ForeignKey(
        SyncRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="inbound_events"
    )
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [
            # a rejected event does not reserve its key: the corrected resend may use it
            models.UniqueConstraint(
                fields=["idempotency_key"],
                condition=models.Q(status="accepted"),
                name="inbound_unique_accepted_key",
            )
        ]

    def __str__(self) -> str:
        return f"{self.event_type} from {self.source} ({self.status})"


class WriteLedger(models.Model):
    """What Throughline last wrote to one record of a connected system (a hash per field), so
    a change event that only reports Throughline's own write is recognised and dropped."""

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="+")
    entity_type = models.CharField(max_length=40)
    external_id = models.CharField(max_length=120)
    field_hashes = models.JSONField(default=dict)
    written_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "entity_type", "external_id"], name="ledger_unique_record"
            )
        ]

    def __str__(self) -> str:
        return f"{self.connection} {self.entity_type} {self.external_id}"


class NotificationEndpoint(models.Model):
    """A webhook that hears about business events (a customer portal, a Slack or Teams
    bridge): each delivery is signed with the endpoint's secret and recorded."""

    name = models.CharField(max_length=100, unique=True)
    url = models.URLField(max_length=500)
    secret = models.CharField(max_length=200, help_text="HMAC-SHA256 key for the signature")
    topics = models.JSONField(default=list, help_text='e.g. ["milestone.completed"]')
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class NotificationDelivery(models.Model):
    """One event delivered (or not) to one endpoint."""

    endpoint = models.ForeignKey(
        NotificationEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    topic = models.CharField(max_length=80)
    key = models.CharField(max_length=160)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    delivered = models.BooleanField(default=False)
    error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["endpoint", "topic", "key"], name="delivery_unique_event"
            )
        ]

    def __str__(self) -> str:
        return f"{self.topic} {self.key} -> {self.endpoint} ({'ok' if self.delivered else 'no'})"


class ExchangeRate(models.Model):
    """An exchange rate as the ERP publishes it (reference data; the ERP owns it)."""

    base = models.CharField(max_length=3)
    quote = models.CharField(max_length=3)
    rate = models.DecimalField(max_digits=18, decimal_places=6)
    effective_date = models.DateField()
    source = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="+")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-effective_date", "base", "quote"]
        constraints = [
            models.UniqueConstraint(
                fields=["source", "base", "quote", "effective_date"], name="rate_unique_day"
            )
        ]

    def __str__(self) -> str:
        return f"1 {self.base} = {self.rate} {self.quote} on {self.effective_date}"


class PostingBatch(models.Model):
    """Up to a few hundred approved PSA entries posted to one ERP in one bulk call.

    Saved (with everything needed to post) before it is enqueued; the task reloads it,
    posts it, and records per-entry outcomes. Entries are keyed by their PSA id in the ERP,
    so posting a batch twice creates nothing twice.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        POSTED = "posted", "Posted"
        PARTIAL = "partial", "Posted with errors"
        FAILED = "failed", "Failed"

    psa = models.ForeignKey(Connection, on_delete=models.PROTECT, related_name="+")
    erp = models.ForeignKey(Connection, on_delete=models.PROTECT, related_name="+")
    record_type = models.CharField(max_length=20)
    key = models.CharField(max_length=160, unique=True)
    entries = models.JSONField(default=list)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    created_count = models.PositiveIntegerField(default=0)
    existing_count = models.PositiveIntegerField(default=0)
    error_count = models.PositiveIntegerField(default=0)
    reported = models.BooleanField(default=False, help_text="status written back to the PSA")
    error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    posted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.record_type} x{len(self.entries)} to {self.erp} ({self.status})"
