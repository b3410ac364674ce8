"""The sandbox contract: test suites, execution results and the ``Sandbox`` interface.

A sandbox runs an *untrusted* program against *trusted* tests and returns a structured
:class:`ExecResult`. Two kinds of test suites exist:

* ``"io"``: input -> expected-output pairs. The candidate's process only ever receives the
  arguments; it sends back its return values in a safe, data-only encoding (never pickle) and
  the trusted harness compares them with the expected values. The expected values never enter
  the candidate's process, so nothing the candidate does can forge a pass.
* ``"assert"``: a trusted ``check(candidate)`` function (HumanEval style). The check code runs
  in the trusted harness; ``candidate`` is a proxy that calls the function living in the
  sandboxed process by value (arguments and results cross as data only).

A pass is declared only by the harness, after every test ran.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sandboxes.status import Status

__all__ = ["ExecResult", "IOCase", "Job", "Sandbox", "SandboxUnavailable", "Status",
           "TestSuite", "check_jobs"]


@dataclass(frozen=True)
class IOCase:
    """One input -> expected-output test: ``entry_point(*args) == expected``.

    ``args`` and ``expected`` must be plain Python literals (None, bool, int, float, str,
    bytes, and lists/tuples/dicts/sets of those) so they can cross process boundaries as data.
    """

    args: tuple[Any, ...]
    expected: Any


@dataclass(frozen=True)
class TestSuite:
    """Trusted tests for one task.

    Attributes:
        kind: ``"io"`` (cases compared by the harness) or ``"assert"`` (a trusted ``check``).
        entry_point: Name of the function under test, defined by the program.
        cases: For ``kind="io"``: the input/expected pairs.
        check: For ``kind="assert"``: source defining ``check(candidate)``.
        helpers: Trusted source executed in the judge's namespace before ``check``
            (e.g. HumanEval prompt helpers such as ``poly`` that the check code calls).
        float_tol: Absolute/relative tolerance for comparing floats in ``io`` cases.
    """

    __test__ = False  # not a pytest class

    kind: Literal["io", "assert"]
    entry_point: str
    cases: tuple[IOCase, ...] = ()
    check: str = ""
    helpers: str = ""
    float_tol: float = 1e-6

    @property
    def total(self) -> int:
        """Number of tests the harness counts (an ``assert`` suite counts as one test)."""
        return len(self.cases) if self.kind == "io" else 1


@dataclass(frozen=True)
class ExecResult:
    """Structured result of one sandboxed execution.

    Attributes:
        status: See :class:`Status`.
        passed: Tests passed (counted by the harness).
        total: Tests in the suite.
        error_type: Exception class name or fault kind (``"SyntaxError"``, ``"Timeout"``,
            ``"WrongAnswer"``, ...); ``""`` on a pass.
        error: Human-readable message (capped).
        stdout_tail: The last bytes of the candidate's stdout+stderr (capped), decoded.
        duration: Wall-clock seconds of the execution.
        metadata: Backend facts: e.g. ``{"backend": "local", "missing_protections": [...]}``.
    """

    status: Status
    passed: int
    total: int
    error_type: str = ""
    error: str = ""
    stdout_tail: str = ""
    duration: float = 0.0
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True iff the harness declared a pass."""
        return self.status is Status.PASSED

    @property
    def fraction(self) -> float:
        """Fraction of tests passed (0.0 when the suite is empty)."""
        return self.passed / self.total if self.total else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (status as its string value)."""
        return {
            "status": self.status.value,
            "passed": self.passed,
            "total": self.total,
            "error_type": self.error_type,
            "error": self.error,
            "stdout_tail": self.stdout_tail,
            "duration": self.duration,
            "metadata": dict(self.metadata),
        }


@dataclass(frozen=True)
class Job:
    """One execution request for :meth:`Sandbox.run_many`."""

    program: str
    tests: TestSuite
    timeout: float | None = None
    memory_mb: int | None = None


class SandboxUnavailable(RuntimeError):
    """A backend (or a protection required by ``strict=True``) cannot run on this host."""


class Sandbox(abc.ABC):
    """Runs untrusted programs against trusted tests.

    Backends: ``local`` (process isolation, rlimits, namespaces, warm fork-server workers),
    ``docker`` (warm containers). Use :func:`sandboxes.make_sandbox` to build one by name.
    A sandbox owns worker processes: close it (or use it as a context manager).
    """

    name: str = "abstract"

    @abc.abstractmethod
    def run(
        self,
        program: str,
        tests: TestSuite,
        *,
        timeout: float | None = None,
        memory_mb: int | None = None,
    ) -> ExecResult:
        """Execute ``program`` and run ``tests`` against it. Thread-safe."""

    def run_many(self, jobs: Iterable[Job]) -> list[ExecResult]:
        """Run many jobs, in parallel where the backend has several workers; order kept."""
        return [self.run(j.program, j.tests, timeout=j.timeout, memory_mb=j.memory_mb) for j in jobs]

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release workers. Idempotent."""

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_jobs(jobs: Sequence[Job]) -> None:
    """Validate user-supplied jobs, raising ``ValueError`` that names the bad one."""
    for i, job in enumerate(jobs):
        if not isinstance(job.program, str):
            raise ValueError(f"jobs[{i}].program must be str, got {type(job.program).__name__}")
        if job.timeout is not None and job.timeout <= 0:
            raise ValueError(f"jobs[{i}].timeout must be > 0 seconds, got {job.timeout}")
