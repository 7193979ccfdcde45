"""Celery tasks of the project wiring: the demo's traffic generator."""

from celery import shared_task
from django.conf import settings


@shared_task(name="console.demo_traffic")
def demo_traffic() -> list[str]:
    """One round of demo activity in the stand-ins (only when DEMO_TRAFFIC is on)."""
    if not settings.DEMO_TRAFFIC:
        return []
    from .demo_traffic import tick

    return tick().actions
