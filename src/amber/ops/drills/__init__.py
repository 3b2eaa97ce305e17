"""Restore drills and their history."""
