"""REST API routes of the exceptions app (mounted under /api/v1/)."""

from rest_framework.routers import SimpleRouter

from . import views

app_name = "exceptions-api"

router = SimpleRouter()
router.register("exceptions", views.IntegrationExceptionViewSet)
router.register("queues", views.QueueViewSet)

urlpatterns = router.urls
