"""Evaluating a policy checkpoint: horizon buckets, prefix accuracy, greedy pass@1 in a sandbox.

One horizon-bucket scheme and one prefix-accuracy definition serve every report (SFT's
evaluation, ``codegym eval``'s tables, the PPO bench and ``codegym reproduce``):

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

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from codegym.constants import SUBMIT
from codegym.tasks.base import Task
from codegym.tokenization import task_context

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


@torch.no_grad()
def greedy_programs(
    model: Any, tokenizer: Any, tasks: Sequence[Task], batch_size: int = 32, max_lines: int | None = None
) -> list[list[str]]:
    """Greedy programs for ``tasks`` (batched, KV cache kept across lines); at most
    ``max_lines`` lines (default: the batch's longest horizon + 4)."""
    from codegym.sampling import LineSampler

    model.eval()
    sampler = LineSampler(model, tokenizer, greedy=True)
    out: list[list[str]] = []
    for lo in range(0, len(tasks), batch_size):
        chunk = tasks[lo : lo + batch_size]
        limit = max_lines or max(t.horizon for t in chunk) + 4
        out.extend(sampler.sample_programs([task_context(t) for t in chunk], limit))
    return out


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


def evaluate_policy(
    model: Any,
    tokenizer: Any,
    tasks: Sequence[Task],
    sandbox: Any,
    buckets: Sequence[tuple[int, int]],
    batch_size: int = 32,
) -> dict[str, Any]:
    """Greedy pass@1 and prefix accuracy of a causal-LM policy, overall and by horizon bucket.

    Programs are decoded with :func:`greedy_programs` and run against each task's tests in
    ``sandbox`` (not closed here).

    Returns:
        :func:`bucket_summary` of the outcomes.
    """
    from sandboxes import Job

    programs = [[ln for ln in p if ln != SUBMIT] for p in greedy_programs(model, tokenizer, tasks, batch_size)]
    results = sandbox.run_many([Job(t.program(p), t.tests) for t, p in zip(tasks, programs)])
    passed = [bool(r.ok) for r in results]
    prefix = [prefix_accuracy(p, t.solution_lines, ok) for t, p, ok in zip(tasks, programs, passed)]
    return bucket_summary(tasks, passed, prefix, buckets)
