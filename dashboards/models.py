"""The dashboards' own tables: an analytics store fed by business events, and the KPI rollups
(hourly and daily aggregates of what the raw records say, see dashboards.rollups)."""

from __future__ import annotations

from decimal import Decimal

from django.db import models


class MilestoneFact(models.Model):
    """A billing milestone completed in a PSA, as the analytics store records it."""

    psa_connection_id = models.PositiveIntegerField()
    story_id = models.CharField(max_length=40)
    workspace_id = models.CharField(max_length=40, blank=True)
    deal_key = models.CharField(max_length=120, blank=True, db_index=True)
    recorded_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-recorded_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["psa_connection_id", "story_id"], name="milestone_fact_unique"
            )
        ]

    def __str__(self) -> str:
        return f"milestone {self.story_id} of {self.deal_key or '?'}"


class InvoicePaymentFact(models.Model):
    """What the ERP said of an invoice Throughline raised, each time its amounts changed (as
    the payments sync read it): receivables at any date are rebuilt from these (DSO).

    Append-only: a fact is added when the invoice's total, the amount remaining or whether
    it is voided differ from its previous fact. The first fact of an invoice counts its total
    at `invoiced_at`; each fact counts what changed at `seen_at`."""

    erp_connection_id = models.PositiveIntegerField()
    invoice_key = models.CharField(max_length=160)
    erp_invoice_id = models.CharField(max_length=40)
    number = models.CharField(max_length=60, blank=True)
    #: the release-milestone-billing run that raised the invoice
    run_id = models.PositiveIntegerField()
    legal_entity_code = models.CharField(max_length=20, blank=True)
    region = models.CharField(max_length=10, blank=True)
    currency = models.CharField(max_length=3)
    #: the invoice's total (tax included) and what remained to be paid, as the ERP said
    total = models.DecimalField(max_digits=18, decimal_places=2)
    amount_remaining = models.DecimalField(max_digits=18, decimal_places=2)
    #: open, overdue, paid or cancelled (a cancelled invoice is owed no more)
    state = models.CharField(max_length=10)
    #: when Throughline raised the invoice (its create_invoice step finished)
    invoiced_at = models.DateTimeField(db_index=True)
    #: the ERP's last change of the invoice when it was read
    seen_at = models.DateTimeField(db_index=True)
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-pk"]
        indexes = [
            models.Index(
                fields=["erp_connection_id", "invoice_key", "id"], name="payment_fact_invoice"
            )
        ]

    def __str__(self) -> str:
        return f"invoice {self.number or self.invoice_key}: {self.amount_remaining} open"

    @property
    def owed(self) -> Decimal:
        """What the customer still owes (nothing once the invoice is voided)."""
        return Decimal(0) if self.state == "cancelled" else self.amount_remaining


class EarnedRevenueFact(models.Model):
    """A revenue schedule line the ERP recognised (its accounting period closed), as read back
    from the ERP (integrations.revenue): earned revenue per legal entity and currency."""

    erp_connection_id = models.PositiveIntegerField()
    #: the line's externalId (Throughline's key of it) and the ERP's internal id
    line_key = models.CharField(max_length=255)
    erp_line_id = models.CharField(max_length=40)
    contract_key = models.CharField(max_length=255)
    deal_key = models.CharField(max_length=120, blank=True)
    period_name = models.CharField(max_length=60, blank=True)
    period_start = models.DateField()
    #: the last day of the accounting period: the revenue counts on that day
    period_end = models.DateField(db_index=True)
    legal_entity_code = models.CharField(max_length=20, blank=True)
    region = models.CharField(max_length=10, blank=True)
    currency = models.CharField(max_length=3)
    amount = models.DecimalField(max_digits=18, decimal_places=2)
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-period_end", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["erp_connection_id", "line_key", "period_end"],
                name="earned_revenue_fact_unique",
            )
        ]

    def __str__(self) -> str:
        return f"{self.line_key}: {self.amount} {self.currency} ({self.period_name})"


