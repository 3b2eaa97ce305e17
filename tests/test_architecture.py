"""The layer rules of docs/design.md §2, enforced twice.

1. import-linter with the contracts in pyproject.toml.
2. A plain AST scan: nothing outside ``amber.repository`` imports the internal
   modules ``crypto``, ``pack`` or ``index`` (belt and braces, in case the
   linter configuration is ever loosened by accident).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "amber"
INTERNAL = {"amber.repository.crypto", "amber.repository.pack", "amber.repository.index"}
# Top to bottom; packages in one tuple are independent siblings (neither imports the other).
LAYERS = [
    ("amber.cli",),
    ("amber.web",),  # `amber web` (cli) starts the dashboard; the dashboard never imports the CLI
    ("amber.ops",),
    ("amber.catalog", "amber.sources", "amber.anomaly"),
    ("amber.services",),
    ("amber.engine",),
    ("amber.repository",),
    ("amber.storage",),
]


def _place(name: str) -> tuple[int, str] | None:
    """(layer index, package) of a module name, or None outside the stack."""
    for index, group in enumerate(LAYERS):
        for package in group:
            if name == package or name.startswith(package + "."):
                return index, package
    return None


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, source: bytes | None = None) -> list[tuple[int, str]]:
    """Absolute names of every module imported by ``path`` (with line numbers).

    ``from X import y`` yields both ``X`` and ``X.y`` (y may be a submodule).
    """
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    text = path.read_bytes() if source is None else source
    for node in ast.walk(ast.parse(text, filename=str(path))):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.append((node.lineno, base))
            found.extend((node.lineno, f"{base}.{alias.name}") for alias in node.names)
    return found


def _sources() -> list[Path]:
    files = sorted(SRC.rglob("*.py"))
    assert files, f"no sources under {SRC}"
    return files


def test_import_linter_contracts_hold() -> None:
    lint = Path(sys.executable).parent / "lint-imports"
    if not lint.exists():
        pytest.fail(f"lint-imports not found next to {sys.executable}; install the test extras")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run(
        [str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, f"import-linter failed:\n{proc.stdout}\n{proc.stderr}"
    assert "broken" in proc.stdout and " 0 broken" in proc.stdout


def test_repository_internals_are_not_imported_from_outside() -> None:
    offenders = []
    for path in _sources():
        module = _module_name(path)
        if module == "amber.repository" or module.startswith("amber.repository."):
            continue
        for lineno, name in _imports(path):
            if any(name == m or name.startswith(m + ".") for m in INTERNAL):
                offenders.append(f"{path.relative_to(ROOT)}:{lineno} imports {name}")
    assert not offenders, "internal repository modules used outside the repository layer:\n" + (
        "\n".join(offenders)
    )


def test_layers_only_import_downwards() -> None:
    """Same rule as the import-linter 'layers' contract, checked without it."""
    offenders = []
    for path in _sources():
        module = _module_name(path)
        own = _place(module)
        if own is None:
            continue  # amber, amber.errors, amber.__main__ sit outside the stack
        for lineno, name in _imports(path):
            target = _place(name)
            if target is None:
                continue
            upward = target[0] < own[0]
            sideways = target[0] == own[0] and target[1] != own[1]
            if upward or sideways:
                offenders.append(f"{path.relative_to(ROOT)}:{lineno} ({module}) imports {name}")
    assert not offenders, "upward imports:\n" + "\n".join(offenders)


def test_errors_module_depends_on_no_layer() -> None:
    names = [name for _, name in _imports(SRC / "errors.py")]
    assert not [n for n in names if n.startswith("amber")], names


def test_scanner_sees_relative_and_aliased_imports() -> None:
    """Self-test of the AST scan, so a silent bug cannot make it vacuous."""
    code = (
        b"import amber.repository.crypto as c\n"
        b"from amber.repository import pack\n"
        b"from ..repository.index import Index\n"
        b"from . import treewalk\n"
        b"from amber.repository.model import Node\n"
    )
    names = {n for _, n in _imports(SRC / "engine" / "checker.py", code)}
    assert {
        "amber.repository.crypto",
        "amber.repository.pack",
        "amber.repository.index.Index",
        "amber.engine.treewalk",
        "amber.repository.model.Node",
    } <= names
