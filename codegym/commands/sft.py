"""``codegym sft``: train the embedded default policy from scratch (tokenizer + tiny GPT-2).

Example::

    codegym sft --suite pipelines --out runs/sft

Re-running with the same ``--out`` resumes from ``OUT/checkpoint``; with other settings it
refuses and lists the differences (``--overwrite`` starts over). The default stop step
(``--steps``) was chosen by measuring greedy pass@1 by horizon (see ``agents.sft``); use
``--eval-every N`` to measure a different setting. The trainer lives in ``agents.sft`` and
is imported lazily (``codegym`` never imports ``agents`` statically).
"""

from __future__ import annotations

import argparse
from dataclasses import fields

from codegym.commands.common import resume_hint


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sft", help="train the default SFT policy (BPE tokenizer + tiny GPT-2)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suite", default="pipelines", help="pipelines | humaneval | jsonl:PATH")
    p.add_argument("--out", required=True, help="output directory (model + tokenizer)")
    p.add_argument("--min-steps", type=int, default=None, help="pipelines: fewest steps per task")
    p.add_argument("--max-steps", type=int, default=None, help="pipelines: most steps per task")
    p.add_argument("--suite-seed", type=int, default=None, help="pipelines: generator seed")
    p.add_argument("--steps", type=int, default=None, help="optimiser steps (the stop step)")
    p.add_argument("--train-tasks", type=int, default=None, help="training tasks")
    p.add_argument("--batch-size", type=int, default=None, help="sequences per step")
    p.add_argument("--lr", type=float, default=None, help="learning rate after warm-up")
    p.add_argument("--decay-steps", type=int, default=None,
                   help="final steps of linear learning-rate decay (0: constant)")
    p.add_argument("--vocab-size", type=int, default=None, help="BPE vocabulary size")
    p.add_argument("--n-layer", type=int, default=None, help="transformer blocks")
    p.add_argument("--n-embd", type=int, default=None, help="hidden size")
    p.add_argument("--eval-every", type=int, default=None,
                   help="evaluate greedy pass@1 on the validation split every N steps")
    p.add_argument("--eval-tasks", type=int, default=None, help="tasks per evaluation")
    p.add_argument("--buckets", default=None, help="horizon buckets, e.g. 1-3,4-6,7-9,10-12")
    p.add_argument("--sandbox", default=None, help="local | docker (evaluation)")
    p.add_argument("--threads", type=int, default=None, help="torch threads")
    p.add_argument("--device", default=None, help="torch device (cpu, cuda)")
    p.add_argument("--seed", type=int, default=None, help="seed of init and batch order")
    p.add_argument("--log-every", type=int, default=None, help="steps between metric rows")
    p.add_argument("--report-to", default=None, choices=["none", "tensorboard"],
                   help="also log metrics to TensorBoard (OUT/tensorboard; codegym[tensorboard])")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--overwrite", action="store_true",
                   help="delete the run in --out and start over (default: resume it)")
    p.set_defaults(run=run, on_interrupt=resume_hint)


def run(args: argparse.Namespace) -> int:
    from agents.sft import SFTConfig, train_sft

    names = {f.name for f in fields(SFTConfig)}
    kwargs = {k: v for k, v in vars(args).items() if k in names and v is not None}
    if args.suite != "pipelines" and any(
        getattr(args, n) is not None for n in ("min_steps", "max_steps", "suite_seed")
    ):
        raise ValueError("--min-steps/--max-steps/--suite-seed apply only to --suite pipelines")
    kwargs["progress"] = not args.no_progress
    kwargs["overwrite"] = args.overwrite
    from codegym.smoke import cap

    cap(kwargs, {"steps": 20, "train_tasks": 64, "eval_tasks": 2, "checkpoint_every": 10, "max_steps": 3}, "sft")
    train_sft(SFTConfig(**kwargs))
    return 0
