"""The config file: its model, its checking and its display."""
