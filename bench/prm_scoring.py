"""Benchmark: env steps/s with a PRM attached, incremental (KV cache) vs full re-encoding.

Both scorers run side by side in one process, on the same 40-line programs, interleaved
round by round so that load on a shared machine hits both alike. Reported:

* env steps/s of ``CodePRM-v0`` with each scorer attached (a reference agent replays the
  40-line solution; the final unit-test execution is included in both);
* scorer-only lines/s (the PRM part of a step alone);
* the maximum |score difference| between the two (they must agree, < 1e-4).

Usage::

    python bench/prm_scoring.py                      # a tiny 2x128 PRM built on the fly
    python bench/prm_scoring.py --prm runs/prm --episodes 10 --lines 40
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch


def make_task(n_lines: int, seed: int = 0) -> Any:
    """A task whose reference solution has ``n_lines`` lines (list pipeline, io tests)."""
    from codegym.tasks.base import Task
    from sandboxes import IOCase, TestSuite

    rng = np.random.default_rng(seed)
    steps, lines = [], []
    for _ in range(n_lines - 1):
        k = int(rng.integers(1, 10))
        op = int(rng.integers(0, 3))
        if op == 0:
            steps.append(f"add {k} to every element")
            lines.append(f"    xs = [x + {k} for x in xs]")
        elif op == 1:
            steps.append(f"subtract {k} from every element")
            lines.append(f"    xs = [x - {k} for x in xs]")
        else:
            steps.append("reverse the list")
            lines.append("    xs = xs[::-1]")
    steps.append("return the sum")
    lines.append("    return sum(xs)")
    doc = "\n".join(f"    {i + 1}. {s}" for i, s in enumerate(steps))
    prompt = f'def solve(xs):\n    """Apply these steps, in order, to the list of integers xs.\n\n{doc}\n    """\n'
    ns: dict[str, Any] = {}
    exec(prompt + "\n".join(lines) + "\n", ns)  # trusted reference, written above
    cases = tuple(IOCase((xs,), ns["solve"](list(xs))) for xs in ([1, 2, 3], [], [5, -2], [7, 7, 0, 1]))
    return Task(f"bench/{n_lines}", prompt, prompt, "solve", TestSuite("io", "solve", cases), "\n".join(lines), {"steps": n_lines})


def build_prm(tmp: Path, task: Any, n_layer: int, n_embd: int) -> Path:
    """A randomly initialised PRM (tokenizer trained on the task text)."""
    from codegym.lm import TinyLMConfig, build_tiny_lm_dir
    from codegym.prm import ProcessRewardModel

    text = task.prompt + task.solution + "\n"
    base = build_tiny_lm_dir(tmp / "base", [text] * 20, vocab_size=400,
                             config=TinyLMConfig(n_layer=n_layer, n_embd=n_embd, n_head=4, n_positions=1024))  # fmt: skip
    return ProcessRewardModel.from_base(base).save_pretrained(tmp / "prm")


def run_env(env: Any, task: Any) -> tuple[int, float, list[float]]:
    """One episode replaying the reference; returns (steps, seconds, prm scores)."""
    import codegym

    t0 = time.perf_counter()
    env.reset(options={"task": task})
    scores, steps = [], 0
    for line in task.solution_lines + [codegym.SUBMIT]:
        _, _, term, trunc, info = env.step(line)
        steps += 1
        if info.get("prm_score") is not None and line != codegym.SUBMIT:
            scores.append(float(info["prm_score"]))
        if term or trunc:
            break
    return steps, time.perf_counter() - t0, scores


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prm", default=None, help="PRM checkpoint dir (default: a random tiny one)")
    p.add_argument("--lines", type=int, default=40, help="lines per program")
    p.add_argument("--episodes", type=int, default=6, help="episodes per scorer (interleaved)")
    p.add_argument("--n-layer", type=int, default=2)
    p.add_argument("--n-embd", type=int, default=128)
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", default=None, help="write the figures to this JSON file")
    return p.parse_args(argv)


class Timings(NamedTuple):
    """Totals per scorer name over the timed episodes."""

    steps: dict[str, int]  #: env steps taken
    secs: dict[str, float]  #: seconds spent in env episodes
    score_secs: dict[str, float]  #: seconds spent scoring the same lines with the scorer alone
    last_scores: dict[str, list[float]]  #: PRM scores of the last episode


def time_scorer(scorer: Any, task: Any) -> float:
    """Seconds for the scorer alone to score the reference solution's lines."""
    t0 = time.perf_counter()
    scorer.reset(task)
    for line in task.solution_lines:
        scorer.score(line)
    return time.perf_counter() - t0


