"""``codegym sft``: train the embedded default policy from scratch (tokenizer + tiny GPT-2),
or fine-tune a pretrained causal LM (``--base DIR``) on the reference solutions.

Examples::

    codegym sft --suite pipelines --out runs/sft
    codegym sft --base MODEL_DIR --dtype bf16 --lora-rank 16 --lr 2e-4 --out runs/sft-lora

With ``--base`` the model keeps its own tokenizer; an instruct model reads each task through
its chat template (``--no-chat-template``: the plain prompt). Every weight is trained (fp32
master weights under ``--dtype bf16``), or with ``--lora-rank R`` only LoRA adapters on the
frozen base; the result is then a peft adapter directory, which every command loads.

Every :class:`agents.sft.SFTConfig` field is a flag (``--sft-steps`` = optimiser steps), so is
every field of its ``suite`` (``--suite``, ``--min-task-lines``/``--max-task-lines`` = lines of
a task, ``--suite-seed``), and ``--config FILE`` / ``--set KEY=VALUE`` set any field. Re-running
with the same ``--out`` resumes from ``OUT/checkpoint``; with other settings it refuses and
lists the differences (``--overwrite`` starts over). ``--eval-every N`` measures greedy pass@1
along the run.
"""

from __future__ import annotations

import argparse

from codegym.commands.common import SUITE_NOT_EXPOSED, add_suite_args, resume_hint

NAME = "sft"
HELP = "SFT on reference solutions: the default policy from scratch, or --base a pretrained LM"

#: SFTConfig fields that are no flag, and why.
NOT_EXPOSED = {"extra": "free-form facts recorded with the run: --set extra=... or --config", **SUITE_NOT_EXPOSED}
#: Flags whose name says the unit (the field names predate them), and the old names.
FLAGS = {"steps": "--sft-steps"}
DEPRECATED = {"--steps": "steps"}


def add_parser(sub: argparse._SubParsersAction) -> None:
    from agents.sft import SFTConfig
    from codegym.config import add_config_args

    p = sub.add_parser(NAME, help=HELP, description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(p, SFTConfig, not_exposed=NOT_EXPOSED, flags=FLAGS, deprecated=DEPRECATED,
                    options={"report_to": {"choices": ["none", "tensorboard"]}})
    add_suite_args(p)
    p.set_defaults(run=run, on_interrupt=resume_hint)


def run(args: argparse.Namespace) -> int:
    from agents.sft import SFTConfig, train_sft
    from codegym.config import config_from_args

    train_sft(config_from_args(args, SFTConfig))
    return 0
