"""Saved views: a person's named filter over exceptions (the queue page's query string).

The page and the API both save and delete through here, so both check the query the same
way (it must be a valid IntegrationExceptionFilterSet query) and both audit."""

from __future__ import annotations

from urllib.parse import urlencode

from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.http import QueryDict
from django.urls import reverse

from console import audit
from console.models import User

from .filtersets import IntegrationExceptionFilterSet
from .models import IntegrationException, Queue, SavedView

#: parameters of a page address that are not part of the filter
NOT_FILTERS = frozenset({"cursor", "page", "csrfmiddlewaretoken", "name", "next", "format"})
MAX_QUERY_CHARS = SavedView._meta.get_field("query").max_length
MAX_NAME_CHARS = SavedView._meta.get_field("name").max_length


class SavedViewError(ValueError):
    """The view cannot be saved as asked; the message says why, for the person."""


def normalise_query(query: str | QueryDict) -> str:
    """The filter part of a query string: no paging, no form plumbing, no empty values."""
    data = QueryDict(query) if isinstance(query, str) else query
    pairs = [
        (key, value)
        for key, values in data.lists()
        if key not in NOT_FILTERS
        for value in values
        if value.strip()
    ]
    return urlencode(pairs)


def check_query(query: str) -> str:
    """`query` normalised, or SavedViewError naming the filters that are wrong."""
    normal = normalise_query(query)
    if len(normal) > MAX_QUERY_CHARS:
        raise SavedViewError(
            f"This filter is too long to save (over {MAX_QUERY_CHARS} characters)."
        )
    filterset = IntegrationExceptionFilterSet(
        QueryDict(normal), queryset=IntegrationException.objects.none()
    )
    if not filterset.is_valid():
        fields = filterset.form.fields
        problems = "; ".join(
            f"{(fields[name].label if name in fields else '') or name}: {' '.join(errors)}"
            for name, errors in filterset.form.errors.items()
        )
        raise SavedViewError(f"These filters are not valid: {problems}")
    return normal


def views_of(user: User, queue: Queue | None = None) -> QuerySet[SavedView]:
    """The user's own saved views (of one queue and the ones of no queue, if given)."""
    views = SavedView.objects.filter(owner=user).select_related("queue")
    if queue is not None:
        views = views.filter(queue=queue) | views.filter(queue__isnull=True)
    return views.order_by("name")


@transaction.atomic
def save_view(owner: User, name: str, query: str, *, queue: Queue | None = None) -> SavedView:
    """Save the filter `query` under `name` for `owner` (names are unique per person)."""
    name = name.strip()
    if not name:
        raise SavedViewError("Give the view a name.")
    if len(name) > MAX_NAME_CHARS:
        raise SavedViewError(f"Keep the name under {MAX_NAME_CHARS} characters.")
    normal = check_query(query)
    if SavedView.objects.filter(owner=owner, name=name).exists():
        raise SavedViewError(
            f'You already have a view named "{name}"; pick another name or delete that one.'
        )
    try:
        with transaction.atomic():
            view = SavedView.objects.create(owner=owner, name=name, queue=queue, query=normal)
    except IntegrityError as exc:  # saved twice at once
        raise SavedViewError(f'You already have a view named "{name}".') from exc
    audit.record(
        "exception.view_saved",
        f'Saved view "{name}"' + (f" of {queue}" if queue else "") + f": {normal or 'no filters'}",
        actor=owner,
        obj=view,
        query=normal,
        queue=queue.slug if queue else "",
    )
    return view


@transaction.atomic
def update_view(view: SavedView, actor: User, **changes: object) -> SavedView:
    """Rename a view, change its query or queue (the owner only; audited)."""
    if view.owner_id != actor.pk:
        raise SavedViewError("Only the person who saved a view can change it.")
    if "query" in changes:
        changes["query"] = check_query(str(changes["query"]))
    for field, value in changes.items():
        setattr(view, field, value)
    view.save()
    audit.record(
        "exception.view_changed",
        f'Saved view "{view.name}" changed: {view.query or "no filters"}',
        actor=actor,
        obj=view,
        query=view.query,
    )
    return view


@transaction.atomic
def delete_view(view: SavedView, actor: User) -> None:
    """Delete one's own saved view (audited)."""
    if view.owner_id != actor.pk:
        raise SavedViewError("Only the person who saved a view can delete it.")
    audit.record(
        "exception.view_deleted",
        f'Saved view "{view.name}" deleted',
        actor=actor,
        obj=view,
        query=view.query,
    )
    view.delete()


def page_url(view: SavedView) -> str | None:
    """Where the view opens in the console (a view of no queue has no page: API only)."""
    if view.queue is None:
        return None
    url = view.queue.get_absolute_url()
    return f"{url}?{view.query}" if view.query else url


def api_url(view: SavedView) -> str:
    """The same filter on the REST API's exception list."""
    data = QueryDict(view.query, mutable=True)
    if view.queue is not None:
        data["queue"] = view.queue.slug
    base = reverse("exceptions-api:integrationexception-list")
    encoded = data.urlencode()
    return f"{base}?{encoded}" if encoded else base
