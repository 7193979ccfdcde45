"""`manage.py standins`: serve the vendor stand-ins (Salesforce, NetSuite, Kantata) on their
ports until interrupted. Each keeps its state in memory and starts from its seed."""

from __future__ import annotations

import contextlib
import os
import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from integrations.standins.server import STANDINS, start_standin


class Command(BaseCommand):
    help = "Serve the local vendor stand-ins for the demo."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=settings.STANDIN_HOST)
        parser.add_argument("--only", nargs="*", choices=sorted(STANDINS), default=None)

    def handle(self, *args, host: str, only: list[str] | None, **options):
        os.environ.setdefault("STANDIN_KEYS_DIR", str(settings.STANDIN_KEYS_DIR))
        running = []
        try:
            for vendor in only or sorted(STANDINS):
                port = settings.STANDIN_PORTS[vendor]
                try:
                    running.append(start_standin(vendor, host=host, port=port))
                except OSError as exc:
                    raise CommandError(
                        f"cannot serve the {vendor} stand-in on {port}: {exc}"
                    ) from exc
                self.stdout.write(f"{vendor} stand-in on {running[-1].url}")
            stop = threading.Event()
            signal.signal(signal.SIGTERM, lambda *_: stop.set())
            with contextlib.suppress(KeyboardInterrupt):
                stop.wait()
        finally:
            for standin in running:
                standin.stop()
