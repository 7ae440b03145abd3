"""The domain stays pure: standard library and its own package only (no clock, no I/O)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

DOMAIN = Path(__file__).parents[2] / "src" / "microloan" / "domain"
ALLOWED_FIRST_PARTY = ("microloan.domain", "microloan.errors")
FORBIDDEN_CALLS = {"today", "now", "utcnow", "open", "time", "random"}


def _imports(tree: ast.AST) -> list[str]:
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def test_domain_imports_only_stdlib_and_itself() -> None:
    files = sorted(DOMAIN.glob("*.py"))
    assert files
    for path in files:
        for name in _imports(ast.parse(path.read_text())):
            top = name.split(".")[0]
            if top == "microloan":
                assert name.startswith(ALLOWED_FIRST_PARTY), f"{path.name} imports {name}"
            else:
                assert top in sys.stdlib_module_names or top == "__future__", (
                    f"{path.name} imports third-party {name}"
                )


def test_domain_reads_no_clock_and_does_no_io() -> None:
    for path in sorted(DOMAIN.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                fn = node.func
                name = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", "")
                assert name not in FORBIDDEN_CALLS, f"{path.name}:{node.lineno} calls {name}()"
