"""REST API of routing: the rules (CRUD, move, history), the rule tester, re-routing of open
exceptions, and the routing file's export and import. The same services as the console's pages
(exceptions.rule_editing, rules, rerouting, routing_file) do the work; only superusers and
admins of an IT team change anything, every signed-in user reads and tests."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from console.choices import TeamKind
from integrations.api.serializers import EnumField
from integrations.choices import Region
from integrations.models import Connection

from .. import rerouting, routing_file, rule_editing, rules
from ..choices import Category, ExceptionCode
from ..masking import MASK, has_finance_rights
from ..models import IntegrationException, Queue, RoutingRule
from ..rule_editing import EDIT_REFUSED, RuleInvalid, RuleSpec, can_edit_rules

# -- permissions -------------------------------------------------------------------------------


class CanEditRoutingOrReadOnly(permissions.BasePermission):
    """Everyone signed in reads and tests; superusers and IT admins change routing."""

    message = EDIT_REFUSED
    #: actions that change nothing, though posted
    READ_ACTIONS = ("test",)

    def has_permission(self, request: Request, view: Any) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return True
        if getattr(view, "action", None) in self.READ_ACTIONS:
            return True
        if getattr(view, "action", None) == "reroute" and _dry_run(request):
            return True
        return can_edit_rules(request.user)


def _dry_run(request: Request) -> bool:
    value = request.query_params.get("dry_run")
    if value is None and isinstance(request.data, dict):
        value = request.data.get("dry_run")
    return str(value).lower() in ("1", "true", "yes", "on")


# -- serializers -------------------------------------------------------------------------------


class RoutingRuleSerializer(serializers.ModelSerializer):
    """A routing rule: its place in the order, its queue and its conditions (every empty
    condition matches anything). Every change raises `version` and is audited."""

    position = serializers.IntegerField(
        min_value=1,
        required=False,
        help_text="Where the rule is tried (1 first). On create: insert there (later rules "
        "move down one); omitted, after the last. Use `move/` to reorder.",
    )
    queue = serializers.SlugRelatedField(
        slug_field="slug", queryset=Queue.objects.all(), help_text="The queue's slug."
    )
    queue_name = serializers.CharField(source="queue.name", read_only=True)
    codes = serializers.ListField(
        child=EnumField(ExceptionCode), required=False, help_text="Any of these codes."
    )
    category = EnumField(Category, required=False, allow_blank=True)
    entity_types = serializers.ListField(child=serializers.CharField(max_length=40), required=False)
    legal_entity_codes = serializers.ListField(
        child=serializers.CharField(max_length=20), required=False
    )
    regions = serializers.ListField(child=EnumField(Region), required=False)
    connection = serializers.PrimaryKeyRelatedField(
        queryset=Connection.objects.all(), required=False, allow_null=True
    )
    min_amount = serializers.DecimalField(
        max_digits=18, decimal_places=2, required=False, allow_null=True
    )
    max_amount = serializers.DecimalField(
        max_digits=18, decimal_places=2, required=False, allow_null=True
    )
    conditions = serializers.SerializerMethodField(
        help_text="The conditions in words ([]: matches every exception)."
    )
    updated_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = RoutingRule
        fields = [
            "id",
            "position",
            "name",
            "enabled",
            "queue",
            "queue_name",
            "codes",
            "category",
            "entity_types",
            "legal_entity_codes",
            "regions",
            "connection",
            "min_amount",
            "max_amount",
            "conditions",
            "version",
            "updated_at",
            "updated_by",
        ]
        read_only_fields = ["version", "updated_at"]

    def get_conditions(self, rule: RoutingRule) -> list[str]:
        return rules.describe(rule)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        moved = self.instance is not None and attrs.get("position", self.instance.position)
        if moved and moved != self.instance.position:
            raise serializers.ValidationError({"position": "Reorder a rule with its move/ action."})
        current = RuleSpec.of(self.instance) if self.instance is not None else None
        values = {
            name: attrs[name] if name in attrs else getattr(current, name, default)
            for name, default in [
                ("name", ""),
                ("queue", None),
                ("enabled", True),
                ("codes", []),
                ("category", ""),
                ("entity_types", []),
                ("legal_entity_codes", []),
                ("regions", []),
                ("connection", None),
                ("min_amount", None),
                ("max_amount", None),
            ]
        }
        try:
            attrs["spec"] = rule_editing.validate(RuleSpec(**values), instance=self.instance)
        except RuleInvalid as invalid:
            raise serializers.ValidationError(invalid.errors) from invalid
        return attrs

    def create(self, validated_data: dict[str, Any]) -> RoutingRule:
        request = self.context["request"]
        return rule_editing.create_rule(
            validated_data["spec"], actor=request.user, position=validated_data.get("position")
        )

    def update(self, instance: RoutingRule, validated_data: dict[str, Any]) -> RoutingRule:
        rule_editing.update_rule(
            instance, validated_data["spec"], actor=self.context["request"].user
        )
        instance.refresh_from_db()
        return instance


class MoveSerializer(serializers.Serializer):
    direction = serializers.ChoiceField(choices=[rule_editing.UP, rule_editing.DOWN])


class RuleHistorySerializer(serializers.Serializer):
    """One change of a rule, from the audit trail."""

    at = serializers.DateTimeField()
    actor = serializers.CharField(source="actor_label")
    action = serializers.CharField()
    summary = serializers.CharField()
    version = serializers.IntegerField(source="data.version", allow_null=True)
    before = serializers.JSONField(source="data.before", allow_null=True)
    after = serializers.JSONField(source="data.after", allow_null=True)
    changes = serializers.JSONField(
        source="data.changes", help_text="Changed fields: [before, after]."
    )


class RuleTestRequestSerializer(serializers.Serializer):
    """An existing exception (`exception`), or the facts of one."""

    exception = serializers.IntegerField(
        required=False, help_text="Test this exception; the other fields are then ignored."
    )
    code = EnumField(ExceptionCode, required=False, allow_blank=True)
    category = EnumField(
        Category, required=False, allow_blank=True, help_text="Blank: the code's usual one."
    )
    owner = EnumField(
        TeamKind,
        required=False,
        allow_blank=True,
        help_text="The owning team; blank: as the classification says. Decides only when no "
        "rule matches.",
    )
    entity_type = serializers.CharField(required=False, allow_blank=True, max_length=40)
    legal_entity_code = serializers.CharField(required=False, allow_blank=True, max_length=20)
    region = serializers.CharField(required=False, allow_blank=True, max_length=10)
    connection = serializers.IntegerField(required=False, allow_null=True)
    amount = serializers.DecimalField(
        max_digits=18, decimal_places=2, required=False, allow_null=True
    )

    def validate_exception(self, value: int) -> IntegrationException:
        exc = IntegrationException.objects.select_related("queue__team").filter(pk=value).first()
        if exc is None:
            raise serializers.ValidationError(f"There is no exception #{value}.")
        return exc

    def facts(self) -> rules.Facts:
        data = self.validated_data
        if data.get("exception") is not None:
            return rules.Facts.of_exception(data["exception"])
        return rules.facts_from(
            code=data.get("code") or "",
            category=data.get("category") or "",
            entity_type=data.get("entity_type") or "",
            legal_entity_code=data.get("legal_entity_code") or "",
            region=data.get("region") or "",
            connection_id=data.get("connection"),
            amount=data.get("amount"),
            owner=data.get("owner") or "",
        )


class CheckSerializer(serializers.Serializer):
    condition = serializers.CharField()
    label = serializers.CharField()
    expected = serializers.CharField()
    actual = serializers.CharField()
    ok = serializers.BooleanField()


class RuleTraceSerializer(serializers.Serializer):
    rule = serializers.IntegerField(source="rule.pk")
    position = serializers.IntegerField(source="rule.position")
    name = serializers.CharField(source="rule.name")
    queue = serializers.CharField(source="rule.queue.slug")
    enabled = serializers.BooleanField(source="rule.enabled")
    version = serializers.IntegerField(source="rule.version")
    outcome = EnumField(rules.RuleVerdict)
    failed_conditions = serializers.SerializerMethodField()
    checks = CheckSerializer(many=True)

    def get_failed_conditions(self, step: rules.RuleTrace) -> list[str]:
        return [check.condition for check in step.failed]


class PlacedRuleSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="pk")
    name = serializers.CharField()
    position = serializers.IntegerField()
    version = serializers.IntegerField()


class FactsSerializer(serializers.Serializer):
    code = serializers.CharField()
    category = serializers.CharField()
    entity_type = serializers.CharField()
    legal_entity_code = serializers.CharField()
    region = serializers.CharField()
    connection = serializers.IntegerField(source="connection_id", allow_null=True)
    amount = serializers.CharField(
        allow_null=True,
        help_text=f'A decimal string; a stored exception\'s amount reads "{MASK}" for people '
        "without finance rights.",
    )
    owner = serializers.CharField()


class RuleTestResultSerializer(serializers.Serializer):
    """Where the exception goes, what decided, and every rule's verdict in order."""

    queue = serializers.CharField(source="queue.slug")
    queue_name = serializers.CharField(source="queue.name")
    rule = PlacedRuleSerializer(allow_null=True)
    decided_by = EnumField(rules.RoutingDecision)
    explanation = serializers.CharField()
    facts = FactsSerializer()
    trace = RuleTraceSerializer(many=True)


