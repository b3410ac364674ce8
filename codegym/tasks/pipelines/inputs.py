"""Candidate test inputs of a ``pipelines`` task.

The ordinary pool (:func:`make_pool`) mixes typical lists with adversarial ones (wider
values, many duplicates, long, short, mostly negative, sorted runs); the wide pool
(:func:`make_wide_pool`) is tried only for mutants that no ordinary input separates.
"""

from __future__ import annotations

import random


def random_input(rng: random.Random, style: int, grow: int = 0) -> list[int]:
    """One candidate input list; ``style`` picks a distribution (adversarial ones included),
    ``grow`` lengthens the lists (long pipelines get longer inputs)."""
    r = rng.randint
    if style == 0:  # typical
        return rng.choices(range(-5, 16), k=r(4, 10 + grow) + grow)
    if style == 1:  # wider values
        return rng.choices(range(-20, 31), k=r(3, 12 + grow) + grow)
    if style == 2:  # many duplicates
        return rng.choices(rng.choices(range(-6, 13), k=r(1, 3)), k=r(3, 10 + grow))
    if style == 3:  # long
        return rng.choices(range(-10, 26), k=r(13, 24) + grow)
    if style == 4:  # short
        return rng.choices(range(-8, 17), k=r(1, 3))
    if style == 5:  # mostly negative
        return rng.choices(range(-15, 4), k=r(3, 10 + grow))
    # style 6: sorted or reverse-sorted run
    xs = sorted(rng.choices(range(-8, 21), k=r(4, 10 + grow)))
    return xs if r(0, 1) else xs[::-1]


def make_pool(rng: random.Random, n: int, grow: int = 0) -> list[list[int]]:
    styles = (0, 0, 0, 1, 2, 3, 4, 5, 6, 0, 1, 0)
    return [random_input(rng, styles[i % len(styles)], grow) for i in range(n)]


def make_wide_pool(rng: random.Random, n: int, grow: int = 0) -> list[list[int]]:
    """Second-line candidate inputs (wider values, any length, many duplicates): tried only
    for mutants that no ordinary candidate kills (boundary cases such as ``x > k + 1``)."""
    pool = []
    for i in range(n):
        lo = rng.randint(-40, 20)
        hi = lo + rng.randint(4, 50)
        length = rng.randint(0, 20 + grow)
        if i % 3 == 0:  # duplicates
            pool.append(rng.choices(rng.choices(range(lo, hi + 1), k=rng.randint(1, 4)), k=length))
        else:
            pool.append(rng.choices(range(lo, hi + 1), k=length))
    # dense runs: after maps such as "multiply by 3" only these are sure to hold a value at
    # each side of a threshold
    for lo, hi in ((-60, 60), (-25, 25), (-10, 40)):
        run = list(range(lo, hi + 1))
        pool.append(run)
        pool.append(run[::-1])
        rng.shuffle(run)
        pool.append(run)
    return pool
