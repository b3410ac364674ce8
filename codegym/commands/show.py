"""``codegym show``: print trajectories with each line coloured by its PRM score."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.text import Text

from codegym.commands.common import console


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("show", help="show trajectories, each line coloured by its PRM score",
                       description=__doc__)
    p.add_argument("path", help="trajectories JSONL written by `codegym eval --out`")
    p.add_argument("--index", type=int, action="append", default=None,
                   help="row index to show (repeatable; default: the first 3)")
    p.add_argument("--failed", action="store_true", help="show only failed trajectories")
    p.set_defaults(run=run)


def score_style(score: float | None) -> str:
    """Rich style for a PRM score in [-1, 1]: red (wrong) .. green (right); dim if unscored."""
    if score is None:
        return "dim"
    s = max(-1.0, min(1.0, float(score)))
    red, green = (255, int(255 * (1 + s))) if s < 0 else (int(255 * (1 - s)), 255)
    return f"rgb({red},{green},80)"


def render_row(row: dict) -> Text:
    """One trajectory as rich Text: header, then ``[score] line`` per line."""
    text = Text()
    verdict = "PASS" if row["passed"] else f"FAIL ({row['status']} {row.get('error_type', '')})"
    text.append(f"{row['task_id']}  {verdict}  return={row['return']:.3f}\n", style="bold")
    scores = row.get("prm_scores") or [None] * len(row["lines"])
    for line, score in zip(row["lines"], scores):
        tag = "  ·   " if score is None else f"{score:+.2f} "
        text.append(f"{tag} ", style="dim")
        text.append(line + "\n", style=score_style(score))
    return text


def run(args: argparse.Namespace) -> int:
    path = Path(args.path)
    if not path.is_file():
        raise FileNotFoundError(f"no trajectories file at {path}: write one with `codegym eval --out`")
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{n}: not valid JSON ({exc.msg})") from None
    if args.failed:
        rows = [r for r in rows if not r.get("passed")]
    indices = args.index if args.index is not None else list(range(min(3, len(rows))))
    for i in indices:
        if not 0 <= i < len(rows):
            raise ValueError(f"--index {i} out of range: the file has {len(rows)} rows")
        console.print(render_row(rows[i]))
    return 0
