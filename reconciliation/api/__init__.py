"""REST API of reconciliation, mounted under /api/v1/reconciliation/ (see urls)."""
