"""Reporting: turn per-run results into tables and statistics a reader can trust."""
