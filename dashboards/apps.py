"""App config of the dashboards (KPIs, connector health, reconciliation: later issues)."""

from django.apps import AppConfig


class DashboardsConfig(AppConfig):
    name = "dashboards"
    verbose_name = "Dashboards"
