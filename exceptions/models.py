"""Exception queues: each failed step becomes one classified exception in the queue of the
team that owns it, where it is worked to resolution."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse

from console.models import Team
from integrations.models import Connection, SyncRun, SyncStep

from .choices import Category, ExceptionCode, ExceptionStatus


class Queue(models.Model):
    """A named work queue owned by one team (Finance, PMO EMEA, IT Integration, ...)."""

    name = models.CharField(max_length=80, unique=True)
    slug = models.SlugField(max_length=80, unique=True)
    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="queues")
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("exceptions:queue", args=[self.slug])


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
        max_length=10,
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

    class Meta:
        ordering = ["-last_seen", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["fingerprint"],
                condition=~Q(status=ExceptionStatus.RESOLVED),
                name="exception_unique_unresolved_fingerprint",
            )
        ]
        indexes = [
            models.Index(fields=["queue", "status", "-last_seen"], name="exception_queue_idx")
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.get_code_display()}: {self.title}"

    def get_absolute_url(self) -> str:
        return reverse("exceptions:detail", args=[self.pk])

    @property
    def is_open(self) -> bool:
        return self.status != ExceptionStatus.RESOLVED
