"""`manage.py celery_queues`: the comma-separated queues a worker should consume
(`celery -A console worker -Q "$(manage.py celery_queues)"`)."""

from django.core.management.base import BaseCommand

from integrations.queues import all_queues


class Command(BaseCommand):
    help = "Print the Celery queues (default + one per enabled connection), comma-separated."

    def handle(self, *args, **options):
        self.stdout.write(",".join(all_queues()))
