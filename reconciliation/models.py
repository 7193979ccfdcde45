"""Reconciliation: which systems are compared (definitions), the state each side holds
(snapshots), each comparison (runs) and what it found (differences), plus the differences
finance accepted and the silent-failure audit's results.

Snapshots hold one row per record of one side, keyed by the canonical key (resolved through the
external-id bindings) with the compared values already normalised: the amount in minor units of
the record's currency *and* converted into the legal entity's currency (`cmp_amount`), the
status in Throughline's vocabulary, the date as a day number, and the remaining compared fields
folded into one digest. That is what lets a run classify a million records in one SQL
statement (reconciliation.compare) with memory that does not grow with the data.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django_celery_beat.models import PeriodicTask

from console.schedules import PeriodicTaskOwner, validate_schedule
from integrations.models import Connection

from .catalogue import KIND_CHOICES

SCHEDULED_TASK = "reconciliation.scheduled_run"


class Side(models.TextChoices):
    SOURCE = "source", "Source"
    TARGET = "target", "Target"


class Definition(PeriodicTaskOwner):
    """One pair of systems and entities to compare, with the tolerances of the comparison.

    `kind` names the comparison in the catalogue (reconciliation.catalogue): the entity, how
    each side is pulled, the fields compared, who owns a difference and how it is re-synced.
    """

    name = models.SlugField(max_length=60, unique=True)
    kind = models.CharField(max_length=40, choices=KIND_CHOICES)
    source = models.ForeignKey(Connection, on_delete=models.PROTECT, related_name="+")
    target = models.ForeignKey(Connection, on_delete=models.PROTECT, related_name="+")
    amount_tolerance_cents = models.PositiveIntegerField(
        default=0,
        help_text="largest difference in minor units (cents) between the two amounts, after "
        "conversion into the legal entity's currency, that still counts as equal",
    )
    date_tolerance_days = models.PositiveIntegerField(
        default=0, help_text="largest difference in days between the two dates that still matches"
    )
    compare_status = models.BooleanField(default=True)
    settle_minutes = models.PositiveIntegerField(
        default=10,
        help_text="a difference on a record changed in its system in the last N minutes is "
        "counted as in flight, not as open: the work on it may still be under way (a "
        "milestone completed a minute ago is not invoiced yet); the next run decides",
    )
    schedule = models.CharField(
        max_length=100,
        default="30 3 * * *",
        validators=[validate_schedule],
        help_text="crontab in UTC: minute hour day-of-month month day-of-week; also editable "
        "under Admin → Periodic tasks",
    )
    full_pull_every = models.PositiveIntegerField(
        default=7,
        help_text="every Nth scheduled run pulls both sides in full (finds records deleted in "
        "a system, which incremental pulls cannot); the others pull what changed",
    )
    enabled = models.BooleanField(default=True)
    source_watermark = models.DateTimeField(null=True, blank=True)
    target_watermark = models.DateTimeField(null=True, blank=True)
    periodic_task = models.OneToOneField(
        PeriodicTask,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="reconciliation",
        editable=False,
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    task_path = SCHEDULED_TASK

    def periodic_task_name(self) -> str:
        return f"Reconciliation: {self.name}"

    def periodic_task_description(self) -> str:
        return (
            f"Compares {self.get_kind_display()} ({self.source} vs {self.target}); "
            "edit the schedule here or on the definition."
        )


class SnapshotRecord(models.Model):
    """The current state of one record on one side of a definition (see the module doc)."""

    definition = models.ForeignKey(Definition, on_delete=models.CASCADE, related_name="+")
    side = models.CharField(max_length=6, choices=Side.choices)
    #: the canonical key both sides are joined on
    key = models.CharField(max_length=160)
    #: the record's id in its own system
    native_id = models.CharField(max_length=120)
    #: how many records of this side share the key (more than one: a duplicate)
    copies = models.PositiveIntegerField(default=1)
    legal_entity = models.CharField(max_length=20, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    amount = models.BigIntegerField(null=True, blank=True, help_text="minor units, own currency")
    cmp_amount = models.BigIntegerField(
        null=True, blank=True, help_text="minor units in the legal entity's currency"
    )
    status = models.CharField(max_length=40, blank=True)
    #: the compared date as days since 1970-01-01 (portable arithmetic in SQL)
    day = models.IntegerField(null=True, blank=True)
    digest = models.CharField(max_length=40, blank=True, help_text="hash of the other fields")
    #: records.comparison_hash of cmp_amount, status, day and digest
    cmp_hash = models.BigIntegerField(default=0)
    fields = models.JSONField(default=dict, blank=True, help_text="the compared values, shown")
    modified_at = models.DateTimeField(null=True, blank=True, help_text="in its own system")
    #: the run whose pull last saw the record (a full pull removes the rows it did not see)
    seen_in_run = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["definition", "side", "native_id"], name="snapshot_unique_native"
            )
        ]
        indexes = [
            # the comparison's join reads only this index (PostgreSQL: an index-only scan)
            models.Index(
                fields=["definition", "side", "key"],
                include=["id", "copies", "cmp_hash"],
                name="snapshot_key",
            ),
            # the duplicates: few rows, found without reading the others
            models.Index(
                fields=["definition", "side", "key"],
                condition=models.Q(copies__gt=1),
                name="snapshot_copies",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.side} {self.key} ({self.native_id})"


class Run(models.Model):
    """One comparison of a definition's two sides."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        PULLING = "pulling", "Pulling"
        COMPARING = "comparing", "Comparing"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    class Mode(models.TextChoices):
        INCREMENTAL = "incremental", "Incremental"
        FULL = "full", "Full"

    definition = models.ForeignKey(Definition, on_delete=models.CASCADE, related_name="runs")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    mode = models.CharField(max_length=12, choices=Mode.choices, default=Mode.INCREMENTAL)
    trigger = models.CharField(max_length=20, default="manual")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    #: what the run is doing now, in words ("pulling target: 1,200 records")
    phase = models.CharField(max_length=200, blank=True)
    source_pulled = models.PositiveIntegerField(default=0)
    target_pulled = models.PositiveIntegerField(default=0)
    source_records = models.PositiveIntegerField(default=0)
    target_records = models.PositiveIntegerField(default=0)
    matched = models.PositiveIntegerField(default=0)
    missing_in_target = models.PositiveIntegerField(default=0)
    missing_in_source = models.PositiveIntegerField(default=0)
    field_mismatch = models.PositiveIntegerField(default=0)
    duplicate = models.PositiveIntegerField(default=0)
    accepted = models.PositiveIntegerField(default=0)
    #: differences on records changed within the definition's settle window (not yet open)
    in_flight = models.PositiveIntegerField(default=0)
    #: [{"legal_entity", "currency", "amount", "differences"}]: money at risk per legal entity
    at_risk = models.JSONField(default=list, blank=True)
    #: [{"legal_entity", "compared", "matched", "accepted"}]: the counts per legal entity, as
    #: classified (final once the run is done: the revenue posting accuracy KPI reads them)
    by_entity = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    compare_ms = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["definition", "-created_at"], name="recon_run_recent")]

    def __str__(self) -> str:
        return f"{self.definition} run {self.pk} ({self.status})"

    @property
    def compared(self) -> int:
        """Keys compared: every key of either side, each counted once."""
        return (
            self.matched
            + self.missing_in_target
            + self.missing_in_source
            + self.field_mismatch
            + self.duplicate
        )

    @property
    def open_differences(self) -> int:
        return self.compared - self.matched - self.accepted - self.in_flight

    @property
    def match_rate(self) -> float | None:
        """Matched or accepted keys / keys compared and settled (not in flight), in % (None
        before the comparison, or when every key compared is in flight)."""
        settled = self.compared - self.in_flight
        if self.status != self.Status.DONE or settled <= 0:
            return None
        return round((self.matched + self.accepted) * 100 / settled, 2)


