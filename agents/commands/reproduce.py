"""``codegym reproduce``: the method's ablation in miniature, end to end.

Trains an SFT policy, runs PPO arms from it with equal budgets — ``sparse`` (unit tests
only), ``dense`` (closed PRM shaping), ``value-init`` (critic = the PRM), ``dense+value-init``,
``paper`` (PRM score / T per line) and ``oracle-dense`` (exact prefix correctness as the
potential) — and critic-free GRPO arms with the same budgets — ``grpo`` (unit-test reward
normalised within each task's samples), ``grpo+process`` (+ process advantages from the PRM)
and ``grpo+oracle-process`` (+ process advantages from the exact oracle) — labels responses of the SFT policy and of RL checkpoints by binary search,
trains the PRM, and reports held-out pass@1 per horizon bucket with paired 95 % intervals over
tasks and seeds, the PRM's quality, hacking symptoms (invalid lines, program length, KL) and
seconds per iteration.

Examples::

    codegym reproduce --preset smoke --out runs/repro-smoke          # plumbing, ~2 min
    codegym reproduce --preset quick --seeds 3 --jobs 2 --out runs/repro   # the CPU study
    codegym reproduce --preset full --device cuda --out runs/repro-gpu
    codegym reproduce --out runs/repro --report-only                 # rebuild the report

Every :class:`agents.reproduce.config.ReproduceConfig` field is a flag, so is every field of
its ``suite`` but the split (``--min-task-lines`` / ``--max-task-lines`` = lines of a task,
``--suite-seed``); ``--config FILE`` and ``--set KEY=VALUE`` set any field, and ``--set sft.KEY=V`` / ``ppo.KEY`` / ``grpo.KEY`` / ``prm.KEY`` a field of the SFT, PPO, GRPO or
PRM-training config (the preset < ``--config`` < ``--set`` < flags). Every stage is cached
under ``--out`` and resumed when the command is re-run; a run directory made with other
settings is refused (``--overwrite`` starts anew).
"""

from __future__ import annotations

import argparse
from typing import Any

from codegym.commands.common import SUITE_NOT_EXPOSED, add_suite_args

NAME = "reproduce"
HELP = "the PRM ablation end to end (SFT, PPO and GRPO arms, labels, PRM, report)"

#: ReproduceConfig fields that are no flag, and why.
NOT_EXPOSED = {
    "sft": "nested overrides of SFTConfig: --set sft.KEY=VALUE",
    "ppo": "nested overrides of PPOConfig: --set ppo.KEY=VALUE",
    "grpo": "nested overrides of GRPOConfig (the grpo arms): --set grpo.KEY=VALUE",
    "prm": "nested overrides of PRMTrainConfig: --set prm.KEY=VALUE",
    **SUITE_NOT_EXPOSED,
}
#: SuiteConfig fields that are no flag of ``reproduce``, and why.
SUITE_HIDDEN = {"split": "each stage draws from its own split (train, validation, test)"}


def add_parser(sub: argparse._SubParsersAction) -> None:
    from agents.reproduce.config import ARMS, GRPO_ARMS, PRESETS, ReproduceConfig
    from codegym.config import add_config_args

    p = sub.add_parser(NAME, help=HELP, description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="run directory (stages are cached and resumed there)")
    p.add_argument("--overwrite", action="store_true", help="delete --out and start anew")
    p.add_argument("--report-only", action="store_true", help="rebuild the report from --out")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_config_args(p, ReproduceConfig, not_exposed=NOT_EXPOSED, options={
                        "preset": {"choices": list(PRESETS), "help": "sizes of every stage (smoke: "
                                   "plumbing; quick: 2-core CPU study, the default; hard: the same on long "
                                   "tasks only (6-8 lines); full: one GPU)"},
                        "arms": {"help": f"comma-separated arms (default: all of {', '.join([*ARMS, *GRPO_ARMS])}); "
                                 "ARM@FIELD=VALUE is a variant with a trainer config field set "
                                 "(dense@gae_lambda=0.8)"},
                    })  # fmt: skip
    add_suite_args(p, not_exposed=SUITE_HIDDEN)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> Any:
    from agents.reproduce.command import run as run_reproduce

    return run_reproduce(args)