class RerouteRequestSerializer(serializers.Serializer):
    dry_run = serializers.BooleanField(
        default=False, help_text="Count the moves without making them."
    )


class MoveCountSerializer(serializers.Serializer):
    from_queue = serializers.CharField()
    to_queue = serializers.CharField()
    count = serializers.IntegerField()


class RerouteReportSerializer(serializers.Serializer):
    dry_run = serializers.BooleanField()
    checked = serializers.IntegerField(help_text="Active exceptions looked at.")
    moved = serializers.IntegerField(help_text="Moved (or, in a dry run, that would move).")
    kept_manual = serializers.IntegerField(help_text="Would move, but assigned by hand: they stay.")
    moves = MoveCountSerializer(many=True)
    summary = serializers.CharField()


# -- the routing file's schema (documentation; routing_file validates) --------------------------


class QueueEntrySerializer(serializers.Serializer):
    slug = serializers.SlugField()
    name = serializers.CharField()
    team = serializers.CharField(help_text="The owning team's slug.")
    description = serializers.CharField(allow_blank=True)
    sla_hours = serializers.IntegerField(min_value=1)
    escalate_after_hours = serializers.IntegerField(allow_null=True)
    escalation_emails = serializers.CharField(allow_blank=True)
    alert_emails = serializers.CharField(allow_blank=True)
    alert_webhook_url = serializers.CharField(allow_blank=True)
    is_fallback = serializers.BooleanField()


