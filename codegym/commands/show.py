"""``codegym show``: print trajectories with each line coloured by its PRM score.

Reads the trajectories of ``codegym eval --out`` (lines coloured by PRM score) and the label
files of ``codegym label --out`` (lines coloured by their +1/-1/0 label).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.text import Text

from codegym.commands.common import console

NAME = "show"
HELP = "show trajectories, each line coloured by its PRM score"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(NAME, help=HELP,
                       description=__doc__)
    p.add_argument("path", help="trajectories JSONL (`codegym eval --out`) or labels (`codegym label --out`)")
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


def render_label_row(row: dict) -> Text:
    """One labelled response as rich Text: header, then ``[label] line`` per line."""
    text = Text()
    first = row.get("first_error")
    verdict = "PASS" if row.get("passed") else ("FAIL" + (f", first error at line {first + 1}" if first is not None else ""))
    text.append(f"{row.get('task_id', '?')}  {verdict}  (labels)\n", style="bold")
    for line, label in zip(row["completions"], row["labels"]):
        label = int(label)
        tag = "  0 " if label == 0 else f"{label:+d} "
        text.append(f"{tag} ", style="dim")
        text.append(line + "\n", style="dim" if label == 0 else score_style(float(label)))
    return text


def render_row(row: dict) -> Text:
    """One trajectory as rich Text: header, then ``[score] line`` per line."""
    if "lines" not in row and "completions" in row and "labels" in row:
        return render_label_row(row)
    text = Text()
    status = f"{row.get('status', '')} {row.get('error_type') or ''}".strip()
    verdict = "PASS" if row["passed"] else (f"FAIL ({status})" if status else "FAIL")
    ret = f"  return={row['return']:.3f}" if isinstance(row.get("return"), (int, float)) else ""
    text.append(f"{row['task_id']}  {verdict}{ret}\n", style="bold")
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
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{n}: not valid JSON ({exc.msg})") from None
        trajectory = isinstance(row, dict) and {"task_id", "lines", "passed"} <= set(row)
        labels = isinstance(row, dict) and {"completions", "labels"} <= set(row)
        if not (trajectory or labels):
            raise ValueError(
                f"{path}:{n}: neither a trajectory (task_id, lines, passed: `codegym eval --out`) "
                "nor a label row (completions, labels: `codegym label --out`)"
            )
        rows.append(row)
    if args.failed:
        rows = [r for r in rows if not r.get("passed")]
    indices = args.index if args.index is not None else list(range(min(3, len(rows))))
    for i in indices:
        if not 0 <= i < len(rows):
            raise ValueError(f"--index {i} out of range: the file has {len(rows)} rows")
        console.print(render_row(rows[i]))
    return 0
