"""Dashboard URLs."""

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from . import (
    health_views,
    kpi_api,
    kpi_views,
    leadership_api,
    leadership_views,
    threshold_api,
    threshold_views,
    views,
)

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
    # thresholds and their alerts, for people (dashboards.threshold_views)
    path("dashboards/thresholds/", threshold_views.threshold_list, name="thresholds"),
    path("dashboards/thresholds/new/", threshold_views.threshold_new, name="threshold-new"),
    path(
        "dashboards/thresholds/<int:pk>/edit/",
        threshold_views.threshold_edit,
        name="threshold-edit",
    ),
    path(
        "dashboards/thresholds/<int:pk>/delete/",
        threshold_views.threshold_delete,
        name="threshold-delete",
    ),
    path("dashboards/alerts/", threshold_views.alert_list, name="alerts"),
    path("dashboards/alerts/export/", threshold_views.alert_export, name="alerts-export"),
    # the leadership view and its API (dashboards.leadership)
    path("dashboards/leadership/", leadership_views.leadership_page, name="leadership"),
    path("api/v1/leadership/", leadership_api.LeadershipView.as_view(), name="api-leadership"),
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
