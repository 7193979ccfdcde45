"""App config of the integration engine."""

from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"
    verbose_name = "Integrations"

    def ready(self) -> None:
        # Register the engine's tasks in every process (web included), so the outbox can
        # hand any message to Celery by task name.
        from . import consumers, notifications, tasks  # noqa: F401

        consumers.register()