class RuleEntrySerializer(serializers.Serializer):
    name = serializers.CharField(help_text="Identifies the rule: unique.")
    enabled = serializers.BooleanField()
    queue = serializers.CharField(help_text="Slug of one of the file's queues.")
    codes = serializers.ListField(child=EnumField(ExceptionCode))
    category = EnumField(Category, allow_blank=True)
    entity_types = serializers.ListField(child=serializers.CharField())
    legal_entity_codes = serializers.ListField(child=serializers.CharField())
    regions = serializers.ListField(child=EnumField(Region))
    connection = serializers.CharField(allow_null=True, help_text="A connection's name.")
    min_amount = serializers.DecimalField(max_digits=18, decimal_places=2, allow_null=True)
    max_amount = serializers.DecimalField(max_digits=18, decimal_places=2, allow_null=True)


class RoutingDocumentSerializer(serializers.Serializer):
    """The routing file: queues by slug, rules in the order they are tried."""

    format = serializers.CharField(help_text=f"Always “{routing_file.FORMAT}”.")
    version = serializers.IntegerField(help_text=f"Format version ({routing_file.VERSION}).")
    queues = QueueEntrySerializer(many=True)
    rules = RuleEntrySerializer(many=True)


class RoutingImportRequestSerializer(RoutingDocumentSerializer):
    dry_run = serializers.BooleanField(
        required=False, help_text="Return the difference without applying it."
    )


class ChangesSerializer(serializers.Serializer):
    created = serializers.ListField(child=serializers.CharField())
    changed = serializers.ListField(child=serializers.DictField())
    deleted = serializers.ListField(child=serializers.CharField())
    unchanged = serializers.ListField(child=serializers.CharField())


class ImportResultSerializer(serializers.Serializer):
    dry_run = serializers.BooleanField()
    applied = serializers.BooleanField()
    summary = serializers.CharField()
    queues = ChangesSerializer(help_text="By slug; `changed` items: {slug, changes}.")
    rules = ChangesSerializer(help_text="By name; `changed` items: {name, changes}.")


