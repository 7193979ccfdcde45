"""One module per comparison: how each side's records are pulled and how a record is re-synced.

A puller is `pull(ctx: PullContext) -> datetime | None`: it reads its side through the
connection's client (`ctx.client`, telemetry recorded), incrementally from `ctx.since` when the
vendor can filter by change time (None: everything), hands each record to `ctx.emit` as a
`reconciliation.records.PulledRecord`, and returns the newest change time it saw (the next
watermark; None when it cannot tell). It raises the connector's errors as they come: the run
fails with the reason and opens an exception for IT.
"""
