"""The one bucket scheme and the one prefix-accuracy definition."""

from __future__ import annotations

import pytest

from codegym.evaluation import DEFAULT_BUCKETS, OPEN_END, bucket_of, parse_buckets, prefix_accuracy
from codegym.rollout import HORIZON_BUCKETS, horizon_bucket


def test_parse_buckets_closed_and_open():
    assert parse_buckets("1-3, 4-6,7,13+") == [(1, 3), (4, 6), (7, 7), (13, OPEN_END)]
    for bad in ("3-1", "a-b", "0-2", "x+"):
        with pytest.raises(ValueError, match="bucket"):
            parse_buckets(bad)


def test_eval_tables_use_the_same_scheme():
    assert HORIZON_BUCKETS == tuple(parse_buckets(DEFAULT_BUCKETS))
    buckets = parse_buckets(DEFAULT_BUCKETS)
    for steps, name in [(1, "1-3"), (6, "4-6"), (12, "10-12"), (13, "13+"), (40, "13+")]:
        assert horizon_bucket(steps) == name == bucket_of(steps, buckets)
    assert horizon_bucket(0) == "0" and bucket_of(0, buckets) is None


def test_prefix_accuracy_definition():
    ref = ["a = 1", "b = a + 1", "    return b"]
    assert prefix_accuracy(ref, ref) == 1.0
    assert prefix_accuracy(["a = 1  ", "b = 2", "    return b"], ref) == pytest.approx(1 / 3)  # stops at the mismatch
    assert prefix_accuracy(["a = 1", "b = a + 1", "return b"], ref) == pytest.approx(2 / 3)  # indentation counts
    assert prefix_accuracy(["a = 1"], ref) == pytest.approx(1 / 3)
    assert prefix_accuracy([], ref) == 0.0
    assert prefix_accuracy(["x"], [], passed=True) == 1.0 and prefix_accuracy(["x"], [], passed=False) == 0.0
