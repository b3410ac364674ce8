"""Pass rates with 95 % intervals, overall and by horizon bucket (for tables and plots), the
comparison of training runs over tasks *and* seeds, and a PRM's calibration.

An interval is over *tasks*: with one episode per task the pass rate is a binomial
proportion and gets a Wilson score interval (sound near 0 and 1, where the normal one is
not); with several episodes per task the tasks' pass fractions are averaged and the interval
is the normal one over tasks (episodes of one task are not independent).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

#: Normal quantile of a two-sided 95 % interval.
Z95 = 1.959963984540054


class Rate(NamedTuple):
    """A pass rate with its 95 % interval.

    Attributes:
        group: Name of the group (a horizon bucket such as ``"4-6"``, or ``"all"``).
        rate: Mean pass rate over tasks (pass@1).
        lo: Lower end of the 95 % interval.
        hi: Upper end of the 95 % interval.
        tasks: Number of tasks.
        episodes: Number of episodes.
    """

    group: str
    rate: float
    lo: float
    hi: float
    tasks: int
    episodes: int


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion ``successes / n``.

    Raises:
        ValueError: ``n < 1`` or ``successes`` outside ``[0, n]``.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be in [0, n={n}], got {successes}")
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # (clamped so that the interval holds p despite float rounding at p = 0 or 1)
    return min(p, max(0.0, centre - half)), max(p, min(1.0, centre + half))


def mean_interval(values: Sequence[float], z: float = Z95) -> tuple[float, float, float]:
    """Mean of ``values`` and its normal 95 % interval ``(mean, lo, hi)`` (``lo == hi`` for one value).

    Raises:
        ValueError: No values.
    """
    n = len(values)
    if n < 1:
        raise ValueError("mean_interval needs at least one value")
    mean = sum(values) / n
    if n == 1:
        return mean, mean, mean
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    half = z * math.sqrt(var / n)
    return mean, mean - half, mean + half


def pass_rate(group: str, per_task: Mapping[str, Sequence[bool]]) -> Rate:
    """The :class:`Rate` of tasks' episode outcomes (see the module docstring)."""
    if not per_task:
        raise ValueError(f"group {group!r} has no tasks")
    episodes = sum(len(v) for v in per_task.values())
    if all(len(v) == 1 for v in per_task.values()):
        k = sum(bool(v[0]) for v in per_task.values())
        lo, hi = wilson_interval(k, len(per_task))
        return Rate(group, k / len(per_task), lo, hi, len(per_task), episodes)
    means = [sum(map(bool, v)) / len(v) for v in per_task.values()]
    mean, lo, hi = mean_interval(means)
    return Rate(group, mean, max(0.0, lo), min(1.0, hi), len(per_task), episodes)


def rates_by_group(
    rows: Iterable[Mapping[str, Any]],
    group_of: Callable[[Mapping[str, Any]], str | None],
    include_all: bool = True,
) -> list[Rate]:
    """Pass rates of episode rows (``task_id``, ``passed``) per group, groups in first-seen
    order sorted by their leading number (``"1-3"`` before ``"10-12"``), ``"all"`` first."""
    groups: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        name = group_of(row)
        if include_all:
            groups["all"][row["task_id"]].append(bool(row["passed"]))
        if name is not None:
            groups[name][row["task_id"]].append(bool(row["passed"]))
    names = sorted(groups, key=lambda g: (g != "all", _leading_int(g), g))
    return [pass_rate(name, groups[name]) for name in names]


def rates_by_horizon(rows: Iterable[Mapping[str, Any]], include_all: bool = True) -> list[Rate]:
    """:func:`rates_by_group` over the horizon buckets of :func:`codegym.evaluation.horizon_bucket`
    (the ``steps`` field of ``codegym eval`` rows)."""
    from codegym.evaluation import horizon_bucket

    return rates_by_group(rows, lambda r: horizon_bucket(int(r["steps"])), include_all)


def _leading_int(name: str) -> int:
    digits = ""
    for c in name:
        if not c.isdigit():
            break
        digits += c
    return int(digits) if digits else -1


# ------------------------------------------------------------------ runs over seeds
# Outcomes of RL runs are arrays ``Y[seed, task]`` (greedy: 0/1; sampled: the fraction of n
# samples that passed) on the same fixed tasks for every run. Two sources of noise matter:
# which tasks were drawn (a finite test set) and which seed trained the policy (RL runs
# differ). :func:`bootstrap_mean` resamples both — seeds with replacement, tasks with
# replacement — and :func:`paired_difference` bootstraps ``Y_a − Y_b`` of two arms whose runs
# with the same seed share their rollout tasks and whose evaluation tasks are the same,
# which removes the between-task variance both share.


