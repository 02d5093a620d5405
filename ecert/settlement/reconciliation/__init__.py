"""Reconciliation of an institution's business day (totals, 3201, 3202: docs/settlement.md)."""
