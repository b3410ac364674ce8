"""The mutant oracle of ``pipelines`` (``codegym.tasks.pipelines.oracle``) on its own.

``MutantJudge`` evaluates a mutant from the reference's state before the mutated line and
memoises the rest of the program; here each verdict is checked against the mutant program
compiled whole and run from the raw input, and ``select_cases`` is checked to reject a
sequence with a dead line and to kill every mutant that some candidate input separates.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from codegym.tasks.pipelines import OPS, step_code
from codegym.tasks.pipelines.inputs import make_pool, make_wide_pool
from codegym.tasks.pipelines.mutants import Mutant, mutants
from codegym.tasks.pipelines.oracle import MutantJudge, ReferenceRuns, Rejected, select_cases

_TRANSFORMS = tuple(OPS[n] for n in ("add", "mul", "keep_gt", "reverse", "sort", "take", "drop"))
_RETURNS = tuple(OPS[n] for n in ("ret_sum", "ret_len", "ret_max", "ret_list"))


def _program(steps: list[tuple[Any, int]], m: Mutant) -> str:
    """The mutant's whole source: the reference lines before ``start``, ``head``, then the
    reference lines from ``resume`` on."""
    code = [step_code(s) for s in steps]
    return "def solve(xs):\n" + "\n".join([*code[: m.start], *m.head, *code[m.resume :]]) + "\n"


def _fails(src: str, xs: list[int], expected: Any) -> bool:
    ns: dict[str, Any] = {}
    try:
        exec(compile(src, "<mutant>", "exec"), ns)
        out = ns["solve"](list(xs))
    except Exception:  # noqa: BLE001 - a mutant that raises (or does not compile) fails
        return True
    return not (type(out) is type(expected) and out == expected)


@pytest.mark.parametrize(
    "names",
    [
        [("add", 3), ("keep_gt", 4), ("reverse", 0), ("ret_list", 0)],
        [("mul", 2), ("sort", 0), ("take", 3), ("ret_sum", 0)],
        [("drop", 1), ("add", 5), ("ret_max", 0)],
    ],
)
def test_judge_verdicts_equal_running_the_whole_mutant(names: list[tuple[str, int]]) -> None:
    steps = [(OPS[n], k) for n, k in names]
    rng = random.Random(0)
    inputs = make_pool(rng, 12) + [[]]
    reference = ReferenceRuns(steps, inputs)
    judge = MutantJudge(reference)
    muts = mutants(rng, steps, _TRANSFORMS, _RETURNS)
    assert len(muts) > 20
    killed = 0
    for m in muts:
        src = _program(steps, m)
        for i, xs in enumerate(inputs):
            verdict = judge.kills(m, i)
            assert verdict == _fails(src, xs, reference.output(i)), (m, xs)
            killed += verdict
    assert killed > 0


def test_select_cases_rejects_a_dead_line() -> None:
    # sorting before an order-blind return changes nothing: deleting it is not a behaviour change
    steps = [(OPS["add"], 3), (OPS["sort"], 0), (OPS["ret_sum"], 0)]
    rng = random.Random(1)
    pool = make_pool(rng, 48)
    out = select_cases(rng, steps, pool, make_wide_pool(rng, 48), transforms=_TRANSFORMS,
                       returns=_RETURNS, min_cases=6, max_cases=12)
    assert out == Rejected("dead_line")


def test_select_cases_kills_every_separable_mutant() -> None:
    steps = [(OPS["add"], 3), (OPS["keep_gt"], 4), (OPS["reverse"], 0), (OPS["ret_list"], 0)]
    rng = random.Random(2)
    pool, wide = make_pool(rng, 48), make_wide_pool(rng, 48)
    cases = select_cases(random.Random(3), steps, pool, wide, transforms=_TRANSFORMS,
                         returns=_RETURNS, min_cases=6, max_cases=12)
    assert isinstance(cases, list) and 6 <= len(cases) <= 12
    assert len({repr(c.expected) for c in cases}) >= 3
    candidates = [*pool, *wide]
    reference = ReferenceRuns(steps, candidates)
    judge = MutantJudge(reference)
    separable = 0
    rng = random.Random(3)  # the draws select_cases made: the shuffle of the pool, then mutants
    rng.shuffle(list(range(len(pool))))
    for m in mutants(rng, steps, _TRANSFORMS, _RETURNS):
        if any(judge.kills(m, i) for i in range(len(candidates))):
            separable += 1
            src = _program(steps, m)
            assert any(_fails(src, c.args[0], c.expected) for c in cases), m
    assert separable > 20
