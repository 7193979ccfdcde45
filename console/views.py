"""Console pages of the core app: the home page and a health probe."""

from __future__ import annotations

from django.apps import apps
from django.contrib.auth.decorators import login_required
from django.db import connection
from django.db.models import Count
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.module_loading import import_string

from .choices import TeamKind

#: the team sections of the home page (finance by legal entity, PMO by region, team KPIs),
#: built by the dashboards app and looked up by name, like the business models above
TEAM_SECTIONS = "dashboards.team_home.team_sections"
#: one grouped count of each queue's active work (not a join of every exception ever raised)
QUEUE_COUNTS = "exceptions.queue_counts.with_counts"
ACTIVE_STATUSES = "exceptions.choices.ACTIVE_STATUSES"


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """The signed-in user's team queues first, then recent runs."""
    # The core app may not import the business apps (dependencies point one way), so the home
    # page looks them up through the app registry.
    Queue = apps.get_model("exceptions", "Queue")
    SyncRun = apps.get_model("integrations", "SyncRun")
    team_ids = list(request.user.memberships.values_list("team_id", flat=True))
    # IT starts at connector health (the dashboards app's page, linked by URL name)
    it_member = request.user.memberships.filter(team__kind=TeamKind.IT).exists()
    queues = import_string(QUEUE_COUNTS)(Queue.objects.select_related("team").order_by("name"))
    for queue in queues:
        queue.open_count = queue.active_count  # the work waiting: open, in progress, retrying
    mine = [q for q in queues if q.team_id in team_ids]
    others = [q for q in queues if q.team_id not in team_ids]
    Exc = apps.get_model("exceptions", "IntegrationException")
    my_open = (
        Exc.objects.filter(queue__team_id__in=team_ids, status__in=import_string(ACTIVE_STATUSES))
        .select_related("queue", "run")
        .order_by("-last_seen")[:20]
    )
    runs = SyncRun.objects.select_related("source_connection")[:10]
    run_counts = dict(SyncRun.objects.values_list("status").annotate(n=Count("id")))
    return render(
        request,
        "console/home.html",
        {
            "my_queues": mine,
            "other_queues": others,
            "my_open": my_open,
            "recent_runs": runs,
            "run_counts": run_counts,
            "it_member": it_member,
            **import_string(TEAM_SECTIONS)(request.user),
        },
    )


def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness and database reachability, for load balancers and `make run`."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        database = "ok"
    except Exception as exc:  # report, do not raise: this is the probe
        return JsonResponse({"status": "error", "database": str(exc)}, status=503)
    return JsonResponse({"status": "ok", "database": database})
