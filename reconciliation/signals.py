"""What reconciliation tells the rest: a run finished (`error` None) or failed."""

from django.dispatch import Signal

#: sender=Run, run=<Run>, error=<Exception | None>
run_finished = Signal()
