"""A schedule edited under Admin → Periodic tasks flows back to its Extract."""

from __future__ import annotations

from console.schedules import follow_task_edits

from .models import Extract

follow_task_edits(Extract, uid="reporting")
