"""Console pages of the exceptions app."""

from django.urls import path

from . import views

app_name = "exceptions"
urlpatterns = [
    path("", views.QueueListView.as_view(), name="queues"),
    path("queues/<slug:slug>/", views.QueueView.as_view(), name="queue"),
    path("<int:pk>/", views.ExceptionDetailView.as_view(), name="detail"),
    path("<int:pk>/retry/", views.retry_view, name="retry"),
]
