"""``codegym reproduce``: the method's ablation in miniature, end to end.

Trains an SFT policy, runs PPO arms from it with equal budgets — ``sparse`` (unit tests
only), ``dense`` (closed PRM shaping), ``value-init`` (critic = the PRM), ``dense+value-init``,
``paper`` (PRM score / T per line) and ``oracle-dense`` (exact prefix correctness as the
potential) — labels responses of the SFT policy and of RL checkpoints by binary search,
trains the PRM, and reports held-out pass@1 per horizon bucket with paired 95 % intervals over
tasks and seeds, the PRM's quality, hacking symptoms (invalid lines, program length, KL) and
seconds per iteration.

Examples::

    codegym reproduce --preset smoke --out runs/repro-smoke          # plumbing, ~2 min
    codegym reproduce --preset quick --seeds 3 --jobs 2 --out runs/repro   # the CPU study
    codegym reproduce --preset full --device cuda --out runs/repro-gpu
    codegym reproduce --out runs/repro --report-only                 # rebuild the report

Every stage is cached under ``--out`` and resumed when the command is re-run; a run
directory made with other settings is refused (``--overwrite`` starts anew). The pipeline
lives in ``agents.reproduce`` and is loaded by name, so ``codegym`` never imports ``agents``
statically.
"""

from __future__ import annotations

import argparse
import importlib
from typing import Any

#: The implementation of the command, loaded by string.
IMPLEMENTATION = "agents.reproduce.command:run"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reproduce", help="the PRM ablation end to end (SFT, PPO arms, labels, PRM, report)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="quick", choices=["smoke", "quick", "full"],
                   help="sizes of every stage (smoke: plumbing; quick: 2-core CPU study; full: one GPU)")
    p.add_argument("--out", required=True, help="run directory (stages are cached and resumed there)")
    p.add_argument("--seeds", type=int, default=None, help="PPO seeds per arm")
    p.add_argument("--arms", default=None,
                   help="comma-separated arms (default: all of sparse, dense, value-init, "
                        "dense+value-init, paper, oracle-dense)")
    p.add_argument("--device", default=None, help="cpu | cuda | cuda:N")
    p.add_argument("--jobs", type=int, default=None, help="stages run in parallel processes")
    p.add_argument("--threads", type=int, default=None, help="torch threads in all (CPU)")
    p.add_argument("--config", default=None, help="JSON file of ReproduceConfig fields")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a ReproduceConfig field, or sft.KEY / ppo.KEY / prm.KEY (repeatable)")
    p.add_argument("--overwrite", action="store_true", help="delete --out and start anew")
    p.add_argument("--report-only", action="store_true", help="rebuild the report from --out")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> Any:
    module, _, attr = IMPLEMENTATION.partition(":")
    try:
        impl = getattr(importlib.import_module(module), attr)
    except ImportError as exc:
        raise ValueError(f"codegym reproduce needs the agents package ({exc})") from exc
    return impl(args)
