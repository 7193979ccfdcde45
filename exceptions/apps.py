"""App config: connects the exception queues to the engine's failure port."""

from django.apps import AppConfig


class ExceptionsConfig(AppConfig):
    name = "exceptions"
    verbose_name = "Exception queues"

    def ready(self) -> None:
        # tasks: registered in every process, so the outbox can hand alerts to Celery by name
        from . import receivers, tasks  # noqa: F401
