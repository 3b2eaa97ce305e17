"""Alerts: which events are sent where (policy) and how (notify)."""
