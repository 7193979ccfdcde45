"""The engine's one outward port: business apps subscribe here, the engine imports none of them.

- `step_failed(sender=SyncRun, run, step, failure)`: a step failed; `failure` is a
  workflows.failures.StepFailure. Sent inside the transaction that records the failure, so a
  receiver's writes (an exception record) commit with it or not at all.
- `runs_succeeded(sender=SyncRun, runs)`: every step of these runs succeeded (a batch of
  runs, or one).
- `poll_failed(sender=Connection, connection, stream, failure)`: reading a change stream
  failed (no run exists yet for what could not be read).
- `poll_succeeded(sender=Connection, connection, stream)`: the stream was read again.
"""

from django.dispatch import Signal

step_failed = Signal()
runs_succeeded = Signal()
poll_failed = Signal()
poll_succeeded = Signal()
#: a business transaction missed a deadline (`expectation`: integrations.models.Expectation)
transaction_stuck = Signal()
#: business transactions reached milestones they were expected to reach (`expectations`: a
#: list of integrations.models.Expectation)
expectations_met = Signal()
#: a system changed data it does not own (integrations.governance): connection, entity_type,
#: external_id, violations {field: owning system}, values {field: value}
governance_violation = Signal()
#: entries could not be posted (policy or ERP refusal): failure (StepFailure), key (tuple)
posting_rejected = Signal()
#: entries of a posting batch reached the ERP (created, or found there already): batch
#: (integrations.models.PostingBatch), entry_ids (the PSA ids of those entries)
entries_posted = Signal()
#: the payments sync read what the ERP says of invoices Throughline raised (each one's total
#: and what remains to be paid): erp (Connection), invoices (a list of
#: integrations.payments.InvoiceAmounts). Sent whether or not anything changed: receivers
#: keep what they need (a change of an amount).
invoice_amounts_seen = Signal()
#: the ERP closed an accounting period and these revenue schedule lines fall in it (what it
#: recognised): erp (Connection), period (canonical AccountingPeriod), lines (a list of
#: canonical RecognisedRevenue). Sent inside the transaction that moves the read
#: watermark past the period, so a receiver's writes commit with it or not at all.
revenue_recognised = Signal()
