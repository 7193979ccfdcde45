"""Root URLs: console pages, each app's pages, the REST API and its OpenAPI schema."""

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from dashboards import health_api, health_views
from integrations import webhooks as integrations_webhooks

from . import views

api_v1 = [
    path("", include("integrations.api.urls")),
    path("", include("exceptions.api.urls")),
    path("", include("reconciliation.api.urls")),
    path("", include("reconciliation.api_audit")),
    path("health/", health_api.HealthView.as_view(), name="api-health"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]

urlpatterns = [
    path("", views.home, name="home"),
    path(
        "login/",
        auth_views.LoginView.as_view(extra_context={"show_demo_hint": settings.DEBUG}),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("healthz", views.healthz, name="healthz"),
    path("metrics", health_views.metrics, name="metrics"),
    path(
        "webhooks/salesforce/<int:connection_id>/",
        integrations_webhooks.salesforce,
        name="webhook-salesforce",
    ),
    path("", include("integrations.urls")),
    path("exceptions/", include("exceptions.urls")),
    path("", include("dashboards.urls")),
    path("", include("reporting.urls")),
    path("reconciliation/", include("reconciliation.urls")),
    path("api/v1/", include(api_v1)),
    path("admin/", admin.site.urls),
]
