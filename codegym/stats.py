"""Pass rates with 95 % intervals, overall and by horizon bucket (for tables and plots).

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
    """:func:`rates_by_group` over the horizon buckets of :func:`codegym.rollout.horizon_bucket`
    (the ``steps`` field of ``codegym eval`` rows)."""
    from codegym.rollout import horizon_bucket

    return rates_by_group(rows, lambda r: horizon_bucket(int(r["steps"])), include_all)


def _leading_int(name: str) -> int:
    digits = ""
    for c in name:
        if not c.isdigit():
            break
        digits += c
    return int(digits) if digits else -1
