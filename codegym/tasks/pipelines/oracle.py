"""Choosing a ``pipelines`` task's test cases so that every behaviour-changing mutant fails.

:func:`select_cases` runs the reference on every candidate input (:class:`ReferenceRuns`),
rejects pipelines that empty the list too often or have fewer than 3 distinct outputs,
seeds the cases with 3 typical inputs of distinct outputs, then for each mutant
(:mod:`~codegym.tasks.pipelines.mutants`) that the cases so far do not kill adds the first
candidate input that kills it (:class:`MutantJudge`), the wide pool last. A deleted line
that no input notices is a dead line: the task is regenerated. Finally the cases are padded
to the minimum count, preferring new outputs.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from codegym.tasks.pipelines.mutants import Mutant, line_fn, mutants
from codegym.tasks.pipelines.ops import Op, Step
from sandboxes import IOCase


@dataclass(frozen=True)
class Rejected:
    """Why a task's steps were rejected while choosing cases (``reason`` names a counter of
    :attr:`PipelinesSuite.stats`, or is None for a rejection that is not counted)."""

    reason: str | None


def differs(out: Any, expected: Any) -> bool:
    """Whether a returned value fails a test expecting ``expected`` (types compared too)."""
    return not (type(out) is type(expected) and out == expected)


class ReferenceRuns:
    """The reference program's states before each line and its output, per candidate input,
    computed on first use.

    Args:
        steps: The reference steps (the last one a return form).
        inputs: The candidate inputs.
    """

    def __init__(self, steps: Sequence[Step], inputs: Sequence[list[int]]) -> None:
        self.steps = steps
        self.inputs = inputs
        self._states: list[list[Any] | None] = [None] * len(inputs)
        self._outputs: list[Any] = [None] * len(inputs)

    def states(self, i: int) -> list[Any]:
        """The list before each line of the reference on input ``i`` (up to its return)."""
        states = self._states[i]
        if states is None:
            states = self._run(i)
        return states

    def output(self, i: int) -> Any:
        """The reference's output on input ``i``."""
        self.states(i)
        return self._outputs[i]

    def _run(self, i: int) -> list[Any]:
        states = [self.inputs[i]]
        cur = self.inputs[i]
        for op, k in self.steps:
            if op.is_return:
                self._outputs[i] = op.fn(cur, k)
                break
            cur = op.fn(cur, k)
            states.append(cur)
        self._states[i] = states
        return states


class MutantJudge:
    """Whether a mutant returns something else than the reference on an input (or raises,
    or does not compile). Many mutants of one line reach the same state: the reference's
    remaining lines are evaluated once per ``(input, line, state)``.

    Args:
        reference: The reference runs on the candidate inputs.
    """

    def __init__(self, reference: ReferenceRuns) -> None:
        self.reference = reference
        self._prog: list[tuple[Any, int, bool]] = [
            (op.fn, k, op.is_return) for op, k in reference.steps
        ]
        self._memo: dict[tuple[int, int, tuple[Any, ...]], bool] = {}

    def kills(self, m: Mutant, i: int) -> bool:
        """Whether mutant ``m`` fails a test on input ``i``."""
        cur: Any = self.reference.states(i)[m.start]
        try:
            for line in m.head:
                compiled = line_fn(line)
                if compiled is None:
                    return True
                fn, is_return = compiled
                if is_return:
                    return differs(fn(cur), self.reference.output(i))
                cur = fn(cur)
            return self._suffix_kills_memo(i, m.resume, cur)
        except Exception:  # noqa: BLE001 - a mutant that raises fails the test
            return True

    def _suffix_kills_memo(self, i: int, r0: int, cur: Any) -> bool:
        if type(cur) is not list:
            return self.suffix_kills(i, r0, cur)
        try:
            key = (i, r0, tuple(cur))
            hash(key)
        except TypeError:
            return self.suffix_kills(i, r0, cur)
        hit = self._memo.get(key)
        if hit is None:
            hit = self._memo[key] = self.suffix_kills(i, r0, cur)
        return hit

    def suffix_kills(self, i: int, r0: int, cur: Any) -> bool:
        """Whether the reference lines from ``r0`` on, run from state ``cur``, end with
        something else than the reference's output on input ``i``."""
        st = self.reference.states(i)
        expected = self.reference.output(i)
        for r in range(r0, len(self._prog)):
            ref = st[r]
            if cur == ref and type(cur) is type(ref):
                return False  # back on the reference's track: same result
            fn, k, is_ret = self._prog[r]
            if is_ret:
                return differs(fn(cur, k), expected)
            cur = fn(cur, k)
        return expected is not None  # no return reached: None


