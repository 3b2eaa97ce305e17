"""The web dashboard and reports server: a front end beside the CLI (docs/design.md §2)."""
