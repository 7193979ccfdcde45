"""Dashboard URLs."""

from django.urls import path

from . import health_views, kpi_api, views

app_name = "dashboards"
urlpatterns = [
    path("trace/<path:business_key>/", views.trace, name="trace"),
    path("dashboards/health/", health_views.health_page, name="health"),
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
]
