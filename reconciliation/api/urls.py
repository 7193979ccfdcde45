"""REST API routes of reconciliation (mounted under /api/v1/ by console.urls)."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from . import views

app_name = "reconciliation-api"

router = SimpleRouter()
router.register("reconciliation/definitions", views.DefinitionViewSet, basename="definition")
router.register("reconciliation/runs", views.RunViewSet, basename="run")
router.register("reconciliation/differences", views.DifferenceViewSet, basename="difference")
router.register("reconciliation/acceptances", views.AcceptanceViewSet, basename="acceptance")

urlpatterns = [
    path(
        "reconciliation/runs/<int:pk>/differences/",
        views.RunDifferenceListView.as_view(),
        name="run-differences",
    ),
    *router.urls,
]
