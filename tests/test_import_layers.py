"""The import layers: ``agents`` -> ``codegym`` -> ``sandboxes``, never back; no cycles in
``codegym.tasks``. ``lint-imports`` checks the contracts in ``pyproject.toml``; a string
that names ``agents`` inside ``codegym`` or ``sandboxes`` (an import by name) is a back edge too."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")


def _lint(cwd: Path, extra_path: Path | None = None) -> subprocess.CompletedProcess:
    env = None
    if extra_path is not None:
        import os

        env = {**os.environ, "PYTHONPATH": str(extra_path)}
    return subprocess.run([LINT, "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.skipif(LINT is None, reason="import-linter is not installed (pip install -e '.[dev]')")
def test_the_import_contracts_hold() -> None:
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "2 kept, 0 broken" in result.stdout


@pytest.mark.skipif(LINT is None, reason="import-linter is not installed (pip install -e '.[dev]')")
def test_the_contracts_catch_a_back_edge(tmp_path: Path) -> None:
    """The same contracts on a copy of the three layers in which codegym imports agents fail."""
    for pkg, body in {"agents": "import codegym\n", "codegym": "import sandboxes\n",
                      "sandboxes": "", "codegym/tasks": "", "codegym/tasks/a": "from codegym.tasks import b\n",
                      "codegym/tasks/b": "", "codegym/back": "import agents\n"}.items():  # fmt: skip
        path = tmp_path / "src" / pkg
        path.mkdir(parents=True, exist_ok=True)
        (path / "__init__.py").write_text(body)
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    result = _lint(tmp_path, extra_path=tmp_path / "src")
    assert result.returncode != 0
    assert "codegym.back -> agents" in result.stdout, result.stdout[-3000:]


def _named_imports(path: Path) -> list[str]:
    """String constants (not docstrings) that name a module of ``agents``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    return [f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}" for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
            and re.match(r"agents(\.\w+)*(:\w+)?$", node.value)]  # fmt: skip


def test_codegym_and_sandboxes_name_no_agents_module() -> None:
    found = [hit for pkg in ("codegym", "sandboxes") for path in sorted((ROOT / pkg).rglob("*.py"))
             for hit in _named_imports(path)]
    assert found == [], "codegym must find agents through entry points, not by name:\n" + "\n".join(found)
