"""The labeler: binary search finds a planted first error, bounded checks, binary == linear.

Programs run in the real local sandbox. The scripted completer never looks at the prefix: it
always proposes ``return ok`` (once among its K samples) and ``return -1`` otherwise, so a
completion passes exactly when the prefix does not contain the planted ``ok = 0`` line --
the verdict comes from executing the program.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codegym.labeling import (
    LabelConfig,
    Labeler,
    labels_for,
    max_prefix_checks,
)
from codegym.tasks.base import Task
from sandboxes import IOCase, TestSuite, make_sandbox

ERROR = "    ok = 0"

TASK = Task(
    task_id="planted/0",
    prompt="Return 1.",
    code_prefix="def solve():\n    ok = 1\n",
    entry_point="solve",
    tests=TestSuite(kind="io", entry_point="solve", cases=(IOCase(args=(), expected=1),)),
    solution="    return ok",
)


class ScriptedCompleter:
    """One passing-if-clean completion at a random position among each K, failing ones elsewhere."""

    def __init__(self, k: int):
        self.k = k
        self.calls: list[tuple[int, int]] = []  # (prefix length, n)
        self._last: tuple[str, int] | None = None
        self._good = self._done = 0

    def complete(
        self, task: Task, prefix: Sequence[str], n: int, rng: np.random.Generator
    ) -> list[list[str]]:
        self.calls.append((len(prefix), n))
        key = (task.task_id, len(prefix))
        if key != self._last:  # a new prefix check: place the one good sample
            self._last, self._good, self._done = key, int(rng.integers(self.k)), 0
        out = []
        for i in range(n):
            out.append(["    return ok"] if self._done + i == self._good else ["    return -1"])
        self._done += n
        return out


@pytest.fixture(scope="module")
def sandbox():
    sb = make_sandbox("local", workers=2)
    yield sb
    sb.close()


def planted(length: int, error_at: int, comment_rate: float, rng: np.random.Generator) -> list[str]:
    """``length`` lines, the error at ``error_at``, some comment/blank lines elsewhere."""
    lines = []
    for i in range(length):
        if i == error_at:
            lines.append(ERROR)
        elif rng.random() < comment_rate:
            lines.append("    # a comment" if rng.random() < 0.5 else "")
        else:
            lines.append(f"    v{i} = {i}")
    return lines


def expected_labels(lines: list[str], error_at: int) -> list[int]:
    return [0 if (not x.strip() or x.strip().startswith("#")) else (1 if i < error_at else -1)
            for i, x in enumerate(lines)]


def test_labels_for_and_bound() -> None:
    assert labels_for(["a", "# c", "", "b", "c"], 1) == [1, 0, 0, -1, -1]
    assert [max_prefix_checks(n) for n in (1, 2, 3, 4, 7, 8, 40)] == [2, 3, 3, 4, 4, 5, 7]


def test_config_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="k"):
        LabelConfig(k=0)
    with pytest.raises(ValueError, match="mode"):
        LabelConfig(mode="ternary")  # type: ignore[arg-type]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    length=st.integers(1, 40),
    frac=st.floats(0, 1, exclude_max=True),
    k=st.sampled_from([1, 3, 4]),
    chunk=st.sampled_from([1, 2]),
    seed=st.integers(0, 2**16),
)
def test_binary_search_finds_planted_error(sandbox, length, frac, k, chunk, seed) -> None:
    rng = np.random.default_rng(seed)
    error_at = int(frac * length)
    lines = planted(length, error_at, 0.2, rng)
    completer = ScriptedCompleter(k)
    labeler = Labeler(completer, sandbox, LabelConfig(k=k, chunk=chunk, mode="binary"))
    res = labeler.label(TASK, lines, np.random.default_rng(seed))
    assert not res.passed
    assert res.first_error == error_at
    assert res.labels == expected_labels(lines, error_at)
    assert res.prefix_checks <= max_prefix_checks(length)
    assert res.revised == any(x.startswith("    v") for x in lines[:error_at])
    # sampling never exceeds K per prefix, and a correct prefix stops at its first pass
    for check in res.checks[1:]:
        assert check.samples <= k
        if not check.ok:
            assert check.samples == k
    assert res.n_completions <= k * (max_prefix_checks(length) - 1)


@pytest.mark.parametrize("length", range(1, 41))
def test_every_length_and_position(sandbox, length: int) -> None:
    rng = np.random.default_rng(length)
    for error_at in sorted({0, length - 1, int(rng.integers(length))}):
        lines = planted(length, error_at, 0.0, rng)
        res = Labeler(ScriptedCompleter(1), sandbox, LabelConfig(k=1, mode="binary")).label(TASK, lines, rng)
        assert res.first_error == error_at
        assert res.correct_code_lines == error_at
        assert res.prefix_checks <= max_prefix_checks(length)


def test_binary_and_linear_agree_when_monotone(sandbox) -> None:
    rng = np.random.default_rng(7)
    for trial in range(12):
        length = int(rng.integers(1, 25))
        error_at = int(rng.integers(length))
        lines = planted(length, error_at, 0.25, rng)
        out = {}
        for mode in ("binary", "linear"):
            labeler = Labeler(ScriptedCompleter(2), sandbox, LabelConfig(k=2, mode=mode))
            out[mode] = labeler.label(TASK, lines, np.random.default_rng(trial))
        assert out["binary"].labels == out["linear"].labels
        assert out["binary"].first_error == out["linear"].first_error == error_at
        # the linear cost computed from a binary run is what a linear run actually does
        assert out["binary"].linear_prefix_checks == out["linear"].prefix_checks
        assert out["linear"].linear_prefix_checks == out["linear"].prefix_checks


def test_prefetch_samples_once_per_prefix_and_executes_the_same(sandbox) -> None:
    rng = np.random.default_rng(11)
    for trial in range(6):
        lines = planted(20, int(rng.integers(20)), 0.1, rng)
        out = {}
        for prefetch in (False, True):
            completer = ScriptedCompleter(6)
            labeler = Labeler(completer, sandbox, LabelConfig(k=6, chunk=2, prefetch=prefetch))
            out[prefetch] = (labeler.label(TASK, lines, np.random.default_rng(trial)), completer.calls)
        (lazy, lazy_calls), (pre, pre_calls) = out[False], out[True]
        assert lazy.checks == pre.checks and lazy.labels == pre.labels
        assert all(n == 6 for _, n in pre_calls)  # one call of K per prefix
        assert len(pre_calls) == len(pre.checks) - 1
        assert len(lazy_calls) >= len(pre_calls)


def test_passing_response_and_comments(sandbox) -> None:
    lines = ["    # start", "    a = 1", "", "    return ok"]
    completer = ScriptedCompleter(4)
    res = Labeler(completer, sandbox, LabelConfig(k=4)).label(TASK, lines, np.random.default_rng(0))
    assert res.passed and res.first_error is None and not res.revised
    assert res.labels == [0, 1, 0, 1]
    assert res.n_executions == 1 and res.n_completions == 0 and completer.calls == []


def test_verdicts_cached_per_task_and_prefix(sandbox) -> None:
    labeler = Labeler(ScriptedCompleter(2), sandbox, LabelConfig(k=2))
    lines = planted(16, 11, 0.0, np.random.default_rng(0))
    first = labeler.label(TASK, lines, np.random.default_rng(1))
    again = labeler.label(TASK, lines, np.random.default_rng(1))
    assert first.labels == again.labels
    assert all(c.cached for c in again.checks[1:]) and again.n_completions == 0
    assert again.n_executions == 1  # only the response itself
    other = Task(**{**TASK.__dict__, "task_id": "planted/1"})
    third = labeler.label(other, lines, np.random.default_rng(1))
    assert not any(c.cached for c in third.checks[1:])


def test_response_with_a_newline_is_rejected(sandbox) -> None:
    with pytest.raises(ValueError, match="line break"):
        Labeler(ScriptedCompleter(1), sandbox).label(TASK, ["a\nb"], np.random.default_rng(0))
