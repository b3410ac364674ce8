"""Per-task time limits calibrated from the reference solution's own run time.

A fixed limit (5 s by default) fails a correct but slow program on a loaded machine. As
evalplus does, a task's limit is instead a multiple of what its own reference solution takes,
never under a floor: ``time_limit = max(floor, factor * reference_time)``, measured in the
same sandbox (so under the same load) the programs will run in. The figures are recorded in
the task's metadata (``reference_time``, ``time_limit``, both in seconds), so a suite written
back with :func:`codegym.tasks.jsonl.write_jsonl` keeps them, and :func:`time_limit` is what
the environment applies: the larger of its own timeout and the task's recorded limit.

Example:
    >>> from codegym.tasks.timing import calibrated_limit
    >>> calibrated_limit(0.02), calibrated_limit(3.0)
    (1.0, 12.0)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from codegym.tasks.base import Task
from sandboxes import Job, Sandbox

__all__ = ["DEFAULT_FACTOR", "DEFAULT_FLOOR", "ReferenceTime", "calibrate_time_limits",
           "calibrated_limit", "reference_times", "time_limit"]

DEFAULT_FACTOR = 4.0  #: a task's limit is this many times its reference's own time ...
DEFAULT_FLOOR = 1.0  #: ... and never under this many seconds


@dataclass(frozen=True)
class ReferenceTime:
    """How long a task's reference solution ran in the sandbox.

    Attributes:
        task_id: The task.
        seconds: The reference's wall-clock time (the fastest of the runs that passed; the
            last run's when none passed).
        status: The last run's status (``"passed"`` for a sound reference).
        time_limit: ``max(floor, factor * seconds)``.
    """

    task_id: str
    seconds: float
    status: str
    time_limit: float


def _check(factor: float, floor: float, timeout: float, runs: int) -> None:
    for name, value in (("factor", factor), ("floor", floor), ("timeout", timeout)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ValueError(f"{name} must be a number > 0, got {value!r}")
    if isinstance(runs, bool) or not isinstance(runs, int) or runs < 1:
        raise ValueError(f"runs must be an int >= 1, got {runs!r}")


def calibrated_limit(seconds: float, factor: float = DEFAULT_FACTOR,
                     floor: float = DEFAULT_FLOOR) -> float:
    """``max(floor, factor * seconds)``, rounded up to milliseconds."""
    return max(float(floor), -(-round(factor * seconds * 1e6) // 1000) / 1000)


def reference_times(tasks: Sequence[Task], sandbox: Sandbox, *, factor: float = DEFAULT_FACTOR,
                    floor: float = DEFAULT_FLOOR, timeout: float = 60.0,
                    runs: int = 1) -> list[ReferenceTime]:
    """Run each task's reference solution ``runs`` times with a generous ``timeout`` and
    measure it.

    Args:
        tasks: The tasks (their ``solution`` after their ``code_prefix``).
        sandbox: Where to run them (the backend, and the load, the programs will see).
        factor: Multiple of the reference's time that makes the limit.
        floor: Least limit, seconds.
        timeout: Limit of the measuring runs, seconds.
        runs: Runs per task (the fastest passing one counts: load only ever slows a run).

    Raises:
        ValueError: A bad ``factor``, ``floor``, ``timeout`` or ``runs``.
    """
    _check(factor, floor, timeout, runs)
    jobs = [Job(t.program(t.solution_lines), t.tests, timeout=float(timeout)) for t in tasks]
    results = [sandbox.run_many(jobs) for _ in range(runs)]
    out = []
    for i, task in enumerate(tasks):
        mine = [rs[i] for rs in results]
        passed = [r.duration for r in mine if r.ok]
        seconds = round(min(passed) if passed else mine[-1].duration, 4)  # the limit follows the record
        out.append(ReferenceTime(task.task_id, seconds, mine[-1].status.value,
                                 calibrated_limit(seconds, factor, floor)))
    return out


def calibrate_time_limits(tasks: Sequence[Task], sandbox: Sandbox, *,
                          factor: float = DEFAULT_FACTOR, floor: float = DEFAULT_FLOOR,
                          timeout: float = 60.0, runs: int = 1) -> list[Task]:
    """The tasks with ``metadata["reference_time"]`` and ``metadata["time_limit"]``
    recorded (see :func:`reference_times` for the arguments).

    Raises:
        ValueError: A reference solution that does not pass (its task cannot be calibrated:
            fix the task), or a bad argument.
    """
    times = reference_times(tasks, sandbox, factor=factor, floor=floor, timeout=timeout,
                            runs=runs)
    bad = [t for t in times if t.status != "passed"]
    if bad:
        raise ValueError(
            f"{len(bad)} reference solution(s) do not pass within {timeout} s, e.g. task "
            f"{bad[0].task_id!r} ({bad[0].status}): fix the task, or raise timeout")
    out = []
    for task, t in zip(tasks, times):
        meta: dict[str, Any] = {**task.metadata, "reference_time": t.seconds,
                                "time_limit": t.time_limit}
        out.append(dataclasses.replace(task, metadata=meta))
    return out


def time_limit(task: Task, default: float) -> float:
    """The execution limit for ``task``: ``default``, or the task's recorded
    ``metadata["time_limit"]`` when that is larger."""
    recorded = task.metadata.get("time_limit")
    if isinstance(recorded, (int, float)) and not isinstance(recorded, bool) and recorded > 0:
        return max(float(default), float(recorded))
    return float(default)
