"""The dashboards' own tables: an analytics store fed by business events (issue 5 adds the
KPI rollups on top)."""

from __future__ import annotations

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
