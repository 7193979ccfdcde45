"""`manage.py bench <name>`: run a benchmark and print its figures, ending with one JSON line
(the bench name, every figure, every target and which targets were met)."""

import importlib
import json

from django.core.management.base import BaseCommand, CommandError

BENCHES = {
    "workflows": "integrations.benchmarks.workflows",
    "exceptions": "exceptions.benchmarks",
    "dashboards": "dashboards.benchmarks",
    "reconciliation": "reconciliation.benchmarks",
}
#: the options each bench takes (all at least 1)
OPTIONS = {
    "workflows": ("deals", "entries", "noop"),
    "exceptions": ("small", "large", "samples", "deep_page"),
    "dashboards": ("small", "large", "samples"),
    "reconciliation": ("records", "small"),
}
#: the sizes (exceptions; recorded events for dashboards) and samples when not given
EXCEPTIONS_DEFAULTS = {"small": 10_000, "large": 1_000_000, "samples": 50}
DASHBOARDS_DEFAULTS = {"small": 100_000, "large": 10_000_000, "samples": 30}
#: reconciliation: invoices a side, and the second, smaller size (memory must not grow)
RECONCILIATION_DEFAULTS = {"records": 1_000_000, "small": 100_000}


class Command(BaseCommand):
    help = "Run a benchmark: " + ", ".join(sorted(BENCHES))

    def add_arguments(self, parser):
        parser.add_argument("name", choices=sorted(BENCHES))
        parser.add_argument("--deals", type=int, default=200)
        parser.add_argument("--entries", type=int, default=20000)
        parser.add_argument("--noop", type=int, default=3000)
        parser.add_argument(
            "--small",
            type=int,
            help="first size (exceptions: 10,000; dashboards, reconciliation: 100,000)",
        )
        parser.add_argument(
            "--records", type=int, help="reconciliation: invoices a side (1,000,000)"
        )
        parser.add_argument(
            "--large", type=int, help="second size (exceptions: 1,000,000; dashboards: 10,000,000)"
        )
        parser.add_argument(
            "--samples", type=int, help="requests per round (exceptions: 50; dashboards: 30)"
        )
        parser.add_argument("--deep-page", type=int, default=200, help="exceptions: page no.")
        parser.add_argument(
            "--bulk", type=int, default=10_000, help="exceptions: bulk retry size (0 skips it)"
        )

    def handle(self, *args, name: str, **options):
        module = importlib.import_module(BENCHES[name])
        defaults = DASHBOARDS_DEFAULTS if name == "dashboards" else EXCEPTIONS_DEFAULTS
        if name == "reconciliation":
            defaults = RECONCILIATION_DEFAULTS
        for key, value in defaults.items():
            if options.get(key) is None:
                options[key] = value
        chosen = {key: options[key] for key in OPTIONS[name]}
        if min(chosen.values()) < 1:
            names = ", ".join("--" + key.replace("_", "-") for key in chosen)
            raise CommandError(f"{names} must be at least 1")
        if name in ("exceptions", "dashboards") and chosen["large"] <= chosen["small"]:
            raise CommandError("--large must be more than --small")
        if name == "reconciliation" and chosen["records"] <= chosen["small"]:
            raise CommandError("--records must be more than --small")
        if name == "exceptions":
            if options["bulk"] < 0:
                raise CommandError("--bulk must be 0 (skip the bulk retry) or more")
            chosen["bulk"] = options["bulk"]
        result = module.run(**chosen, out=self.stdout)
        self.stdout.write(json.dumps(result, sort_keys=False))
