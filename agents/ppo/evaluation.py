"""Greedy evaluation of a policy on fixed tasks, and paired comparison of two evaluations."""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
import torch

from agents.ppo.rollout import collect_episodes, prefix_accuracy
from codegym.sampling import LineSampler
from codegym.tasks.base import Task
from sandboxes import Sandbox


class EvalResult(NamedTuple):
    """Per-task outcomes of one greedy evaluation (aligned with the task list)."""

    task_ids: list[str]
    passed: np.ndarray  # [N] bool
    prefix_accuracy: np.ndarray  # [N] float
    num_lines: np.ndarray  # [N] int
    tokens: int
    seconds: float

    @property
    def pass_at_1(self) -> float:
        """Greedy pass@1."""
        return float(self.passed.mean()) if len(self.passed) else float("nan")


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
def evaluate_greedy(
    policy: Any,
    tokenizer: Any,
    tasks: Sequence[Task],
    sandbox: Sandbox,
    *,
    batch_size: int = 100,
    max_new_tokens: int = 96,
    max_lines: int = 16,
    max_line_tokens: int = 48,
    workers: int = 2,
) -> EvalResult:
    """Greedy pass@1 and line-prefix accuracy of ``policy`` on ``tasks`` (no PRM).

    Args:
        policy: Causal LM (put in eval mode here).
        tokenizer: Its tokenizer.
        tasks: Fixed evaluation tasks.
        sandbox: Shared sandbox (not closed).
        batch_size: Programs decoded together.
        max_new_tokens: Token budget per program.
        max_lines: Line limit per program.
        max_line_tokens: Longest line in tokens.
        workers: Threads stepping the envs.
    """
    import time

    policy.eval()
    sampler = LineSampler(policy, tokenizer, greedy=True, max_line_tokens=max_line_tokens)
    n_envs = min(batch_size, len(tasks))
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
            for lo in range(0, len(tasks), batch_size):
                chunk = list(tasks[lo : lo + batch_size])
                episodes = collect_episodes(
                    sampler, envs, chunk, max_new_tokens=max_new_tokens, pool=pool
                )
                for ep in episodes:
                    passed.append(ep.passed)
                    prefix.append(prefix_accuracy(ep))
                    lines.append(ep.num_lines)
                    tokens += ep.gen_tokens
    finally:
        for env in envs:
            env.close()
    return EvalResult(
        task_ids=[t.task_id for t in tasks],
        passed=np.array(passed, dtype=bool),
        prefix_accuracy=np.array(prefix, dtype=float),
        num_lines=np.array(lines, dtype=int),
        tokens=tokens,
        seconds=time.perf_counter() - start,
    )
