"""The one bucket scheme and the one prefix-accuracy definition."""

from __future__ import annotations

import pytest

from codegym.evaluation import (
    DEFAULT_BUCKETS,
    HORIZON_BUCKETS,
    OPEN_END,
    bucket_of,
    horizon_bucket,
    parse_buckets,
    prefix_accuracy,
)


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


def test_eval_rows_carry_prefix_accuracy_by_the_same_definition():
    from codegym.evaluation import episode_row, summarize
    from codegym.plugins import build_agent
    from codegym.rollout import run_episodes
    from codegym.tasks import load_suite

    tasks = load_suite("pipelines", min_steps=2, max_steps=3, seed=0).take(3, "test")
    records = run_episodes(build_agent("reference", {}), tasks, env_kwargs={"prm": None, "reward_mode": "none"})
    rows = [episode_row(r) for r in records]
    assert [r["prefix_accuracy"] for r in rows] == [1.0, 1.0, 1.0]
    assert all(r["prefix_accuracy"] == prefix_accuracy(r["lines"], t.solution_lines) for r, t in zip(rows, tasks))
    assert summarize(rows)[0]["mean_prefix_accuracy"] == 1.0
    rows[0]["prefix_accuracy"] = 0.0
    assert summarize(rows)[0]["mean_prefix_accuracy"] == 2 / 3
    del rows[0]["prefix_accuracy"]  # a row from an earlier version: no mean
    assert "mean_prefix_accuracy" not in summarize(rows)[0]


def test_bucket_summary_of_greedy_and_sampled_outcomes():
    import numpy as np

    from codegym.evaluation import EvalResult, bucket_summary, task_horizon
    from codegym.tasks import load_suite

    tasks = load_suite("pipelines", min_steps=1, max_steps=6, seed=0).take(12, "test")
    short = [task_horizon(t) <= 3 for t in tasks]
    passed = np.array(short, dtype=float)  # exactly the short tasks pass
    got = bucket_summary(tasks, passed, [0.5] * len(tasks), parse_buckets("1-3,4-6"))
    assert got["buckets"]["1-3"] == {"pass@1": 1.0, "n": sum(short)}
    assert got["buckets"]["4-6"] == {"pass@1": 0.0, "n": len(tasks) - sum(short)}
    assert got["pass@1"] == pytest.approx(sum(short) / len(tasks)) and got["n"] == len(tasks)
    assert got["prefix_accuracy"] == 0.5 and "line_acc" not in got
    result = EvalResult([t.task_id for t in tasks], passed.astype(bool), np.full(len(tasks), 0.5),
                        np.zeros(len(tasks), dtype=int), 0, 0.0)
    assert result.summary(tasks, "1-3,4-6") == got
    empty = bucket_summary(tasks[:1], [1.0], [1.0], parse_buckets("20-30"))
    assert empty["buckets"]["20-30"]["n"] == 0 and empty["pass@1"] == 1.0
