"""The local catalog of file versions: derived data, rebuilt from the repository (docs/design.md §2)."""
