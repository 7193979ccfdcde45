"""The dashboards' own tables: an analytics store fed by business events, and the KPI rollups
(hourly and daily aggregates of what the raw records say, see dashboards.rollups)."""

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
