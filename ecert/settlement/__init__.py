"""Settlement: preview, settle, reverse and reconcile bills; personal accounts and their ledger."""