def select_cases(
    rng: random.Random,
    steps: list[Step],
    pool: list[list[int]],
    wide: Sequence[list[int]],
    *,
    transforms: tuple[Op, ...],
    returns: tuple[Op, ...],
    min_cases: int,
    max_cases: int,
) -> list[IOCase] | Rejected:
    """Greedily choose test inputs from ``pool`` (then ``wide``, for mutants no input of
    ``pool`` kills) until every behaviour-changing mutant fails some case, or say why the
    task must be regenerated (see the module docstring).

    Args:
        rng: The attempt's random stream (shuffles the candidates, draws mutants).
        steps: The reference steps.
        pool: Ordinary candidate inputs (the cases come from here first).
        wide: Second-line candidate inputs.
        transforms: The suite's list operations (for replacement mutants).
        returns: The suite's return forms.
        min_cases: Fewest cases (padding up to it).
        max_cases: Most cases; a task whose mutants need more is rejected.
    """
    n_main = len(pool)
    reference = ReferenceRuns(steps, [*pool, *wide])
    rejected = screen_outputs(reference, n_main)
    if rejected is not None:
        return rejected
    keys = [repr(reference.output(i)) for i in range(n_main)]
    order = list(range(n_main))
    rng.shuffle(order)
    order += range(n_main, len(reference.inputs))
    typical = distinct_typical(order[:n_main], keys, reference.inputs)
    if typical is None:
        return Rejected(None)
    killers = add_killers(
        MutantJudge(reference), mutants(rng, steps, transforms, returns), typical, order, max_cases
    )
    if isinstance(killers, Rejected):
        return killers
    chosen = pad_cases(killers, order[:n_main], keys, {keys[i] for i in typical}, min_cases)
    return [IOCase(args=(list(reference.inputs[i]),), expected=reference.output(i)) for i in chosen]


def screen_outputs(reference: ReferenceRuns, n_main: int) -> Rejected | None:
    """Reject a pipeline that empties more than a quarter of the non-empty ordinary inputs,
    or has fewer than 3 distinct outputs on them."""
    nonempty_inputs = [i for i in range(n_main) if reference.inputs[i]]
    empties = sum(1 for i in nonempty_inputs if not reference.states(i)[-1])
    if empties * 4 > len(nonempty_inputs):
        return Rejected("too_empty")
    if len({repr(reference.output(i)) for i in range(n_main)}) < 3:
        return Rejected("few_outputs")
    return None


def distinct_typical(
    order: list[int], keys: list[str], inputs: Sequence[list[int]]
) -> list[int] | None:
    """The first 3 inputs in ``order`` with >= 3 elements and distinct outputs (None if
    there are not 3): no constant answer passes the cases."""
    chosen: list[int] = []
    seen: set[str] = set()
    for i in order:
        if keys[i] not in seen and len(inputs[i]) >= 3:
            chosen.append(i)
            seen.add(keys[i])
            if len(seen) == 3:
                return chosen
    return None


def add_killers(
    judge: MutantJudge,
    muts: list[Mutant],
    chosen: list[int],
    order: list[int],
    max_cases: int,
) -> list[int] | Rejected:
    """``chosen`` plus, for each mutant that none of the cases so far kills, the first input
    in ``order`` that does. Rejects a dead line (a deleted line that no input notices) and a
    task that needs more than ``max_cases`` cases; other survivors are equivalent mutants."""
    cases = list(chosen)
    for m in muts:
        if any(judge.kills(m, i) for i in cases):
            continue
        killer = next((i for i in order if i not in cases and judge.kills(m, i)), None)
        if killer is None:
            if m.is_delete:
                return Rejected("dead_line")  # a line that does nothing: regenerate
            continue  # equivalent on every candidate input
        cases.append(killer)
        if len(cases) > max_cases:
            return Rejected("too_many_cases")
    return cases


def pad_cases(
    chosen: list[int], main: list[int], keys: list[str], seen: set[str], min_cases: int
) -> list[int]:
    """``chosen`` padded to ``min_cases`` from ``main``: inputs with outputs not in ``seen``
    first, then any."""
    cases = list(chosen)
    seen = set(seen)
    for i in main:
        if len(cases) >= min_cases:
            break
        if i not in cases and keys[i] not in seen:
            cases.append(i)
            seen.add(keys[i])
    for i in main:
        if len(cases) >= min_cases:
            break
        if i not in cases:
            cases.append(i)
    return cases
