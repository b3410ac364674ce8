"""Aggregations of line scores against hand-computed values; budgets add up."""

from __future__ import annotations

import math

import pytest

from codegym.search import AGGREGATIONS, SearchBudget, aggregate, pick
from codegym.search.aggregate import PRODUCT_FLOOR, as_probability


def test_each_aggregation_matches_hand_computed_values() -> None:
    scores = [0.5, None, -0.2, 0.8]  # None: a comment line, skipped by every aggregation
    assert aggregate(scores, "last") == 0.8
    assert aggregate(scores, "min") == -0.2
    assert aggregate(scores, "mean") == pytest.approx((0.5 - 0.2 + 0.8) / 3)
    assert aggregate(scores, "product") == pytest.approx(0.75 * 0.4 * 0.9)  # (s + 1) / 2 each
    assert aggregate([0.3, None], "last") == 0.3  # a trailing comment does not end the scores


def test_product_clips_scores_outside_the_label_scale() -> None:
    assert as_probability(1.4) == 1.0
    assert as_probability(-1.5) == PRODUCT_FLOOR
    # one sure-wrong line does not tie every such program at exactly 0
    assert aggregate([-1.2, 0.0], "product") > aggregate([-1.2, -0.9], "product") > 0


def test_programs_without_scored_lines_rank_last_and_ties_go_to_the_first() -> None:
    for how in AGGREGATIONS:
        assert aggregate([], how) == -math.inf
        assert aggregate([None, None], how) == -math.inf
    assert pick([[None], [0.1], [0.1], [-0.5]], "last") == 1
    two = [[0.9, 0.3], [-0.5, 0.4]]
    assert [pick(two, how) for how in ("last", "min", "mean", "product")] == [1, 0, 0, 0]
    assert pick([[1.0, 0.0], [0.2, 0.2]], "product") == 0  # 1 * 0.5 > 0.6 * 0.6


def test_bad_aggregation_and_empty_pick_are_refused() -> None:
    with pytest.raises(ValueError, match="aggregation must be one of last, min, mean, product, got 'median'"):
        aggregate([0.1], "median")
    with pytest.raises(ValueError, match="at least one candidate"):
        pick([], "last")


def test_budgets_add_up() -> None:
    a = SearchBudget(programs=2, sampled_lines=7, sampled_tokens=70, scored_lines=6, executions=1)
    b = SearchBudget(programs=1, sampled_lines=3, sampled_tokens=31)
    assert (a + b).to_dict() == {"programs": 3, "sampled_lines": 10, "sampled_tokens": 101, "scored_lines": 6,
                                 "executions": 1}  # fmt: skip
    assert SearchBudget.total([a, b.to_dict()]) == a + b
