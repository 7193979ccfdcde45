"""Forms of the exception actions (the console's pages; the API has its serializers)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.db.models import QuerySet
from django.utils import timezone

from console.choices import ROLE_RANK, Role
from console.models import Team, User

from .choices import BulkKind
from .lifecycle import COMMENT_MAX_CHARS, REASON_MAX_CHARS

FOR_GOOD, UNTIL_TIME, UNTIL_REPEAT = "for_good", "until", "until_it_happens_again"


def resolvers_of(team: Team | None) -> QuerySet[User]:
    """Active users who may work `team`'s exceptions (every resolver when no team)."""
    roles = [r for r, rank in ROLE_RANK.items() if rank >= ROLE_RANK[Role.RESOLVER]]
    users = User.objects.filter(is_active=True, memberships__role__in=roles)
    if team is not None:
        users = users.filter(memberships__team=team)
    return users.distinct().order_by("username")


class UsernameChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: User) -> str:
        full = obj.get_full_name()
        return f"{full} ({obj.get_username()})" if full else obj.get_username()


class AssignForm(forms.Form):
    assignee = UsernameChoiceField(queryset=User.objects.none(), label="Assign to")

    def __init__(self, *args: Any, team: Team | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["assignee"].queryset = resolvers_of(team)
        self.fields["assignee"].to_field_name = "username"


class IgnoreForm(forms.Form):
    reason = forms.CharField(max_length=REASON_MAX_CHARS, label="Why ignore it")
    mode = forms.ChoiceField(
        choices=[
            (FOR_GOOD, "For good"),
            (UNTIL_REPEAT, "Until it happens again"),
            (UNTIL_TIME, "Until a time"),
        ],
        initial=FOR_GOOD,
        label="For how long",
    )
    until = forms.DateTimeField(
        required=False,
        label="Until (UTC)",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"],
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        until = data.get("until")
        if data.get("mode") == UNTIL_TIME:
            if until is None:
                self.add_error("until", "Give the time to ignore it until.")
            elif timezone.is_naive(until):
                data["until"] = until.replace(tzinfo=dt.UTC)  # the page says UTC
            else:
                data["until"] = until.astimezone(dt.UTC)
        else:
            data["until"] = None
        return data


class ResolveForm(forms.Form):
    note = forms.CharField(max_length=REASON_MAX_CHARS, label="How was it resolved")


class CommentForm(forms.Form):
    body = forms.CharField(
        max_length=COMMENT_MAX_CHARS,
        label="Comment",
        widget=forms.Textarea(attrs={"rows": 3, "maxlength": COMMENT_MAX_CHARS}),
    )


class PayloadForm(forms.Form):
    payload = forms.CharField(
        label="Payload (JSON)",
        strip=False,
        widget=forms.Textarea(attrs={"rows": 24, "class": "code-editor", "spellcheck": "false"}),
    )


class BulkParamsForm(forms.Form):
    """What a bulk action needs besides its filter: who to assign to, why to ignore, how
    they were resolved."""

    kind = forms.ChoiceField(choices=BulkKind.choices, label="Action")
    assignee = UsernameChoiceField(queryset=User.objects.none(), required=False, label="Assign to")
    reason = forms.CharField(max_length=REASON_MAX_CHARS, required=False, label="Why ignore them")
    ignore_mode = forms.ChoiceField(
        choices=IgnoreForm.base_fields["mode"].choices, initial=FOR_GOOD, required=False
    )
    until = forms.DateTimeField(
        required=False,
        label="Until (UTC)",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"],
    )
    note = forms.CharField(
        max_length=REASON_MAX_CHARS, required=False, label="How were they resolved"
    )

    def __init__(self, *args: Any, team: Team | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["assignee"].queryset = resolvers_of(team)
        self.fields["assignee"].to_field_name = "username"

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        wants_time = data.get("ignore_mode") == UNTIL_TIME
        if data.get("kind") == BulkKind.IGNORE and wants_time and data.get("until") is None:
            self.add_error("until", "Give the time to ignore them until.")
        return data

    def params(self) -> dict[str, Any]:
        """The bulk action's parameters (exceptions.bulk.clean_params checks them)."""
        data = self.cleaned_data
        kind = data["kind"]
        if kind == BulkKind.ASSIGN:
            return {"assignee": data["assignee"].get_username() if data["assignee"] else ""}
        if kind == BulkKind.RESOLVE:
            return {"note": data["note"]}
        if kind == BulkKind.IGNORE:
            params: dict[str, Any] = {"reason": data["reason"]}
            if data["ignore_mode"] == UNTIL_REPEAT:
                params["until_it_happens_again"] = True
            elif data["ignore_mode"] == UNTIL_TIME:
                until = data["until"]
                until = until.replace(tzinfo=dt.UTC) if timezone.is_naive(until) else until
                params["until"] = until.isoformat()
            return params
        return {}
