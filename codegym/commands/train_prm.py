"""``codegym train-prm``: train a Process Reward Model on stepwise labels.

Example::

    codegym label --policy runs/sft --out runs/labels.jsonl
    codegym train-prm --data runs/labels.jsonl --base runs/sft --out runs/prm

``--base`` is a causal-LM checkpoint (normally the SFT policy; its backbone is reused and a
scalar ``score`` head is added; ``default`` = the embedded default policy) or an existing
PRM. Labels are read at each line's last token (MSE regression by default, ``--objective
bce`` as an option). Every :class:`codegym.prm.train.PRMTrainConfig` field is a flag
(``--train-steps`` = optimiser steps); ``--config FILE`` / ``--set KEY=VALUE`` set any field.
Re-running with the same ``--out`` resumes from ``OUT/checkpoint`` (``--train-steps`` may grow); with other settings or other data it refuses and lists the
differences (``--overwrite`` starts over). Validation metrics (MSE, AUC of line labels,
first-error localisation accuracy) go to ``OUT/metrics.jsonl`` and ``OUT/final_metrics.json``
(``--report-to tensorboard``: also to ``OUT/tensorboard``, same names); the model card is
``OUT/README.md``. The PRM loads with ``AutoModelForTokenClassification.from_pretrained(OUT)``.
"""

from __future__ import annotations

import argparse
import math

from codegym.commands.common import resume_hint


def _fmt(value: float | None) -> str:
    """A metric for the table; ``n/a`` when undefined (no validation rows, one class only)."""
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.3f}"


NAME = "train-prm"
HELP = "train a PRM on stepwise line labels (JSONL)"

#: PRMTrainConfig fields that are no flag, and why.
NOT_EXPOSED: dict[str, str] = {}
FLAGS = {"steps": "--train-steps"}
DEPRECATED = {"--steps": "steps"}


def add_parser(sub: argparse._SubParsersAction) -> None:
    from codegym.config import add_config_args
    from codegym.prm.model import OBJECTIVES
    from codegym.prm.train import PRMTrainConfig

    p = sub.add_parser(NAME, help=HELP, description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(p, PRMTrainConfig, not_exposed=NOT_EXPOSED, flags=FLAGS, deprecated=DEPRECATED,
                    options={"objective": {"choices": list(OBJECTIVES)},
                             "report_to": {"choices": ["none", "tensorboard"]},
                             "base": {"help": "backbone checkpoint dir (SFT policy or a PRM; "
                                      "'default' = the embedded policy)"}})
    p.set_defaults(run=run, on_interrupt=resume_hint)


def run(args: argparse.Namespace) -> int:
    from rich.table import Table

    from codegym.commands.common import console
    from codegym.config import config_data
    from codegym.defaults import resolve_model
    from codegym.prm.train import PRMTrainConfig, train_prm

    data = config_data(args)
    data["base"] = resolve_model(data["base"], "policy")
    cfg = PRMTrainConfig.from_dict(data)
    result = train_prm(cfg)
    table = Table(title=f"PRM validation ({result['val_rows']} programs, step {result['step']})")
    for col in ("mse", "auc", "first_error_acc"):
        table.add_column(col, justify="right")
    table.add_row(*(_fmt(result.get("val/" + c)) for c in ("mse", "auc", "first_error_acc")))
    console.print(table)
    console.print(f"PRM saved to {cfg.out}")
    return 0
