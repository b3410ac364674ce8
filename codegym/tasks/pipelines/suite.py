"""The ``pipelines`` task suite: configuration, the generation loop and task assembly.

:meth:`PipelinesSuite.get` generates the ``index``-th task of a split: it draws the number of
steps and the candidate inputs once per task, then per attempt draws a sequence of steps
(:class:`~codegym.tasks.pipelines.generator.StepDrawer`) and chooses test cases that kill
every mutant (:func:`~codegym.tasks.pipelines.oracle.select_cases`), retrying from the next
sub-seed until both succeed.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import random
from collections.abc import Sequence
from typing import Any

from codegym.tasks.base import SuiteKnobs, Task, TaskSuite
from codegym.tasks.pipelines.generator import StepDrawer
from codegym.tasks.pipelines.inputs import make_pool, make_wide_pool
from codegym.tasks.pipelines.ops import (
    OP_SETS,
    OPS,
    SPLITS,
    Op,
    Step,
    split_of,
    step_code,
    step_key,
)
from codegym.tasks.pipelines.oracle import Rejected, select_cases
from sandboxes import IOCase, TestSuite

_MAX_ATTEMPTS = 2000
_ATTEMPTS_PER_LENGTH = 200


def _resolve_ops(
    ops: str | Sequence[str], varied_phrasing: bool | None
) -> tuple[tuple[str, ...], bool]:
    """The operation names of ``ops`` (a set name or a list of names) and whether phrasing
    varies (default: on for ``"full"`` only)."""
    if isinstance(ops, str):
        if ops not in OP_SETS:
            raise ValueError(
                f"unknown ops set {ops!r}: use one of {sorted(OP_SETS)} or a list of names"
            )
        varied = (ops == "full") if varied_phrasing is None else bool(varied_phrasing)
        return OP_SETS[ops], varied
    names = tuple(ops)
    unknown = [n for n in names if n not in OPS]
    if unknown:
        raise ValueError(f"unknown operation(s) {unknown}: choose from {sorted(OPS)}")
    return names, bool(varied_phrasing)


class PipelinesSuite(TaskSuite):
    """Procedural list-pipeline tasks with a horizon knob and disjoint splits.

    Args:
        seed: Seed of the task stream (the split assignment does not depend on it).
        min_steps: Fewest steps per task (the last step is always a return form), >= 1.
        max_steps: Most steps per task (>= ``min_steps``, <= 40).
        ops: ``"basic"`` (12 operations + 5 return forms, the default), ``"full"`` (29 + 10),
            or a sequence of operation names from :data:`OPS` with at least one return form.
        varied_phrasing: Draw each step's English phrasing from several per operation.
            Default: on for ``ops="full"``, off otherwise.
        min_cases: Fewest test cases per task.
        max_cases: Most test cases per task (a task whose mutants need more is regenerated).
        pool_size: Candidate inputs per task from which test cases are chosen.

    Note: for very short horizons the space of sequences is small (1-step tasks are a bare
    return form), so a split may hold few or none of them; generation then draws another
    length, or raises ``ValueError`` when ``min_steps..max_steps`` allows nothing in a split.
    """

    name = "pipelines"
    supports_horizon = True
    supports_seed = True

    @classmethod
    def config_kwargs(cls, config: SuiteKnobs) -> dict[str, Any]:
        """``min_steps``/``max_steps``/``seed`` from ``config`` (the fields it sets): a task's
        steps are its lines."""
        given = {"min_steps": config.min_lines, "max_steps": config.max_lines, "seed": config.seed}
        return {k: v for k, v in given.items() if v is not None}

    def __init__(
        self,
        seed: int = 0,
        min_steps: int = 1,
        max_steps: int = 12,
        ops: str | Sequence[str] = "basic",
        varied_phrasing: bool | None = None,
        min_cases: int = 6,
        max_cases: int = 12,
        pool_size: int = 48,
    ) -> None:
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ValueError(f"seed must be an int, got {seed!r}")
        for label, v in (("min_steps", min_steps), ("max_steps", max_steps)):
            if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= 40:
                raise ValueError(f"{label} must be an int in [1, 40], got {v!r}")
        if min_steps > max_steps:
            raise ValueError(f"min_steps ({min_steps}) must be <= max_steps ({max_steps})")
        if not 1 <= min_cases <= max_cases:
            raise ValueError(f"need 1 <= min_cases <= max_cases, got {min_cases}, {max_cases}")
        if pool_size < max(16, max_cases):
            raise ValueError(f"pool_size must be >= max(16, max_cases), got {pool_size}")
        names, varied = _resolve_ops(ops, varied_phrasing)
        self.ops_list: tuple[Op, ...] = tuple(OPS[n] for n in dict.fromkeys(names))
        self.transforms: tuple[Op, ...] = tuple(o for o in self.ops_list if not o.is_return)
        self.returns: tuple[Op, ...] = tuple(o for o in self.ops_list if o.is_return)
        if not self.returns:
            raise ValueError("ops must include at least one return form (e.g. 'ret_sum')")
        if max_steps > 1 and not self.transforms:
            raise ValueError("ops must include at least one list operation when max_steps > 1")
        self._drawer = StepDrawer(self.transforms, self.returns)
        self.seed = seed
        self.min_steps = min_steps
        self.max_steps = max_steps
        self.varied_phrasing = varied
        self.min_cases = min_cases
        self.max_cases = max_cases
        self.pool_size = pool_size
        #: Generation counters (tasks, attempts and why attempts were rejected).
        self.stats: collections.Counter[str] = collections.Counter()
        self._get_cached = functools.lru_cache(maxsize=8192)(self._generate)
        self._init_kwargs: dict[str, Any] = {
            "seed": seed, "min_steps": min_steps, "max_steps": max_steps,
            "ops": ops if isinstance(ops, str) else list(names), "varied_phrasing": varied_phrasing,
            "min_cases": min_cases, "max_cases": max_cases, "pool_size": pool_size,
        }

    def __getstate__(self) -> dict[str, Any]:
        """Pickle by constructor arguments (the cache and operation functions stay behind)."""
        return dict(self._init_kwargs)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._init_kwargs.items())
        return f"PipelinesSuite({args})"

    # -- TaskSuite API -------------------------------------------------------------------

    @property
    def splits(self) -> tuple[str, ...]:
        """``("train", "validation", "test")``."""
        return SPLITS

    def size(self, split: str) -> int | None:
        """``None``: every split is unlimited."""
        self.check_split(split)
        return None

    def get(self, split: str, index: int) -> Task:
        """The ``index``-th task of ``split`` (deterministic, cached)."""
        self.check_split(split)
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise ValueError(f"index must be an int >= 0, got {index!r}")
        return self._get_cached(split, index)

    # -- generation ----------------------------------------------------------------------

    def _rng(self, split: str, index: int, attempt: int) -> random.Random:
        key = f"{self.seed}|{split}|{index}|{attempt}".encode()
        return random.Random(int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big"))

    def _generate(self, split: str, index: int) -> Task:
        # The horizon is drawn once per task so that rejections do not skew its distribution;
        # only when a length yields nothing in this split (tiny spaces: 1-step tasks) for
        # _ATTEMPTS_PER_LENGTH attempts is another length drawn. The candidate inputs are
        # drawn once per task; the first 16 drive the simulation while drawing steps.
        rng0 = self._rng(split, index, -1)
        one_step = any(split_of([(r, 0)]) == split for r in self.returns)
        if self.max_steps == 1 and not one_step:
            raise ValueError(
                f"pipelines: no 1-step task (a bare return form) falls in split {split!r} "
                f"with ops {[o.name for o in self.ops_list]}; use max_steps >= 2"
            )
        n = self._draw_length(rng0, one_step)
        pool = make_pool(rng0, self.pool_size, grow=n // 3)
        sim = pool[:16]
        pool.insert(rng0.randint(0, len(pool)), [])  # the empty list is always a candidate
        wide = make_wide_pool(rng0, self.pool_size, grow=n // 3)
        self.stats["tasks"] += 1
        for attempt in range(_MAX_ATTEMPTS):
            rng = self._rng(split, index, attempt)
            if attempt and attempt % _ATTEMPTS_PER_LENGTH == 0:
                n = self._draw_length(rng, one_step)
            self.stats["attempts"] += 1
            steps = self._drawer.draw(rng, n, sim, split)
            if steps is None:
                self.stats["draw_failed"] += 1
                continue
            cases = select_cases(
                rng, steps, pool, wide, transforms=self.transforms, returns=self.returns,
                min_cases=self.min_cases, max_cases=self.max_cases,
            )
            if isinstance(cases, Rejected):
                if cases.reason is not None:
                    self.stats[cases.reason] += 1
                continue
            return self._make_task(rng, split, index, steps, cases)
        raise ValueError(
            f"pipelines: could not generate task {split}/{index} with steps in "
            f"[{self.min_steps}, {self.max_steps}] and ops {[o.name for o in self.ops_list]} "
            f"after {_MAX_ATTEMPTS} attempts; widen the step range or the operation set"
        )

    def _draw_length(self, rng: random.Random, one_step: bool) -> int:
        """A number of steps in ``[min_steps, max_steps]``, not 1 unless some 1-step
        sequence lies in the split (``one_step``)."""
        n = rng.randint(self.min_steps, self.max_steps)
        while n == 1 and not one_step:
            n = rng.randint(self.min_steps, self.max_steps)
        return n

    def _make_task(
        self, rng: random.Random, split: str, index: int, steps: list[Step], cases: list[IOCase]
    ) -> Task:
        lines = []
        for num, (op, k) in enumerate(steps, 1):
            phr = op.phrasings[rng.randrange(len(op.phrasings))] if self.varied_phrasing else op.phrasings[0]
            lines.append(f"    {num}. {phr.format(k=k)}")
        prefix = (
            "def solve(xs):\n"
            '    """Apply these steps, in order, to the list of integers xs.\n'
            "\n" + "\n".join(lines) + '\n    """\n'
        )
        solution = "\n".join(step_code(s) for s in steps)
        return Task(
            task_id=f"pipelines/{split}/{index}",
            prompt=prefix,
            code_prefix=prefix,
            entry_point="solve",
            tests=TestSuite(kind="io", entry_point="solve", cases=tuple(cases)),
            solution=solution,
            metadata={
                "suite": "pipelines",
                "split": split,
                "index": index,
                "steps": len(steps),
                "ops": [step_key(s) for s in steps],
                "seed": self.seed,
            },
        )
