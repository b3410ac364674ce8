"""Benchmark: PRM scoring of N programs, batched (the vector env) vs N incremental scorers vs
full re-encoding.

Three ways to give N programs written line by line their PRM scores, side by side in one
process, on the same N reference programs of ``--lines`` lines, interleaved round by round so
that load on a shared machine hits all of them alike:

* ``batched``: :class:`codegym.prm.BatchedPRMScorer`, what ``CodePRMVectorEnv`` uses: every
  program's new line in one forward per step over one KV cache shared by the N programs;
* ``incremental``: N :class:`codegym.prm.IncrementalScorer` (one KV cache each; what N
  single ``CodePRM-v0`` envs use), called one after the other;
* ``full``: N :class:`codegym.prm.FullRescoringScorer` (the whole prefix re-encoded at
  every line; the baseline without a cache).

Reported, per way: scorer-only **tokens/s** (program tokens, context and lines, scored per
second: the PRM part of a step alone) and env steps/s (``CodePRMVectorEnv`` with the batched
scorer against N ``CodePRMEnv`` with each single scorer, stepped in a loop; the unit-test
executions at the end are included, in parallel for the vector env); the ratios of the
batched way to the others; and the largest |score difference| between ways (they must agree,
< 1e-5).

Usage::

    python bench/prm_scoring.py                       # 8 programs of 40 lines, a random 2x128 PRM
    python bench/prm_scoring.py --envs 16 --prm runs/prm --rounds 3
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

import codegym
from codegym.envs import CodePRMEnv, CodePRMVectorEnv
from codegym.lm import TinyLMConfig, build_tiny_lm_dir
from codegym.prm import BatchedPRMScorer, FullRescoringScorer, IncrementalScorer, ProcessRewardModel
from codegym.tasks.base import Task
from codegym.tokenization import encode_program, task_context
from sandboxes import IOCase, TestSuite, make_sandbox

WAYS = ("batched", "incremental", "full")


def make_task(n_lines: int, seed: int = 0) -> Any:
    """A task whose reference solution has ``n_lines`` lines (list pipeline, io tests)."""
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
    return Task(f"bench/{n_lines}/{seed}", prompt, prompt, "solve", TestSuite("io", "solve", cases), "\n".join(lines), {"steps": n_lines})


def build_prm(tmp: Path, tasks: list[Any], n_layer: int, n_embd: int) -> Path:
    """A randomly initialised PRM (tokenizer trained on the tasks' text)."""
    texts = [t.prompt + t.solution + "\n" for t in tasks]
    base = build_tiny_lm_dir(tmp / "base", texts * 5, vocab_size=400,
                             config=TinyLMConfig(n_layer=n_layer, n_embd=n_embd, n_head=4, n_positions=1024))  # fmt: skip
    return ProcessRewardModel.from_base(base).save_pretrained(tmp / "prm")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prm", default=None, help="PRM checkpoint dir (default: a random tiny one)")
    p.add_argument("--envs", type=int, default=8, help="programs scored side by side (N)")
    p.add_argument("--lines", type=int, default=40, help="lines per program")
    p.add_argument("--rounds", type=int, default=3, help="measured rounds per way (after one warm-up)")
    p.add_argument("--n-layer", type=int, default=2)
    p.add_argument("--n-embd", type=int, default=128)
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", default=None, help="write the figures to this JSON file")
    return p.parse_args(argv)


class Scored(NamedTuple):
    """One scorer-only pass over the N programs."""

    seconds: float
    scores: np.ndarray  # (N, L) line scores


def score_batched(scorer: Any, tasks: list[Any]) -> Scored:
    """The N programs through one :class:`BatchedPRMScorer`, one forward per line index."""
    t0 = time.perf_counter()
    scorer.reset(dict(enumerate(tasks)))
    rows = [scorer.score_lines([t.solution_lines[m] for t in tasks]) for m in range(tasks[0].horizon)]
    return Scored(time.perf_counter() - t0, np.asarray(rows, dtype=np.float64).T)


def score_each(scorers: list[Any], tasks: list[Any]) -> Scored:
    """The N programs through N single scorers, line index by line index (as N envs step)."""
    t0 = time.perf_counter()
    for s, t in zip(scorers, tasks):
        s.reset(t)
    rows = [[s.score(t.solution_lines[m]) for s, t in zip(scorers, tasks)] for m in range(tasks[0].horizon)]
    return Scored(time.perf_counter() - t0, np.asarray(rows, dtype=np.float64).T)


def run_vector(env: Any, tasks: list[Any]) -> tuple[int, float]:
    """One episode per slot replaying the references + SUBMIT; (env steps, seconds)."""
    t0 = time.perf_counter()
    env.reset(options={"tasks": tasks})
    for m in range(tasks[0].horizon):
        env.step([t.solution_lines[m] for t in tasks])
    _, _, term, _, _ = env.step([codegym.SUBMIT] * len(tasks))
    assert term.all()
    return len(tasks) * (tasks[0].horizon + 1), time.perf_counter() - t0


def run_singles(envs: list[Any], tasks: list[Any]) -> tuple[int, float]:
    """The same on N single envs stepped in a loop; (env steps, seconds)."""
    t0 = time.perf_counter()
    for env, t in zip(envs, tasks):
        env.reset(options={"task": t})
    for m in range(tasks[0].horizon + 1):
        for env, t in zip(envs, tasks):
            env.step(t.solution_lines[m] if m < t.horizon else codegym.SUBMIT)
    return len(tasks) * (tasks[0].horizon + 1), time.perf_counter() - t0


class Totals(NamedTuple):
    """Sums per way over the measured rounds."""

    score_secs: dict[str, float]
    env_secs: dict[str, float]
    env_steps: dict[str, int]
    scores: dict[str, np.ndarray]  # (N, L), last round
    tokens: int  # program tokens (context + lines) of the N programs: one round's work


def time_ways(scorers: dict[str, Callable[[], Scored]], envs: dict[str, Callable[[], tuple[int, float]]],
              rounds: int) -> Totals:
    """One warm-up round, then ``rounds`` rounds, each running every way once (scorer alone,
    then the envs), so that load on the machine hits all of them alike."""
    t = Totals({k: 0.0 for k in WAYS}, {k: 0.0 for k in WAYS}, {k: 0 for k in WAYS}, {}, 0)
    for r in range(rounds + 1):
        for way in WAYS:
            scored = scorers[way]()
            steps, secs = envs[way]()
            if r:  # round 0 warms up (sandbox workers, first forwards)
                t.score_secs[way] += scored.seconds
                t.env_secs[way] += secs
                t.env_steps[way] += steps
                t.scores[way] = scored.scores
    return t


def run(args: argparse.Namespace, tasks: list[Any]) -> Totals:
    """Load (or build) the PRM, make the scorers and envs of each way, and time them."""
    n = len(tasks)
    with tempfile.TemporaryDirectory() as tmp, make_sandbox("local", workers=min(n, 4)) as box:
        prm_dir = Path(args.prm) if args.prm else build_prm(Path(tmp), tasks, args.n_layer, args.n_embd)
        prm = ProcessRewardModel.from_pretrained(prm_dir, device=args.device)
        singles = {"incremental": IncrementalScorer, "full": FullRescoringScorer}
        kw = {"tasks": tasks, "reward_mode": "delta", "max_lines": args.lines + 8, "sandbox": box}
        vector = CodePRMVectorEnv(n, prm=BatchedPRMScorer(prm, n), workers=min(n, 4), **kw)
        single_envs = {k: [CodePRMEnv(prm=cls(prm), **kw) for _ in range(n)] for k, cls in singles.items()}
        batched = BatchedPRMScorer(prm, n)
        scorer_sets = {k: [cls(prm) for _ in range(n)] for k, cls in singles.items()}
        scorers = {"batched": lambda: score_batched(batched, tasks)}
        scorers.update({k: (lambda k=k: score_each(scorer_sets[k], tasks)) for k in singles})
        envs = {"batched": lambda: run_vector(vector, tasks)}
        envs.update({k: (lambda k=k: run_singles(single_envs[k], tasks)) for k in singles})
        try:
            totals = time_ways(scorers, envs, args.rounds)
            return totals._replace(tokens=program_tokens(prm.tokenizer, tasks))
        finally:
            vector.close()
            for group in single_envs.values():
                for env in group:
                    env.close()


def summarise(args: argparse.Namespace, tasks: list[Any], t: Totals) -> dict[str, Any]:
    """The reported figures: tokens/s and env steps/s per way, ratios, largest score difference."""
    tokens = t.tokens
    res: dict[str, Any] = {
        "envs": len(tasks), "lines_per_program": args.lines, "rounds": args.rounds,
        "prm": str(args.prm or f"random {args.n_layer}x{args.n_embd}"), "threads": args.threads,
        "tokens_per_round": tokens,
        "scorer_tokens_per_s": {k: args.rounds * tokens / t.score_secs[k] for k in WAYS},
        "env_steps_per_s": {k: t.env_steps[k] / t.env_secs[k] for k in WAYS},
        "max_abs_score_diff": {k: float(np.abs(t.scores["batched"] - t.scores[k]).max()) for k in WAYS[1:]},
    }  # fmt: skip
    for k in WAYS[1:]:
        res[f"scorer_ratio_batched_vs_{k}"] = res["scorer_tokens_per_s"]["batched"] / res["scorer_tokens_per_s"][k]
        res[f"env_ratio_batched_vs_{k}"] = res["env_steps_per_s"]["batched"] / res["env_steps_per_s"][k]
    return res


def program_tokens(tokenizer: Any, tasks: list[Any]) -> int:
    """Tokens of the tasks' reference programs by the tokenisation rule (context + lines)."""
    return sum(len(encode_program(tokenizer, task_context(x), x.solution_lines).input_ids) for x in tasks)


def print_report(res: dict[str, Any]) -> None:
    """The figures as a small table."""
    print(f"{res['envs']} programs x {res['lines_per_program']} lines ({res['tokens_per_round']} tokens), "
          f"{res['rounds']} rounds, PRM {res['prm']}, {res['threads']} torch thread(s)")
    print(f"{'':13s}{'scorer tokens/s':>17s}{'env steps/s':>14s}")
    for k in WAYS:
        print(f"{k:13s}{res['scorer_tokens_per_s'][k]:17.0f}{res['env_steps_per_s'][k]:14.1f}")
    for k in WAYS[1:]:
        print(f"batched / {k}: scorer {res[f'scorer_ratio_batched_vs_{k}']:.1f}x, env "
              f"{res[f'env_ratio_batched_vs_{k}']:.1f}x; max |score diff| {res['max_abs_score_diff'][k]:.1e}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    tasks = [make_task(args.lines, seed=i) for i in range(args.envs)]
    res = summarise(args, tasks, run(args, tasks))
    print_report(res)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
