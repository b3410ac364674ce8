"""``codegym sft``: train the embedded default policy from scratch (tokenizer + tiny GPT-2).

Example::

    codegym sft --suite pipelines --out runs/sft

Every :class:`agents.sft.SFTConfig` field is a flag (``--sft-steps`` = optimiser steps,
``--min-task-lines``/``--max-task-lines`` = lines of a ``pipelines`` task), and ``--config
FILE`` / ``--set KEY=VALUE`` set any field. Re-running with the same ``--out`` resumes from
``OUT/checkpoint``; with other settings it refuses and lists the differences
(``--overwrite`` starts over). ``--eval-every N`` measures greedy pass@1 along the run.
"""

from __future__ import annotations

import argparse

from codegym.commands.common import SUITE_KWARG_FLAGS, resume_hint

NAME = "sft"
HELP = "train the default SFT policy (BPE tokenizer + tiny GPT-2)"

#: SFTConfig fields that are no flag, and why.
NOT_EXPOSED = {"extra": "free-form facts recorded with the run: --set extra=... or --config"}
#: Flags whose name says the unit (the field names predate them), and the old names.
FLAGS = {"steps": "--sft-steps", **SUITE_KWARG_FLAGS}
DEPRECATED = {"--steps": "steps", "--min-steps": "min_steps", "--max-steps": "max_steps"}


def add_parser(sub: argparse._SubParsersAction) -> None:
    from agents.sft import SFTConfig
    from codegym.config import add_config_args

    p = sub.add_parser(NAME, help=HELP, description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(p, SFTConfig, not_exposed=NOT_EXPOSED, flags=FLAGS, deprecated=DEPRECATED,
                    options={"report_to": {"choices": ["none", "tensorboard"]}})
    p.set_defaults(run=run, on_interrupt=resume_hint)


def run(args: argparse.Namespace) -> int:
    from agents.sft import SFTConfig, train_sft
    from codegym.commands.common import check_suite_kwargs
    from codegym.config import config_data
    from codegym.training.smoke import cap

    data = config_data(args)
    check_suite_kwargs(data.get("suite", "pipelines"), data)
    cfg = SFTConfig.from_dict(data)
    if cap(cfg, {"steps": 20, "train_tasks": 64, "eval_tasks": 2, "checkpoint_every": 10, "max_steps": 3}, "sft"):
        cfg.validate()
    train_sft(cfg)
    return 0
