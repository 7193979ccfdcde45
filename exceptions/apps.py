"""App config: connects the exception queues to the engine's failure port."""

from django.apps import AppConfig


class ExceptionsConfig(AppConfig):
    name = "exceptions"
    verbose_name = "Exception queues"

    def ready(self) -> None:
        from . import receivers  # noqa: F401
