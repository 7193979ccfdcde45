"""Edit an exception's payload, see the diff, and replay.

A person corrects the payload (the record the failed run carries, e.g. the deal as the CRM
sent it) in the console. The server computes the diff (each changed field with its value
before and after) and checks it against the allow-list below: which fields of which payload
may be changed at all, and which need finance rights. An edit that touches a financial field
needs a second person's approval (another resolver of the queue's team; the author cannot
approve their own edit). Applying an edit stores the corrected payload as the run's input,
keeps the changed fields as corrections that the run lays over the source record for this
run only (integrations.corrections), and restarts the whole workflow. Every step looks in its
target before it writes, so the replay never creates a record twice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from console import audit
from console.models import User
from integrations import services as engine

from . import actions, masking
from .actions import ActionRefused, ActionResult, InvalidInput, NotAllowed, can_act
from .choices import ExceptionStatus, PayloadEditStatus
from .models import IntegrationException, PayloadEdit

#: beyond the financial keys of exceptions.masking (amounts, prices, rates, tax, bank...),
#: a change of these needs finance rights and approval too: a currency is no secret, but
#: changing it changes the money
ALSO_FINANCIAL = ("currency",)

#: the fields a person may correct, per workflow (the payload is the run's input: for
#: create-service-engagement the deal as the CRM sent it). Financial fields (`is_financial`)
#: also need finance rights and a second approval. Any other field is not editable.
EDITABLE_FIELDS: dict[str, tuple[str, ...]] = {
    "create_service_engagement": (
        "Name",
        "CloseDate",
        "Legal_Entity__c",
        "Project_Template__c",
        "Billing_Model__c",
        "Amount",
        "CurrencyIsoCode",
        "Account.Name",
        "Account.BillingCountry",
        "Account.BillingCity",
        "Account.VAT_Number__c",
        "Account.CurrencyIsoCode",
    ),
}

#: a payload larger than this is not edited in the browser
MAX_PAYLOAD_CHARS = 1_000_000


@dataclass(frozen=True)
class Change:
    """One changed field: its dotted path, its value before and after (None: absent)."""

    path: str
    before: Any
    after: Any

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "before": self.before, "after": self.after}


def is_financial(path: str) -> bool:
    """Does the field at `path` hold money or its terms? (A field inside a financial object,
    e.g. `bank.iban`, counts too.)"""
    parts = path.split(".")
    return any(masking.is_financial_key(part) for part in parts) or any(
        word in ALSO_FINANCIAL for word in masking.key_words(parts[-1])
    )


def has_finance_rights(user: User) -> bool:
    """Who may change financial fields: those with finance rights (exceptions.masking)."""
    return masking.has_finance_rights(user)


def editable_fields(exc: IntegrationException) -> tuple[str, ...]:
    if exc.run is None:
        return ()
    return EDITABLE_FIELDS.get(exc.run.workflow, ())


def why_not_editable(exc: IntegrationException, user: User) -> str:
    """Why `user` cannot edit this exception's payload ("" when they can)."""
    if not can_act(user, exc):
        return f"Only members of {exc.queue.team} with a resolver role can edit the payload."
    if exc.status == ExceptionStatus.RESOLVED:
        return "This exception is resolved."
    if exc.run is None:
        return "This exception has no workflow run to replay, so its payload cannot be edited."
    if not editable_fields(exc):
        return (
            "This workflow reads its data again from the source system when it runs; correct "
            "the data there, then retry."
        )
    return ""


def diff(before: Any, after: Any, path: str = "") -> list[Change]:
    """Every changed field between two JSON values (objects compared key by key; lists and
    scalars as whole values)."""
    if isinstance(before, dict) and isinstance(after, dict):
        changes: list[Change] = []
        for key in sorted(set(before) | set(after), key=str):
            sub = f"{path}.{key}" if path else str(key)
            changes += diff(before.get(key), after.get(key), sub)
        return changes
    return [] if before == after else [Change(path, before, after)]


def for_editor(payload: dict[str, Any], user: User) -> dict[str, Any]:
    """The payload as `user` may see it in the editor: financial values masked for those
    without finance rights (a masked value sent back unchanged keeps its real value)."""
    return masking.data_for(user, payload)


