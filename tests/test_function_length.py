"""Code health: no function of the packages is over 60 lines (the sandbox worker excepted).

The worker (``sandboxes/worker``) runs as a standalone, import-light program inside the
sandbox, where a few long straight-line set-up functions read better than a call graph; every
other function must fit on one screen, so a reader checks it at a glance.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("codegym", "agents", "sandboxes")
EXEMPT = ROOT / "sandboxes" / "worker"
MAX_LINES = 60


def long_functions(path: Path, limit: int = MAX_LINES) -> list[str]:
    """``"file:line name (N lines)"`` for every function or method in ``path`` over ``limit``
    lines, decorators excluded, docstring included."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            size = (node.end_lineno or node.lineno) - node.lineno + 1
            if size > limit:
                out.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({size} lines)")
    return out


def test_no_function_over_sixty_lines() -> None:
    files = [p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py")) if EXEMPT not in p.parents]
    assert len(files) > 50, f"found only {len(files)} files under {PACKAGES}: wrong root {ROOT}?"
    too_long = [hit for p in files for hit in long_functions(p)]
    assert not too_long, "split these functions (at most 60 lines each):\n" + "\n".join(too_long)


def test_the_check_sees_a_long_function(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_LINES))
    planted = ROOT / "tests" / f"_planted_{tmp_path.name}.py"
    planted.write_text(f"def too_long() -> None:\n{body}\n", encoding="utf-8")
    try:
        hits = long_functions(planted)
    finally:
        planted.unlink()
    assert len(hits) == 1 and "too_long" in hits[0] and f"({MAX_LINES + 1} lines)" in hits[0]
