"""`manage.py seed_demo`: create the demo teams, users, connections and reference data."""

from django.core.management.base import BaseCommand

from console import demo
from reconciliation import silent_audit


class Command(BaseCommand):
    help = "Seed the demo data (idempotent) and print the demo logins."

    def handle(self, *args, **options):
        result = demo.seed()
        audit = silent_audit.run_audit()  # the dashboards show a result from the start
        logins = ", ".join([team[3] for team in demo.TEAMS] + ["admin (superuser)"])
        self.stdout.write(self.style.SUCCESS("Demo data ready."))
        self.stdout.write(f"  Connections: {', '.join(result.connections)}")
        self.stdout.write(f"  Silent-failure audit: {audit.silent} of {audit.events} events silent")
        self.stdout.write(f"  Logins, password '{demo.DEMO_PASSWORD}': {logins}")
        for vendor, url in demo.standin_urls().items():
            self.stdout.write(f"  {vendor} stand-in control page: {url}/__standin__/")
