"""Does PPO learn on this CPU? Greedy pass@1 before/after a fixed PPO budget, paired.

Pipeline (each stage cached in ``--work`` and resumed when re-run):

1. **SFT policy** — ``agents.sft.train_sft`` with the 2-layer x 128 GPT-2 default, ``basic``
   pipelines with 1-6 steps, stopped *early* at ``--sft-steps`` (a documented stop step
   where greedy pass@1 on 2-4-step tasks leaves RL room: ~36 % when it was chosen).
2. **Before** — greedy pass@1 and line-prefix accuracy on ``--eval-tasks`` fixed
   validation tasks with 2-4 steps (the first N of the split: the same tasks every run).
3. **PPO** — ``PPOTrainer`` with the ``PPOConfig`` defaults (sparse unit-test reward unless
   ``--dense-reward``) for ``--iterations`` iterations or ``--minutes`` of wall clock,
   whichever comes first; checkpoints every iteration (re-running resumes).
4. **After** — the same evaluation; the paired difference per task with its 95 % interval.

Prints a table and writes ``WORK/result-<run>.json`` with pass@1 before/after, the paired
difference and interval, prefix accuracy, rollout pass rate (first/last 10 iterations), KL,
and tokens/s of rollout, scoring and update.

    python bench/ppo_learning.py                        # defaults (<= ~30 min on 2 cores)
    python bench/ppo_learning.py --dense-reward delta --prm DIR --value-init prm

Measured on an idle 2-core machine (1 torch thread), 2026-11-26, after PPO was changed to
train on the token ids the policy drew (``LineSampler(reencode=False)``):

* ``python bench/ppo_learning.py`` with the current defaults (16 tasks x 8 samples, policy
  lr 1e-4, 2 epochs x 4 minibatches; run here as ``--policy WORK/sft-600 --set
  policy_lr=1e-4 --set samples_per_prompt=8 --set num_minibatches=4`` before they became the
  defaults): 120 iterations in 20 min, 10.0 s each (rollout 2.5 / scoring 2.1 / update
  5.4 s); greedy pass@1 **0.280 -> 0.485, paired +20.5 points [95 % CI +16.2, +24.8]** on 400
  tasks; sampled pass@1 (n = 8) 0.175 -> 0.308, +13.3 [+11.2, +15.5]; prefix accuracy 0.374
  -> 0.561; rollout pass rate 0.27 -> 0.37 (first/last 10 iterations); KL 0.94 nats per
  program; tokens/s rollout 1,796, scoring 5,745, update 1,694; 22.5 min in all (SFT cached;
  the SFT stage takes 160 s on this machine).
* The previous defaults (16 x 4 samples, lr 2e-5, 2 x 2 minibatches) on the same SFT policy:
  240 iterations, 5.0 s each; greedy 0.280 -> 0.287, +0.7 [-2.2, +3.7] — no measurable gain
  (they had shown +5.5 to +6.5 points in the previous session, when PPO still trained on the
  rule's re-encoding of the lines, on other SFT runs).

Earlier (previous session, 2-core machine shared with other jobs, 1 torch thread): SFT stop
step on 1-6-step tasks, greedy pass@1 on 100 validation 2-4-step tasks at steps
250/300/350/500/550/600: 0.14/0.10/0.18/0.24/0.33/0.30 (hence ``SFT_STEPS`` = 600).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

#: SFT stop step of the default policy (measured; see the report in the module docstring).
SFT_STEPS = 600


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", default="runs/bench-ppo", help="work directory (cached stages)")
    p.add_argument("--policy", default=None, help="use this SFT policy dir instead of training one")
    p.add_argument("--sft-steps", type=int, default=SFT_STEPS, help="SFT stop step")
    p.add_argument("--iterations", type=int, default=400, help="PPO iterations (upper bound)")
    p.add_argument("--minutes", type=float, default=20.0, help="PPO wall-clock budget (upper bound)")
    p.add_argument("--eval-tasks", type=int, default=400, help="fixed validation tasks")
    p.add_argument("--samples", type=int, default=8,
                   help="programs per task for sampled pass@1 (temperature 1; 0: greedy only)")
    p.add_argument("--eval-min-steps", type=int, default=2, help="fewest steps of eval tasks")
    p.add_argument("--eval-max-steps", type=int, default=4, help="most steps of eval tasks")
    p.add_argument("--dense-reward", default="none", choices=["none", "delta", "delta_open", "paper"])
    p.add_argument("--value-init", default="policy", choices=["prm", "policy"])
    p.add_argument("--prm", default=None, help="PRM dir (dense rewards / value init)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="PPOConfig override (repeatable), e.g. --set policy_lr=3e-5")
    p.add_argument("--run-name", default=None, help="name of the PPO run dir in --work")
    p.add_argument("--seed", type=int, default=0, help="PPO seed")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (1: on a shared 2-core machine 2 threads stall each op)")
    p.add_argument("--device", default="cpu", help="cpu | cuda")
    return p.parse_args(argv)


def build_sft(work: Path, steps: int, threads: int, device: str) -> Path:
    """The early-stopped SFT policy (cached in ``work/sft-<steps>``)."""
    from agents.sft import DONE_NAME, SFTConfig, train_sft
    from codegym.tasks import SuiteConfig

    out = work / f"sft-{steps}"
    if not (out / DONE_NAME).is_file():
        train_sft(SFTConfig(out=str(out), suite=SuiteConfig(min_lines=1, max_lines=6, seed=0), steps=steps, eval_tasks=48,
                            buckets="1-3,4-6", threads=threads, device=device, progress=False))
    return out


def evaluate(policy_dir: Path, tasks: list[Any], device: str, samples: int = 0) -> tuple[Any, Any]:
    """Greedy evaluation, and sampled pass@1 with ``samples`` programs per task (None if 0)."""
    from codegym.evaluation import evaluate_policy
    from codegym.lm import load_causal_lm
    from sandboxes import make_sandbox

    model, tok = load_causal_lm(policy_dir, device=device)
    with make_sandbox("local", workers=2) as box:
        greedy = evaluate_policy(model, tok, tasks, box, batch_size=100)
        sampled = evaluate_policy(model, tok, tasks, box, samples=samples, seed=1234, batch_size=128) if samples else None
    return greedy, sampled


def train_ppo(trainer: Any, minutes: float, console: Any) -> float:
    """PPO iterations until the config's count or ``minutes`` of wall clock (a callback stops
    :meth:`learn`, which then checkpoints and saves the final models). Returns the seconds spent."""
    start = time.perf_counter()
    deadline = start + 60.0 * minutes

    def report(row: dict[str, Any]) -> bool:
        if row["iteration"] % 10 == 0:
            console.print(
                f"it {row['iteration']:4d}  pass {row['charts/pass_rate']:.3f}  "
                f"kl {row['charts/kl']:.3f}  ev {row['charts/explained_variance']:.2f}  "
                f"{time.perf_counter() - start:.0f} s", highlight=False,
            )
        return time.perf_counter() < deadline

    try:
        trainer.learn(callbacks=[report])
    finally:
        trainer.close()
    return time.perf_counter() - start


def _rows_mean(rows: list[dict[str, Any]], key: str, part: slice) -> float:
    vals = [r[key] for r in rows[part] if r.get(key) == r.get(key)]
    return float(np.mean(vals)) if vals else float("nan")


def summarize(evals: dict[str, Any], rows: list[dict[str, Any]], samples: int) -> dict[str, Any]:
    """Before/after figures with paired 95 % intervals, and the run's rollout statistics.

    Args:
        evals: ``before`` / ``after`` greedy results and ``s_before`` / ``s_after`` sampled
            results (None without sampling).
        rows: The run's metric rows.
        samples: Programs per task of the sampled evaluation (0: none).
    """
    from codegym.reporting.stats import paired_change

    before, after, s_before, s_after = evals["before"], evals["after"], evals["s_before"], evals["s_after"]
    diff = paired_change(before.passed.astype(float), after.passed.astype(float))
    sdiff = paired_change(s_before.passed, s_after.passed) if samples else None
    pdiff = paired_change(before.prefix_accuracy, after.prefix_accuracy)
    return {
        "pass@1_before": before.pass_at_1, "pass@1_after": after.pass_at_1,
        "pass@1_diff": diff.mean, "pass@1_diff_ci95": [diff.low, diff.high],
        "sampled_samples": samples,
        "sampled_pass@1_before": s_before.pass_at_1 if sdiff else None,
        "sampled_pass@1_after": s_after.pass_at_1 if sdiff else None,
        "sampled_pass@1_diff": sdiff.mean if sdiff else None,
        "sampled_pass@1_diff_ci95": [sdiff.low, sdiff.high] if sdiff else None,
        "prefix_acc_before": float(before.prefix_accuracy.mean()),
        "prefix_acc_after": float(after.prefix_accuracy.mean()),
        "prefix_acc_diff_ci95": [pdiff.low, pdiff.high],
        "rollout_pass_first10": _rows_mean(rows, "charts/pass_rate", slice(0, 10)),
        "rollout_pass_last10": _rows_mean(rows, "charts/pass_rate", slice(-10, None)),
        "kl_last10": _rows_mean(rows, "charts/kl", slice(-10, None)),
        "rollout_tokens_per_s": _rows_mean(rows, "charts/rollout_tokens_per_s", slice(None)),
        "score_tokens_per_s": _rows_mean(rows, "charts/score_tokens_per_s", slice(None)),
        "update_tokens_per_s": _rows_mean(rows, "charts/update_tokens_per_s", slice(None)),
        "time_rollout_s": _rows_mean(rows, "time/rollout", slice(None)),
        "time_score_s": _rows_mean(rows, "time/score", slice(None)),
        "time_update_s": _rows_mean(rows, "time/update", slice(None)),
    }  # fmt: skip


def result_table(result: dict[str, Any]) -> Any:
    """The bench's rich table."""
    from rich.table import Table

    r = result
    table = Table(title=f"PPO learning ({r['run']}, {r['iterations']} iterations, {r['ppo_seconds'] / 60:.1f} min)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("greedy pass@1 before", f"{r['pass@1_before']:.3f}")
    table.add_row("greedy pass@1 after", f"{r['pass@1_after']:.3f}")
    low, high = r["pass@1_diff_ci95"]
    table.add_row("paired diff [95% CI]", f"{r['pass@1_diff']:+.3f} [{low:+.3f}, {high:+.3f}]")
    if r["sampled_pass@1_diff"] is not None:
        table.add_row(f"sampled pass@1 (n={r['sampled_samples']}) before -> after",
                      f"{r['sampled_pass@1_before']:.3f} -> {r['sampled_pass@1_after']:.3f}")
        low, high = r["sampled_pass@1_diff_ci95"]
        table.add_row("sampled paired diff [95% CI]", f"{r['sampled_pass@1_diff']:+.3f} [{low:+.3f}, {high:+.3f}]")
    table.add_row("prefix accuracy before -> after", f"{r['prefix_acc_before']:.3f} -> {r['prefix_acc_after']:.3f}")
    table.add_row("rollout pass rate first/last 10 it",
                  f"{r['rollout_pass_first10']:.3f} / {r['rollout_pass_last10']:.3f}")
    table.add_row("KL per sequence (last 10 it)", f"{r['kl_last10']:.3f}")
    table.add_row("tokens/s rollout / score / update",
                  f"{r['rollout_tokens_per_s']:.0f} / {r['score_tokens_per_s']:.0f} / {r['update_tokens_per_s']:.0f}")
    table.add_row("s per iteration (rollout/score/update)",
                  f"{r['seconds_per_iteration']:.2f} ({r['time_rollout_s']:.2f}/"
                  f"{r['time_score_s']:.2f}/{r['time_update_s']:.2f})")
    table.add_row("total wall clock", f"{r['total_seconds'] / 60:.1f} min")
    return table


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """SFT policy, evaluation before, PPO, evaluation after, summary (see the module doc)."""
    from rich.console import Console

    from agents.ppo.config import PPOConfig
    from agents.ppo.trainer import PPOTrainer
    from codegym.plugins import parse_kv
    from codegym.tasks import load_suite

    args = parse_args(argv)
    console = Console()
    torch.set_num_threads(args.threads)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    policy_dir = Path(args.policy) if args.policy else build_sft(work, args.sft_steps, args.threads, args.device)
    console.print(f"SFT policy: {policy_dir} ({time.perf_counter() - t0:.0f} s)")
    suite = load_suite("pipelines", min_steps=args.eval_min_steps, max_steps=args.eval_max_steps, seed=0)
    tasks = suite.take(args.eval_tasks, "validation")
    before, s_before = evaluate(policy_dir, tasks, args.device, args.samples)
    console.print(f"before: greedy pass@1 {before.pass_at_1:.3f} on {len(tasks)} tasks ({before.seconds:.0f} s)")
    cfg = PPOConfig.from_dict({
        "seed": args.seed, "iterations": args.iterations, "device": args.device,
        "torch_threads": args.threads, "dense_reward": args.dense_reward,
        "value_init": args.value_init, **parse_kv(args.set),
    })  # fmt: skip
    name = args.run_name or f"ppo-{args.dense_reward}-{args.value_init}-s{args.seed}"
    trainer = PPOTrainer(cfg, policy_dir, work / name, prm_dir=args.prm, progress=False)
    t_ppo = train_ppo(trainer, args.minutes, console)
    after, s_after = evaluate(work / name / "policy", tasks, args.device, args.samples)
    rows = [json.loads(x) for x in (work / name / "metrics.jsonl").read_text().splitlines() if x.strip()]
    result = {
        "run": name, "policy": str(policy_dir), "eval_tasks": len(tasks),
        "iterations": trainer.iteration, "ppo_seconds": t_ppo,
        "seconds_per_iteration": t_ppo / max(1, len(rows)),
        **summarize({"before": before, "after": after, "s_before": s_before, "s_after": s_after}, rows, args.samples),
        "total_seconds": time.perf_counter() - t0,
        "config": cfg.to_dict(), "device": args.device, "threads": args.threads,
    }  # fmt: skip
    (work / f"result-{name}.json").write_text(json.dumps(result, indent=2))
    console.print(result_table(result))
    return result


if __name__ == "__main__":
    main()
