"""Visits (docs/settlement.md): open, add fee lines, preview, settle, cancel, as hospitals work."""
