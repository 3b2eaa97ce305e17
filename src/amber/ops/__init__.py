"""Unattended operation: config, run, schedule, daemon, alerts, metrics, audit, drills, state."""
