"""REST serializers of reconciliation: definitions (with their last run and next run), runs
(with the amount at risk per legal entity), differences (with the field-level difference),
acceptances, and the requests and answers of the actions.

Money is a decimal string in the legal entity's currency. For people without finance rights
every amount reads "•••• (finance only)" (exceptions.masking), as on the pages.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.plumbing import build_choice_field
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from exceptions.masking import MASK, FinanceMaskingMixin
from integrations.api.serializers import EnumField

from .. import actions, display, overview
from ..models import Acceptance, Definition, Difference, Kind, Run
from ..records import day_of

MONEY_HELP = f'A decimal string in the legal entity\'s currency, or "{MASK}".'


class NamedEnumField(EnumField):
    """An EnumField documented under a name of its own (reconciliation's `Status`, `Mode` and
    `State` choices would clash with other apps' classes of the same name)."""

    def __init__(self, choices_class: Any, *, enum_name: str, **kwargs: Any) -> None:
        self.enum_name = enum_name
        super().__init__(choices_class, **kwargs)


class NamedEnumFieldExtension(OpenApiSerializerFieldExtension):
    target_class = NamedEnumField
    priority = 1

    def get_name(self) -> str:
        return self.target.enum_name

    def map_serializer_field(self, auto_schema: Any, direction: str) -> dict[str, Any]:
        return build_choice_field(self.target)


def _allowed(serializer: serializers.Serializer) -> bool:
    request = serializer.context.get("request")
    return request is not None and actions.can_see_amounts(request.user)


class RiskSerializer(serializers.Serializer):
    legal_entity = serializers.CharField()
    currency = serializers.CharField()
    amount = serializers.CharField(help_text=MONEY_HELP)
    differences = serializers.IntegerField(help_text="Open differences (not accepted).")
    missing = serializers.IntegerField(help_text="Of which missing on one side.")


class RunSerializer(serializers.ModelSerializer):
    """A run: where it is (status, phase, records pulled) and, once done, what it found."""

    status = NamedEnumField(Run.Status, enum_name="ReconciliationRunStatusEnum", read_only=True)
    mode = NamedEnumField(Run.Mode, enum_name="ReconciliationRunModeEnum", read_only=True)
    definition = serializers.SlugRelatedField(slug_field="name", read_only=True)
    requested_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    match_rate = serializers.FloatField(
        read_only=True,
        allow_null=True,
        help_text="Matched or accepted keys / keys compared, in % (null until done).",
    )
    compared = serializers.IntegerField(read_only=True)
    open_differences = serializers.IntegerField(read_only=True)
    at_risk = serializers.SerializerMethodField(help_text="Money at risk per legal entity.")
    finance_masked = serializers.SerializerMethodField(
        help_text="True when amounts are masked for you."
    )

    class Meta:
        model = Run
        fields = [
            "id",
            "definition",
            "status",
            "mode",
            "trigger",
            "requested_by",
            "phase",
            "source_pulled",
            "target_pulled",
            "source_records",
            "target_records",
            "matched",
            "missing_in_target",
            "missing_in_source",
            "field_mismatch",
            "duplicate",
            "accepted",
            "in_flight",
            "compared",
            "open_differences",
            "match_rate",
            "at_risk",
            "error",
            "created_at",
            "started_at",
            "finished_at",
            "compare_ms",
            "finance_masked",
        ]
        read_only_fields = fields

    @extend_schema_field(RiskSerializer(many=True))
    def get_at_risk(self, run: Run) -> list[dict[str, Any]]:
        allowed = _allowed(self)
        return [
            {
                "legal_entity": row.legal_entity,
                "currency": row.currency,
                "amount": str(row.amount),
                "differences": row.differences,
                "missing": row.missing,
            }
            for row in display.at_risk_rows(run, allowed)
        ]

    def get_finance_masked(self, run: Run) -> bool:
        return not _allowed(self)


class StartRunSerializer(serializers.Serializer):
    definition = serializers.PrimaryKeyRelatedField(queryset=Definition.objects.all())
    full = serializers.BooleanField(
        default=False,
        help_text="Pull both sides in full (finds records deleted in a system); "
        "otherwise what changed since the last run.",
    )


class DefinitionSerializer(serializers.ModelSerializer):
    """A definition: the two systems, the comparison, its tolerances and schedule (the
    editable fields), its last run and when it runs next."""

    source = serializers.SlugRelatedField(slug_field="name", read_only=True)
    target = serializers.SlugRelatedField(slug_field="name", read_only=True)
    comparison = serializers.SerializerMethodField()
    owner = serializers.SerializerMethodField(help_text="The team that owns its differences.")
    last_run = serializers.SerializerMethodField()
    next_run = serializers.SerializerMethodField(help_text="null: disabled")
    periodic_task = serializers.PrimaryKeyRelatedField(read_only=True)

    class Meta:
        model = Definition
        fields = [
            "id",
            "name",
            "kind",
            "comparison",
            "owner",
            "source",
            "target",
            *actions.EDITABLE,
            "periodic_task",
            "last_run",
            "next_run",
        ]
        read_only_fields = ["name", "kind"]

    def _status(self, obj: Definition) -> overview.DefinitionStatus:
        cache = self.context.setdefault("_statuses", {})
        if obj.pk not in cache:
            cache[obj.pk] = overview.status_of(obj)
        return cache[obj.pk]

    def get_comparison(self, obj: Definition) -> str:
        return self._status(obj).comparison.name

    def get_owner(self, obj: Definition) -> str:
        return self._status(obj).comparison.owner

    @extend_schema_field(RunSerializer(allow_null=True))
    def get_last_run(self, obj: Definition) -> dict[str, Any] | None:
        run = self._status(obj).last_run
        return RunSerializer(run, context=self.context).data if run else None

    @extend_schema_field(OpenApiTypes.DATETIME)
    def get_next_run(self, obj: Definition) -> str | None:
        when = self._status(obj).next_run
        return when.isoformat() if when else None

    def validate_full_pull_every(self, value: int) -> int:
        if value < 1:
            raise serializers.ValidationError("At least 1 (every scheduled run pulls in full).")
        return value


class FieldDifferenceSerializer(serializers.Serializer):
    field = serializers.CharField()
    source = serializers.CharField(help_text="The source system's value ('' when missing).")
    target = serializers.CharField(help_text="The target system's value ('' when missing).")


class AcceptanceSerializer(serializers.ModelSerializer):
    definition = serializers.SlugRelatedField(slug_field="name", read_only=True)
    kind = NamedEnumField(Kind, enum_name="DifferenceKindEnum", read_only=True)
    accepted_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Acceptance
        fields = [
            "id",
            "definition",
            "key",
            "kind",
            "signature",
            "reason",
            "accepted_by",
            "accepted_at",
        ]
        read_only_fields = fields


class DifferenceSerializer(FinanceMaskingMixin, serializers.ModelSerializer):
    """One key a run found not matching, with both sides' values and the field-level
    difference."""

    masked_amount_fields = ("source_amount", "target_amount", "amount_at_risk")
    masked_json_fields = ("source_fields", "target_fields")

    kind = NamedEnumField(Kind, enum_name="DifferenceKindEnum", read_only=True)
    state = NamedEnumField(Difference.State, enum_name="DifferenceStateEnum", read_only=True)
    source_amount = serializers.SerializerMethodField(help_text=MONEY_HELP)
    target_amount = serializers.SerializerMethodField(help_text=MONEY_HELP)
    amount_at_risk = serializers.SerializerMethodField(help_text=MONEY_HELP)
    source_date = serializers.SerializerMethodField()
    target_date = serializers.SerializerMethodField()
    field_differences = serializers.SerializerMethodField()
    source_fields = serializers.JSONField(read_only=True, allow_null=True)
    target_fields = serializers.JSONField(read_only=True, allow_null=True)
    acceptance = AcceptanceSerializer(read_only=True, allow_null=True)
    finance_masked = serializers.SerializerMethodField(
        help_text="True when amounts are masked for you."
    )

    class Meta:
        model = Difference
        fields = [
            "id",
            "run",
            "key",
            "kind",
            "side",
            "legal_entity",
            "currency",
            "source_id",
            "target_id",
            "source_amount",
            "target_amount",
            "amount_at_risk",
            "source_status",
            "target_status",
            "source_date",
            "target_date",
            "field_differences",
            "source_fields",
            "target_fields",
            "state",
            "exception",
            "acceptance",
            "updated_at",
            "finance_masked",
        ]
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.STR)
    def get_source_amount(self, diff: Difference) -> str | None:
        value = display.amount(diff.source_amount)
        return None if value is None else str(value)

    @extend_schema_field(OpenApiTypes.STR)
    def get_target_amount(self, diff: Difference) -> str | None:
        value = display.amount(diff.target_amount)
        return None if value is None else str(value)

    @extend_schema_field(OpenApiTypes.STR)
    def get_amount_at_risk(self, diff: Difference) -> str:
        return str(display.amount(diff.amount_at_risk))

    @extend_schema_field(OpenApiTypes.DATE)
    def get_source_date(self, diff: Difference) -> str | None:
        day = day_of(diff.source_day)
        return day.isoformat() if day else None

    @extend_schema_field(OpenApiTypes.DATE)
    def get_target_date(self, diff: Difference) -> str | None:
        day = day_of(diff.target_day)
        return day.isoformat() if day else None

    @extend_schema_field(FieldDifferenceSerializer(many=True))
    def get_field_differences(self, diff: Difference) -> list[dict[str, str]]:
        return display.field_differences(diff, _allowed(self))

    def get_finance_masked(self, diff: Difference) -> bool:
        return not _allowed(self)


