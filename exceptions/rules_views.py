"""Console pages of the routing rules: the ordered list, one rule with its history, creating,
editing, moving, enabling and deleting rules (IT admins and superusers), the rule tester
(everyone), re-routing open exceptions, and the routing file's export and import."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from console.choices import TeamKind
from integrations.models import Connection

from . import rerouting, routing_file, rule_editing, rules
from .choices import Category, ExceptionCode
from .masking import MASK, has_finance_rights
from .models import Queue, RoutingRule
from .routing import FALLBACK_SLUG
from .rule_editing import EDIT_REFUSED, RuleInvalid, can_edit_rules
from .rules_forms import RoutingImportForm, RoutingRuleForm, RuleTestForm

View = Callable[..., HttpResponse]


def editors_only(view: View) -> View:
    """Refuse (403) anyone who may not change routing."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not can_edit_rules(request.user):
            raise PermissionDenied(EDIT_REFUSED)
        return view(request, *args, **kwargs)

    return wrapped


def shown(value: Any) -> str:
    """A changed value in words: lists comma-separated, nothing as "—"."""
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "none"
    return str(value)


def change_lines(changes: dict[str, list[Any]] | None) -> list[str]:
    """{"regions": [["EMEA"], ["Americas"]]} -> ["regions: EMEA → Americas"]."""
    lines = []
    for name, (before, after) in (changes or {}).items():
        old, new = shown(before), shown(after)
        if old != new and {old, new} != {"—", "none"}:
            lines.append(f"{name.replace('_', ' ')}: {old} → {new}")
    return lines


def _list_url() -> str:
    return reverse("exceptions:rules")


@login_required
def rule_list(request: HttpRequest) -> HttpResponse:
    """Every rule in the order it is tried, and what happens when none matches."""
    ordered = list(rules.ordered_rules().select_related("updated_by"))
    for rule in ordered:
        rule.conditions = rules.describe(rule)
    return render(
        request,
        "exceptions/rules.html",
        {
            "rules": ordered,
            "can_edit": can_edit_rules(request.user),
            "fallback": Queue.objects.filter(is_fallback=True).order_by("name").first()
            or Queue.objects.filter(slug=FALLBACK_SLUG).first(),
        },
    )