def time_interleaved(envs: dict[str, Any], scorers: dict[str, Any], task: Any, episodes: int) -> Timings:
    """One warm-up episode per env, then ``episodes`` rounds, each running every env (and its
    scorer alone) once, so that load on the machine hits all of them alike."""
    t = Timings({k: 0 for k in envs}, {k: 0.0 for k in envs}, {k: 0.0 for k in envs}, {})
    for env in envs.values():  # warm-up (sandbox worker, first forward)
        run_env(env, task)
    for _ in range(episodes):
        for name, env in envs.items():
            n, dt, sc = run_env(env, task)
            t.steps[name] += n
            t.secs[name] += dt
            t.last_scores[name] = sc
            t.score_secs[name] += time_scorer(scorers[name], task)  # scorer alone, same lines
    return t


def run_scorers(args: argparse.Namespace, task: Any) -> Timings:
    """Load (or build) the PRM, attach each scorer to a ``CodePRM-v0`` env, and time them."""
    import gymnasium as gym

    import codegym  # noqa: F401  (registers CodePRM-v0)
    from codegym.prm import FullRescoringScorer, IncrementalScorer, ProcessRewardModel

    with tempfile.TemporaryDirectory() as tmp:
        prm_dir = Path(args.prm) if args.prm else build_prm(Path(tmp), task, args.n_layer, args.n_embd)
        prm = ProcessRewardModel.from_pretrained(prm_dir, device=args.device)
        scorers = {"incremental": IncrementalScorer(prm), "full": FullRescoringScorer(prm)}
        envs = {
            name: gym.make("CodePRM-v0", tasks=[task], prm=s, reward_mode="delta", max_lines=args.lines + 8,
                           disable_env_checker=True)
            for name, s in scorers.items()
        }  # fmt: skip
        try:
            return time_interleaved(envs, scorers, task, args.episodes)
        finally:
            for env in envs.values():
                env.close()


def summarise(args: argparse.Namespace, t: Timings) -> dict[str, Any]:
    """The reported figures: rates per scorer, speed-ups and the largest score difference."""
    diff = float(np.abs(np.asarray(t.last_scores["incremental"]) - np.asarray(t.last_scores["full"])).max())
    lines_scored = args.episodes * args.lines
    res = {
        "lines_per_program": args.lines,
        "episodes": args.episodes,
        "prm": str(args.prm or f"random {args.n_layer}x{args.n_embd}"),
        "env_steps_per_s": {k: t.steps[k] / t.secs[k] for k in t.steps},
        "scorer_lines_per_s": {k: lines_scored / t.score_secs[k] for k in t.steps},
        "max_abs_score_diff": diff,
    }
    res["env_speedup"] = res["env_steps_per_s"]["incremental"] / res["env_steps_per_s"]["full"]
    res["scorer_speedup"] = res["scorer_lines_per_s"]["incremental"] / res["scorer_lines_per_s"]["full"]
    return res


def print_report(args: argparse.Namespace, res: dict[str, Any]) -> None:
    """The figures as a small table."""
    print(f"{args.lines}-line programs, {args.episodes} episodes per scorer, PRM {res['prm']}, {args.threads} thread(s)")
    print(f"{'':14s}{'env steps/s':>14s}{'scorer lines/s':>17s}")
    for k in res["env_steps_per_s"]:
        print(f"{k:14s}{res['env_steps_per_s'][k]:14.1f}{res['scorer_lines_per_s'][k]:17.1f}")
    print(f"speed-up (incremental / full): env {res['env_speedup']:.1f}x, scorer {res['scorer_speedup']:.1f}x; "
          f"max |score diff| {res['max_abs_score_diff']:.2e}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    task = make_task(args.lines)
    res = summarise(args, run_scorers(args, task))
    print_report(args, res)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
