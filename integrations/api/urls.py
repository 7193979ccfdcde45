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
    path(
        "services/update-billing-plan/",
        inbound.UpdateBillingPlanView.as_view(),
        name="update-billing-plan",
    ),
    path(
        "services/release-milestone-billing/",
        inbound.ReleaseMilestoneBillingView.as_view(),
        name="release-milestone-billing",
    ),
    path(
        "services/post-time-and-expense/",
        inbound.PostTimeAndExpenseView.as_view(),
        name="post-time-and-expense",
    ),
    path(
        "services/synchronize-resource-assignment/",
        inbound.SynchronizeResourceAssignmentView.as_view(),
        name="synchronize-resource-assignment",
    ),
]