class ProjectMarginFact(models.Model):
    """A project's figures each time they changed: billed, cost and planned margin, in the
    deal's currency (project margin variance).

    Append-only and cumulative: each fact is the previous one plus what its `source` (a
    billing run, a posting batch) added; (deal, source) is unique, so a repeat adds nothing.
    `unpriced` counts costs that could not be priced (no cost rate, no exchange rate): a
    project with any is left out of the KPI rather than shown with a margin too high."""

    deal_key = models.CharField(max_length=120)
    #: what changed the figures ("run:12", "posting_batch:7")
    source = models.CharField(max_length=60)
    currency = models.CharField(max_length=3)
    #: the CRM deal's planned margin in % (None: the deal has none)
    planned_margin = models.DecimalField(max_digits=5, decimal_places=2, null=True, blank=True)
    billed = models.DecimalField(max_digits=18, decimal_places=2)
    cost = models.DecimalField(max_digits=18, decimal_places=2)
    unpriced = models.PositiveIntegerField(default=0)
    legal_entity_code = models.CharField(max_length=20, blank=True)
    region = models.CharField(max_length=10, blank=True)
    #: the CRM connection the deal came from (0: none)
    connection_id = models.PositiveIntegerField(default=0)
    recorded_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-pk"]
        constraints = [
            models.UniqueConstraint(fields=["deal_key", "source"], name="margin_fact_unique")
        ]
        indexes = [models.Index(fields=["deal_key", "id"], name="margin_fact_deal")]

    def __str__(self) -> str:
        return f"{self.deal_key}: billed {self.billed}, cost {self.cost} {self.currency}"


