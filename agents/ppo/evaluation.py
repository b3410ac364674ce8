"""Greedy evaluation of a policy on fixed tasks, and paired comparison of two evaluations."""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
import torch

from agents.ppo.rollout import collect_episodes
from codegym.evaluation import DEFAULT_BUCKETS, bucket_summary, parse_buckets
from codegym.sampling import LineSampler
from codegym.tasks.base import Task
from sandboxes import Sandbox


class EvalResult(NamedTuple):
    """Per-task outcomes of one evaluation (aligned with the task list).

    Greedy: ``passed`` is bool and ``num_lines`` int per task. Sampled (n programs per task):
    both are per-task means over the n samples (float).
    """

    task_ids: list[str]
    passed: np.ndarray  # [N] bool (greedy) or float in [0, 1] (sampled: fraction of n)
    prefix_accuracy: np.ndarray  # [N] float
    num_lines: np.ndarray  # [N] int (greedy) or float (sampled mean)
    tokens: int
    seconds: float

    @property
    def pass_at_1(self) -> float:
        """pass@1: greedy, or the mean of the per-task sampled pass fractions."""
        return float(self.passed.mean()) if len(self.passed) else float("nan")

    def summary(self, tasks: Sequence[Task], buckets: str = DEFAULT_BUCKETS) -> dict[str, Any]:
        """pass@1 and prefix accuracy overall and by horizon bucket (``tasks``: the evaluated
        ones, in order), in the shape of SFT's evaluation (:func:`codegym.evaluation.bucket_summary`)."""
        return bucket_summary(tasks, self.passed.astype(float), self.prefix_accuracy, parse_buckets(buckets))


class PairedDiff(NamedTuple):
    """Mean paired difference (after − before) and its 95 % normal interval."""

    mean: float
    low: float
    high: float
    n: int


def paired_difference(before: np.ndarray, after: np.ndarray, z: float = 1.96) -> PairedDiff:
    """Paired mean difference of per-task outcomes with a normal 95 % interval.

    Args:
        before: [N] outcomes (0/1 or floats) on fixed tasks.
        after: [N] outcomes on the same tasks, same order.
        z: Normal quantile (1.96 for 95 %).
    """
    before = np.asarray(before, dtype=float)
    after = np.asarray(after, dtype=float)
    if before.shape != after.shape or before.ndim != 1 or len(before) < 2:
        raise ValueError(
            f"before/after must be 1-D arrays of the same length >= 2, got {before.shape}, {after.shape}"
        )
    d = after - before
    mean = float(d.mean())
    half = z * float(d.std(ddof=1)) / math.sqrt(len(d))
    return PairedDiff(mean, mean - half, mean + half, len(d))


@torch.no_grad()
def evaluate_greedy(policy: Any, tokenizer: Any, tasks: Sequence[Task], sandbox: Sandbox, **limits: Any) -> EvalResult:
    """Greedy pass@1 and line-prefix accuracy of ``policy`` on ``tasks`` (no PRM).

    ``limits`` are :func:`evaluate_sampled`'s keyword arguments from ``batch_size`` on
    (``batch_size``, ``max_new_tokens``, ``max_lines``, ``max_line_tokens``, ``workers``).
    """
    sampler = LineSampler(policy, tokenizer, greedy=True, max_line_tokens=limits.pop("max_line_tokens", 48))
    return _evaluate(sampler, tasks, sandbox, 1, **limits)


@torch.no_grad()
def evaluate_sampled(
    policy: Any,
    tokenizer: Any,
    tasks: Sequence[Task],
    sandbox: Sandbox,
    *,
    samples: int = 8,
    temperature: float = 1.0,
    seed: int = 0,
    max_line_tokens: int = 48,
    **limits: Any,
) -> EvalResult:
    """Sampled pass@1 (Codex's estimator c/n with n = ``samples`` per task) of ``policy``.

    ``passed`` and ``prefix_accuracy`` of the result are per-task means over the samples
    (floats in [0, 1]); ``pass_at_1`` is their mean. Far less noisy than greedy pass@1 on a
    small task set, and it is the quantity RL optimises directly.

    Args:
        policy: Causal LM (put in eval mode here).
        tokenizer: Its tokenizer.
        tasks: Fixed evaluation tasks.
        sandbox: Shared sandbox (not closed).
        samples: Programs sampled per task (n >= 1).
        temperature: Sampling temperature (> 0).
        seed: Seed of the sampling generator (same seed, same draws).
        max_line_tokens: Longest line in tokens.
        **limits: ``batch_size`` (programs decoded together, 100), ``max_new_tokens`` (token
            budget per program, 96), ``max_lines`` (line limit per program, 16), ``workers``
            (threads stepping the envs, 2).
    """
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    gen = torch.Generator(device=next(policy.parameters()).device).manual_seed(int(seed))
    sampler = LineSampler(
        policy, tokenizer, temperature=temperature, max_line_tokens=max_line_tokens, generator=gen
    )
    return _evaluate(sampler, tasks, sandbox, samples, **limits)


def _evaluate(
    sampler: LineSampler,
    tasks: Sequence[Task],
    sandbox: Sandbox,
    samples: int,
    *,
    batch_size: int = 100,
    max_new_tokens: int = 96,
    max_lines: int = 16,
    workers: int = 2,
) -> EvalResult:
    """Run ``samples`` episodes per task; per-task means of pass and prefix accuracy."""
    import time

    sampler.model.eval()
    jobs = [t for t in tasks for _ in range(samples)]  # task i -> jobs [i*samples, (i+1)*samples)
    n_envs = min(batch_size, len(jobs))
    envs = [
        gym.make(
            "CodePRM-v0", tasks=[tasks[0]], sandbox=sandbox, reward_mode="none",
            max_lines=max_lines, disable_env_checker=True,
        )
        for _ in range(n_envs)
    ]  # fmt: skip
    passed, prefix, lines = [], [], []
    tokens = 0
    start = time.perf_counter()
    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for lo in range(0, len(jobs), batch_size):
                chunk = jobs[lo : lo + batch_size]
                episodes = collect_episodes(sampler, envs, chunk, max_new_tokens=max_new_tokens, pool=pool)
                for ep in episodes:
                    passed.append(ep.passed)
                    prefix.append(ep.prefix_accuracy)
                    lines.append(ep.num_lines)
                    tokens += ep.gen_tokens
    finally:
        for env in envs:
            env.close()
    shape = (len(tasks), samples)
    passed_arr = np.array(passed, dtype=float).reshape(shape)  # (N, n)
    prefix_arr = np.array(prefix, dtype=float).reshape(shape)  # (N, n)
    lines_arr = np.array(lines, dtype=float).reshape(shape)  # (N, n)
    return EvalResult(
        task_ids=[t.task_id for t in tasks],
        passed=passed_arr[:, 0].astype(bool) if samples == 1 else passed_arr.mean(axis=1),
        prefix_accuracy=prefix_arr.mean(axis=1),
        num_lines=lines_arr[:, 0].astype(int) if samples == 1 else lines_arr.mean(axis=1),
        tokens=tokens,
        seconds=time.perf_counter() - start,
    )
