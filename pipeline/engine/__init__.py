"""The engines: the pure plan, the sync engine and reconcile, and the per-item work they share."""
