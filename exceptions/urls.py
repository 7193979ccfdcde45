"""Console pages of the exceptions app."""

from django.urls import path

from . import action_views, incident_views, queue_pages, rules_views, views

app_name = "exceptions"
urlpatterns = [
    path("", views.QueueListView.as_view(), name="queues"),
    path("queues/<slug:slug>/", views.QueueView.as_view(), name="queue"),
    path("queues/<slug:slug>/export.csv", queue_pages.export_csv, name="export"),
    path("queues/<slug:slug>/views/", queue_pages.save_view, name="save-view"),
    path("views/<int:pk>/delete/", queue_pages.delete_view, name="delete-view"),
    path("<int:pk>/", views.ExceptionDetailView.as_view(), name="detail"),
    path("<int:pk>/retry/", views.retry_view, name="retry"),
    path("<int:pk>/retry/check/", action_views.replay, name="replay"),
    path("<int:pk>/act/<slug:action>/", action_views.act, name="act"),
    path("<int:pk>/comments/", action_views.comment, name="comment"),
    path("<int:pk>/payload/", action_views.payload, name="payload"),
    path(
        "payload-edits/<int:pk>/<slug:decision>/",
        action_views.decide,
        name="payload-edit-decide",
    ),
    path("bulk/new/", action_views.bulk_new, name="bulk-new"),
    path("bulk/<int:pk>/", action_views.bulk_detail, name="bulk"),
    path("incidents/", incident_views.IncidentListView.as_view(), name="incidents"),
    path("incidents/<int:pk>/", incident_views.IncidentDetailView.as_view(), name="incident"),
    path("rules/", rules_views.rule_list, name="rules"),
    path("rules/new/", rules_views.rule_create, name="rule-new"),
    path("rules/test/", rules_views.rule_test, name="rules-test"),
    path("rules/reroute/", rules_views.reroute, name="rules-reroute"),
    path("rules/export/", rules_views.export, name="rules-export"),
    path("rules/import/", rules_views.import_file, name="rules-import"),
    path("rules/<int:pk>/", rules_views.rule_detail, name="rule"),
    path("rules/<int:pk>/edit/", rules_views.rule_edit, name="rule-edit"),
    path("rules/<int:pk>/delete/", rules_views.rule_delete, name="rule-delete"),
    path("rules/<int:pk>/move/", rules_views.rule_move, name="rule-move"),
    path("rules/<int:pk>/toggle/", rules_views.rule_toggle, name="rule-toggle"),
]
