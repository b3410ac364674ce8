"""``codegym train``: RL training of an agent (LLM-PPO with line rewards and a PRM critic, or
critic-free GRPO with outcome and process advantages).

Examples::

    codegym train --agent ppo --policy runs/sft --iterations 300 --out runs/ppo-sparse
    codegym train --agent ppo --policy runs/sft --prm runs/prm --dense-reward delta \\
        --value-init prm --out runs/ppo-both
    codegym train --agent grpo --policy runs/sft --prm runs/prm --advantage outcome+process \\
        --out runs/grpo-process
    accelerate launch --multi_gpu --num_processes 2 -m codegym.cli train --agent ppo ...
    torchrun --nproc_per_node 2 -m codegym.cli train --agent ppo ...   # the same, DDP on gloo

(accelerate's CPU path is ``--multi_gpu``: it starts the processes with torchrun; on a
machine without CUDA, or with ``--device cpu``, they train on CPU over gloo.)

Every :class:`agents.ppo.config.PPOConfig` field is a flag, so is every field of its
``suite`` (``--suite``, ``--split``, ``--min-task-lines`` / ``--max-task-lines`` = lines of a
training task, ``--suite-seed``), and ``--config FILE`` / ``--set KEY=VALUE`` set any field
(flags win over ``--set``, which wins over the file). ``--policy default`` / ``--prm default``
name the embedded default policy and PRM. Re-running with the same ``--out`` resumes from the
last checkpoint (``--iterations`` may grow); with other settings, another policy or PRM it
refuses and lists the differences (``--overwrite`` starts over): the trainer does this, as
every trainer does (:class:`codegym.training.trainer.Trainer`). ``--agent module:Class``
trains another trainer class (its ``config_class`` has ``from_dict``); the flags of PPOConfig
fields it shares apply to it. ``--agent grpo`` trains :class:`agents.grpo.trainer.GRPOTrainer`:
the flags of the :class:`agents.grpo.config.GRPOConfig` fields PPOConfig has too set them, and
its own fields (``--advantage``, ``--baseline``, ``--scale-by-std``, ``--process-source``, ...)
have flags of their own; a PPO-only flag (``--gae-lambda``) is refused.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from codegym.commands.common import SUITE_NOT_EXPOSED, add_suite_args, console, resume_hint

NAME = "train"
HELP = "train an agent with RL (PPO with PRM rewards/critic, or critic-free GRPO)"

#: Registered trainers: name -> ("module:TrainerClass", "module:ConfigClass"). The trainer
#: takes ``(config, policy_dir, out_dir, prm_dir=, accelerator=, overwrite=, progress=)``
#: (a :class:`codegym.training.trainer.Trainer` does) and has ``iteration``, ``train()`` and
#: ``close()``; the config has ``from_dict`` and ``iterations``. A ``module:Class`` trainer
#: names its config in a ``config_class`` attribute.
TRAINERS: dict[str, tuple[str, str]] = {
    "ppo": ("agents.ppo.trainer:PPOTrainer", "agents.ppo.config:PPOConfig"),
    "grpo": ("agents.grpo.trainer:GRPOTrainer", "agents.grpo.config:GRPOConfig"),
}

#: PPOConfig fields that are no flag, and why.
NOT_EXPOSED = {"extra": "free-form facts recorded with the run (the trainer adds the input digests)",
               **SUITE_NOT_EXPOSED}  # fmt: skip


def add_parser(sub: argparse._SubParsersAction) -> None:
    from agents.ppo.config import PPOConfig
    from codegym.config import add_config_args, add_deprecated

    p = sub.add_parser(NAME, help=HELP, description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--agent", default="ppo", help="trainer name (ppo, grpo) or module:Class")
    p.add_argument("--policy", required=True,
                   help="starting policy dir (save_pretrained); 'default' = the embedded policy")
    p.add_argument("--prm", default=None,
                   help="PRM dir (dense reward and/or value init); 'default' = the embedded PRM")
    p.add_argument("--out", required=True, help="run directory (resumes when it has a checkpoint)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                   help="show a progress bar (--no-progress: none)")
    add_deprecated(p, "--quiet", "--no-progress", "progress", const=False)
    p.add_argument("--overwrite", action="store_true",
                   help="delete the run in --out and start over (default: resume it)")
    add_config_args(p, PPOConfig, not_exposed=NOT_EXPOSED,
                    options={"report_to": {"choices": ["none", "tensorboard"]},
                             "value_init": {"help": "critic start: prm (plain load of the PRM) or "
                                            "policy (backbone + new head); default: prm when --prm "
                                            "is given, else policy"}})
    add_suite_args(p)
    _add_grpo_args(p)
    p.set_defaults(run=run, on_interrupt=resume_hint)


def _add_grpo_args(p: argparse.ArgumentParser) -> None:
    """Flags of the GRPOConfig fields that PPOConfig lacks (``--agent grpo`` only)."""
    from agents.grpo.config import GRPOConfig
    from agents.ppo.config import PPOConfig
    from codegym.config import add_config_args, field_names

    shared = set(field_names(PPOConfig)) & set(field_names(GRPOConfig))
    add_config_args(p, GRPOConfig, not_exposed={k: v for k, v in NOT_EXPOSED.items() if k in shared},
                    shared=shared - set(NOT_EXPOSED))  # fmt: skip


def _load(spec: str) -> Any:
    import importlib

    module, _, attr = spec.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot load {spec!r}: {exc}") from exc


def build_config(args: argparse.Namespace, config_cls: Any) -> Any:
    """The trainer config from ``--config``, ``--set`` and the flags (in that order)."""
    from codegym.config import config_data, field_names

    data = config_data(args)
    names = field_names(config_cls)
    registered = {_load(spec) for _, spec in TRAINERS.values()}
    if config_cls not in registered:  # a module:Class trainer: the PPOConfig flags it shares
        data = {k: v for k, v in data.items() if k in names}
    if "value_init" in names and "value_init" not in data and args.prm is not None:
        data["value_init"] = "prm"
    return config_cls.from_dict(data)


def _accelerator(device: str) -> Any:
    """An ``accelerate.Accelerator`` when launched with several processes, else None.

    ``accelerate launch --multi_gpu --num_processes N`` and ``torchrun --nproc_per_node N``
    both set ``WORLD_SIZE``; on CPU (``--device cpu`` or no CUDA) the processes join a gloo
    process group (accelerate's MULTI_CPU), on GPUs an NCCL one.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    try:
        import torch
        from accelerate import Accelerator
    except ImportError as exc:
        raise ValueError("distributed launch needs accelerate: pip install 'codegym[accelerate]'") from exc
    return Accelerator(cpu=device == "cpu" or not torch.cuda.is_available())


def _trainer_classes(agent: str) -> tuple[Any, Any]:
    """The trainer class of ``--agent`` and its config class."""
    trainer_spec, config_spec = TRAINERS.get(agent, (agent, None))
    trainer_cls = _load(trainer_spec)
    if config_spec is None and not hasattr(trainer_cls, "config_class"):
        raise ValueError(f"--agent {agent}: {trainer_spec} has no config_class attribute")
    return trainer_cls, _load(config_spec) if config_spec else trainer_cls.config_class


#: Metrics of the summary table, in order.
SUMMARY_KEYS = ("charts/pass_rate", "charts/return", "charts/prefix_accuracy", "charts/kl",
                "charts/explained_variance", "charts/lines", "losses/policy", "losses/value",
                "losses/entropy", "charts/rollout_tokens_per_s", "charts/update_tokens_per_s")


def summary_table(title: str, rows: list[dict[str, Any]]) -> Any:
    """First, last and mean of the last 10 values of each :data:`SUMMARY_KEYS` metric."""
    from rich.table import Table

    table = Table(title=title)
    for col, justify in (("metric", "left"), ("first", "right"), ("last", "right"), ("mean (last 10)", "right")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for key in SUMMARY_KEYS:
        vals = [r[key] for r in rows if key in r and r[key] == r[key]]
        if vals:
            tail = vals[-10:]
            table.add_row(key, f"{vals[0]:.4g}", f"{vals[-1]:.4g}", f"{sum(tail) / len(tail):.4g}")
    return table


def run(args: argparse.Namespace) -> int:
    from codegym.defaults import resolve_model

    trainer_cls, config_cls = _trainer_classes(args.agent)
    config = build_config(args, config_cls)
    accelerator = _accelerator(config.device)
    main = accelerator is None or accelerator.is_main_process
    policy, prm = resolve_model(args.policy, "policy"), resolve_model(args.prm, "prm")
    trainer = trainer_cls(config, policy, args.out, prm_dir=prm, accelerator=accelerator,
                          overwrite=args.overwrite, progress=args.progress)  # fmt: skip
    try:
        start = trainer.iteration
        rows = trainer.train()
    finally:
        trainer.close()
    if main:
        title = f"codegym train --agent {args.agent} ({start} -> {trainer.iteration} iterations)"
        console.print(summary_table(title, rows))
        console.print(f"policy -> {Path(args.out) / 'policy'}   metrics -> {Path(args.out) / 'metrics.jsonl'}")
    return 0
