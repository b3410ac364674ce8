"""Drawing the steps of a ``pipelines`` task (:class:`StepDrawer`).

A sequence is drawn in three stages, each its own method:

1. :meth:`StepDrawer.plan` draws the return form (uniformly), then the operations
   *backwards*, each one that can matter given what the rest of the program observes of the
   list (no reordering before an order-blind return, no map before ``len``, ...) and that
   does not merge with its successor: every step matters by construction.
2. :meth:`StepDrawer.draw_params` draws parameters *forwards*, simulating the pipeline on
   a few candidate inputs so that each step changes typical inputs and the list rarely
   empties; thresholds are values the list holds at that point. An operation that no
   parameter makes feasible there is substituted.
3. :meth:`StepDrawer.steer_into_split` redraws the parameter of one of the last two
   parametrised steps (re-simulating the steps after it) until the sequence hashes to the
   wanted split.

All randomness comes from the ``random.Random`` passed in; the order in which it is drawn
from is part of the suite's determinism (same seed, same tasks).
"""

from __future__ import annotations

import operator
import random
from dataclasses import dataclass

from codegym.tasks.pipelines.algebra import (
    ELEMENTWISE,
    has_dead_line,
    is_alive,
    merge_group,
    observed_before,
    observed_by_return,
)
from codegym.tasks.pipelines.ops import Op, Step, split_of

States = list[list[int]]  # the simulated lists, one per candidate input

MAX_ABS_VALUE = 1000  # values stay small: no growth through repeated products
_SPLIT_TRIES = 48  # parameter redraws to move a sequence into the wanted split


def distinct_outputs(ret: Op, states: States) -> int:
    """Number of distinct outputs of return form ``ret`` over ``states``."""
    return len({repr(ret.fn(s, 0)) for s in states})


def draw_param(rng: random.Random, op: Op, states: States) -> int | None:
    """A parameter for ``op``: 0 when it has none, a draw from its domain, or a value one of
    ``states`` holds (None if every list is empty)."""
    if op.param == "none":
        return 0
    if op.param == "int":
        return op.domain[rng.randrange(len(op.domain))]
    s = states[rng.randrange(len(states))]
    if not s:
        s = next((t for t in states if t), s)
        if not s:
            return None
    return s[rng.randrange(len(s))]


def apply_checked(step: Step, states: States) -> States | None:
    """``states`` after ``step``, or None if the step is (nearly) a no-op on them, empties
    too many lists or lets values grow past the bound."""
    op, k = step
    fn = op.fn
    total = len(states)
    new = [fn(s, k) for s in states]
    changed = list(map(operator.ne, new, states)).count(True)
    if changed * 3 < total:
        return None  # (nearly) a no-op on typical inputs
    if [len(s) >= 2 for s in new].count(True) * 3 < total * 2:
        return None  # empties too many lists or leaves too little to work on
    if op.category == "map":
        hi = max(map(max, filter(None, new)), default=0)
        lo = min(map(min, filter(None, new)), default=0)
        if max(hi, -lo) > MAX_ABS_VALUE:
            return None  # (inputs hold values up to ~30: room for a few products)
    return new


def draw_feasible(
    rng: random.Random, op: Op, states: States, tries: int = 8
) -> tuple[int, States] | None:
    """A parameter for ``op`` under which it passes :func:`apply_checked` on ``states``,
    with the resulting states."""
    for _try in range(tries):
        k = draw_param(rng, op, states)
        if k is None:
            continue
        new = apply_checked((op, k), states)
        if new is not None:
            return k, new
    return None


