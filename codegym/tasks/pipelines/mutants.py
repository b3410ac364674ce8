"""Single-line mutants of a ``pipelines`` reference solution.

A :class:`Mutant` changes one line of the reference: delete it, duplicate it, swap it with
the next line, replace it by another operation or parameter, by a text edit of it (any other
digit, a sign flip, operator and call flips such as ``sum``/``len``), by a copy of another
line or by an early ``return``; "skip every step" programs apply a return form to the raw
input. Mutants equivalent by algebra (a duplicated idempotent step, a swap of commuting
steps) are not generated. Mutated lines are compiled one at a time (:func:`line_fn`, cached)
and run in-process: they are our own generated code, never a user's.
"""

from __future__ import annotations

import functools
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from codegym.tasks.pipelines.algebra import IDEMPOTENT, commute
from codegym.tasks.pipelines.ops import Op, Step, step_code


@dataclass(frozen=True)
class Mutant:
    """A single-line mutant: start from the reference state before line ``start``, run the
    source lines ``head``, then the reference lines from ``resume`` on."""

    start: int
    head: tuple[str, ...]
    resume: int
    is_delete: bool = False



@functools.lru_cache(maxsize=65536)
def line_fn(line: str) -> tuple[Callable[[Any], Any], bool] | None:
    """One body line compiled on its own as a function of ``xs`` (``(fn, is_return)``), or
    None if it does not compile. Every pipelines line reads and writes only ``xs``, so a
    program is the composition of its lines. Only our own generated lines (and their
    mutants) come here: trusted code, run in-process."""
    body = line.strip()
    is_return = body.startswith("return")
    src = f"def _line(xs):\n    {body}\n" + ("" if is_return else "    return xs\n")
    try:
        code = compile(src, "<pipelines-line>", "exec")
    except SyntaxError:
        return None
    ns: dict[str, Any] = {}
    exec(code, ns)
    return ns["_line"], is_return


#: Operator and call flips applied to a line's text (first occurrence) to build mutants.
_FLIPS: tuple[tuple[str, str], ...] = (
    (" + ", " - "), (" - ", " + "), (" * ", " + "), (" > ", " < "), (" < ", " > "),
    (" > ", " >= "), (" < ", " <= "), (" == ", " != "), (" != ", " == "), ("sum(", "len("),
    ("len(", "sum("), ("max(", "min("), ("min(", "max("), ("[::-1]", ""),
    (", reverse=True", ""), ("sorted(xs)", "sorted(xs, reverse=True)"), ("xs[", "xs[::-1]["),
)
_NEG_LITERAL = re.compile(r"-(?=\d)")
_POS_LITERAL = re.compile(r"(?<=[ (\[:=])(?=\d)")


def textual_variants(line: str) -> list[str]:
    """Edits of one source line: every other digit at each digit position, a sign flip on
    each number, and operator/call flips (see ``_FLIPS``). The line itself is excluded."""
    out: list[str] = []
    for p, c in enumerate(line):
        if c.isdigit():
            out.extend(line[:p] + d + line[p + 1 :] for d in "0123456789" if d != c)
    for m in _NEG_LITERAL.finditer(line):
        out.append(line[: m.start()] + line[m.end() :])
    for m in _POS_LITERAL.finditer(line):
        out.append(line[: m.start()] + "-" + line[m.start() :])
    for a, b in _FLIPS:
        if a in line:
            out.append(line.replace(a, b, 1))
    return [v for v in dict.fromkeys(out) if v != line]



def mutants(
    rng: random.Random, steps: list[Step], transforms: tuple[Op, ...], returns: tuple[Op, ...]
) -> list[Mutant]:
    """Single-line mutants of the reference ``steps`` (see the module docstring), drawing
    replacement parameters from ``rng``; ``transforms`` and ``returns`` are the suite's
    operations."""
    n = len(steps)
    code = [step_code(s) for s in steps]
    muts: list[Mutant] = []
    for j in range(n):
        muts.append(Mutant(j, (), j + 1, is_delete=True))
        if j < n - 1:  # (skipping those equivalent by algebra: idempotent, commuting)
            if steps[j][0].name not in IDEMPOTENT:
                muts.append(Mutant(j + 1, (code[j],), j + 1))  # duplicate
            if not commute(steps[j][0], steps[j + 1][0]):
                muts.append(Mutant(j, (code[j + 1], code[j]), j + 2))  # swap
        alts = [step_code(a) for a in replacements(rng, steps, j, transforms, returns)]
        alts += textual_variants(code[j])
        alts += code  # a copy of another line
        for alt in dict.fromkeys(alts):
            if alt != code[j]:
                muts.append(Mutant(j, (alt,), j + 1))
    for r in returns:  # skip every step
        if n > 1 or r is not steps[-1][0]:
            muts.append(Mutant(0, (step_code((r, 0)),), 1))
    return muts


def replacements(
    rng: random.Random,
    steps: list[Step],
    j: int,
    transforms: tuple[Op, ...],
    returns: tuple[Op, ...],
) -> list[Step]:
    """Steps that may replace step ``j``: the other return forms for a return; for an
    operation, every other operation (with a nearby or random parameter), nearby parameters
    of the same operation, and an early return."""
    op, k = steps[j]
    out: list[Step] = []
    if op.is_return:
        return [(r, 0) for r in returns if r is not op]
    for alt in transforms:
        if alt.param == "none":
            if alt is not op:
                out.append((alt, 0))
        elif alt is op:
            near = (k - 2, k - 1, k + 1, k + 2)
            if alt.param == "int":
                near = tuple(v for v in near if v in alt.domain or 1 <= v <= 12)
            out.extend((alt, v) for v in near)
        else:
            cands = [k] if k != 0 else []
            if alt.param == "int":
                cands = [v for v in cands if v in alt.domain]
                cands.append(alt.domain[rng.randrange(len(alt.domain))])
            else:
                cands.append(k + rng.choice((-2, -1, 1, 2)))
            out.extend((alt, v) for v in dict.fromkeys(cands))
    out.append(steps[-1])  # early return
    return out
