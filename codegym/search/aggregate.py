"""How a search ranks programs by their line scores, and what a search spends.

A line scorer (a PRM, or the exact oracle on ``pipelines``) gives every code line of a
program a score on the label scale [−1, 1] (+1: the prefix ending at that line can still be
completed to a correct program). Comment and blank lines are neutral, as in the env: they get
no score (``None``) and every aggregation skips them. An **aggregation** turns a program's
line scores into one number; the search keeps the program (or the beam) with the highest:

=========  ==================================================================================
``last``   the score of the last scored line (the PRM's estimate for the whole program)
``min``    the lowest line score (a program is as good as its worst step)
``mean``   the mean line score
``product`` the product of the line scores read as probabilities, ``p = (s + 1) / 2``
           clipped to [10⁻⁶, 1] (the chance that every step is right, if they were independent)
=========  ==================================================================================

A program without a scored line (empty, or only comments) aggregates to ``-inf``: it is
picked only when every candidate is like it. Ties go to the earliest candidate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

#: The aggregations of line scores a search can rank by (see the module docstring).
AGGREGATIONS: tuple[str, ...] = ("last", "min", "mean", "product")
Aggregation = Literal["last", "min", "mean", "product"]
#: Smallest probability a line keeps in ``product`` (so that one sure-wrong line does not tie
#: every such program at exactly 0).
PRODUCT_FLOOR = 1e-6


def check_aggregation(name: str) -> str:
    """``name`` if it is an aggregation, else a ``ValueError`` naming the choices."""
    if name not in AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {', '.join(AGGREGATIONS)}, got {name!r}")
    return name


def as_probability(score: float) -> float:
    """A label-scale score read as a probability: ``(score + 1) / 2`` clipped to
    ``[PRODUCT_FLOOR, 1]``."""
    return min(1.0, max(PRODUCT_FLOOR, (float(score) + 1.0) / 2.0))


def aggregate(scores: Sequence[float | None], how: str) -> float:
    """One number for a program's line scores (``None``: a neutral line, skipped).

    Raises:
        ValueError: ``how`` is not one of :data:`AGGREGATIONS`.
    """
    check_aggregation(how)
    values = [float(s) for s in scores if s is not None]
    if not values:
        return -math.inf
    if how == "last":
        return values[-1]
    if how == "min":
        return min(values)
    if how == "mean":
        return sum(values) / len(values)
    return math.prod(as_probability(v) for v in values)


def pick(candidates: Sequence[Sequence[float | None]], how: str) -> int:
    """Index of the candidate with the highest aggregate (the first on ties).

    Raises:
        ValueError: No candidates, or an unknown aggregation.
    """
    if not candidates:
        raise ValueError("pick needs at least one candidate")
    values = [aggregate(c, how) for c in candidates]
    return max(range(len(values)), key=lambda i: (values[i], -i))


@dataclass
class SearchBudget:
    """What a search spent on one task (or, summed, on many).

    Attributes:
        programs: Finished programs the search chose among (best-of-N: N; beam search: the
            beams that ended).
        sampled_lines: Lines of code the policy drew, kept or discarded: every line of every
            best-of-N sample; every candidate line of every beam-search step. The draw that
            ends a program (EOS) is not a line; its token is in ``sampled_tokens``.
        sampled_tokens: Tokens of those lines (as the sampler's cache holds them), + 1 per
            EOS drawn.
        scored_lines: Lines the scorer scored (neutral lines are not scored).
        executions: Sandbox runs the scorer made (the oracle; 0 for a PRM).
    """

    programs: int = 0
    sampled_lines: int = 0
    sampled_tokens: int = 0
    scored_lines: int = 0
    executions: int = 0

    def __add__(self, other: SearchBudget) -> SearchBudget:
        return SearchBudget(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    def to_dict(self) -> dict[str, int]:
        """JSON-ready dict."""
        return {k: int(v) for k, v in asdict(self).items()}

    @classmethod
    def total(cls, budgets: Sequence[SearchBudget | dict[str, Any]]) -> SearchBudget:
        """The sum of ``budgets`` (objects or their :meth:`to_dict` form)."""
        out = cls()
        for b in budgets:
            out = out + (b if isinstance(b, SearchBudget) else cls(**{f.name: int(b.get(f.name, 0)) for f in fields(cls)}))
        return out


__all__ = ["AGGREGATIONS", "Aggregation", "SearchBudget", "aggregate", "as_probability", "check_aggregation", "pick"]