def _unmask(after: Any, before: Any) -> Any:
    """`after` with every masked financial value put back to what it was."""
    if not isinstance(after, dict):
        return after
    base = before if isinstance(before, dict) else {}
    out = {}
    for key, value in after.items():
        if value == masking.MASK and masking.is_financial_key(key) and key in base:
            out[key] = base[key]
        else:
            out[key] = _unmask(value, base.get(key))
    return out


def parse(text: str) -> dict[str, Any]:
    """The edited payload: a JSON object."""
    if len(text) > MAX_PAYLOAD_CHARS:
        raise InvalidInput(f"The payload is larger than {MAX_PAYLOAD_CHARS} characters.")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            f"This is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."
        ) from None
    if not isinstance(data, dict):
        raise InvalidInput("The payload must be a JSON object ({...}).")
    return data


def check_changes(exc: IntegrationException, user: User, changes: list[Change]) -> None:
    """Refuse changes to fields that are not editable, or financial ones without rights."""
    allowed = set(editable_fields(exc))
    locked = [c.path for c in changes if c.path not in allowed]
    if locked:
        raise InvalidInput(
            f"These fields cannot be changed here: {', '.join(locked)}. Editable: "
            f"{', '.join(sorted(allowed))}."
        )
    financial = [c.path for c in changes if is_financial(c.path)]
    if financial and not has_finance_rights(user):
        raise NotAllowed(
            f"Changing {', '.join(financial)} needs finance rights (a resolver of a finance team)."
        )


@dataclass(frozen=True)
class Review:
    """An edit checked but not saved: the corrected payload, its diff, and whether it needs
    a second person's approval."""

    after: dict[str, Any]
    changes: list[Change]
    needs_approval: bool


def review(exc: IntegrationException, user: User, edited: dict[str, Any] | str) -> Review:
    """Check an edit of the payload (the page shows the diff before it is saved)."""
    if not can_act(user, exc):
        raise NotAllowed(why_not_editable(exc, user))
    reason = why_not_editable(exc, user)
    if reason:
        raise ActionRefused(reason)
    after = parse(edited) if isinstance(edited, str) else edited
    if not isinstance(after, dict):
        raise InvalidInput("The payload must be a JSON object ({...}).")
    after = _unmask(after, exc.payload)
    changes = diff(exc.payload, after)
    if not changes:
        raise InvalidInput("Nothing changed: the payload is the same as before.")
    check_changes(exc, user, changes)
    return Review(after, changes, any(is_financial(c.path) for c in changes))


def propose(exc: IntegrationException, user: User, edited: dict[str, Any] | str) -> PayloadEdit:
    """Record a person's edit of the payload. Without financial fields it is applied (and
    replayed) at once; with them it waits for a second person's approval."""
    with transaction.atomic():
        current = (
            IntegrationException.objects.select_for_update(of=("self",))
            .select_related("queue__team", "run")
            .get(pk=exc.pk)
        )
        checked = review(current, user, edited)
        if PayloadEdit.objects.filter(exception=current, status=PayloadEditStatus.PENDING).exists():
            raise ActionRefused(
                "An edit of this payload is waiting for approval; approve or reject it first."
            )
        edit = PayloadEdit.objects.create(
            exception=current,
            author=user,
            before=current.payload,
            after=checked.after,
            changed_fields=[c.as_dict() for c in checked.changes],
            needs_approval=checked.needs_approval,
            status=PayloadEditStatus.PENDING,
        )
        fields = [c.path for c in checked.changes]
        _record(
            "exception.payload_edit.proposed",
            f"Payload edit #{edit.pk} of exception #{exc.pk}: {', '.join(fields)}"
            + (" (waits for a second person's approval)" if checked.needs_approval else ""),
            user,
            current,
            edit=edit.pk,
            fields=fields,
        )
        if not checked.needs_approval:
            _apply(edit, user)
    edit.refresh_from_db()
    return edit


