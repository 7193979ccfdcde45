"""REST serializers of the exception actions: the requests (assign, ignore, resolve, comment,
payload edit, bulk action) and what the API answers (the action's result, the pre-flight
check, comments, payload edits with their diff, bulk actions with their progress)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from integrations.api.serializers import EnumField

from .. import bulk, payload_edits
from ..choices import BulkKind, BulkStatus, ExceptionStatus, PayloadEditStatus
from ..lifecycle import COMMENT_MAX_CHARS, REASON_MAX_CHARS
from ..models import BulkAction, Comment, PayloadEdit


class ActionResultSerializer(serializers.Serializer):
    """What an action did: the exception's status and assignee afterwards, in words."""

    status = EnumField(ExceptionStatus, read_only=True)
    assignee = serializers.CharField(read_only=True, allow_null=True)
    message = serializers.CharField(read_only=True)


class AssignRequestSerializer(serializers.Serializer):
    assignee = serializers.CharField(
        max_length=150, help_text="Username of a resolver of the queue's team."
    )


class IgnoreRequestSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=REASON_MAX_CHARS)
    until = serializers.DateTimeField(
        required=False,
        allow_null=True,
        help_text="Ignore until this time (with its time zone); empty: see the other field.",
    )
    until_it_happens_again = serializers.BooleanField(
        default=False,
        help_text="Ignore until the same failure happens again. Neither this nor `until`: "
        "ignored for good (a repeat only counts).",
    )


class ResolveRequestSerializer(serializers.Serializer):
    note = serializers.CharField(max_length=REASON_MAX_CHARS, help_text="How it was resolved.")


class CommentSerializer(serializers.ModelSerializer):
    """A comment on an exception."""

    author = serializers.SlugRelatedField(slug_field="username", read_only=True)
    body = serializers.CharField(max_length=COMMENT_MAX_CHARS)

    class Meta:
        model = Comment
        fields = ["id", "author", "body", "created_at"]
        read_only_fields = ["id", "author", "created_at"]


class ChangeSerializer(serializers.Serializer):
    path = serializers.CharField(help_text="The changed field, dotted (e.g. Account.Name).")
    before = serializers.JSONField(allow_null=True)
    after = serializers.JSONField(allow_null=True)
    financial = serializers.BooleanField(
        help_text="A money, bank or tax field (masked without finance rights)."
    )


class PayloadEditSerializer(serializers.ModelSerializer):
    """A payload edit: the changed fields (the diff), whether it needs a second person's
    approval, and where it stands."""

    author = serializers.SlugRelatedField(slug_field="username", read_only=True)
    decided_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    status = EnumField(PayloadEditStatus, read_only=True)
    changes = serializers.SerializerMethodField()

    class Meta:
        model = PayloadEdit
        fields = [
            "id",
            "exception",
            "author",
            "status",
            "needs_approval",
            "changes",
            "created_at",
            "decided_by",
            "decided_at",
        ]
        read_only_fields = fields

    @extend_schema_field(ChangeSerializer(many=True))
    def get_changes(self, obj: PayloadEdit) -> list[dict[str, Any]]:
        request = self.context.get("request")
        return payload_edits.visible_changes(obj, request.user if request else None)


class PayloadEditRequestSerializer(serializers.Serializer):
    payload = serializers.JSONField(
        help_text="The whole corrected payload (a JSON object). Only the fields of the "
        "workflow's allow-list may differ; masked values sent back unchanged keep their value."
    )


class TargetLookupSerializer(serializers.Serializer):
    connection = serializers.CharField()
    record = serializers.CharField(help_text="What was looked up, in business words.")
    key = serializers.CharField(help_text="The external id or reference it was looked up by.")
    found = serializers.BooleanField(
        allow_null=True, help_text="null: the lookup could not be made (see error)."
    )
    external_id = serializers.CharField(help_text="Its id in that system, when found.")
    error = serializers.CharField()


class SentBodySerializer(serializers.Serializer):
    what = serializers.CharField()
    body = serializers.JSONField()


class StepPreviewSerializer(serializers.Serializer):
    step = serializers.CharField()
    note = serializers.CharField()
    problem = serializers.CharField(help_text="Why the attempt would fail again; empty if not.")
    uses = serializers.JSONField(allow_null=True, help_text="The data the step would use.")
    sends = serializers.SerializerMethodField()

    @extend_schema_field(SentBodySerializer(many=True))
    def get_sends(self, obj: Any) -> list[dict[str, Any]]:
        return [{"what": what, "body": body} for what, body in obj.sends]


class PreflightSerializer(serializers.Serializer):
    """The pre-flight check of a retry or restart: may it run now, was the record created
    after all, and what will be sent."""

    mode = serializers.CharField()
    allowed = serializers.BooleanField()
    refusal = serializers.CharField(help_text="Why it cannot run now; empty when it can.")
    plan = serializers.CharField(help_text="What the action does, in words.")
    records = serializers.IntegerField(help_text="How many records it touches.")
    lookups = TargetLookupSerializer(many=True)
    lookup_note = serializers.CharField()
    previews = StepPreviewSerializer(many=True)
    problems = serializers.ListField(child=serializers.CharField())


class BulkActionSerializer(serializers.ModelSerializer):
    """A bulk action and its progress (done of total, succeeded, failed, first errors)."""

    kind = EnumField(BulkKind, read_only=True)
    status = EnumField(BulkStatus, read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    params = serializers.SerializerMethodField()

    class Meta:
        model = BulkAction
        fields = [
            "id",
            "kind",
            "status",
            "query",
            "params",
            "total",
            "done",
            "succeeded",
            "failed",
            "errors",
            "created_by",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.DictField())
    def get_params(self, obj: BulkAction) -> dict[str, Any]:
        return bulk.public_params(obj)


class BulkActionRequestSerializer(serializers.Serializer):
    kind = EnumField(BulkKind)
    query = serializers.DictField(
        default=dict,
        help_text="Filter parameters, as for GET /api/v1/exceptions/ (e.g. "
        '{"queue": "it-integration", "code": ["rate_limit_exhausted"], "status": "active"}).',
    )
    params = serializers.DictField(
        default=dict,
        help_text='assign: {"assignee": username}; resolve: {"note": ...}; ignore: '
        '{"reason": ..., "until": ISO time or "until_it_happens_again": true}.',
    )


class BulkPreviewSerializer(serializers.Serializer):
    """How many exceptions a bulk action would touch (the confirmation step)."""

    kind = EnumField(BulkKind)
    total = serializers.IntegerField(help_text="Exceptions the filter selects.")
    actionable = serializers.IntegerField(
        help_text="Unresolved ones in queues where you are a resolver: the action's work."
    )
    runs = serializers.IntegerField(help_text="Retry: failed runs to resume.")
    polls = serializers.IntegerField(help_text="Retry: connections to read again.")
