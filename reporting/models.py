"""Extracts of the canonical records for a data warehouse, and the history of their runs."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django_celery_beat.models import PeriodicTask

from console.schedules import PeriodicTaskOwner, validate_schedule

from .schedules import TASK, task_name

DEFAULT_SCHEDULE = "0 2 * * *"  # daily at 02:00 UTC


def extracts_root() -> Path:
    return Path(settings.EXTRACTS_ROOT).resolve()


class Extract(PeriodicTaskOwner):
    """One dataset written on a schedule as CSV or Parquet files, each file holding only the
    rows changed since the previous one (the watermark)."""

    class Dataset(models.TextChoices):
        CUSTOMERS = "customers", "Customers"
        PROJECTS = "projects", "Projects"
        TIME_ENTRIES = "time_entries", "Time entries"
        INVOICES = "invoices", "Invoices"
        EXCEPTIONS = "exceptions", "Exceptions"

    class Format(models.TextChoices):
        CSV = "csv", "CSV"
        PARQUET = "parquet", "Parquet"

    name = models.SlugField(max_length=60, unique=True)
    dataset = models.CharField(max_length=20, choices=Dataset.choices)
    format = models.CharField(max_length=10, choices=Format.choices, default=Format.CSV)
    destination = models.CharField(
        max_length=255,
        blank=True,
        help_text="folder inside the extracts root (EXTRACTS_ROOT); empty: <name>/",
    )
    schedule = models.CharField(
        max_length=100,
        default=DEFAULT_SCHEDULE,
        validators=[validate_schedule],
        help_text="crontab in UTC: minute hour day-of-month month day-of-week; also editable "
        "under Admin → Periodic tasks",
    )
    enabled = models.BooleanField(default=True)
    watermark_at = models.DateTimeField(
        null=True, blank=True, help_text="change time of the last row extracted (UTC)"
    )
    watermark_id = models.BigIntegerField(
        default=0, help_text="record id of the last row extracted (ties on the change time)"
    )
    periodic_task = models.OneToOneField(
        PeriodicTask,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="extract",
        editable=False,
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_dataset_display()}, {self.get_format_display()})"

    task_path = TASK

    def periodic_task_name(self) -> str:
        return task_name(self)

    def periodic_task_description(self) -> str:
        return (
            f"Writes the {self.get_dataset_display().lower()} extract '{self.name}' "
            "(edit the schedule here or on the extract)."
        )

    @property
    def folder(self) -> Path:
        """The absolute folder the files go to (validated to be inside the extracts root)."""
        return resolve_destination(self.destination or self.name)

    def clean(self) -> None:
        super().clean()
        try:
            resolve_destination(self.destination or self.name or "x")
        except ValueError as exc:
            raise ValidationError({"destination": str(exc)}) from exc


def resolve_destination(destination: str) -> Path:
    """`destination` (relative to the extracts root, or absolute inside it) as an absolute
    path; ValueError when it leaves the root."""
    root = extracts_root()
    path = Path(destination)
    folder = (path if path.is_absolute() else root / path).resolve()
    if folder != root and root not in folder.parents:
        raise ValueError(f"The destination must be a folder inside the extracts root {root}.")
    return folder


class ExtractRun(models.Model):
    """One run of an extract: what it wrote, or why it failed."""

    class Status(models.TextChoices):
        SUCCEEDED = "succeeded", "File written"
        EMPTY = "empty", "Nothing changed"
        FAILED = "failed", "Failed"

    extract = models.ForeignKey(Extract, on_delete=models.CASCADE, related_name="runs")
    status = models.CharField(max_length=10, choices=Status.choices)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    rows = models.PositiveIntegerField(default=0)
    file_path = models.CharField(max_length=500, blank=True)
    bytes = models.PositiveBigIntegerField(default=0)
    watermark_from = models.DateTimeField(null=True, blank=True)
    watermark_to = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    triggered_by = models.CharField(max_length=150, blank=True, help_text="user, or schedule")

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["extract", "-started_at"], name="extractrun_recent")]

    def __str__(self) -> str:
        return f"{self.extract.name} {self.started_at:%Y-%m-%d %H:%M} ({self.status})"

    @property
    def file_name(self) -> str:
        return Path(self.file_path).name if self.file_path else ""
