"""`/api/v1/saved-views/`: a person's own saved views (named filters over exceptions). Each
user sees, changes and deletes only their own; the query must be a valid exception filter."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers, viewsets

from .. import saved_views
from ..models import Queue, SavedView


class SavedViewSerializer(serializers.ModelSerializer):
    """A saved view: its name, its queue (none: any queue) and the filter's query string,
    with where it opens in the console and on the API."""

    queue = serializers.SlugRelatedField(
        slug_field="slug", queryset=Queue.objects.all(), allow_null=True, required=False
    )
    query = serializers.CharField(
        allow_blank=True,
        required=False,
        max_length=saved_views.MAX_QUERY_CHARS,
        help_text="The filter as a query string, e.g. `status=active&legal_entity_code=DE01`.",
    )
    page_url = serializers.SerializerMethodField()
    api_url = serializers.SerializerMethodField()

    class Meta:
        model = SavedView
        fields = ["id", "name", "queue", "query", "page_url", "api_url", "created_at"]
        read_only_fields = ["id", "page_url", "api_url", "created_at"]

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_page_url(self, view: SavedView) -> str | None:
        return saved_views.page_url(view)

    def get_api_url(self, view: SavedView) -> str:
        return saved_views.api_url(view)

    def validate_query(self, value: str) -> str:
        try:
            return saved_views.check_query(value)
        except saved_views.SavedViewError as refused:
            raise serializers.ValidationError(str(refused)) from refused

    def validate_name(self, value: str) -> str:
        value = value.strip()
        if not value:
            raise serializers.ValidationError("Give the view a name.")
        owner = self.context["request"].user
        taken = SavedView.objects.filter(owner=owner, name=value)
        if self.instance is not None:
            taken = taken.exclude(pk=self.instance.pk)
        if taken.exists():
            raise serializers.ValidationError(f'You already have a view named "{value}".')
        return value

    def create(self, validated_data: dict[str, Any]) -> SavedView:
        try:
            return saved_views.save_view(
                self.context["request"].user,
                validated_data["name"],
                validated_data.get("query", ""),
                queue=validated_data.get("queue"),
            )
        except saved_views.SavedViewError as refused:
            raise serializers.ValidationError({"name": [str(refused)]}) from refused

    def update(self, instance: SavedView, validated_data: dict[str, Any]) -> SavedView:
        try:
            return saved_views.update_view(instance, self.context["request"].user, **validated_data)
        except saved_views.SavedViewError as refused:
            raise serializers.ValidationError(str(refused)) from refused


class SavedViewViewSet(viewsets.ModelViewSet):
    """The signed-in user's saved views; someone else's are not found (404)."""

    serializer_class = SavedViewSerializer
    queryset = SavedView.objects.none()  # for the schema; the real one is per user
    filter_backends: list[Any] = []

    def get_queryset(self) -> QuerySet[SavedView]:
        return saved_views.views_of(self.request.user)

    def perform_destroy(self, instance: SavedView) -> None:
        saved_views.delete_view(instance, self.request.user)
