"""Settlement: preview, settle, reverse and reconcile bills; visits; mutual aid routes (the shared
accounts, usage, policies and read model are in ``ecert.ledger``)."""