class DifferenceIdsSerializer(serializers.Serializer):
    ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1),
        min_length=1,
        max_length=actions.MAX_DIFFERENCES,
        help_text=f"The differences to act on (at most {actions.MAX_DIFFERENCES}).",
    )


class AcceptRequestSerializer(serializers.Serializer):
    reason = serializers.CharField(
        max_length=1000, help_text="Why the difference is accepted as it is (kept, audited)."
    )


class BulkAcceptRequestSerializer(DifferenceIdsSerializer, AcceptRequestSerializer):
    pass


class OutcomeSerializer(serializers.Serializer):
    difference = serializers.IntegerField()
    key = serializers.CharField()
    ok = serializers.BooleanField(help_text="False: refused, the reason in message.")
    message = serializers.CharField()
    state = NamedEnumField(Difference.State, enum_name="DifferenceStateEnum")


class OutcomesSerializer(serializers.Serializer):
    done = serializers.IntegerField()
    refused = serializers.IntegerField()
    results = OutcomeSerializer(many=True)

    @classmethod
    def of(cls, outcomes: list[actions.Outcome]) -> dict[str, Any]:
        return cls(
            {
                "done": sum(1 for o in outcomes if o.ok),
                "refused": sum(1 for o in outcomes if not o.ok),
                "results": [o.as_dict() for o in outcomes],
            }
        ).data
