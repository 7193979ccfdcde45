"""`manage.py bench <name>`: run a benchmark and print its figures, ending with one JSON line
(the bench name, every figure, every target and which targets were met)."""

import importlib
import json

from django.core.management.base import BaseCommand, CommandError

BENCHES = {"workflows": "integrations.benchmarks.workflows"}


class Command(BaseCommand):
    help = "Run a benchmark: " + ", ".join(sorted(BENCHES))

    def add_arguments(self, parser):
        parser.add_argument("name", choices=sorted(BENCHES))
        parser.add_argument("--deals", type=int, default=200)
        parser.add_argument("--entries", type=int, default=20000)
        parser.add_argument("--noop", type=int, default=3000)

    def handle(self, *args, name: str, deals: int, entries: int, noop: int, **options):
        module = importlib.import_module(BENCHES[name])
        if min(deals, entries, noop) < 1:
            raise CommandError("--deals, --entries and --noop must be at least 1")
        result = module.run(deals=deals, entries=entries, noop=noop, out=self.stdout)
        self.stdout.write(json.dumps(result, sort_keys=False))
