"""``codegym train``: RL training of an agent (LLM-PPO with line rewards and a PRM critic).

Examples::

    codegym train --agent ppo --policy runs/sft --iterations 300 --out runs/ppo-sparse
    codegym train --agent ppo --policy runs/sft --prm runs/prm --dense-reward delta \\
        --value-init prm --out runs/ppo-both
    accelerate launch --multi_gpu --num_processes 2 -m codegym.cli train --agent ppo ...
    torchrun --nproc_per_node 2 -m codegym.cli train --agent ppo ...   # the same, DDP on gloo

(accelerate's CPU path is ``--multi_gpu``: it starts the processes with torchrun; on a
machine without CUDA, or with ``--device cpu``, they train on CPU over gloo.)

``--policy default`` / ``--prm default`` name the embedded default policy and PRM. Re-running
with the same ``--out`` resumes from the last checkpoint (``--iterations`` may grow); with
other settings, another policy or PRM it refuses and lists the differences (``--overwrite``
starts over). The trainer is loaded
by string (``--agent ppo`` or ``module:Class``), so ``codegym`` never imports ``agents``
statically.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from codegym.commands.common import console, resume_hint

#: Config fields that may change when a run is resumed (everything else must match).
RESUMABLE_CHANGES = ("iterations", "device", "torch_threads", "log_every", "checkpoint_every")

#: Registered trainers: name -> ("module:TrainerClass", "module:ConfigClass"). The trainer
#: takes ``(config, policy_dir, out_dir, prm_dir=, accelerator=, on_iteration=)`` and has
#: ``iteration``, ``train()`` and ``close()``; the config has ``from_dict`` and ``iterations``.
TRAINERS: dict[str, tuple[str, str]] = {
    "ppo": ("agents.ppo.trainer:PPOTrainer", "agents.ppo.config:PPOConfig"),
}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train an agent with RL (PPO with PRM rewards/critic)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--agent", default="ppo", help="trainer name (ppo) or module:Class")
    p.add_argument("--policy", required=True,
                   help="starting policy dir (save_pretrained); 'default' = the embedded policy")
    p.add_argument("--prm", default=None,
                   help="PRM dir (dense reward and/or value init); 'default' = the embedded PRM")
    p.add_argument("--dense-reward", default=None, choices=["none", "delta", "delta_open", "paper"],
                   help="per-line reward: none (sparse), delta (closed potential-based shaping: "
                        "the best policy is unchanged), delta_open (unclosed, for ablations), "
                        "paper (score/T)")
    p.add_argument("--value-init", default=None, choices=["prm", "policy"],
                   help="critic start: prm (plain load of the PRM) or policy (backbone + new "
                        "head); default: prm when --prm is given, else policy")
    p.add_argument("--iterations", type=int, default=None, help="PPO iterations")
    p.add_argument("--out", required=True, help="run directory (resumes when it has a checkpoint)")
    p.add_argument("--config", default=None, help="JSON file of config fields")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any config field, e.g. --set policy_lr=3e-5 (repeatable)")
    p.add_argument("--seed", type=int, default=None, help="run seed")
    p.add_argument("--device", default=None, help="cpu | cuda | cuda:N (default: config's)")
    p.add_argument("--min-steps", type=int, default=None, help="pipelines: fewest steps")
    p.add_argument("--max-steps", type=int, default=None, help="pipelines: most steps")
    p.add_argument("--report-to", default=None, choices=["none", "tensorboard"],
                   help="also log metrics to TensorBoard (OUT/tensorboard, same names as "
                   "metrics.jsonl; codegym[tensorboard])")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--overwrite", action="store_true",
                   help="delete the run in --out and start over (default: resume it)")
    p.set_defaults(run=run, on_interrupt=resume_hint)


def _load(spec: str) -> Any:
    import importlib

    module, _, attr = spec.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot load {spec!r}: {exc}") from exc


def build_config(args: argparse.Namespace, config_cls: Any) -> Any:
    """The trainer config from ``--config``, ``--set`` and the dedicated flags (in that order)."""
    from codegym.plugins import parse_kv

    data: dict[str, Any] = {}
    if args.config:
        try:
            data.update(json.loads(Path(args.config).read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"--config {args.config}: cannot read JSON: {exc}") from exc
    data.update(parse_kv(args.set))
    flags = {
        "dense_reward": args.dense_reward, "value_init": args.value_init,
        "iterations": args.iterations, "seed": args.seed, "device": args.device,
        "min_steps": args.min_steps, "max_steps": args.max_steps,
        "report_to": args.report_to,
    }  # fmt: skip
    data.update({k: v for k, v in flags.items() if v is not None})
    if "value_init" not in data and args.prm is not None:
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


def _inputs(args: argparse.Namespace, config: Any, main: bool) -> tuple[str, str | None]:
    """Resolve ``default`` model names, record the inputs' digests in ``config.extra`` and
    refuse to resume a run in ``--out`` made with other settings or inputs."""
    from codegym.defaults import resolve_model
    from codegym.runs import clear_run_dir, diff_settings, file_digest, read_record

    policy = resolve_model(args.policy, "policy")
    prm = resolve_model(args.prm, "prm")
    out = Path(args.out)
    if hasattr(config, "extra") and isinstance(config.extra, dict):
        config.extra["inputs"] = {"policy": file_digest(policy), "prm": file_digest(prm) if prm else None}
    if args.overwrite:
        if main:
            clear_run_dir(out, markers=("config.json", "checkpoint", "metrics.jsonl"))
        return policy, prm
    saved = read_record(out / "config.json")
    if saved is not None and hasattr(config, "to_dict"):
        new = config.to_dict()
        new["extra"] = {**new.get("extra", {}), "policy_dir": str(Path(policy)), "prm_dir": str(Path(prm)) if prm else None,
                        "world_size": int(os.environ.get("WORLD_SIZE", "1"))}
        diff = diff_settings(saved, new, ignore=RESUMABLE_CHANGES)
        if diff:
            raise ValueError(
                f"{out} holds a training run with other settings ({'; '.join(diff)}): run the "
                "same command to resume it, add --overwrite to start over, or choose another --out"
            )
    return policy, prm


def run(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    trainer_spec, config_spec = TRAINERS.get(args.agent, (args.agent, None))
    trainer_cls = _load(trainer_spec)
    config_cls = _load(config_spec) if config_spec else trainer_cls.config_class
    config = build_config(args, config_cls)
    from codegym.smoke import cap

    if cap(config, {"iterations": 2, "critic_warmup_iterations": 1, "num_prompts": 2, "samples_per_prompt": 2,
                    "num_minibatches": 1, "max_new_tokens": 48, "max_lines": 8}, "train") and hasattr(config, "validate"):
        config.validate()
    accelerator = _accelerator(config.device)
    main = accelerator is None or accelerator.is_main_process
    policy, prm = _inputs(args, config, main)

    columns = (TextColumn("[bold]train[/] {task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("pass {task.fields[pass_rate]:.2f} kl {task.fields[kl]:.3f}"),
               TimeElapsedColumn())
    progress = Progress(*columns, console=console, disable=args.quiet or not main)
    bar = progress.add_task(f"{args.agent} -> {args.out}", total=config.iterations, pass_rate=0.0, kl=0.0)

    def on_iteration(row: dict[str, Any]) -> None:
        progress.update(bar, completed=row["iteration"], pass_rate=row["charts/pass_rate"],
                        kl=row["charts/kl"])

    trainer = trainer_cls(config, policy, args.out, prm_dir=prm,
                          accelerator=accelerator, on_iteration=on_iteration)
    try:
        start = trainer.iteration
        progress.update(bar, completed=start)
        with progress:
            rows = trainer.train()
    finally:
        trainer.close()
    if not main:
        return 0
    table = Table(title=f"codegym train --agent {args.agent} ({start} -> {trainer.iteration} iterations)")
    table.add_column("metric")
    table.add_column("first", justify="right")
    table.add_column("last", justify="right")
    table.add_column("mean (last 10)", justify="right")
    keys = ["charts/pass_rate", "charts/return", "charts/prefix_accuracy", "charts/kl",
            "charts/explained_variance", "charts/lines", "losses/policy", "losses/value",
            "losses/entropy", "charts/rollout_tokens_per_s", "charts/update_tokens_per_s"]
    for key in keys:
        vals = [r[key] for r in rows if key in r and r[key] == r[key]]
        if not vals:
            continue
        tail = vals[-10:]
        table.add_row(key, f"{vals[0]:.4g}", f"{vals[-1]:.4g}", f"{sum(tail) / len(tail):.4g}")
    console.print(table)
    console.print(f"policy -> {Path(args.out) / 'policy'}   metrics -> {Path(args.out) / 'metrics.jsonl'}")
    return 0
