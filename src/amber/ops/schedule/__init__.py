"""When jobs run: calendar expressions, systemd units and timers, the built-in daemon."""
