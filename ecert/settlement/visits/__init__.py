"""Visits (spec §7): open, upload fee lines, preview and settle, cancel — as hospitals work."""
