"""Console pages of the integrations app."""

from django.urls import path

from . import views

app_name = "integrations"
urlpatterns = [
    path("runs/", views.RunListView.as_view(), name="runs"),
    path("runs/<int:pk>/", views.RunDetailView.as_view(), name="run"),
    path("connections/", views.ConnectionListView.as_view(), name="connections"),
]
