"""Forms of the routing rule pages: a rule's name, queue and conditions; the rule tester's
facts; the routing file to import."""

from __future__ import annotations

import json
from typing import Any

from django import forms

from console.choices import TeamKind
from integrations.choices import Region
from integrations.models import Connection, LegalEntity

from .choices import Category, ExceptionCode
from .models import IntegrationException, Queue, RoutingRule
from .rule_editing import RuleInvalid, RuleSpec, validate
from .rules import Facts, facts_from

ANY = [("", "Any")]


def _legal_entities() -> list[tuple[str, str]]:
    return [(le.code, f"{le.code} {le.name}") for le in LegalEntity.objects.order_by("code")]


class RoutingRuleForm(forms.Form):
    """A rule: where it sends exceptions, and when. Every empty condition matches anything."""

    name = forms.CharField(
        max_length=120, help_text="Say what it does, e.g. “Invoices of UK01 go to Finance UK”."
    )
    queue = forms.ModelChoiceField(
        queryset=Queue.objects.select_related("team").order_by("name"),
        empty_label="Choose a queue",
        help_text="Where the exceptions this rule matches go.",
    )
    enabled = forms.BooleanField(
        required=False, initial=True, help_text="A disabled rule is skipped."
    )
    codes = forms.MultipleChoiceField(
        choices=ExceptionCode.choices,
        required=False,
        label="Exception codes",
        widget=forms.SelectMultiple(attrs={"size": 8}),
        help_text="Any of these (Ctrl- or Cmd-click for several); none selected: any code.",
    )
    category = forms.ChoiceField(choices=ANY + Category.choices, required=False)
    entity_types = forms.CharField(
        required=False,
        label="Entity types",
        help_text="Comma-separated, e.g. invoice, legal_entity; empty: any.",
    )
    legal_entity_codes = forms.MultipleChoiceField(
        choices=_legal_entities,
        required=False,
        label="Legal entities",
        widget=forms.CheckboxSelectMultiple,
        help_text="Any of these; none ticked: any legal entity.",
    )
    regions = forms.MultipleChoiceField(
        choices=Region.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Any of these; none ticked: any region.",
    )
    connection = forms.ModelChoiceField(
        queryset=Connection.objects.order_by("name"),
        required=False,
        empty_label="Any connection",
    )
    min_amount = forms.DecimalField(
        max_digits=18,
        decimal_places=2,
        required=False,
        label="Amount from",
        help_text="Inclusive. A rule with an amount only matches exceptions that carry one.",
    )
    max_amount = forms.DecimalField(
        max_digits=18,
        decimal_places=2,
        required=False,
        label="Amount up to",
        help_text="Inclusive.",
    )

    def __init__(self, *args: Any, instance: RoutingRule | None = None, **kwargs: Any) -> None:
        self.instance = instance
        if instance is not None and "initial" not in kwargs:
            kwargs["initial"] = {
                "name": instance.name,
                "queue": instance.queue_id,
                "enabled": instance.enabled,
                "codes": instance.codes,
                "category": instance.category,
                "entity_types": ", ".join(instance.entity_types),
                "legal_entity_codes": instance.legal_entity_codes,
                "regions": instance.regions,
                "connection": instance.connection_id,
                "min_amount": instance.min_amount,
                "max_amount": instance.max_amount,
            }
        super().__init__(*args, **kwargs)
        self.spec: RuleSpec | None = None

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        spec = RuleSpec(
            name=data.get("name", ""),
            queue=data.get("queue"),
            enabled=bool(data.get("enabled")),
            codes=data.get("codes") or [],
            category=data.get("category") or "",
            entity_types=data.get("entity_types") or "",  # type: ignore[arg-type]
            legal_entity_codes=data.get("legal_entity_codes") or [],
            regions=data.get("regions") or [],
            connection=data.get("connection"),
            min_amount=data.get("min_amount"),
            max_amount=data.get("max_amount"),
        )
        try:
            self.spec = validate(spec, instance=self.instance)
        except RuleInvalid as invalid:
            for field_name, messages in invalid.errors.items():
                if field_name in self.errors:
                    continue  # the field's own error says it already
                for message in messages:
                    self.add_error(field_name if field_name in self.fields else None, message)
        return data


class RuleTestForm(forms.Form):
    """The facts of an exception, described, or an existing exception by its number."""

    exception = forms.IntegerField(
        required=False,
        min_value=1,
        label="Exception number",
        help_text="Test an existing exception; the fields below are then ignored.",
    )
    code = forms.ChoiceField(choices=[("", "—"), *ExceptionCode.choices], required=False)
    category = forms.ChoiceField(
        choices=[("", "As the code usually is"), *Category.choices], required=False
    )
    owner = forms.ChoiceField(
        choices=[("", "As the classification says"), *TeamKind.choices],
        required=False,
        label="Owning team",
        help_text="Decides only when no rule matches.",
    )
    entity_type = forms.CharField(required=False, max_length=40, label="Entity type")
    legal_entity_code = forms.ChoiceField(
        choices=lambda: [("", "—"), *_legal_entities()], required=False, label="Legal entity"
    )
    region = forms.ChoiceField(choices=[("", "—"), *Region.choices], required=False)
    connection = forms.ModelChoiceField(
        queryset=Connection.objects.order_by("name"), required=False, empty_label="—"
    )
    amount = forms.DecimalField(max_digits=18, decimal_places=2, required=False)

    def clean_exception(self) -> IntegrationException | None:
        number = self.cleaned_data.get("exception")
        if number is None:
            return None
        exc = IntegrationException.objects.select_related("queue__team", "routed_by").filter(
            pk=number
        )
        found = exc.first()
        if found is None:
            raise forms.ValidationError(f"There is no exception #{number}.")
        return found

    def facts(self) -> Facts:
        data = self.cleaned_data
        if data.get("exception") is not None:
            return Facts.of_exception(data["exception"])
        connection = data.get("connection")
        return facts_from(
            code=data.get("code") or "",
            category=data.get("category") or "",
            entity_type=data.get("entity_type") or "",
            legal_entity_code=data.get("legal_entity_code") or "",
            region=data.get("region") or "",
            connection_id=connection.pk if connection else None,
            amount=data.get("amount"),
            owner=data.get("owner") or "",
        )


class RoutingImportForm(forms.Form):
    """A routing file, uploaded or pasted."""

    file = forms.FileField(required=False, label="Routing file (JSON)")
    document = forms.CharField(
        required=False,
        label="Or paste its content",
        widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false"}),
    )

    MAX_BYTES = 2_000_000

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        upload = data.get("file")
        if upload is not None:
            if upload.size > self.MAX_BYTES:
                raise forms.ValidationError("The file is over 2 MB; a routing file is far smaller.")
            text = upload.read().decode("utf-8", errors="replace")
        else:
            text = data.get("document") or ""
        if not text.strip():
            raise forms.ValidationError("Choose a routing file or paste its content.")
        try:
            data["parsed"] = json.loads(text)
        except json.JSONDecodeError as error:
            raise forms.ValidationError(f"This is not valid JSON: {error}.") from error
        data["text"] = text
        return data
