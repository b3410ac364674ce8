"""The ``pipelines`` suite: procedurally generated, seeded, long-horizon list tasks.

Each task asks for ``def solve(xs):`` where ``xs`` is a list of integers; the docstring lists
N numbered steps in plain English ("add 3 to every element", "keep elements greater than 4",
"reverse the list", ..., "return the sum"). The reference solution has exactly one line per
step, so the horizon (number of env steps of a perfect agent) is N, a knob set by
``min_steps``/``max_steps``.

Splits (``train``, ``validation``, ``test``) are disjoint by construction: the split of a task
is a fixed function of a hash of its canonical operation sequence (operations and parameters,
not their phrasing, not the seed), and generation for one split rejects sequences that belong
to another. So no operation sequence ever appears in two splits, whatever the seed.

Tests are input -> expected-output pairs (``TestSuite(kind="io")``), the expected values
computed by the trusted reference. They are strong by construction (weak tests would let a
wrong program earn the full reward):

* the expected outputs take at least 3 distinct values, so no constant answer passes;
* every single-line mutant of the reference that changes its behaviour on ~100 candidate
  inputs (random and adversarial: empty, negatives, duplicates, long lists; then wider
  values and dense integer runs for mutants no ordinary input separates) fails at least one
  test. Mutants: delete a line, duplicate a line, swap adjacent lines, replace a line by
  another operation or parameter, by a text edit of it (any other digit, a sign flip,
  operator and call flips such as ``sum``/``len``), by a copy of another line or by an early
  ``return``, and "skip every step" programs (a return form applied to the raw input).
  Mutated lines are compiled one at a time (cached) and evaluated in-process: they are our
  own generated code. Inputs are added greedily until every such mutant is killed
  (:mod:`~codegym.tasks.pipelines.mutants`, :mod:`~codegym.tasks.pipelines.oracle`);
* every step matters: a task where deleting some line leaves the behaviour unchanged is
  regenerated, and so is a pipeline that empties the list on too many inputs.

A task that fails any of these is regenerated from the next sub-seed. Generation is
deterministic per ``(seed, split, index)`` and cached. Randomness comes from a local
``random.Random`` seeded from a hash of ``(seed, split, index, attempt)`` (no global state).

How a task is drawn (:mod:`~codegym.tasks.pipelines.generator`): the number of steps, then the
return form, then the operations *backwards* so that each can matter given what follows (no
reordering before an order-blind return unless a slice comes between, no map right before
"return the length", no two adjacent steps that merge such as add then subtract), then
parameters *forwards* while simulating 16 inputs (each step must change typical inputs and
keep most lists at >= 2 elements; thresholds are values present at that point; an
infeasible operation is substituted). Known skew: long pipelines (10-12 steps) lean to
maps (``mul`` ~20 % of their steps) and rarely end in "return the length", whose steps
before it must all shrink the list.

The package holds one idea per module: :mod:`~codegym.tasks.pipelines.ops` (the operation
table, steps, splits), :mod:`~codegym.tasks.pipelines.algebra` (what operations observe,
merge, commute), :mod:`~codegym.tasks.pipelines.inputs` (candidate inputs),
:mod:`~codegym.tasks.pipelines.generator` (drawing steps),
:mod:`~codegym.tasks.pipelines.mutants` and :mod:`~codegym.tasks.pipelines.oracle` (the
mutant oracle that chooses test cases) and :mod:`~codegym.tasks.pipelines.suite` (the
suite). Each imports only modules listed before it.
"""

from codegym.tasks.pipelines.mutants import textual_variants
from codegym.tasks.pipelines.ops import (
    OP_SETS,
    OPS,
    SPLIT_FRACTIONS,
    SPLITS,
    Op,
    Step,
    run_steps,
    split_of,
    step_code,
    step_key,
)
from codegym.tasks.pipelines.suite import PipelinesSuite

__all__ = [
    "OPS",
    "OP_SETS",
    "SPLITS",
    "SPLIT_FRACTIONS",
    "Op",
    "PipelinesSuite",
    "Step",
    "run_steps",
    "split_of",
    "step_code",
    "step_key",
    "textual_variants",
]