@login_required
def rule_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One rule, its conditions in words, and its history from the audit trail."""
    rule = get_object_or_404(rules.ordered_rules().select_related("updated_by"), pk=pk)
    return render(
        request,
        "exceptions/rules_detail.html",
        {
            "rule": rule,
            "conditions": rules.describe(rule),
            "history": [
                (event, change_lines(event.data.get("changes")))
                for event in rule_editing.history(rule.pk)[:200]
            ],
            "can_edit": can_edit_rules(request.user),
        },
    )


@login_required
@editors_only
@require_http_methods(["GET", "POST"])
def rule_create(request: HttpRequest) -> HttpResponse:
    form = RoutingRuleForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            rule = rule_editing.create_rule(form.spec, actor=request.user)
        except RuleInvalid as invalid:  # a rule of that name appeared meanwhile
            for name, errors in invalid.errors.items():
                form.add_error(name if name in form.fields else None, " ".join(errors))
        else:
            messages.success(
                request,
                f"Rule “{rule.name}” created at position {rule.position}. Open exceptions keep "
                "their queue until you re-route them.",
            )
            return HttpResponseRedirect(reverse("exceptions:rule", args=[rule.pk]))
    return render(request, "exceptions/rules_form.html", {"form": form, "rule": None})


@login_required
@editors_only
@require_http_methods(["GET", "POST"])
def rule_edit(request: HttpRequest, pk: int) -> HttpResponse:
    rule = get_object_or_404(RoutingRule.objects.select_related("queue", "connection"), pk=pk)
    form = RoutingRuleForm(request.POST or None, instance=rule)
    if request.method == "POST" and form.is_valid():
        try:
            changes = rule_editing.update_rule(rule, form.spec, actor=request.user)
        except RuleInvalid as invalid:
            for name, errors in invalid.errors.items():
                form.add_error(name if name in form.fields else None, " ".join(errors))
        else:
            if changes:
                rule.refresh_from_db()
                messages.success(
                    request,
                    f"Rule “{rule.name}” saved as version {rule.version}. Open exceptions keep "
                    "their queue until you re-route them.",
                )
            else:
                messages.info(request, "Nothing changed.")
            return HttpResponseRedirect(reverse("exceptions:rule", args=[rule.pk]))
    return render(request, "exceptions/rules_form.html", {"form": form, "rule": rule})


@login_required
@editors_only
@require_http_methods(["GET", "POST"])
def rule_delete(request: HttpRequest, pk: int) -> HttpResponse:
    rule = get_object_or_404(RoutingRule.objects.select_related("queue", "connection"), pk=pk)
    if request.method == "POST":
        name = rule.name
        rule_editing.delete_rule(rule, actor=request.user)
        messages.success(request, f"Rule “{name}” deleted; its history stays in the audit trail.")
        return HttpResponseRedirect(_list_url())
    return render(request, "exceptions/rules_delete.html", {"rule": rule})


@login_required
@editors_only
@require_POST
def rule_move(request: HttpRequest, pk: int) -> HttpResponse:
    rule = get_object_or_404(RoutingRule, pk=pk)
    direction = request.POST.get("direction")
    if direction not in (rule_editing.UP, rule_editing.DOWN):
        messages.error(request, "Move a rule up or down.")
    elif not rule_editing.move_rule(rule, direction, actor=request.user):
        end = "first" if direction == rule_editing.UP else "last"
        messages.info(request, f"“{rule.name}” is already the {end} rule.")
    else:
        messages.success(request, f"“{rule.name}” moved {direction}.")
    return HttpResponseRedirect(_list_url())


@login_required
@editors_only
@require_POST
def rule_toggle(request: HttpRequest, pk: int) -> HttpResponse:
    rule = get_object_or_404(RoutingRule.objects.select_related("queue", "connection"), pk=pk)
    enable = request.POST.get("enabled") == "true"
    if rule_editing.set_enabled(rule, enable, actor=request.user):
        messages.success(request, f"Rule “{rule.name}” {'enabled' if enable else 'disabled'}.")
    if request.POST.get("next") == "rule":
        return HttpResponseRedirect(reverse("exceptions:rule", args=[pk]))
    return HttpResponseRedirect(_list_url())


def facts_in_words(facts: rules.Facts, amount_mask: str = "") -> list[tuple[str, str]]:
    connection = (
        Connection.objects.filter(pk=facts.connection_id).first() if facts.connection_id else None
    )
    return [
        ("Code", dict(ExceptionCode.choices).get(facts.code, facts.code)),
        ("Category", dict(Category.choices).get(facts.category, facts.category)),
        ("Entity type", facts.entity_type),
        ("Legal entity", facts.legal_entity_code),
        ("Region", facts.region),
        ("Connection", str(connection) if connection else ""),
        ("Amount", "" if facts.amount is None else amount_mask or str(facts.amount)),
        ("Owning team", dict(TeamKind.choices).get(facts.owner, facts.owner)),
    ]


@login_required
def rule_test(request: HttpRequest) -> HttpResponse:
    """Where would this exception go, and by which rule? Every rule's verdict."""
    form = RuleTestForm(request.GET or None)
    placement = None
    exc = None
    facts: list[tuple[str, str]] = []
    if request.GET and form.is_valid():
        placement = rules.explain(form.facts())
        exc = form.cleaned_data.get("exception")
        # a stored exception's amount is shown to people with finance rights only
        mask = MASK if exc is not None and not has_finance_rights(request.user) else ""
        if mask:
            placement = rules.hide_amount(placement, mask)
        facts = facts_in_words(placement.facts, mask)
    return render(
        request,
        "exceptions/rules_test.html",
        {
            "form": form,
            "placement": placement,
            "exc": exc,
            "facts": facts,
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def reroute(request: HttpRequest) -> HttpResponse:
    """Preview (everyone) and apply (editors) the re-routing of active exceptions."""
    if request.method == "POST":
        if not can_edit_rules(request.user):
            raise PermissionDenied(EDIT_REFUSED)
        report = rerouting.reroute(actor=request.user)
        messages.success(request, f"Re-routed: {report.summary}")
        return HttpResponseRedirect(reverse("exceptions:rules-reroute"))
    report = (
        rerouting.reroute(actor=request.user, dry_run=True) if "preview" in request.GET else None
    )
    return render(
        request,
        "exceptions/rules_reroute.html",
        {"report": report, "can_edit": can_edit_rules(request.user)},
    )


@login_required
def export(request: HttpRequest) -> HttpResponse:
    """The routing file, as a download."""
    text = routing_file.dumps(routing_file.export_document())
    response = HttpResponse(text, content_type="application/json; charset=utf-8")
    name = f"throughline-routing-{timezone.now():%Y%m%d-%H%M}.json"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@login_required
@editors_only
@require_http_methods(["GET", "POST"])
def import_file(request: HttpRequest) -> HttpResponse:
    """Upload or paste a routing file; see the difference first, then apply it."""
    form = RoutingImportForm(request.POST or None, request.FILES or None)
    context: dict[str, Any] = {"form": form}
    if request.method == "POST" and form.is_valid():
        apply = request.POST.get("action") == "apply"
        try:
            result = routing_file.import_document(
                form.cleaned_data["parsed"], actor=request.user, dry_run=not apply
            )
        except routing_file.ImportRefused as refused:
            context["errors"] = refused.errors
        else:
            if apply:
                messages.success(
                    request,
                    f"Routing file imported. {result.summary} Open exceptions keep their "
                    "queue until you re-route them.",
                )
                return HttpResponseRedirect(_list_url())
            diff = result.as_dict()
            lines = [
                *(f"Create queue {slug}" for slug in diff["queues"]["created"]),
                *(
                    f"Change queue {item['slug']}: {'; '.join(change_lines(item['changes']))}"
                    for item in diff["queues"]["changed"]
                ),
                *(f"Delete queue {slug}" for slug in diff["queues"]["deleted"]),
                *(f"Create rule “{name}”" for name in diff["rules"]["created"]),
                *(
                    f"Change rule “{item['name']}”: {'; '.join(change_lines(item['changes']))}"
                    for item in diff["rules"]["changed"]
                ),
                *(f"Delete rule “{name}”" for name in diff["rules"]["deleted"]),
            ]
            context.update(result=result, lines=lines, text=form.cleaned_data["text"])
    return render(request, "exceptions/rules_import.html", context)
