"""Exception queues: each failed step becomes one classified exception in the queue of the
team that owns it, where it is worked to resolution."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse

from console.models import Team
from integrations.models import Connection, SyncRun, SyncStep

from .choices import (
    ACTIVE_STATUSES,
    AlertChannel,
    AlertEvent,
    BulkKind,
    BulkStatus,
    Category,
    ExceptionCode,
    ExceptionStatus,
    IncidentStatus,
    PayloadEditStatus,
)


class Queue(models.Model):
    """A named work queue owned by one team (Finance, PMO EMEA, IT Integration, ...)."""

    name = models.CharField(max_length=80, unique=True)
    slug = models.SlugField(max_length=80, unique=True)
    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="queues")
    description = models.TextField(blank=True)
    #: hours an exception may wait here before it breaches its SLA
    sla_hours = models.PositiveIntegerField(default=24)
    #: hours past the due time after which a breach is escalated (None: never)
    escalate_after_hours = models.PositiveIntegerField(null=True, blank=True)
    #: who hears about escalations (comma-separated e-mail addresses)
    escalation_emails = models.CharField(max_length=500, blank=True)
    #: who hears about incidents (comma-separated e-mail addresses), once per incident
    alert_emails = models.CharField(max_length=500, blank=True)
    #: a Slack- or Teams-compatible incoming webhook for incident alerts
    alert_webhook_url = models.URLField(max_length=500, blank=True)
    #: where exceptions go that no routing rule places
    is_fallback = models.BooleanField(default=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("exceptions:queue", args=[self.slug])


class RoutingRule(models.Model):
    """One ordered routing rule: the first enabled rule whose every condition matches places
    the exception in its queue. Empty conditions match anything. Every change is audited with
    the rule's version."""

    position = models.PositiveIntegerField(db_index=True)
    name = models.CharField(max_length=120)
    enabled = models.BooleanField(default=True)
    queue = models.ForeignKey(Queue, on_delete=models.PROTECT, related_name="rules")
    codes = models.JSONField(default=list, blank=True)
    category = models.CharField(max_length=10, choices=Category.choices, blank=True)
    entity_types = models.JSONField(default=list, blank=True)
    legal_entity_codes = models.JSONField(default=list, blank=True)
    regions = models.JSONField(default=list, blank=True)
    connection = models.ForeignKey(
        Connection, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    min_amount = models.DecimalField(max_digits=18, decimal_places=2, null=True, blank=True)
    max_amount = models.DecimalField(max_digits=18, decimal_places=2, null=True, blank=True)
    version = models.PositiveIntegerField(default=1)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return f"{self.position}. {self.name} -> {self.queue}"


class Incident(models.Model):
    """Exceptions that share one root cause (a closed posting period, a vendor outage, one
    missing tax registration): one alert, one place to see what it blocks, resolved when the
    cause is fixed and its exceptions' replays succeed."""

    cause_key = models.CharField(max_length=200)
    code = models.CharField(max_length=40, choices=ExceptionCode.choices)
    title = models.CharField(max_length=300)
    status = models.CharField(
        max_length=10, choices=IncidentStatus.choices, default=IncidentStatus.OPEN, db_index=True
    )
    queue = models.ForeignKey(Queue, on_delete=models.PROTECT, related_name="incidents")
    first_seen = models.DateTimeField(auto_now_add=True)
    last_seen = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-last_seen", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["cause_key"],
                condition=Q(status=IncidentStatus.OPEN),
                name="incident_unique_open_cause",
            )
        ]

    def __str__(self) -> str:
        return f"Incident #{self.pk}: {self.title}"


