"""``codegym plot``: learning curves of training runs, overlaid, to a PNG.

Examples::

    codegym plot runs/ppo-sparse runs/ppo-dense --out curves.png
    codegym plot runs/ppo --metrics charts/pass_rate,charts/prefix_accuracy --smooth 5 --out pa.png
    codegym plot runs/prm --out prm.png        # PRM or SFT runs: their losses/charts/val fields

A run directory is what ``codegym train``, ``train-prm`` or ``sft`` wrote to ``--out`` (its
``metrics.jsonl`` or ``sft_log.jsonl``); a JSONL file of metric rows works too. By default
the panels are rollout pass rate, return, KL, entropy and explained variance, one line per
run.
"""

from __future__ import annotations

import argparse

NAME = "plot"
HELP = "learning curves of runs (pass rate, return, KL, ...) to a PNG"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(NAME, help=HELP,
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories (or metrics JSONL files)")
    p.add_argument("--out", required=True, help="image file (.png, .pdf, .svg)")
    p.add_argument("--metrics", default=None,
                   help="comma-separated fields to draw (default: pass rate, return, KL, entropy, "
                        "explained variance)")
    p.add_argument("--labels", default=None, help="comma-separated legend labels, one per run")
    p.add_argument("--smooth", type=int, default=1, help="moving-average window in points")
    p.add_argument("--title", default=None, help="figure title")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from codegym.commands.common import console
    from codegym.reporting.plotting import learning_curves, read_run, save_figure

    labels = args.labels.split(",") if args.labels else [None] * len(args.runs)
    if len(labels) != len(args.runs):
        raise ValueError(f"--labels has {len(labels)} names for {len(args.runs)} runs")
    runs = [read_run(path, label) for path, label in zip(args.runs, labels)]
    empty = [r.label for r in runs if not r.rows]
    if empty:
        raise ValueError(f"no metric rows yet in {empty}")
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    fig = learning_curves(runs, metrics, smooth=args.smooth, title=args.title)
    path = save_figure(fig, args.out)
    console.print(f"plot: {path}")
    return 0
