"""REST API routes of the integrations app (mounted under /api/v1/)."""

from rest_framework.routers import SimpleRouter

from . import views

app_name = "integrations-api"

router = SimpleRouter()
router.register("connections", views.ConnectionViewSet)
router.register("runs", views.SyncRunViewSet)
router.register("api-calls", views.ApiCallViewSet)

urlpatterns = router.urls
