"""Statistics of the arm comparison: means with 95 % intervals over tasks *and* seeds.

Outcomes are arrays ``Y[seed, task]`` (greedy: 0/1; sampled: the fraction of n samples that
passed) on the same fixed tasks for every arm. Two sources of noise matter: which tasks were
drawn (a finite test set) and which seed trained the policy (RL runs differ). The
intervals come from a two-way bootstrap that resamples both: seeds with replacement, tasks
with replacement, the statistic recomputed on each resample. A paired comparison of two
arms bootstraps ``Y_a − Y_b`` (arm runs with the same seed share their rollout tasks and
the evaluation tasks are the same), which removes the between-task variance both arms
share. Pure functions of numpy arrays with a private generator.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


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
