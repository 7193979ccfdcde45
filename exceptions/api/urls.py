"""REST API routes of the exceptions app (mounted under /api/v1/)."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from . import actions, export, incidents, rules, saved_views, views

app_name = "exceptions-api"

router = SimpleRouter()
router.register("exceptions", views.IntegrationExceptionViewSet)
router.register("queues", views.QueueViewSet)
router.register("incidents", incidents.IncidentViewSet)
router.register("saved-views", saved_views.SavedViewViewSet, basename="saved-view")
router.register("routing-rules", rules.RoutingRuleViewSet, basename="routing-rule")
router.register("payload-edits", actions.PayloadEditViewSet, basename="payloadedit")
router.register("bulk-actions", actions.BulkActionViewSet, basename="bulkaction")

urlpatterns = [
    path("exceptions/export.csv", export.ExceptionExportView.as_view(), name="exception-export"),
    *router.urls,
    path("routing/export/", rules.RoutingExportView.as_view(), name="routing-export"),
    path("routing/import/", rules.RoutingImportView.as_view(), name="routing-import"),
]
