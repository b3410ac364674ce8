"""Arguments and helpers shared by several sub-commands."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console()


#: The flags of the ``pipelines`` task-length fields (``min_steps``/``max_steps`` count the
#: lines of a task, not optimiser steps).
SUITE_KWARG_FLAGS = {"min_steps": "--min-task-lines", "max_steps": "--max-task-lines"}
_SUITE_KWARGS = {"min_steps": "min_steps", "max_steps": "max_steps", "suite_seed": "seed"}


def add_suite_kwarg_args(p: argparse.ArgumentParser) -> None:
    """``--min-task-lines``, ``--max-task-lines``, ``--suite-seed`` (``pipelines`` only; the
    old ``--min-steps``/``--max-steps`` still work, with a note)."""
    from codegym.config import add_deprecated

    p.add_argument("--min-task-lines", dest="min_steps", type=int, default=None,
                   help="pipelines: fewest lines (steps) per task")
    p.add_argument("--max-task-lines", dest="max_steps", type=int, default=None,
                   help="pipelines: most lines (steps) per task")
    p.add_argument("--suite-seed", type=int, default=None, help="pipelines: generator seed")
    for name, flag in SUITE_KWARG_FLAGS.items():
        add_deprecated(p, flag.replace("task-lines", "steps"), flag, name, type=int)


def check_suite_kwargs(suite: str, given: dict[str, Any]) -> None:
    """Refuse ``pipelines``-only options (set to a value in ``given``) for another suite."""
    if suite != "pipelines" and any(given.get(n) is not None for n in _SUITE_KWARGS):
        raise ValueError("--min-task-lines/--max-task-lines/--suite-seed apply only to --suite pipelines")


def suite_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """Constructor kwargs for the suite from the parsed :func:`add_suite_kwarg_args` options."""
    given = {name: getattr(args, name) for name in _SUITE_KWARGS}
    check_suite_kwargs(args.suite, given)
    return {_SUITE_KWARGS[k]: v for k, v in given.items() if v is not None}


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
