"""Batch jobs: planning, the ledger, the run loop."""