class IntegrationException(models.Model):
    """A failure that needs a person: what failed, why in business words, who owns it.

    The fingerprint (versioned) identifies "the same failure for the same thing": while an
    exception with that fingerprint is unresolved, a repeat adds an occurrence instead of a
    second exception.
    """

    FINGERPRINT_VERSION = 1

    queue = models.ForeignKey(Queue, on_delete=models.PROTECT, related_name="exceptions")
    code = models.CharField(max_length=40, choices=ExceptionCode.choices, db_index=True)
    category = models.CharField(max_length=10, choices=Category.choices)
    status = models.CharField(
        max_length=12,
        choices=ExceptionStatus.choices,
        default=ExceptionStatus.OPEN,
        db_index=True,
    )
    title = models.CharField(max_length=300)
    explanation = models.TextField()
    suggested_fix = models.TextField(blank=True)
    run = models.ForeignKey(
        SyncRun, null=True, blank=True, on_delete=models.PROTECT, related_name="exceptions"
    )
    step = models.ForeignKey(
        SyncStep, null=True, blank=True, on_delete=models.SET_NULL, related_name="exceptions"
    )
    connection = models.ForeignKey(
        Connection, null=True, blank=True, on_delete=models.SET_NULL, related_name="exceptions"
    )
    entity_type = models.CharField(max_length=40, blank=True)
    entity_ref = models.CharField(max_length=120, blank=True)
    legal_entity_code = models.CharField(max_length=20, blank=True, db_index=True)
    region = models.CharField(max_length=10, blank=True, db_index=True)
    payload = models.JSONField(default=dict, blank=True)
    vendor_error = models.JSONField(default=dict, blank=True)
    fingerprint = models.CharField(max_length=80)
    occurrences = models.PositiveIntegerField(default=1)
    first_seen = models.DateTimeField(auto_now_add=True)
    last_seen = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    resolution = models.CharField(max_length=300, blank=True)
    #: the person working it; a manual assignment is never overruled by rules
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="assigned_exceptions",
    )
    assigned_manually = models.BooleanField(default=False)
    #: the routing rule that placed it (None: the fallback queue, or placed by hand)
    routed_by = models.ForeignKey(
        RoutingRule, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    incident = models.ForeignKey(
        Incident, null=True, blank=True, on_delete=models.SET_NULL, related_name="exceptions"
    )
    #: the money the failed record carries (an invoice, a posting), for rules and incidents
    amount = models.DecimalField(max_digits=18, decimal_places=2, null=True, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    #: when the queue's SLA wants it worked
    due_at = models.DateTimeField(null=True, blank=True)
    escalated_at = models.DateTimeField(null=True, blank=True)
    ignored_reason = models.CharField(max_length=300, blank=True)
    #: an ignored exception comes back at this time (None: ignored for good)
    ignored_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-last_seen", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["fingerprint"],
                condition=~Q(status=ExceptionStatus.RESOLVED),
                name="exception_unique_unresolved_fingerprint",
            )
        ]
        # The queue page and the API list read newest activity first (last_seen, id) under
        # the shared filters; these keep them index ranges at a million rows (see
        # exceptions.pagination and `manage.py bench exceptions`). The partial ones hold only
        # the active work; their trailing columns let the common filters and the capped
        # counts be answered from the index alone.
        indexes = [
            models.Index(fields=["queue", "status", "-last_seen"], name="exception_queue_idx"),
            models.Index(fields=["-last_seen", "-id"], name="exception_recent_idx"),
            models.Index(
                fields=["queue", "-last_seen", "-id", "code", "legal_entity_code", "assignee"],
                condition=Q(status__in=ACTIVE_STATUSES),
                name="exception_active_queue_idx",
            ),
            models.Index(
                fields=["queue", "legal_entity_code", "-last_seen", "-id", "code", "assignee"],
                condition=Q(status__in=ACTIVE_STATUSES),
                name="exception_active_entity_idx",
            ),
            models.Index(
                fields=["assignee", "-last_seen", "-id"],
                condition=Q(status__in=ACTIVE_STATUSES),
                name="exception_active_assignee_idx",
            ),
            models.Index(
                fields=["queue", "due_at"],
                condition=Q(status__in=ACTIVE_STATUSES),
                name="exception_active_due_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.get_code_display()}: {self.title}"

    def get_absolute_url(self) -> str:
        return reverse("exceptions:detail", args=[self.pk])

    @property
    def is_open(self) -> bool:
        return self.status != ExceptionStatus.RESOLVED


class Comment(models.Model):
    """A note on an exception, by a person."""

    exception = models.ForeignKey(
        IntegrationException, on_delete=models.CASCADE, related_name="comments"
    )
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    body = models.TextField(max_length=5000)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"Comment by {self.author} on #{self.exception_id}"


class SavedView(models.Model):
    """A person's named filter over exceptions (the query string of the queue page)."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="saved_views"
    )
    name = models.CharField(max_length=80)
    queue = models.ForeignKey(Queue, null=True, blank=True, on_delete=models.CASCADE)
    query = models.CharField(max_length=1000, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="saved_view_unique_name")
        ]

    def __str__(self) -> str:
        return self.name


class PayloadEdit(models.Model):
    """A person's correction of an exception's payload before a replay: the diff, and for
    financial fields a second person's approval."""

    exception = models.ForeignKey(
        IntegrationException, on_delete=models.CASCADE, related_name="payload_edits"
    )
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    before = models.JSONField(default=dict)
    after = models.JSONField(default=dict)
    changed_fields = models.JSONField(default=list)
    needs_approval = models.BooleanField(default=False)
    status = models.CharField(
        max_length=10, choices=PayloadEditStatus.choices, default=PayloadEditStatus.PENDING
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Edit of #{self.exception_id} ({self.status})"


class BulkAction(models.Model):
    """Retry, resolve, assign or ignore over a filtered set (thousands): run by a worker in
    chunks, its progress readable while it runs."""

    kind = models.CharField(max_length=10, choices=BulkKind.choices)
    query = models.JSONField(default=dict, blank=True)  # the filter's parameters
    params = models.JSONField(default=dict, blank=True)  # assignee, reason, ...
    status = models.CharField(
        max_length=10, choices=BulkStatus.choices, default=BulkStatus.QUEUED, db_index=True
    )
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    succeeded = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Bulk {self.kind} #{self.pk} ({self.done}/{self.total})"


class Alert(models.Model):
    """One alert sent (or attempted) about an incident: once when it opens, on escalation,
    and once when it resolves."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="alerts")
    channel = models.CharField(max_length=10, choices=AlertChannel.choices)
    event = models.CharField(max_length=10, choices=AlertEvent.choices)
    target = models.CharField(max_length=500)
    sent_at = models.DateTimeField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["incident", "channel", "event", "target"], name="alert_once_per_event"
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_event_display()} via {self.channel} to {self.target}"