def approve(edit: PayloadEdit, user: User) -> ActionResult:
    """A second resolver of the queue's team approves an edit; it is applied and replayed."""
    exc = edit.exception
    if not can_act(user, exc):
        raise NotAllowed(f"Only members of {exc.queue.team} with a resolver role can approve.")
    if edit.author_id == user.pk:
        raise NotAllowed("You made this edit; a second person must approve it.")
    with transaction.atomic():
        current = _pending(edit)
        current.status = PayloadEditStatus.APPROVED
        current.decided_by, current.decided_at = user, timezone.now()
        current.save(update_fields=["status", "decided_by", "decided_at"])
        _record(
            "exception.payload_edit.approved",
            f"Payload edit #{edit.pk} of exception #{exc.pk} approved",
            user,
            exc,
            edit=edit.pk,
        )
        _apply(current, user)
    edit.refresh_from_db()
    return actions.outcome(exc, "Edit approved and replayed", "Edit approved, replay queued")


def reject(edit: PayloadEdit, user: User) -> ActionResult:
    """Reject an edit waiting for approval (its author may withdraw it)."""
    exc = edit.exception
    if not can_act(user, exc):
        raise NotAllowed(f"Only members of {exc.queue.team} with a resolver role can reject.")
    with transaction.atomic():
        current = _pending(edit)
        current.status = PayloadEditStatus.REJECTED
        current.decided_by, current.decided_at = user, timezone.now()
        current.save(update_fields=["status", "decided_by", "decided_at"])
        withdrawn = edit.author_id == user.pk
        _record(
            "exception.payload_edit.rejected",
            f"Payload edit #{edit.pk} of exception #{exc.pk} "
            + ("withdrawn by its author" if withdrawn else "rejected"),
            user,
            exc,
            edit=edit.pk,
        )
    edit.refresh_from_db()
    return ActionResult(True, "Edit withdrawn." if withdrawn else "Edit rejected.")


def _pending(edit: PayloadEdit) -> PayloadEdit:
    current = PayloadEdit.objects.select_for_update(of=("self",)).get(pk=edit.pk)
    if current.status != PayloadEditStatus.PENDING:
        raise ActionRefused(f"This edit is {current.get_status_display().lower()} already.")
    return current


def _apply(edit: PayloadEdit, user: User) -> None:
    """Store the corrected payload on the run and restart its whole workflow."""
    exc = IntegrationException.objects.select_related("queue__team", "run").get(
        pk=edit.exception_id
    )
    if exc.payload != edit.before:
        raise ActionRefused(
            "The payload changed since this edit was made (the failure happened again); "
            "make the edit again on the current payload."
        )
    changes = {c["path"]: c["after"] for c in edit.changed_fields}
    stored = engine.correct_input(
        exc.run, edit.after, changes, actor=user, reason=f"payload edit #{edit.pk}"
    )
    if not stored:
        raise ActionRefused("The run is already queued or running; wait for its result.")
    IntegrationException.objects.filter(pk=exc.pk).update(payload=edit.after)
    PayloadEdit.objects.filter(pk=edit.pk).update(status=PayloadEditStatus.APPLIED)
    _record(
        "exception.payload_edit.applied",
        f"Payload edit #{edit.pk} applied to the run of exception #{exc.pk}; replaying",
        user,
        exc,
        edit=edit.pk,
    )
    actions.restart(exc, user)


def _record(action: str, summary: str, user: User, exc: IntegrationException, **data: Any) -> None:
    audit.record(
        action,
        summary,
        actor=user,
        obj=exc,
        correlation_id=exc.run.correlation_id if exc.run_id else "",
        **data,
    )


def visible_changes(edit: PayloadEdit, user: User) -> list[dict[str, Any]]:
    """An edit's changed fields as `user` may see them (financial values masked for those
    without finance rights)."""
    hide = not has_finance_rights(user)
    return [
        {
            "path": c["path"],
            "before": masking.MASK if hide and is_financial(c["path"]) else c["before"],
            "after": masking.MASK if hide and is_financial(c["path"]) else c["after"],
            "financial": is_financial(c["path"]),
        }
        for c in edit.changed_fields
    ]
