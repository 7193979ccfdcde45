"""Dashboard URLs."""

from django.urls import path

from . import views

app_name = "dashboards"
urlpatterns = [
    path("trace/<path:business_key>/", views.trace, name="trace"),
]
