"""Evaluation: horizon buckets, prefix accuracy, pass@k tables, and the one way to evaluate a policy.

One horizon-bucket scheme, one prefix-accuracy definition and one evaluation path serve every
report (SFT's evaluation, ``codegym eval``'s tables, PPO's evaluations, the benches and
``codegym reproduce``): :func:`evaluate_policy` samples programs from a causal LM with
:class:`codegym.rollout.SamplerAgent` through :func:`codegym.rollout.run_episodes` on the
vector env, and ``codegym eval`` runs any agent through the same function.

* **Horizon buckets** are inclusive ranges of a task's steps (``metadata["steps"]``, else its
  horizon), written ``"1-3,4-6"``; ``"13+"`` is open-ended. :data:`DEFAULT_BUCKETS` is the
  ``pipelines`` table's scheme.
* **Prefix accuracy** of one program is the number of its leading lines that equal the
  reference solution's lines, line for line until the first mismatch (trailing whitespace
  ignored, indentation counts), divided by the number of reference lines; a task without
  reference lines scores 1.0 if the program passed, else 0.0. A set of programs reports the
  mean over programs.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

from codegym.rollout import EpisodeRecord, SamplerAgent, run_episodes
from codegym.sampling import LineSampler
from codegym.tasks.base import Task
from sandboxes import Sandbox

#: The horizon buckets of the ``pipelines`` tables (``codegym eval --by-horizon``).
DEFAULT_BUCKETS = "1-3,4-6,7-9,10-12,13+"
#: Upper end of an open bucket (``"13+"``).
OPEN_END = 10**9


def parse_buckets(spec: str) -> list[tuple[int, int]]:
    """``"1-3,4-6,13+"`` -> ``[(1, 3), (4, 6), (13, OPEN_END)]``.

    Raises:
        ValueError: A range is malformed or empty (the message names it).
    """
    out = []
    for part in str(spec).split(","):
        text = part.strip()
        try:
            if text.endswith("+"):
                a, b = int(text[:-1]), OPEN_END
            else:
                lo, sep, hi = text.partition("-")
                a, b = int(lo), int(hi if sep else lo)
        except ValueError:
            raise ValueError(f"bad horizon bucket {part!r} in {spec!r}: use e.g. '1-3,4-6,13+'") from None
        if a < 1 or b < a:
            raise ValueError(f"bad horizon bucket {part!r}: need 1 <= lo <= hi")
        out.append((a, b))
    if not out:
        raise ValueError("buckets must name at least one range")
    return out


def bucket_name(lo: int, hi: int) -> str:
    """``"lo-hi"``, or ``"lo+"`` for an open bucket."""
    return f"{lo}+" if hi >= OPEN_END else f"{lo}-{hi}"


def bucket_of(horizon: int, buckets: Sequence[tuple[int, int]]) -> str | None:
    """Name of the bucket holding ``horizon``, or None."""
    for lo, hi in buckets:
        if lo <= horizon <= hi:
            return bucket_name(lo, hi)
    return None


def task_horizon(task: Task) -> int:
    """Steps of a task (``metadata["steps"]``, else its horizon): what buckets group by."""
    return int(task.metadata.get("steps", task.horizon))


def tasks_by_bucket(suite: Any, split: str, n: int, buckets: Sequence[tuple[int, int]]) -> list[Task]:
    """The first tasks of ``split`` whose horizon falls in a bucket, about ``n`` in all and
    balanced across buckets (each bucket gets ``ceil(n / len(buckets))`` at most)."""
    per = -(-n // len(buckets))
    counts = {bucket_name(lo, hi): 0 for lo, hi in buckets}
    out: list[Task] = []
    size = suite.size(split)
    limit = size if size is not None else 50 * n
    i = 0
    while i < limit and sum(counts.values()) < per * len(buckets):
        task = suite.get(split, i)
        i += 1
        name = bucket_of(task_horizon(task), buckets)
        if name is not None and counts[name] < per:
            counts[name] += 1
            out.append(task)
    return out


def prefix_accuracy(lines: Sequence[str], reference: Sequence[str], passed: bool = False) -> float:
    """Prefix accuracy of one program (the definition is in the module docstring)."""
    if not reference:
        return float(passed)
    good = 0
    for got, want in zip(lines, reference):
        if got.rstrip() != want.rstrip():
            break
        good += 1
    return good / len(reference)


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else float("nan")


def bucket_summary(
    tasks: Sequence[Task], passed: Sequence[float], prefix: Sequence[float], buckets: Sequence[tuple[int, int]]
) -> dict[str, Any]:
    """pass@1 and prefix accuracy overall, and pass@1 by horizon bucket, of per-task outcomes.

    Args:
        tasks: The evaluated tasks.
        passed: Per task: 0/1 (greedy) or the fraction of samples that passed.
        prefix: Per task: prefix accuracy (a mean over samples when sampled).
        buckets: Horizon buckets (:func:`parse_buckets`); tasks outside every bucket count
            only in the overall figures.

    Returns:
        ``{"pass@1", "n", "prefix_accuracy", "buckets": {name: {"pass@1", "n"}}}``.
    """
    per: dict[str, list[float]] = {bucket_name(lo, hi): [] for lo, hi in buckets}
    for task, ok in zip(tasks, passed):
        name = bucket_of(task_horizon(task), buckets)
        if name is not None:
            per[name].append(float(ok))
    mean_prefix = _mean([float(p) for p in prefix])
    return {
        "pass@1": _mean([float(ok) for ok in passed]),
        "n": len(passed),
        "prefix_accuracy": mean_prefix,
        "buckets": {name: {"pass@1": _mean(v), "n": len(v)} for name, v in per.items()},
    }


class EvalResult(NamedTuple):
    """Per-task outcomes of one evaluation (aligned with the task list).

    One sample per task: ``passed`` is bool and ``num_lines`` int per task. Several samples:
    both are per-task means over the samples (float).
    """

    task_ids: list[str]
    passed: np.ndarray  # (N,) bool, or float in [0, 1]: the fraction of a task's samples that passed
    prefix_accuracy: np.ndarray  # (N,) float
    num_lines: np.ndarray  # (N,) int, or float (mean over samples)
    tokens: int
    seconds: float

    @property
    def pass_at_1(self) -> float:
        """pass@1: greedy, or the mean of the per-task sampled pass fractions."""
        return float(self.passed.mean()) if len(self.passed) else float("nan")

    def summary(self, tasks: Sequence[Task], buckets: str | Sequence[tuple[int, int]] = DEFAULT_BUCKETS) -> dict[str, Any]:
        """pass@1 and prefix accuracy overall and by horizon bucket (``tasks``: the evaluated
        ones, in order): :func:`bucket_summary`."""
        spans = parse_buckets(buckets) if isinstance(buckets, str) else list(buckets)
        return bucket_summary(tasks, self.passed.astype(float), self.prefix_accuracy, spans)


@torch.no_grad()
def evaluate_policy(
    model: Any,
    tokenizer: Any,
    tasks: Sequence[Task],
    sandbox: Sandbox,
    *,
    samples: int = 1,
    greedy: bool | None = None,
    temperature: float = 1.0,
    seed: int = 0,
    max_line_tokens: int = 48,
    max_new_tokens: int | None = 96,
    max_lines: int | None = 16,
    batch_size: int = 100,
    workers: int = 2,
    chat_template: bool = True,
) -> EvalResult:
    """pass@1 and prefix accuracy of a causal-LM policy on ``tasks``, unit tests in ``sandbox``.

    Programs are sampled line by line (:class:`codegym.rollout.SamplerAgent`, tokenisation rule
    kept) through :func:`codegym.rollout.run_episodes` on a vector env without dense rewards.

    Args:
        model: Causal LM (put in eval mode here).
        tokenizer: Its tokenizer.
        tasks: Fixed evaluation tasks.
        sandbox: Shared sandbox (not closed here).
        samples: Programs per task (n >= 1); with n > 1 ``passed`` is each task's fraction c/n
            (Codex's unbiased pass@1 estimate).
        greedy: Argmax decoding (default: when ``samples == 1``).
        temperature: Sampling temperature (> 0) when not greedy.
        seed: Seed of the sampling generator (same seed, same draws).
        max_line_tokens: A line is cut after this many tokens.
        max_new_tokens: Token budget per program (submitted when spent); ``None``: no budget.
        max_lines: Line limit per program (the env truncates and still runs the program);
            ``None``: the longest task's horizon + 4.
        batch_size: Programs decoded together (the vector env's slots).
        workers: Parallel program executions.
        chat_template: Read each task through the tokenizer's chat template when it has one
            (an instruct model; False: the plain prompt).
    """
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    greedy = samples == 1 if greedy is None else greedy
    max_lines = max(t.horizon for t in tasks) + 4 if max_lines is None else max_lines
    model.eval()
    gen = torch.Generator(device=next(model.parameters()).device).manual_seed(int(seed))
    sampler = LineSampler(model, tokenizer, greedy=greedy, temperature=temperature,
                          max_line_tokens=max_line_tokens, generator=gen)  # fmt: skip
    agent = SamplerAgent(sampler, max_new_tokens=max_new_tokens, chat_template=chat_template)
    tokens: list[int] = []
    start = time.perf_counter()
    records = run_episodes(
        agent, tasks, samples=samples, num_envs=batch_size, workers=workers, sandbox=sandbox,
        env_kwargs={"prm": None, "reward_mode": "none", "max_lines": max_lines},
        on_wave=lambda wave: tokens.extend(agent.gen_tokens[: len(wave)]),
    )  # fmt: skip
    return _result(records, tasks, samples, sum(tokens), time.perf_counter() - start)


def _result(records: Sequence[EpisodeRecord], tasks: Sequence[Task], samples: int, tokens: int, seconds: float) -> EvalResult:
    """Per-task outcomes of ``records`` (task by task, samples in order)."""
    shape = (len(tasks), samples)
    passed = np.array([r.passed for r in records], dtype=float).reshape(shape)  # (N, n)
    prefix = np.array([prefix_accuracy(r.lines, r.task.solution_lines, r.passed) for r in records]).reshape(shape)
    lines = np.array([len(r.lines) for r in records], dtype=float).reshape(shape)  # (N, n)
    return EvalResult(
        task_ids=[t.task_id for t in tasks],
        passed=passed[:, 0].astype(bool) if samples == 1 else passed.mean(axis=1),
        prefix_accuracy=prefix.mean(axis=1),
        num_lines=lines[:, 0].astype(int) if samples == 1 else lines.mean(axis=1),
        tokens=int(tokens),
        seconds=seconds,
    )


def greedy_summary(model: Any, tokenizer: Any, tasks: Sequence[Task], sandbox: Sandbox,
                   buckets: Sequence[tuple[int, int]], batch_size: int = 32, *,
                   chat_template: bool = True) -> dict[str, Any]:  # fmt: skip
    """Greedy pass@1 and prefix accuracy by horizon bucket (:func:`bucket_summary`) with the
    settings of SFT's evaluation: lines of up to 64 tokens, no token budget, at most the
    longest horizon + 4 lines; an instruct model reads the tasks through its chat template
    unless ``chat_template`` is False."""
    result = evaluate_policy(model, tokenizer, tasks, sandbox, max_line_tokens=64, max_new_tokens=None,
                             max_lines=None, batch_size=batch_size, chat_template=chat_template)  # fmt: skip
    return result.summary(tasks, buckets)


# --------------------------------------------------------------------- eval tables and rows
#: Horizon buckets (inclusive step ranges) of the ``pipelines`` tables (``13+`` is open-ended).
HORIZON_BUCKETS: tuple[tuple[int, int], ...] = tuple(parse_buckets(DEFAULT_BUCKETS))


def horizon_bucket(steps: int) -> str:
    """Bucket label for a task with ``steps`` steps, e.g. ``"4-6"`` (``"0"`` outside every bucket)."""
    return bucket_of(steps, HORIZON_BUCKETS) or "0"


#: The k of the pass@k columns reported when there are at least k samples per task.
PASS_AT_K: tuple[int, ...] = (1, 5, 10)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k estimator (Chen et al., 2021) for ``c`` passes out of ``n`` samples."""
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def episode_row(record: EpisodeRecord) -> dict[str, Any]:
    """An episode as a JSONL row of ``codegym eval``: ``task_id``, ``sample``, ``suite``,
    ``steps``, ``lines``, ``rewards``, ``prm_scores``, ``return``, ``passed``, ``status``,
    ``tests_passed``, ``tests_total``, ``error_type``, ``duration``, ``num_lines``,
    ``truncated`` and ``prefix_accuracy``."""
    result = record.final_info.get("exec", {})
    return {
        "task_id": record.task.task_id,
        "sample": record.sample,
        "suite": record.task.metadata.get("suite", ""),
        "steps": task_horizon(record.task),
        "lines": list(record.lines),
        "rewards": list(record.rewards),
        "prm_scores": list(record.prm_scores),
        "return": float(sum(record.rewards)),
        "passed": record.passed,
        "status": result.get("status", ""),
        "tests_passed": result.get("passed", 0),
        "tests_total": result.get("total", 0),
        "error_type": result.get("error_type", ""),
        "duration": result.get("duration", 0.0),
        "num_lines": len(record.lines),
        "truncated": record.truncated,
        "prefix_accuracy": prefix_accuracy(record.lines, record.task.solution_lines, record.passed),
    }


def summarize(rows: Sequence[dict[str, Any]], by_horizon: bool = False) -> list[dict[str, Any]]:
    """Aggregate rows into table rows: overall, and per horizon bucket when asked.

    Each table row has ``group``, ``episodes``, ``tasks``, ``passed``, ``pass@1``,
    ``pass@5`` and ``pass@10`` (when every task has at least that many samples), ``pass@k``
    with ``k`` (k = samples per task, when > 1), ``mean_return``, ``mean_lines`` and
    ``mean_prefix_accuracy`` (when every row has ``prefix_accuracy``).
    """
    groups: dict[str, list[dict[str, Any]]] = {"all": list(rows)}
    if by_horizon:
        for row in rows:
            groups.setdefault(horizon_bucket(row["steps"]), []).append(row)
    table = []
    for name in sorted(groups, key=lambda g: (g != "all", _bucket_key(g))):
        group = groups[name]
        if not group:
            continue
        per_task: dict[str, list[bool]] = defaultdict(list)
        for row in group:
            per_task[row["task_id"]].append(row["passed"])
        k = min(len(v) for v in per_task.values())
        entry = {
            "group": name,
            "episodes": len(group),
            "tasks": len(per_task),
            "passed": sum(r["passed"] for r in group),
            "pass@1": sum(pass_at_k(len(v), sum(v), 1) for v in per_task.values()) / len(per_task),
            "mean_return": sum(r["return"] for r in group) / len(group),
            "mean_lines": sum(r["num_lines"] for r in group) / len(group),
        }
        if all("prefix_accuracy" in r for r in group):  # rows of earlier versions lack it
            entry["mean_prefix_accuracy"] = sum(r["prefix_accuracy"] for r in group) / len(group)
        for kk in PASS_AT_K[1:]:
            if kk <= k:
                entry[f"pass@{kk}"] = sum(pass_at_k(len(v), sum(v), kk) for v in per_task.values()) / len(per_task)
        if k > 1:
            entry["k"] = k
            entry["pass@k"] = sum(pass_at_k(len(v), sum(v), k) for v in per_task.values()) / len(per_task)
        table.append(entry)
    return table


def _bucket_key(name: str) -> int:
    head = name.split("-")[0].rstrip("+")
    return int(head) if head.isdigit() else -1
