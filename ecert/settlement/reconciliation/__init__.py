"""Reconciliation of an institution's business day (§5 totals, §7 3201 check and 3202 details)."""
