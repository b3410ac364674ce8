"""``mode="auto"``: labeling picks binary search or a linear scan by expected executions.

Programs run in the real local sandbox. The completer proposes one passing completion
(``return ok``) among each K when the prefix is clean and K distinct failing ones otherwise
(``return -1``, ``return -2``, ...), so a failing prefix check really costs K executions and a
correct one stops at its first passing chunk. Two distributions of first errors are labeled
in every mode: early errors in short responses (a weak policy: the scan wins) and late
errors in long responses (the search wins). On each, ``auto`` must cost no more executions
than either fixed mode, and all three must give the same labels.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import pytest

from codegym.labeling import LabelConfig, Labeler
from codegym.labeling.core import SearchCost, search_checks
from codegym.tasks.base import Task
from sandboxes import IOCase, TestSuite, make_sandbox

ERROR = "    ok = 0"
TASK = Task(
    task_id="planted/auto",
    prompt="Return 1.",
    code_prefix="def solve():\n    ok = 1\n",
    entry_point="solve",
    tests=TestSuite(kind="io", entry_point="solve", cases=(IOCase(args=(), expected=1),)),
    solution="    return ok",
)


class DistinctCompleter:
    """``return ok`` once per K (at a seeded position) and distinct ``return -i`` otherwise."""

    def __init__(self, k: int) -> None:
        self.k = k
        self._key: tuple[str, ...] | None = None
        self._good = self._done = 0

    def complete(self, task: Task, prefix: Sequence[str], n: int, rng: np.random.Generator) -> list[list[str]]:
        key = tuple(prefix)
        if key != self._key or self._done >= self.k:  # a new prefix check
            self._key, self._good, self._done = key, int(rng.integers(self.k)), 0
        out = [["    return ok"] if self._done + i == self._good else [f"    return -{self._done + i + 1}"]
               for i in range(n)]  # fmt: skip
        self._done += n
        return out


def responses(length: int, error_at: Sequence[int]) -> list[list[str]]:
    """Responses of ``length`` lines with the planted error at each of ``error_at``."""
    return [[ERROR if i == e else f"    v{i} = {i}" for i in range(length)] for e in error_at]


@pytest.fixture(scope="module")
def sandbox():
    sb = make_sandbox("local", workers=2)
    yield sb
    sb.close()


def label_all(
    sandbox, mode: str, batch: list[list[str]], measured: SearchCost | None = None, k: int = 4
) -> tuple[int, list[list[int]], list[str], SearchCost]:
    """Label ``batch`` (one task per response) in ``mode``; ``measured``: a distribution of
    first errors already measured (the auto mode then starts from it)."""
    labeler = Labeler(DistinctCompleter(k), sandbox, LabelConfig(k=k, chunk=2, mode=mode))  # type: ignore[arg-type]
    if measured is not None:
        labeler.search_cost = measured
    execs, labels, modes = 0, [], []
    for i, lines in enumerate(batch):
        task = dataclasses.replace(TASK, task_id=f"planted/{i}")  # no verdict shared across responses
        res = labeler.label(task, lines, np.random.default_rng([7, i]))
        execs += res.n_executions
        labels.append(res.labels)
        modes.append(res.mode)
    return execs, labels, modes, labeler.search_cost


def test_search_checks_counts_what_the_labeler_does(sandbox) -> None:
    for mode in ("binary", "linear"):
        for length in (2, 5, 8, 13):
            for e in range(length):
                res = Labeler(DistinctCompleter(2), sandbox, LabelConfig(k=2, mode=mode)).label(
                    TASK, responses(length, [e])[0], np.random.default_rng(e))  # fmt: skip
                ok = sum(c.ok for c in res.checks[1:])
                assert (ok, len(res.checks) - 1 - ok) == search_checks(mode, length, e), (mode, length, e)


EARLY = (6, [0, 1, 0, 2, 1, 0, 0, 1, 3, 0, 1, 0, 0, 2, 0, 1])  # a weak policy's short programs
LATE = (24, [20, 22, 17, 23, 19, 21, 18, 22, 20, 23, 16, 21])  # long programs, late errors


@pytest.mark.parametrize(("spec", "cheaper"), [(EARLY, "linear"), (LATE, "binary")])
def test_auto_on_the_measured_distribution_costs_no_more_than_either_mode(sandbox, spec, cheaper: str) -> None:
    batch = responses(*spec)
    linear = label_all(sandbox, "linear", batch)  # measures the distribution (and its costs)
    binary = label_all(sandbox, "binary", batch)
    other = binary if cheaper == "linear" else linear
    best = linear if cheaper == "linear" else binary
    assert best[0] < other[0], f"the distribution does not favour {cheaper}: {linear[0]} vs {binary[0]}"
    auto = label_all(sandbox, "auto", batch, measured=linear[3])
    assert set(auto[2]) == {cheaper}
    assert auto[0] <= linear[0] and auto[0] <= binary[0], (auto[0], linear[0], binary[0])
    assert auto[1] == linear[1] == binary[1]  # same labels in every mode


def test_auto_from_scratch_scans_short_programs_with_early_errors(sandbox) -> None:
    """No history: the prior (first errors early) picks the scan on short programs, which is
    what 2-8-line ``pipelines`` programs of weak policies need."""
    batch = responses(*EARLY)
    auto, binary = label_all(sandbox, "auto", batch), label_all(sandbox, "binary", batch)
    assert auto[0] < binary[0] and set(auto[2]) == {"linear"}, (auto[0], binary[0], auto[2])


def test_expected_cost_follows_the_observed_distribution() -> None:
    cost = SearchCost(k=8, chunk=2)
    for _ in range(30):  # first errors at line 0 of 8-line responses
        cost.observe(8, 0, [(False, 8, False)])
    assert cost.choose(8) == "linear"
    assert cost.expected("linear", 8) < cost.expected("binary", 8)
    late = SearchCost(k=8, chunk=2)
    for _ in range(30):  # first errors at the last line of 16-line responses
        late.observe(16, 15, [(True, 2, False)] * 4)
    assert late.choose(16) == "binary"
    assert abs(sum(late.distribution(16)) - 1.0) < 1e-9


def test_search_checks_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="correct"):
        search_checks("binary", 4, 4)
    with pytest.raises(ValueError, match="mode"):
        search_checks("ternary", 4, 1)
