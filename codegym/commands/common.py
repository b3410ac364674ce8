"""Arguments and helpers shared by several sub-commands."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.table import Table

from codegym.config import add_config_args
from codegym.tasks import SuiteConfig

console = Console()


#: The flags of :class:`codegym.tasks.SuiteConfig`'s fields, nested as ``suite`` in the config
#: of every command that draws tasks (``--min-task-lines`` / ``--max-task-lines`` count the
#: lines of a task, not optimiser steps).
SUITE_FLAGS = {"name": "--suite", "split": "--split", "min_lines": "--min-task-lines",
               "max_lines": "--max-task-lines", "seed": "--suite-seed"}  # fmt: skip
#: Old flag names that still work, with a note on stderr.
SUITE_DEPRECATED = {"--min-steps": "min_lines", "--max-steps": "max_lines"}
#: How a command's ``not_exposed`` names its nested ``suite`` field.
SUITE_NOT_EXPOSED = {"suite": "a nested SuiteConfig: --suite, --split, --min-task-lines, --max-task-lines, "
                              "--suite-seed (or --set suite.KEY=VALUE)"}  # fmt: skip


def add_suite_args(p: argparse.ArgumentParser, not_exposed: dict[str, str] | None = None) -> None:
    """The flags of the command config's nested ``suite`` (:data:`SUITE_FLAGS`), but those in
    ``not_exposed`` (field -> why, e.g. a split the command chooses itself)."""
    hidden = dict(not_exposed or {})
    flags = {k: v for k, v in SUITE_FLAGS.items() if k not in hidden}
    deprecated = {k: v for k, v in SUITE_DEPRECATED.items() if v not in hidden}
    add_config_args(p, SuiteConfig, prefix="suite", not_exposed=hidden, flags=flags, deprecated=deprecated)


def results_table(title: str, rows: list[dict[str, Any]]) -> Table:
    """A rich table of :func:`codegym.evaluation.summarize` rows (pass@1, pass@5/10 when there
    are enough samples, pass@k for the samples per task)."""
    table = Table(title=title)
    ks = [c for c in ("pass@5", "pass@10") if any(c in r for r in rows)]
    has_k = any("pass@k" in r and f"pass@{r['k']}" not in ks for r in rows)
    for col in ("group", "tasks", "episodes", "passed", "pass@1", *ks, *(["pass@k"] if has_k else []),
                "mean return", "mean lines"):
        table.add_column(col, justify="left" if col == "group" else "right")
    for r in rows:
        cells = [r["group"], str(r["tasks"]), str(r["episodes"]), str(r["passed"]), f"{r['pass@1']:.3f}"]
        cells += [f"{r[c]:.3f}" if c in r else "" for c in ks]
        if has_k:
            cells.append(f"{r['pass@k']:.3f} (k={r['k']})" if "pass@k" in r else "")
        cells += [f"{r['mean_return']:.3f}", f"{r['mean_lines']:.1f}"]
        table.add_row(*cells)
    return table


def resume_hint(args: argparse.Namespace) -> str:
    """The Ctrl-C message of a command that writes ``--out`` and resumes from it."""
    out = getattr(args, "out", None)
    if not out:
        return "nothing was saved"
    return (f"finished work is saved in {out}; run the same command again to resume "
            "(or add --overwrite to start over)")
