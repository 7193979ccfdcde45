"""`manage.py rebuild_rollups [--since DATE] [--check]`: recompute the KPI rollups from the raw
records (dashboards.rollups.rebuild), or, with --check, only compare them and fail on any
difference."""

from __future__ import annotations

import datetime as dt

from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_date, parse_datetime

from dashboards import rollups

SHOWN = 50


def _since(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    moment = parse_datetime(value)
    if moment is None:
        day = parse_date(value)
        if day is None:
            raise CommandError(f"--since {value!r} is neither a date nor a date and time")
        moment = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment


class Command(BaseCommand):
    help = (
        "Recompute the KPI rollups from the raw records (runs, exceptions, postings, milestone "
        "facts). --check compares instead and exits non-zero on any difference."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--since",
            help="only buckets from this day on (YYYY-MM-DD or an ISO date and time, UTC)",
        )
        parser.add_argument(
            "--check",
            action="store_true",
            help="compare the stored rollups with the raw records; change nothing",
        )

    def handle(self, *args, **options):
        since = _since(options.get("since"))
        scope = f"since {rollups.start_of_day(since):%Y-%m-%d}" if since else "all time"
        if options["check"]:
            found = rollups.check(since)
            if not found:
                self.stdout.write(
                    self.style.SUCCESS(f"Rollups agree with the raw records ({scope}).")
                )
                return
            for difference in found[:SHOWN]:
                self.stdout.write(str(difference))
            if len(found) > SHOWN:
                self.stdout.write(f"... and {len(found) - SHOWN} more")
            raise CommandError(
                f"{len(found)} rollup rows differ from the raw records ({scope}); "
                "`manage.py rebuild_rollups` recomputes them"
            )
        result = rollups.rebuild(since)
        self.stdout.write(
            self.style.SUCCESS(
                f"Rollups rebuilt ({scope}): {result.deleted} rows replaced by {result.written}."
            )
        )
