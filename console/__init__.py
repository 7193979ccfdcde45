"""Throughline's project package and core app: settings, users, teams, audit trail, home."""

from .celery import app as celery_app

__all__ = ["celery_app"]
