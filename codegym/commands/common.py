"""Arguments and helpers shared by several sub-commands."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console()


def add_suite_args(p: argparse.ArgumentParser, default_split: str | None = None) -> None:
    """``--suite``, ``--split``, ``--min-steps``, ``--max-steps``, ``--suite-seed``."""
    p.add_argument("--suite", default="pipelines",
                   help="pipelines | humaneval | jsonl:PATH | hf:NAME (default: pipelines)")
    p.add_argument("--split", default=default_split, help="split (default: the suite's test split)")
    p.add_argument("--min-steps", type=int, default=None, help="pipelines: fewest steps per task")
    p.add_argument("--max-steps", type=int, default=None, help="pipelines: most steps per task")
    p.add_argument("--suite-seed", type=int, default=None, help="pipelines: generator seed")


def suite_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """Constructor kwargs for the suite from the parsed ``add_suite_args`` options."""
    kwargs: dict[str, Any] = {}
    if args.suite == "pipelines":
        for name in ("min_steps", "max_steps"):
            if getattr(args, name) is not None:
                kwargs[name] = getattr(args, name)
        if args.suite_seed is not None:
            kwargs["seed"] = args.suite_seed
    elif any(getattr(args, n) is not None for n in ("min_steps", "max_steps", "suite_seed")):
        raise ValueError("--min-steps/--max-steps/--suite-seed apply only to --suite pipelines")
    return kwargs


def results_table(title: str, rows: list[dict[str, Any]]) -> Table:
    """A rich table of :func:`codegym.rollout.summarize` rows (pass@1, pass@5/10 when there
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
