"""Line labels by binary search over prefixes (automated process supervision).

For a sampled response of ``L`` lines, a prefix is *correct* when at least one of ``K``
completions of it (sampled from a :class:`Completer`) passes every unit test. Assuming that a
wrong prefix stays wrong when extended (monotonicity), binary search finds the longest
correct prefix with about ``ceil(log2(L + 1))`` prefix checks instead of ``L``. Code lines up
to it get ``+1``, code lines after it ``-1``; comment and blank lines get the neutral ``0``.
A response that passes gets ``+1`` on every code line.

Prefixes are cut at code-line boundaries only (a comment or blank line cannot change what a
program computes), so the search runs over the ``C <= L`` code lines.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, Protocol, runtime_checkable

import numpy as np

from codegym.config import Config
from codegym.tasks.base import Task
from codegym.tokenization import task_context
from sandboxes import Job, Sandbox


@runtime_checkable
class Completer(Protocol):
    """Any sampler that continues a partial program (normally the policy itself).

    ``complete`` returns ``n`` completions of ``prefix``: each a list of code lines (no
    newlines, no submit sentinel) that follow ``prefix`` in the program
    (``task.program(prefix + completion)`` is what gets executed). All randomness must come
    from ``rng`` so that a labeling run is reproducible (and resumable) from its seed.
    """

    def complete(
        self, task: Task, prefix: Sequence[str], n: int, rng: np.random.Generator
    ) -> list[list[str]]:
        """Sample ``n`` completions of ``prefix`` for ``task``."""
        ...


def is_code_line(line: str) -> bool:
    """True for a line that can change what the program computes (not blank, not a comment)."""
    stripped = line.strip()
    return bool(stripped) and not stripped.startswith("#")


def code_line_indices(lines: Sequence[str]) -> list[int]:
    """Indices (0-based) of the code lines of ``lines``."""
    return [i for i, line in enumerate(lines) if is_code_line(line)]


def labels_for(lines: Sequence[str], correct_code_lines: int) -> list[int]:
    """Labels: ``+1`` for the first ``correct_code_lines`` code lines, ``-1`` for later code
    lines, ``0`` for comment/blank lines."""
    labels: list[int] = []
    seen = 0
    for line in lines:
        if not is_code_line(line):
            labels.append(0)
            continue
        seen += 1
        labels.append(1 if seen <= correct_code_lines else -1)
    return labels


def max_prefix_checks(num_lines: int) -> int:
    """The bound on prefix checks for an ``L``-line response: ``ceil(log2(L + 1)) + 1``."""
    return int(np.ceil(np.log2(num_lines + 1))) + 1


@dataclass(frozen=True)
class LabelConfig(Config):
    """Settings of the labeler.

    Attributes:
        k: Completions sampled (at most) per prefix; a prefix is correct when one passes.
        chunk: Completions sampled per call to the completer; sampling for a prefix stops
            after the first chunk that contains a passing completion. Each chunk is executed
            in parallel through the sandbox pool.
        mode: ``"binary"`` (binary search, default) or ``"linear"`` (check prefixes of 1, 2,
            ... code lines until the first incorrect one; for comparison and tests).
        prefetch: Sample all ``k`` completions of a prefix in one completer call (one batch:
            much faster for an LM on CPU), but still execute them ``chunk`` at a time and stop
            at the first chunk with a pass; completions never executed are dropped and not
            counted. Same distribution of verdicts and executions as lazy sampling.
        timeout: Per-execution time limit in seconds (``None``: the sandbox's default).
        memory_mb: Per-execution memory limit in MiB (``None``: the sandbox's default).
    """

    k: int = 8
    chunk: int = 2
    mode: Literal["binary", "linear"] = "binary"
    prefetch: bool = False
    timeout: float | None = None
    memory_mb: int | None = None

    def validate(self) -> LabelConfig:
        """Raise ``ValueError`` naming a bad setting; returns self (runs on construction)."""
        if not isinstance(self.k, int) or self.k < 1:
            raise ValueError(f"k (completions per prefix) must be an int >= 1, got {self.k!r}")
        if not isinstance(self.chunk, int) or self.chunk < 1:
            raise ValueError(f"chunk (completions per sampling call) must be >= 1, got {self.chunk!r}")
        if self.mode not in ("binary", "linear"):
            raise ValueError(f"mode must be 'binary' or 'linear', got {self.mode!r}")
        if self.timeout is not None and self.timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds or None, got {self.timeout}")
        return self


class PrefixCheck(NamedTuple):
    """The verdict on one prefix.

    Attributes:
        code_lines: Code lines in the prefix (``C`` for the whole response).
        num_lines: Lines in the prefix (comment/blank lines included).
        ok: Whether a passing program was found (the response itself, for the whole response).
        samples: Completions used (executed or deduplicated) for this check (0 for the whole
            response or a cache hit).
        executions: Sandbox executions run for this check.
        cached: The verdict came from the (task, prefix) cache.
    """

    code_lines: int
    num_lines: int
    ok: bool
    samples: int
    executions: int
    cached: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return dict(self._asdict())


@dataclass
class LabeledResponse:
    """One labeled response (a row of the stepwise JSONL once serialised).

    Attributes:
        task: The task.
        lines: The response's lines (what the agent wrote after the code prefix).
        labels: ``+1``/``-1``/``0`` per line.
        passed: The response itself passed every test.
        correct_code_lines: Code lines in the longest correct prefix (``C`` when passed).
        first_error: Index (0-based, into ``lines``) of the first ``-1`` line, or ``None``.
        checks: The prefix checks made, in order (the whole response first).
        mode: ``"binary"`` or ``"linear"``.
    """

    task: Task
    lines: list[str]
    labels: list[int]
    passed: bool
    correct_code_lines: int
    first_error: int | None
    checks: list[PrefixCheck] = field(default_factory=list)
    mode: str = "binary"

    @property
    def code_lines(self) -> int:
        """Number of code lines in the response."""
        return sum(1 for x in self.lines if is_code_line(x))

    @property
    def revised(self) -> bool:
        """Failed, but a non-empty correct prefix exists (the paper's "revised" responses)."""
        return (not self.passed) and self.correct_code_lines > 0

    @property
    def n_completions(self) -> int:
        """Completions sampled for the prefix checks (the response itself not counted)."""
        return sum(c.samples for c in self.checks)

    @property
    def n_executions(self) -> int:
        """Sandbox executions (the response itself included)."""
        return sum(c.executions for c in self.checks)

    @property
    def prefix_checks(self) -> int:
        """Prefix checks made (the whole response included; cache hits included)."""
        return len(self.checks)

    @property
    def linear_prefix_checks(self) -> int:
        """Prefix checks a linear scan would make for this response (same verdicts assumed):
        the whole response, then prefixes of 1, 2, ... code lines up to the first incorrect
        one (or up to ``C - 1``)."""
        if self.passed:
            return 1
        c = self.code_lines
        return 1 + min(self.correct_code_lines + 1, max(c - 1, 0))

    def to_row(self, **extra: Any) -> dict[str, Any]:
        """The stepwise JSONL row (TRL's stepwise layout with labels +1/-1/0, plus codegym fields;
        :func:`codegym.prm.data.trl_row` turns it into what TRL reads).

        ``prompt`` is the task's context (:func:`codegym.tokenization.task_context`: the
        prompt, plus the code prefix when the prompt does not contain it), the text the PRM
        reads before the lines.
        """
        row: dict[str, Any] = {
            "prompt": task_context(self.task),
            "completions": list(self.lines),
            "labels": list(self.labels),
            "task_id": self.task.task_id,
            "first_error": self.first_error,
            "passed": self.passed,
            "revised": self.revised,
            "correct_code_lines": self.correct_code_lines,
            "code_lines": self.code_lines,
            "n_completions": self.n_completions,
            "n_executions": self.n_executions,
            "prefix_checks": self.prefix_checks,
            "linear_prefix_checks": self.linear_prefix_checks,
            "checks": [c.to_dict() for c in self.checks],
            "mode": self.mode,
        }
        row.update(extra)
        return row


class Labeler:
    """Labels responses by binary (or linear) search over prefixes.

    Verdicts are cached per ``(task_id, prefix lines)`` for the labeler's lifetime (use
    :meth:`remember` to restore them from finished rows after a restart). Identical programs
    within one response are executed once.

    Args:
        completer: Sampler of completions (see :class:`Completer`).
        sandbox: Runs the programs (``run_many`` runs a chunk in parallel).
        config: See :class:`LabelConfig`.
    """

    def __init__(self, completer: Completer, sandbox: Sandbox, config: LabelConfig | None = None):
        if not hasattr(completer, "complete"):
            raise ValueError(
                f"completer must have a complete(task, prefix, n, rng) method, got {completer!r}"
            )
        self.completer = completer
        self.sandbox = sandbox
        self.config = config or LabelConfig()
        self._cache: dict[tuple[str, tuple[str, ...]], bool] = {}

    # -- cache -------------------------------------------------------------------------------
    def remember(self, task_id: str, prefix: Sequence[str], ok: bool) -> None:
        """Record a prefix verdict (e.g. restored from a finished row)."""
        self._cache[(task_id, tuple(prefix))] = bool(ok)

    def remember_row(self, row: dict[str, Any]) -> None:
        """Restore the prefix verdicts recorded in a finished row (see :meth:`LabeledResponse.to_row`)."""
        lines = row["lines"] if "line_labels" in row else row["completions"]  # either row format
        for check in row.get("checks", [])[1:]:  # the first check is the whole response
            self.remember(row["task_id"], lines[: check["num_lines"]], check["ok"])

    @property
    def cache_size(self) -> int:
        """Number of cached prefix verdicts."""
        return len(self._cache)

    # -- execution ---------------------------------------------------------------------------
    def _execute(
        self, task: Task, programs: list[str], seen: dict[str, bool]
    ) -> tuple[list[bool], int]:
        """Verdicts for ``programs`` (in parallel), reusing ``seen``; returns (oks, executions)."""
        todo = [p for p in dict.fromkeys(programs) if p not in seen]
        if todo:
            jobs = [
                Job(p, task.tests, timeout=self.config.timeout, memory_mb=self.config.memory_mb)
                for p in todo
            ]
            results = self.sandbox.run_many(jobs)
            if len(results) != len(jobs):
                raise RuntimeError(
                    f"sandbox {self.sandbox!r} returned {len(results)} results for {len(jobs)} jobs"
                )
            for p, r in zip(todo, results):
                seen[p] = r.ok
        return [seen[p] for p in programs], len(todo)

    def _sample(
        self, task: Task, prefix: list[str], n: int, rng: np.random.Generator
    ) -> list[list[str]]:
        completions = self.completer.complete(task, prefix, n, rng)
        if len(completions) != n:
            raise RuntimeError(
                f"completer {self.completer!r} returned {len(completions)} completions, asked {n}"
            )
        return completions

    def check_prefix(
        self,
        task: Task,
        lines: Sequence[str],
        code_lines: int,
        num_lines: int,
        rng: np.random.Generator,
        seen: dict[str, bool],
    ) -> PrefixCheck:
        """Is ``lines[:num_lines]`` correct (one of ``k`` completions passes)?"""
        prefix = list(lines[:num_lines])
        key = (task.task_id, tuple(prefix))
        if key in self._cache:
            return PrefixCheck(code_lines, num_lines, self._cache[key], 0, 0, True)
        k, chunk = self.config.k, self.config.chunk
        samples = executions = 0
        ok = False
        ahead: list[list[str]] = []  # prefetched completions not yet used
        while samples < k and not ok:
            n = min(chunk, k - samples)
            if self.config.prefetch:
                if not ahead:
                    ahead = self._sample(task, prefix, k - samples, rng)
                completions, ahead = ahead[:n], ahead[n:]
            else:
                completions = self._sample(task, prefix, n, rng)
            samples += n
            oks, ran = self._execute(task, [task.program(prefix + list(c)) for c in completions], seen)
            executions += ran
            ok = any(oks)
        self._cache[key] = ok
        return PrefixCheck(code_lines, num_lines, ok, samples, executions, False)

    # -- labeling ----------------------------------------------------------------------------
    def label(
        self, task: Task, lines: Sequence[str], rng: np.random.Generator
    ) -> LabeledResponse:
        """Label one response.

        Args:
            task: The task the response answers.
            lines: The response's lines (after ``task.code_prefix``).
            rng: Generator for the completer (the caller seeds it per response).
        """
        lines = [str(x) for x in lines]
        for i, line in enumerate(lines):
            if "\n" in line or "\r" in line:
                raise ValueError(f"response line {i} contains a line break: {line!r}")
        seen: dict[str, bool] = {}
        code_idx = code_line_indices(lines)
        c = len(code_idx)
        oks, ran = self._execute(task, [task.program(lines)], seen)
        checks = [PrefixCheck(c, len(lines), oks[0], 0, ran, False)]
        if oks[0]:
            return LabeledResponse(
                task, lines, labels_for(lines, c), True, c, None, checks, self.config.mode
            )

        def check(j: int) -> bool:
            # prefix of j code lines: everything up to and including the j-th code line
            res = self.check_prefix(task, lines, j, code_idx[j - 1] + 1, rng, seen)
            checks.append(res)
            return res.ok

        # invariant: prefix lo is taken as correct (lo = 0: the empty prefix, not checked --
        # m* = 0 gives the same labels either way); prefix hi is incorrect (hi = C: the
        # response failed).
        lo, hi = 0, c
        if self.config.mode == "binary":
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if check(mid):
                    lo = mid
                else:
                    hi = mid
        else:
            for j in range(1, c):
                if not check(j):
                    break
                lo = j
        first_error = code_idx[lo] if lo < c else None
        return LabeledResponse(
            task, lines, labels_for(lines, lo), False, lo, first_error, checks, self.config.mode
        )
