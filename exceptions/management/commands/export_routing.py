"""`manage.py export_routing [file]`: write the routing file (queues and routing rules)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from exceptions import routing_file


class Command(BaseCommand):
    help = "Write every queue and routing rule as a routing file (to stdout without a file)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", nargs="?", help="Where to write it; omitted: stdout.")

    def handle(self, *args: Any, **options: Any) -> None:
        text = routing_file.dumps(routing_file.export_document())
        if not options["file"]:
            self.stdout.write(text, ending="")
            return
        Path(options["file"]).write_text(text, encoding="utf-8")
        self.stderr.write(self.style.SUCCESS(f"Routing file written to {options['file']}."))
