"""``codegym train-prm``: train a Process Reward Model on stepwise labels.

Example::

    codegym label --policy runs/sft --out runs/labels.jsonl
    codegym train-prm --data runs/labels.jsonl --base runs/sft --out runs/prm

``--base`` is a causal-LM checkpoint (normally the SFT policy; its backbone is reused and a
scalar ``score`` head is added; ``default`` = the embedded default policy) or an existing
PRM. Labels are read at each line's last token (MSE regression by default, ``--objective
bce`` as an option). Re-running with the same ``--out`` resumes from ``OUT/checkpoint``
(``--steps`` may grow); with other settings or other data it refuses and lists the
differences (``--overwrite`` starts over). Validation metrics (MSE, AUC of line labels,
first-error localisation accuracy) go to ``OUT/metrics.jsonl`` and ``OUT/final_metrics.json``
(``--report-to tensorboard``: also to ``OUT/tensorboard``, same names); the model card is
``OUT/README.md``. The PRM loads with ``AutoModelForTokenClassification.from_pretrained(OUT)``.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import fields

from codegym.commands.common import resume_hint


def _fmt(value: float | None) -> str:
    """A metric for the table; ``n/a`` when undefined (no validation rows, one class only)."""
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.3f}"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train-prm", help="train a PRM on stepwise line labels (JSONL)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="stepwise JSONL (prompt, completions, labels)")
    p.add_argument("--base", required=True,
                   help="backbone checkpoint dir (SFT policy or a PRM; 'default' = the embedded policy)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--objective", default=None, choices=["mse", "bce"], help="loss (default mse)")
    p.add_argument("--steps", type=int, default=None, help="optimiser steps")
    p.add_argument("--batch-size", type=int, default=None, help="programs per step")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate")
    p.add_argument("--val-fraction", type=float, default=None, help="tasks held out for validation")
    p.add_argument("--eval-every", type=int, default=None, help="steps between validations")
    p.add_argument("--log-every", type=int, default=None, help="steps between metric rows")
    p.add_argument("--report-to", default=None, choices=["none", "tensorboard"],
                   help="also log metrics to TensorBoard (OUT/tensorboard; codegym[tensorboard])")
    p.add_argument("--checkpoint-every", type=int, default=None, help="steps between checkpoints")
    p.add_argument("--seed", type=int, default=None, help="seed of head init, split, batch order")
    p.add_argument("--device", default=None, help="torch device")
    p.add_argument("--threads", type=int, default=None, help="torch threads")
    p.add_argument("--overwrite", "--no-resume", dest="overwrite", action="store_true",
                   help="delete the run in --out and start over (default: resume it)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=run, on_interrupt=resume_hint)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from codegym.defaults import resolve_model
    from codegym.prm.train import PRMTrainConfig, train_prm

    names = {f.name for f in fields(PRMTrainConfig)}
    kwargs = {k: v for k, v in vars(args).items() if k in names and v is not None}
    kwargs["base"] = resolve_model(args.base, "policy")
    kwargs["resume"] = not args.overwrite
    from codegym.smoke import cap

    cap(kwargs, {"steps": 10, "eval_every": 5, "checkpoint_every": 5}, "train-prm")
    kwargs["progress"] = not args.no_progress
    result = train_prm(PRMTrainConfig(**kwargs))
    table = Table(title=f"PRM validation ({result['val_rows']} programs, step {result['step']})")
    for col in ("mse", "auc", "first_error_acc"):
        table.add_column(col, justify="right")
    table.add_row(*(_fmt(result.get("val/" + c)) for c in ("mse", "auc", "first_error_acc")))
    Console().print(table)
    Console().print(f"PRM saved to {args.out}")
    return 0
