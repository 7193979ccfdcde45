"""Reporting URLs: the extracts page and its API under /api/v1/extracts/."""

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from . import api, views

router = SimpleRouter()
router.register("api/v1/extracts", api.ExtractViewSet, basename="api-extract")

app_name = "reporting"
urlpatterns = [
    path("reporting/extracts/", views.extracts_page, name="extracts"),
    path("reporting/extracts/<int:pk>/run/", views.run_now, name="extract-run"),
    path("", include(router.urls)),
]
