"""Reporting: scheduled, incremental extracts of the canonical records for a data warehouse."""