@dataclass(frozen=True)
class StepDrawer:
    """Draws operation sequences from a suite's operations (see the module docstring).

    Attributes:
        transforms: The list operations a step may use.
        returns: The return forms the last step may use.
    """

    transforms: tuple[Op, ...]
    returns: tuple[Op, ...]

    def draw(self, rng: random.Random, n: int, states: States, split: str) -> list[Step] | None:
        """Draw ``n - 1`` operations and a return form whose sequence lies in ``split``, or
        None if this attempt fails (the caller retries with a new ``rng``).

        Args:
            rng: The attempt's random stream.
            n: Number of steps (the last is the return form).
            states: Candidate inputs the parameters are simulated on.
            split: The split the sequence must hash to.
        """
        if n == 1:
            return self.draw_bare_return(rng, states, split)
        ret: Step = (self.returns[rng.randrange(len(self.returns))], 0)
        planned = self.plan(rng, ret[0], n - 1)
        if planned is None:
            return None
        drawn = self.draw_params(rng, planned, ret, states)
        if drawn is None:
            return None
        steps, trace = drawn
        return self.steer_into_split(rng, steps, trace, ret, split)

    def draw_bare_return(self, rng: random.Random, states: States, split: str) -> list[Step] | None:
        """A 1-step task: a return form in ``split`` with >= 3 distinct outputs on ``states``."""
        order = list(self.returns)
        rng.shuffle(order)
        for ret_op in order:
            if split_of([(ret_op, 0)]) == split and distinct_outputs(ret_op, states) >= 3:
                return [(ret_op, 0)]
        return None

    def plan(self, rng: random.Random, ret: Op, count: int) -> list[Op] | None:
        """``count`` operations drawn backwards from the return form ``ret``, in program
        order, each able to matter given what follows it; None if no operation fits."""
        later: list[Op] = []  # later[-1] is the step right after the one being drawn
        seen = observed_by_return(ret)
        for _ in range(count):
            cands = self.plan_candidates(later, seen)
            if not cands:
                return None
            later.append(cands[rng.randrange(len(cands))])
            seen = observed_before(later[-1], seen)
        return later[::-1]

    def plan_candidates(self, later: list[Op], seen: frozenset[str]) -> list[Op]:
        """Operations that may come right before ``later`` (in reverse program order) when
        the rest of the program observes ``seen`` of the list."""
        nxt = merge_group(later[-1]) if later else None
        # the next step that is not an element-wise map: a reordering there overrides (or
        # undoes) one here ("reverse, add 3, reverse" is just "add 3")
        after = next((merge_group(o) for o in reversed(later) if o.name not in ELEMENTWISE), None)
        return [
            o for o in self.transforms
            if is_alive(o, seen) and merge_group(o) != nxt
            and not (after == "order" and merge_group(o) == "order")
        ]

    def draw_params(
        self, rng: random.Random, planned: list[Op], ret: Step, states: States
    ) -> tuple[list[Step], list[States]] | None:
        """Parameters for ``planned``, drawn forwards while simulating ``states``: the steps
        and the trace (``trace[i]``: the states before step ``i``; the last entry, after
        every step); None if some position has no feasible operation."""
        trace = [states]
        steps: list[Step] = []
        for i, op in enumerate(planned):
            drawn = draw_feasible(rng, op, trace[-1])
            if drawn is None:  # e.g. a filter on lists already short: substitute an operation
                substitute = self.substitute(rng, steps, planned, i, ret, trace[-1])
                if substitute is None:
                    return None
                op, drawn = substitute
            steps.append((op, drawn[0]))
            trace.append(drawn[1])
        return steps, trace

    def substitute(
        self,
        rng: random.Random,
        steps: list[Step],
        planned: list[Op],
        i: int,
        ret: Step,
        states: States,
    ) -> tuple[Op, tuple[int, States]] | None:
        """Another operation for position ``i`` of ``planned`` (after ``steps``) that does
        not merge with its neighbours, leaves no dead line and is feasible on ``states``,
        with its parameter and the resulting states."""
        others = [o for o in self.transforms if o is not planned[i]]
        rng.shuffle(others)
        rest = [(o, 0) for o in planned[i + 1 :]]
        prev = merge_group(steps[-1][0]) if steps else None
        nxt = merge_group(planned[i + 1]) if i + 1 < len(planned) else None
        for op in others:
            if merge_group(op) in (prev, nxt):
                continue
            if has_dead_line([*steps, (op, 0), *rest, ret]):
                continue
            drawn = draw_feasible(rng, op, states, tries=3)
            if drawn is not None:
                return op, drawn
        return None

    def steer_into_split(
        self,
        rng: random.Random,
        steps: list[Step],
        trace: list[States],
        ret: Step,
        split: str,
    ) -> list[Step] | None:
        """``steps`` + ``ret`` once the sequence hashes to ``split``, redrawing the parameter
        of one of the last two parametrised steps until it does; None if it never does or
        the return form has < 3 distinct outputs on the simulated inputs."""
        params = [i for i, (op, _) in enumerate(steps) if op.param != "none"]
        for _try in range(_SPLIT_TRIES):
            if split_of([*steps, ret]) == split:
                return [*steps, ret] if distinct_outputs(ret[0], trace[-1]) >= 3 else None
            if not params:
                return None
            j = params[-1] if len(params) == 1 or rng.random() < 0.6 else params[-2]
            redrawn = redraw_param(rng, steps, trace, j)
            if redrawn is not None:
                steps, trace = redrawn
        return None


def redraw_param(
    rng: random.Random, steps: list[Step], trace: list[States], j: int
) -> tuple[list[Step], list[States]] | None:
    """``steps`` with a new feasible parameter at position ``j`` and the trace re-simulated
    from there; None if the new parameter, or a later step under it, is infeasible."""
    drawn = draw_feasible(rng, steps[j][0], trace[j], tries=1)
    if drawn is None:
        return None
    new_steps = [*steps[:j], (steps[j][0], drawn[0]), *steps[j + 1 :]]
    new_trace = [*trace[: j + 1], drawn[1]]
    for step in new_steps[j + 1 :]:
        nxt_states = apply_checked(step, new_trace[-1])
        if nxt_states is None:
            return None
        new_trace.append(nxt_states)
    return new_steps, new_trace
