"""Dashboard URLs."""

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from . import health_views, kpi_api, kpi_views, threshold_api, views

# SLA thresholds and their alerts (dashboards.threshold_api)
threshold_router = SimpleRouter()
threshold_router.register(
    "api/v1/kpi-thresholds", threshold_api.KpiThresholdViewSet, basename="api-kpi-threshold"
)
threshold_router.register(
    "api/v1/metric-alerts", threshold_api.MetricAlertViewSet, basename="api-metric-alert"
)

app_name = "dashboards"
urlpatterns = [
    path("trace/<path:business_key>/", views.trace, name="trace"),
    path("dashboards/health/", health_views.health_page, name="health"),
    path("dashboards/kpis/", kpi_views.kpi_overview, name="kpis"),
    path("dashboards/kpis/<slug:key>/", kpi_views.kpi_detail, name="kpi"),
    path("dashboards/kpis/<slug:key>/records/", kpi_views.kpi_records, name="kpi-records"),
    # the KPI API, under /api/v1/ with the others (dashboards.kpi_api)
    path("api/v1/kpis/", kpi_api.KpiListView.as_view(), name="api-kpis"),
    path("api/v1/kpis/<slug:key>/", kpi_api.KpiDetailView.as_view(), name="api-kpi"),
    path(
        "api/v1/kpis/<slug:key>/series/",
        kpi_api.KpiSeriesView.as_view(),
        name="api-kpi-series",
    ),
    path(
        "api/v1/kpis/<slug:key>/records/",
        kpi_api.KpiRecordsView.as_view(),
        name="api-kpi-records",
    ),
    path("", include(threshold_router.urls)),
]
