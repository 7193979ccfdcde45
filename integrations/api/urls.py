"""REST API routes of the integrations app (mounted under /api/v1/)."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from . import inbound, views

app_name = "integrations-api"

router = SimpleRouter()
router.register("connections", views.ConnectionViewSet)
router.register("runs", views.SyncRunViewSet)
router.register("api-calls", views.ApiCallViewSet)

urlpatterns = [
    *router.urls,
    path("events/", inbound.InboundEventView.as_view(), name="inbound-events"),
    path(
        "services/create-service-engagement/",
        inbound.CreateServiceEngagementView.as_view(),
        name="create-service-engagement",
    ),
]
