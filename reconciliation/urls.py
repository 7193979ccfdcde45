"""Reconciliation pages, mounted under /reconciliation/ by console.urls (the REST API is in
reconciliation.api.urls, under /api/v1/reconciliation/)."""

from django.urls import path

from . import run_views, views

app_name = "reconciliation"
urlpatterns = [
    path("", views.definitions_page, name="definitions"),
    path("definitions/<int:pk>/", views.history_page, name="history"),
    path("definitions/<int:pk>/edit/", views.edit_definition, name="definition-edit"),
    path("definitions/<int:pk>/run/", views.run_now, name="run-now"),
    path("runs/<int:pk>/", run_views.run_page, name="run-detail"),
    path("runs/<int:pk>/progress/", run_views.run_progress, name="run-progress"),
    path("runs/<int:pk>/export.csv", run_views.run_export, name="run-export"),
    path("runs/<int:pk>/actions/", run_views.run_actions, name="run-actions"),
    path("differences/<int:pk>/", run_views.difference_page, name="difference"),
]
