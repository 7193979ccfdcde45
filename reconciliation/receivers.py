"""What reconciliation does when something happens elsewhere:

- a run failed (reconciliation.signals.run_finished with an error): an exception for IT
  (connector or technical, classified like any engine failure), one per definition while it
  stays unresolved (a failure again adds an occurrence); the next run that succeeds resolves
  it;
- a definition's schedule was edited under Admin → Periodic tasks: the definition follows
  (like reporting.receivers for the extracts).
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.dispatch import receiver

from console.choices import TeamKind
from console.schedules import follow_task_edits
from exceptions import services
from exceptions.choices import ACTIVE_STATUSES, Category
from exceptions.classification import classify
from exceptions.models import IntegrationException
from integrations.workflows.failures import StepFailure, describe_failure

from .models import Definition, Run
from .signals import run_finished

logger = logging.getLogger(__name__)

#: the entity of a failed run's exception: the definition (by name)
ENTITY_TYPE = "reconciliation_definition"


def failure_of(run: Run, error: Any) -> StepFailure:
    """The failed run as the exception queues understand it, always IT's: a connector's
    failure keeps its kind (authentication, rate limit, vendor unavailable, bad response),
    anything else is an internal error."""
    definition = run.definition
    payload = {
        "run": run.pk,
        "definition": definition.name,
        "kind": definition.kind,
        "mode": run.mode,
        "source": str(definition.source),
        "target": str(definition.target),
        "source_pulled": run.source_pulled,
        "target_pulled": run.target_pulled,
    }
    if isinstance(error, BaseException):
        failure = describe_failure(
            error, entity_type=ENTITY_TYPE, entity_ref=definition.name, payload=payload
        )
    else:
        failure = StepFailure(
            kind="internal",
            code="internal_error",
            message=str(error or run.error),
            entity_type=ENTITY_TYPE,
            entity_ref=definition.name,
            payload=payload,
        )
    if classify(failure).owner != TeamKind.IT:
        # a pull that fails is the integration's problem, whatever the vendor answered
        failure.code = "bad_response" if failure.kind == "connector" else "internal_error"
    failure.message = (
        f"Reconciliation run #{run.pk} of {definition.name} failed: {failure.message}"
    )[:1000]
    return failure


@receiver(run_finished, dispatch_uid="reconciliation-run-finished")
def run_finished_received(sender: type, run: Run, error: Any = None, **kwargs: Any) -> None:
    try:
        # a savepoint: runs.execute may send this inside its own transaction, which a failed
        # query here must not break
        with transaction.atomic():
            if error is not None:
                _open_for_failure(run, error)
            else:
                _resolve_failures(run)
    except Exception:  # the run's own outcome stands; this must never hide it
        logger.exception("reconciliation: handling the end of run %s failed", run.pk)


def _open_for_failure(run: Run, error: Any) -> None:
    # no run in the key: the same failure of the definition again is one more occurrence
    exc = services.open_exception(failure_of(run, error))
    logger.info("reconciliation run %s failed: exception %s in %s", run.pk, exc.pk, exc.queue)


def _resolve_failures(run: Run) -> None:
    """A run that succeeds resolves the open exceptions of earlier failed runs."""
    open_ones = list(
        IntegrationException.objects.filter(
            entity_type=ENTITY_TYPE,
            entity_ref=run.definition.name,
            category=Category.TECHNICAL,
            status__in=ACTIVE_STATUSES,
        )
    )
    if open_ones:
        services.resolve(
            open_ones,
            reason=f"Reconciliation run #{run.pk} of {run.definition.name} succeeded.",
        )


follow_task_edits(Definition, uid="reconciliation")
