"""`manage.py standins`: serve the vendor stand-ins (Salesforce, NetSuite, Kantata) on their
ports until interrupted. Their records are kept in var/standins/*.json, so the demo's
"vendors" remember what Throughline wrote to them across restarts (`--fresh` starts from the
seed)."""

from __future__ import annotations

import contextlib
import os
import signal
import threading

import httpx
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from integrations.choices import Vendor
from integrations.models import Connection
from integrations.standins.server import (
    STANDINS,
    SnapshotKeeper,
    create_standin_app,
    start_standin,
)
from integrations.tasks import sync_reference_data


class Command(BaseCommand):
    help = "Serve the local vendor stand-ins for the demo."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=settings.STANDIN_HOST)
        parser.add_argument("--only", nargs="*", choices=sorted(STANDINS), default=None)
        parser.add_argument(
            "--fresh", action="store_true", help="start from the seed, not the saved records"
        )

    def handle(self, *args, host: str, only: list[str] | None, fresh: bool, **options):
        os.environ.setdefault("STANDIN_KEYS_DIR", str(settings.STANDIN_KEYS_DIR))
        state_dir = settings.VAR_DIR / "standins"
        running, keepers = [], []
        try:
            for vendor in only or sorted(STANDINS):
                port = settings.STANDIN_PORTS[vendor]
                app = create_standin_app(vendor)
                keeper = SnapshotKeeper(app.state.standin, state_dir / f"{vendor}.json")
                restored = False if fresh else keeper.restore()
                try:
                    standin = start_standin(vendor, host=host, port=port, app=app)
                except OSError as exc:
                    raise CommandError(
                        f"cannot serve the {vendor} stand-in on {port}: {exc}"
                    ) from exc
                running.append(standin)
                keeper.start()
                keepers.append(keeper)
                origin = "saved records" if restored else "seed data"
                self.stdout.write(f"{vendor} stand-in on {standin.url} ({origin})")
            self._point_salesforce_webhooks_at_the_console(running)
            # Reference data (people, cost rates, exchange rates) as soon as the vendors
            # answer, rather than at the first hourly run.
            sync_reference_data.apply_async(countdown=5)
            stop = threading.Event()
            signal.signal(signal.SIGTERM, lambda *_: stop.set())
            with contextlib.suppress(KeyboardInterrupt):
                stop.wait()
        finally:
            for keeper in keepers:
                keeper.stop()
            for standin in running:
                standin.stop()

    def _point_salesforce_webhooks_at_the_console(self, running: list) -> None:
        """Demo wiring: the Salesforce stand-in pushes won deals to the console's webhook,
        signed with the demo connection's secret (polling stays the backstop)."""
        standin = next((s for s in running if s.vendor == "salesforce"), None)
        crm = Connection.objects.filter(vendor=Vendor.SALESFORCE, enabled=True).first()
        if standin is None or crm is None or not crm.secrets.get("webhook_secret"):
            return
        port = os.environ.get("CONSOLE_PORT", "8000")
        url = f"http://127.0.0.1:{port}/webhooks/salesforce/{crm.pk}/"
        answer = httpx.post(
            f"{standin.url}/__standin__/salesforce/webhooks",
            json={"url": url, "secret": crm.secrets["webhook_secret"]},
            timeout=5,
        )
        if answer.is_success:
            self.stdout.write(f"salesforce stand-in pushes won deals to {url}")
