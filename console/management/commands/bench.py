"""`manage.py bench <name>`: run a benchmark and print its figures, ending with one JSON line
(the bench name, every figure, every target and which targets were met)."""

import importlib
import json

from django.core.management.base import BaseCommand, CommandError

BENCHES = {
    "workflows": "integrations.benchmarks.workflows",
    "exceptions": "exceptions.benchmarks",
}
#: the options each bench takes (all at least 1)
OPTIONS = {
    "workflows": ("deals", "entries", "noop"),
    "exceptions": ("small", "large", "samples", "deep_page"),
}


class Command(BaseCommand):
    help = "Run a benchmark: " + ", ".join(sorted(BENCHES))

    def add_arguments(self, parser):
        parser.add_argument("name", choices=sorted(BENCHES))
        parser.add_argument("--deals", type=int, default=200)
        parser.add_argument("--entries", type=int, default=20000)
        parser.add_argument("--noop", type=int, default=3000)
        parser.add_argument("--small", type=int, default=10_000, help="exceptions: first size")
        parser.add_argument("--large", type=int, default=1_000_000, help="exceptions: second")
        parser.add_argument("--samples", type=int, default=50, help="exceptions: requests")
        parser.add_argument("--deep-page", type=int, default=200, help="exceptions: page no.")
        parser.add_argument(
            "--bulk", type=int, default=10_000, help="exceptions: bulk retry size (0 skips it)"
        )

    def handle(self, *args, name: str, **options):
        module = importlib.import_module(BENCHES[name])
        chosen = {key: options[key] for key in OPTIONS[name]}
        if min(chosen.values()) < 1:
            names = ", ".join("--" + key.replace("_", "-") for key in chosen)
            raise CommandError(f"{names} must be at least 1")
        if name == "exceptions" and chosen["large"] <= chosen["small"]:
            raise CommandError("--large must be more than --small")
        if name == "exceptions":
            if options["bulk"] < 0:
                raise CommandError("--bulk must be 0 (skip the bulk retry) or more")
            chosen["bulk"] = options["bulk"]
        result = module.run(**chosen, out=self.stdout)
        self.stdout.write(json.dumps(result, sort_keys=False))
