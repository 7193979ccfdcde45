"""Forms of the reconciliation pages: a definition's settings, and an action on differences."""

from __future__ import annotations

from django import forms

from .actions import EDITABLE, MAX_DIFFERENCES, ON_DIFFERENCES
from .models import Definition


class DefinitionForm(forms.ModelForm):
    """Tolerances, what is compared and the schedule (validated as a crontab by the model)."""

    class Meta:
        model = Definition
        fields = list(EDITABLE)
        labels = {
            "amount_tolerance_cents": "Amount tolerance (cents)",
            "date_tolerance_days": "Date tolerance (days)",
            "compare_status": "Compare the status",
            "settle_minutes": "Settle window (minutes): changes younger are in flight",
            "schedule": "Schedule (crontab, UTC)",
            "full_pull_every": "Full pull every Nth scheduled run",
            "enabled": "Enabled (runs on its schedule)",
        }

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.fields["full_pull_every"].min_value = 1
        self.fields["full_pull_every"].widget.attrs["min"] = 1


class DifferenceActionForm(forms.Form):
    """What to do with the selected differences (`ids`, checkboxes of the run's rows), and
    the reason to accept them."""

    action = forms.ChoiceField(choices=[(a, a) for a in ON_DIFFERENCES])
    reason = forms.CharField(required=False, max_length=1000)
    next = forms.CharField(required=False)

    def clean(self) -> dict[str, object]:
        cleaned = super().clean() or {}
        raw = self.data.getlist("ids") if hasattr(self.data, "getlist") else []
        ids = sorted({int(value) for value in raw if str(value).isdigit()})
        if not ids:
            raise forms.ValidationError("Select at least one difference.")
        if len(ids) > MAX_DIFFERENCES:
            raise forms.ValidationError(f"Select at most {MAX_DIFFERENCES} differences.")
        cleaned["ids"] = ids
        return cleaned