class ImportErrorsSerializer(serializers.Serializer):
    errors = serializers.ListField(
        child=serializers.CharField(), help_text="Every problem, each saying where."
    )


# -- views -------------------------------------------------------------------------------------


class RoutingRuleViewSet(viewsets.ModelViewSet):
    """Routing rules in the order they are tried. Writes: superusers and IT admins."""

    queryset = rules.ordered_rules().select_related("updated_by")
    serializer_class = RoutingRuleSerializer
    permission_classes = [permissions.IsAuthenticated, CanEditRoutingOrReadOnly]
    lookup_value_regex = r"\d+"
    filter_backends: list[Any] = []

    def perform_destroy(self, instance: RoutingRule) -> None:
        rule_editing.delete_rule(instance, actor=self.request.user)

    @extend_schema(request=MoveSerializer, responses={200: RoutingRuleSerializer})
    @action(detail=True, methods=["post"])
    def move(self, request: Request, pk: str | None = None) -> Response:
        """Swap the rule with its neighbour above (`up`) or below (`down`)."""
        rule = self.get_object()
        body = MoveSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        rule_editing.move_rule(rule, body.validated_data["direction"], actor=request.user)
        return Response(self.get_serializer(self.get_queryset().get(pk=rule.pk)).data)

    @extend_schema(responses={200: RuleHistorySerializer(many=True)})
    @action(detail=True, methods=["get"], pagination_class=None)
    def history(self, request: Request, pk: str | None = None) -> Response:
        """The rule's changes from the audit trail, newest first."""
        rule = self.get_object()
        events = rule_editing.history(rule.pk)[:500]
        return Response(RuleHistorySerializer(events, many=True).data)

    @extend_schema(
        request=RuleTestRequestSerializer,
        responses={200: RuleTestResultSerializer},
    )
    @action(detail=False, methods=["post"], serializer_class=RuleTestRequestSerializer)
    def test(self, request: Request) -> Response:
        """Where would this exception go, and by which rule? Every rule's verdict, in order."""
        body = RuleTestRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        placement = rules.explain(body.facts())
        stored = body.validated_data.get("exception") is not None
        if stored and not has_finance_rights(request.user):
            placement = rules.hide_amount(placement, MASK)
            data = RuleTestResultSerializer(placement).data
            if data["facts"]["amount"] is not None:
                data["facts"]["amount"] = MASK
            return Response(data)
        return Response(RuleTestResultSerializer(placement).data)

    @extend_schema(
        request=RerouteRequestSerializer,
        responses={
            200: RerouteReportSerializer,
            403: OpenApiResponse(description=EDIT_REFUSED),
        },
    )
    @action(detail=False, methods=["post"], serializer_class=RerouteRequestSerializer)
    def reroute(self, request: Request) -> Response:
        """Move active exceptions to the queue the rules give now (manual assignments stay);
        with `dry_run`, only count (everyone may preview)."""
        body = RerouteRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        report = rerouting.reroute(actor=request.user, dry_run=body.validated_data["dry_run"])
        return Response(RerouteReportSerializer(report.as_dict()).data)


class RoutingExportView(APIView):
    """The routing file: every queue and rule, stable, keyed by slug and name."""

    @extend_schema(responses={200: RoutingDocumentSerializer}, operation_id="routing_export")
    def get(self, request: Request) -> Response:
        return Response(routing_file.export_document())


class RoutingImportView(APIView):
    """Replace every queue and rule with a routing file, validated first, in one transaction,
    audited; `dry_run` returns the difference only."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(
        request=RoutingImportRequestSerializer,
        parameters=[
            OpenApiParameter(
                "dry_run", bool, description="Return the difference without applying it."
            )
        ],
        responses={
            200: ImportResultSerializer,
            400: ImportErrorsSerializer,
            403: OpenApiResponse(description=EDIT_REFUSED),
        },
        operation_id="routing_import",
    )
    def post(self, request: Request) -> Response:
        if not can_edit_rules(request.user):
            self.permission_denied(request, message=EDIT_REFUSED)
        document = request.data
        if isinstance(document, dict):
            document = {k: v for k, v in document.items() if k != "dry_run"}
        try:
            result = routing_file.import_document(
                document, actor=request.user, dry_run=_dry_run(request)
            )
        except routing_file.ImportRefused as refused:
            return Response({"errors": refused.errors}, status=status.HTTP_400_BAD_REQUEST)
        return Response(result.as_dict())