class KpiRollup(models.Model):
    """One KPI's observations in one hour or day, for one combination of dimensions.

    Maintained incrementally (dashboards.rollups.record_many: one upsert per event, or per
    batch of runs) and recomputable from the raw records (`manage.py rebuild_rollups`), which
    must give exactly the same rows. Values are integers in the KPI's base unit (seconds,
    cents, or 0/1 for rates; see dashboards.kpis), so sums are exact on every database: the
    average is `total / count`.

    "No connection" and "no legal entity" are stored as 0 and "" rather than NULL: NULLs are
    distinct in a unique constraint, so an upsert could never find the row it should add to.
    """

    class Grain(models.TextChoices):
        HOUR = "hour", "Hour"
        DAY = "day", "Day"

    kpi = models.CharField(max_length=40)
    grain = models.CharField(max_length=4, choices=Grain.choices)
    #: the start of the hour or day, UTC
    bucket = models.DateTimeField()
    legal_entity_code = models.CharField(max_length=20, blank=True, default="")
    region = models.CharField(max_length=10, blank=True, default="")
    #: integrations.Connection id (0: none)
    connection_id = models.PositiveIntegerField(default=0)
    #: ISO currency of money KPIs ("" for the others)
    currency = models.CharField(max_length=3, blank=True, default="")
    count = models.BigIntegerField(default=0)
    total = models.BigIntegerField(default=0)
    minimum = models.BigIntegerField()
    maximum = models.BigIntegerField()

    class Meta:
        ordering = ["kpi", "grain", "bucket"]
        constraints = [
            models.UniqueConstraint(
                fields=[
                    "kpi",
                    "grain",
                    "bucket",
                    "legal_entity_code",
                    "region",
                    "connection_id",
                    "currency",
                ],
                name="kpi_rollup_unique",
            )
        ]
        # (kpi, grain, bucket) is the unique index's prefix: the unfiltered series uses it
        indexes = [
            models.Index(
                fields=["kpi", "grain", "legal_entity_code", "bucket"], name="kpi_rollup_entity"
            ),
            models.Index(fields=["kpi", "grain", "region", "bucket"], name="kpi_rollup_region"),
            models.Index(
                fields=["kpi", "grain", "connection_id", "bucket"], name="kpi_rollup_connection"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kpi} {self.grain} {self.bucket:%Y-%m-%d %H:%M} x{self.count}"


class KpiThreshold(models.Model):
    """A team's own warning and breach boundaries, overriding a KPI's default thresholds (or
    watching a queue's active or SLA-breached count), evaluated every minute by
    dashboards.thresholds: crossing one opens a MetricAlert and tells the owning team.

    Either a KPI (`kpi`, optionally narrowed to a legal entity, region or connection) or a
    queue (`queue` with `measure` active|breached) is watched, never both."""

    class Measure(models.TextChoices):
        VALUE = "value", "KPI value"
        ACTIVE = "active", "Active exceptions"
        BREACHED = "breached", "Exceptions past their SLA"

    class Direction(models.TextChoices):
        DEFAULT = "", "The KPI's own"
        LOWER = "lower", "Lower is better"
        HIGHER = "higher", "Higher is better"

    #: a dashboards.kpis key ("" for a queue threshold)
    kpi = models.CharField(max_length=40, blank=True, db_index=True)
    queue = models.ForeignKey(
        "exceptions.Queue",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="thresholds",
    )
    measure = models.CharField(max_length=10, choices=Measure.choices, default=Measure.VALUE)
    legal_entity_code = models.CharField(max_length=20, blank=True)
    region = models.CharField(max_length=10, blank=True)
    connection = models.ForeignKey(
        "integrations.Connection",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="kpi_thresholds",
    )
    #: boundaries in the KPI's display unit (a number of exceptions for a queue)
    warning = models.DecimalField(max_digits=18, decimal_places=4)
    breach = models.DecimalField(max_digits=18, decimal_places=4)
    #: which way is good; required for KPIs without a direction (counts), queues: lower
    direction = models.CharField(
        max_length=6, choices=Direction.choices, blank=True, default=Direction.DEFAULT
    )
    team = models.ForeignKey(
        "console.Team", on_delete=models.PROTECT, related_name="kpi_thresholds"
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["kpi", "queue_id", "measure", "pk"]

    def __str__(self) -> str:
        return f"{self.subject} ({self.team_id and self.team})"

    @property
    def subject(self) -> str:
        """What is watched, in words ("billing_exception_rate for DE01", "queue Finance:
        active")."""
        if self.queue_id:
            return f"queue {self.queue}: {self.get_measure_display().lower()}"
        scope = self.scope_words
        return f"{self.kpi}{' for ' + scope if scope else ''}"

    @property
    def scope_words(self) -> str:
        parts = [
            f"legal entity {self.legal_entity_code}" if self.legal_entity_code else "",
            f"region {self.region}" if self.region else "",
            f"connection {self.connection}" if self.connection_id else "",
        ]
        return ", ".join(p for p in parts if p)

    def clean(self) -> None:
        from .thresholds import check_threshold

        check_threshold(self)


class MetricAlert(models.Model):
    """One crossing of a KpiThreshold: opened once when the value leaves ok, raised to breach
    at most once, recovered (recovered_at) when the value is ok again. Never deleted: the
    watched subject is copied here, so the history outlives the threshold."""

    class AlertState(models.TextChoices):
        WARNING = "warning", "Warning"
        BREACH = "breach", "Breach"
        RECOVERED = "recovered", "Recovered"

    threshold = models.ForeignKey(
        KpiThreshold, on_delete=models.SET_NULL, null=True, blank=True, related_name="alerts"
    )
    kpi = models.CharField(max_length=40, blank=True, db_index=True)
    queue = models.ForeignKey(
        "exceptions.Queue",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="metric_alerts",
    )
    measure = models.CharField(max_length=10, choices=KpiThreshold.Measure.choices)
    #: the scope the KPI was narrowed to ({"legal_entity": ..., "region": ..., "connection": ...})
    scope = models.JSONField(default=dict, blank=True)
    team = models.ForeignKey(
        "console.Team",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="metric_alerts",
    )
    state = models.CharField(max_length=10, choices=AlertState.choices, db_index=True)
    #: the worst state reached while open (warning or breach)
    worst = models.CharField(max_length=10, choices=AlertState.choices)
    #: the latest value seen (at recovery: the value that was ok again)
    value = models.DecimalField(max_digits=24, decimal_places=4)
    #: the value that opened the alert
    opened_value = models.DecimalField(max_digits=24, decimal_places=4)
    warning = models.DecimalField(max_digits=18, decimal_places=4)
    breach = models.DecimalField(max_digits=18, decimal_places=4)
    opened_at = models.DateTimeField(db_index=True)
    recovered_at = models.DateTimeField(null=True, blank=True)
    #: when the last notice (opened, breach, recovered) went out to at least one channel
    notified_at = models.DateTimeField(null=True, blank=True)
    #: one entry per notice and target: {"event", "channel", "target", "ok", "error", "at"}
    channel_results = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-opened_at", "-pk"]
        constraints = [
            # one open alert per threshold: "once per breach", whatever the races
            models.UniqueConstraint(
                fields=["threshold"],
                condition=models.Q(recovered_at__isnull=True),
                name="metric_alert_one_open_per_threshold",
            )
        ]

    def __str__(self) -> str:
        what = f"queue {self.queue_id} {self.measure}" if self.queue_id else self.kpi
        return f"{what}: {self.state} at {self.value}"