class Estimate(NamedTuple):
    """A mean and its 95 % bootstrap interval."""

    mean: float
    low: float
    high: float
    seeds: int
    tasks: int

    def to_dict(self) -> dict[str, float | int]:
        """JSON-ready dict."""
        return {"mean": self.mean, "low": self.low, "high": self.high, "seeds": self.seeds, "tasks": self.tasks}

    @property
    def excludes_zero(self) -> bool:
        """The interval lies entirely above or entirely below 0."""
        return self.low > 0 or self.high < 0


def bootstrap_mean(values: np.ndarray, resamples: int = 2000, seed: int = 0, level: float = 0.95) -> Estimate:
    """Mean of ``values`` [S, T] with a percentile interval from a seeds × tasks bootstrap.

    Each resample draws S seed rows and T task columns with replacement (independently) and
    takes the mean of the S × T sub-matrix. With one seed only tasks are resampled.

    Args:
        values: [S, T] outcomes (seeds × tasks); NaN is not allowed.
        resamples: Bootstrap resamples (>= 1).
        seed: Seed of the private generator.
        level: Coverage of the interval (0.95: the 2.5 and 97.5 percentiles).

    Raises:
        ValueError: ``values`` is not a non-empty 2-D array of finite numbers.
    """
    y = np.asarray(values, dtype=np.float64)
    if y.ndim != 2 or y.size == 0:
        raise ValueError(f"values must be a non-empty [seeds, tasks] array, got shape {y.shape}")
    if not np.all(np.isfinite(y)):
        raise ValueError("values contain NaN or inf: every seed must be evaluated on every task")
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    n_seeds, n_tasks = y.shape
    rng = np.random.default_rng(seed)
    # mean over a resample = mean over chosen rows of (row means over chosen columns); use
    # counts so each resample costs O(S * T) without materialising the sub-matrix
    stats = np.empty(resamples)
    for i in range(resamples):
        rows = rng.integers(0, n_seeds, size=n_seeds) if n_seeds > 1 else np.zeros(1, dtype=int)
        col_counts = np.bincount(rng.integers(0, n_tasks, size=n_tasks), minlength=n_tasks)
        row_means = y[rows] @ col_counts / n_tasks  # [S]
        stats[i] = row_means.mean()
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(stats, [alpha, 1.0 - alpha])
    return Estimate(float(y.mean()), float(low), float(high), n_seeds, n_tasks)


def paired_difference(a: np.ndarray, b: np.ndarray, resamples: int = 2000, seed: int = 0) -> Estimate:
    """``mean(a − b)`` with a seeds × tasks bootstrap interval (``a``, ``b``: [S, T], paired)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired outcomes must have the same [seeds, tasks] shape, got {a.shape} and {b.shape}")
    return bootstrap_mean(a - b, resamples=resamples, seed=seed)


class PairedDiff(NamedTuple):
    """Mean paired difference (after − before) and its 95 % normal interval."""

    mean: float
    low: float
    high: float
    n: int


def paired_change(before: np.ndarray, after: np.ndarray, z: float = Z95) -> PairedDiff:
    """Mean paired change ``after − before`` of per-task outcomes with a normal 95 % interval
    (one run against another on the same tasks; :func:`paired_difference` bootstraps over seeds
    and tasks).

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


def calibration_bins(scores: np.ndarray, positive: np.ndarray, bins: int = 10) -> list[dict[str, float]]:
    """Reliability table of a PRM: per score bin on [−1, 1], the mean score mapped to a
    probability ``(s + 1) / 2`` and the observed fraction of +1 labels.

    Args:
        scores: [N] PRM scores of non-neutral lines.
        positive: [N] bool, the line's label is +1.
        bins: Equal-width bins over [−1, 1] (scores outside are clipped into the end bins).

    Returns:
        One dict per non-empty bin: ``lo``, ``hi``, ``n``, ``predicted``, ``observed``.
    """
    s = np.asarray(scores, dtype=np.float64)
    pos = np.asarray(positive, dtype=bool)
    if s.shape != pos.shape or s.ndim != 1:
        raise ValueError(f"scores and positive must be 1-D of one length, got {s.shape}, {pos.shape}")
    edges = np.linspace(-1.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(s, edges[1:-1]), 0, bins - 1)
    out = []
    for k in range(bins):
        sel = idx == k
        if not sel.any():
            continue
        out.append({
            "lo": float(edges[k]), "hi": float(edges[k + 1]), "n": int(sel.sum()),
            "predicted": float(((np.clip(s[sel], -1, 1) + 1.0) / 2.0).mean()),
            "observed": float(pos[sel].mean()),
        })  # fmt: skip
    return out


def expected_calibration_error(table: list[dict[str, float]]) -> float:
    """Weighted mean |predicted − observed| over the bins of :func:`calibration_bins`."""
    total = sum(b["n"] for b in table)
    if not total:
        return float("nan")
    return float(sum(b["n"] * abs(b["predicted"] - b["observed"]) for b in table) / total)