#: a run in these states still works (or waits for a worker)
IN_PROGRESS = (Run.Status.QUEUED, Run.Status.PULLING, Run.Status.COMPARING)


class Kind(models.TextChoices):
    MISSING_IN_TARGET = "missing_in_target", "Missing in target"
    MISSING_IN_SOURCE = "missing_in_source", "Missing in source"
    FIELD_MISMATCH = "field_mismatch", "Field mismatch"
    DUPLICATE = "duplicate", "Duplicate"


class Difference(models.Model):
    """One key a run found not matching, with both sides' values."""

    class State(models.TextChoices):
        OPEN = "open", "Open"
        RESYNC_QUEUED = "resync_queued", "Re-sync queued"
        EXCEPTION_OPENED = "exception_opened", "Exception opened"
        ACCEPTED = "accepted", "Accepted"
        IN_FLIGHT = "in_flight", "In flight"

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="differences")
    key = models.CharField(max_length=160)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    #: for a duplicate: the side holding more than one record
    side = models.CharField(max_length=6, choices=Side.choices, blank=True)
    legal_entity = models.CharField(max_length=20, blank=True)
    currency = models.CharField(max_length=3, blank=True, help_text="the legal entity's")
    source_id = models.CharField(max_length=120, blank=True)
    target_id = models.CharField(max_length=120, blank=True)
    source_amount = models.BigIntegerField(null=True, blank=True)
    target_amount = models.BigIntegerField(null=True, blank=True)
    #: minor units in `currency`: what is billed wrongly or not at all
    amount_at_risk = models.BigIntegerField(default=0)
    source_status = models.CharField(max_length=40, blank=True)
    target_status = models.CharField(max_length=40, blank=True)
    source_day = models.IntegerField(null=True, blank=True)
    target_day = models.IntegerField(null=True, blank=True)
    #: both sides' compared values as pulled (the field-level difference is derived from them)
    source_fields = models.JSONField(null=True, blank=True)
    target_fields = models.JSONField(null=True, blank=True)
    state = models.CharField(max_length=20, choices=State.choices, default=State.OPEN)
    exception = models.ForeignKey(
        "exceptions.IntegrationException",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    acceptance = models.ForeignKey(
        "Acceptance", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["run", "kind", "key"]
        indexes = [
            models.Index(fields=["run", "kind"], name="recon_diff_kind"),
            models.Index(fields=["run", "legal_entity"], name="recon_diff_entity"),
        ]

    def __str__(self) -> str:
        return f"{self.key}: {self.get_kind_display()}"

    @property
    def field_differences(self) -> list[dict[str, str]]:
        """[{"field", "source", "target"}] of the compared values that differ."""
        from .differences import field_differences

        return field_differences(self)


class Acceptance(models.Model):
    """A difference finance accepted, with the reason: later runs finding the same difference
    (same key, kind and values) count it as accepted rather than open."""

    definition = models.ForeignKey(Definition, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=160)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    #: the values accepted (a changed value is a new difference)
    signature = models.CharField(max_length=40)
    reason = models.TextField()
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    accepted_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-accepted_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["definition", "key", "kind", "signature"], name="acceptance_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.definition} {self.key} {self.kind}: accepted"


class SilentFailureAudit(models.Model):
    """One check that every source event Throughline received ended applied or as an
    exception (DESIGN principle 5)."""

    checked_at = models.DateTimeField(auto_now_add=True)
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    events = models.PositiveIntegerField(default=0)
    applied = models.PositiveIntegerField(default=0)
    as_exception = models.PositiveIntegerField(default=0)
    in_flight = models.PositiveIntegerField(default=0)
    rejected = models.PositiveIntegerField(default=0)
    silent = models.PositiveIntegerField(default=0)
    #: [{"event", "source", "event_type", "received_at", "why"}] of the silent ones (first 200)
    findings = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-checked_at"]

    def __str__(self) -> str:
        return f"audit {self.checked_at:%Y-%m-%d %H:%M}: {self.silent} silent"
