"""`manage.py import_routing file [--dry-run]`: replace queues and routing rules with a
routing file (validated first; all or nothing; audited)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from exceptions import routing_file


class Command(BaseCommand):
    help = (
        "Replace every queue and routing rule with a routing file ('-' reads stdin). "
        "--dry-run shows the difference without applying it."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="The routing file, or - for stdin.")
        parser.add_argument(
            "--dry-run", action="store_true", help="Show the difference; change nothing."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["file"]
        try:
            text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
        except OSError as error:
            raise CommandError(f"Cannot read {name}: {error.strerror}.") from error
        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            raise CommandError(f"{name} is not valid JSON: {error}.") from error
        try:
            result = routing_file.import_document(
                document,
                actor=None,
                dry_run=options["dry_run"],
                actor_label="manage.py import_routing",
            )
        except routing_file.ImportRefused as refused:
            raise CommandError(
                "The routing file cannot be imported; nothing was changed:\n  "
                + "\n  ".join(refused.errors)
            ) from refused
        diff = result.as_dict()
        for kind, key in (("queues", "slug"), ("rules", "name")):
            changes = diff[kind]
            for item in changes["created"]:
                self.stdout.write(f"+ {kind[:-1]} {item}")
            for item in changes["changed"]:
                fields = ", ".join(
                    f"{field}: {before!r} -> {after!r}"
                    for field, (before, after) in item["changes"].items()
                )
                self.stdout.write(f"~ {kind[:-1]} {item[key]}: {fields}")
            for item in changes["deleted"]:
                self.stdout.write(f"- {kind[:-1]} {item}")
        prefix = "Dry run, nothing changed. " if result.dry_run else "Imported. "
        self.stdout.write(self.style.SUCCESS(prefix + result.summary))
