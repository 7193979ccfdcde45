"""Core records: users, teams and their members' roles, and the append-only audit trail."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models

from .choices import ROLE_RANK, Role, TeamKind


class User(AbstractUser):
    """A person who signs in to the console (custom from the first migration)."""

    def role_in(self, team: Team) -> str | None:
        membership = self.memberships.filter(team=team).first()
        return membership.role if membership else None

    def can_act_for(self, team: Team, minimum: str = Role.RESOLVER) -> bool:
        """Members with at least `minimum` role act on the team's queues; superusers always."""
        if self.is_superuser:
            return True
        role = self.role_in(team)
        return role is not None and ROLE_RANK[role] >= ROLE_RANK[minimum]

    def acts_for_team_kind(self, kind: str, minimum: str = Role.RESOLVER) -> bool:
        """Superusers, and members with at least `minimum` role in any team of `kind`."""
        if not self.is_authenticated:
            return False
        if self.is_superuser:
            return True
        teams = Team.objects.filter(kind=kind, memberships__user=self)
        return any(self.can_act_for(team, minimum=minimum) for team in teams)


class Team(models.Model):
    """A business team that owns queues: Finance, PMO, Sales Ops, IT."""

    name = models.CharField(max_length=80, unique=True)
    slug = models.SlugField(max_length=80, unique=True)
    kind = models.CharField(max_length=20, choices=TeamKind.choices)
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    """A user's role in one team."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.RESOLVER)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "team"], name="membership_unique_user_team")
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.team} ({self.role})"


class AppendOnlyQuerySet(models.QuerySet):
    def update(self, **kwargs: Any) -> int:
        raise PermissionError("the audit trail is append-only")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise PermissionError("the audit trail is append-only")


class AuditEvent(models.Model):
    """One entry of the append-only audit trail: a human action or a cross-system write."""

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="audit_events",
    )
    actor_label = models.CharField(max_length=150, help_text="who, also for system actors")
    action = models.CharField(max_length=80, db_index=True)
    object_type = models.CharField(max_length=80, blank=True)
    object_id = models.CharField(max_length=80, blank=True)
    correlation_id = models.CharField(max_length=120, blank=True, db_index=True)
    summary = models.CharField(max_length=500)
    data = models.JSONField(default=dict, blank=True)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["object_type", "object_id"], name="audit_object_idx")]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor_label}: {self.summary}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            raise PermissionError("the audit trail is append-only")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise PermissionError("the audit trail is append-only")
