"""codegym.reporting.stats: the two-way bootstrap over seeds and tasks and the calibration table, against
hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from codegym.reporting.stats import (
    bootstrap_mean,
    calibration_bins,
    expected_calibration_error,
    paired_difference,
)


def test_constant_outcomes_give_a_degenerate_interval() -> None:
    est = bootstrap_mean(np.full((3, 50), 0.4), resamples=200)
    assert est.mean == pytest.approx(0.4) and est.low == pytest.approx(0.4) and est.high == pytest.approx(0.4)
    assert (est.seeds, est.tasks) == (3, 50)


def test_one_seed_matches_the_normal_interval_over_tasks() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random((1, 400)) < 0.3).astype(float)
    est = bootstrap_mean(y, resamples=4000, seed=1)
    half = 1.96 * y.std(ddof=1) / np.sqrt(y.shape[1])
    assert est.mean == pytest.approx(y.mean())
    assert est.high - est.low == pytest.approx(2 * half, rel=0.12)


def test_seed_variance_widens_the_interval() -> None:
    """Seeds whose whole runs differ (a shift per seed) must widen the interval: a bootstrap
    over tasks alone would not see that source of noise."""
    rng = np.random.default_rng(2)
    base = rng.random((1, 300))
    same = np.repeat(base, 3, axis=0)
    shifted = same + np.array([[-0.2], [0.0], [0.2]])
    narrow = bootstrap_mean(same, resamples=2000)
    wide = bootstrap_mean(shifted, resamples=2000)
    assert narrow.mean == pytest.approx(wide.mean)
    assert (wide.high - wide.low) > 3 * (narrow.high - narrow.low)


def test_paired_difference_removes_shared_task_difficulty() -> None:
    rng = np.random.default_rng(3)
    difficulty = rng.random((2, 200))
    a, b = difficulty + 0.05, difficulty
    d = paired_difference(a, b, resamples=500)
    assert d.mean == pytest.approx(0.05) and d.low == pytest.approx(0.05) and d.excludes_zero
    with pytest.raises(ValueError, match="same"):
        paired_difference(a, b[:, :10])


@pytest.mark.parametrize("bad", [np.zeros((0, 3)), np.zeros(5), np.array([[0.1, np.nan]])])
def test_bad_inputs_raise(bad) -> None:
    with pytest.raises(ValueError):
        bootstrap_mean(bad)


def test_calibration_bins_by_hand() -> None:
    scores = np.array([-0.9, -0.8, 0.1, 0.15, 0.9, 1.3])
    positive = np.array([False, True, False, True, True, True])
    table = calibration_bins(scores, positive, bins=4)  # edges -1, -0.5, 0, 0.5, 1
    assert [(b["lo"], b["n"]) for b in table] == [(-1.0, 2), (0.0, 2), (0.5, 2)]
    assert table[0]["predicted"] == pytest.approx(((0.1 + 0.2) / 2) / 2) and table[0]["observed"] == 0.5
    assert table[2]["predicted"] == pytest.approx((0.95 + 1.0) / 2)  # 1.3 is clipped to 1
    ece = expected_calibration_error(table)
    expected = sum(b["n"] * abs(b["predicted"] - b["observed"]) for b in table) / 6
    assert ece == pytest.approx(expected)
    assert np.isnan(expected_calibration_error([]))
