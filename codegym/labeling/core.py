"""Line labels by binary search over prefixes (automated process supervision).

For a sampled response of ``L`` lines, a prefix is *correct* when at least one of ``K``
completions of it (sampled from a :class:`Completer`) passes every unit test. Assuming that a
wrong prefix stays wrong when extended (monotonicity), binary search finds the longest
correct prefix with about ``ceil(log2(L + 1))`` prefix checks instead of ``L``. Code lines up
to it get ``+1``, code lines after it ``-1``; comment and blank lines get the neutral ``0``.
A response that passes gets ``+1`` on every code line.

Prefixes are cut at code-line boundaries only (a comment or blank line cannot change what a
program computes), so the search runs over the ``C <= L`` code lines. When first errors come
early a linear scan (1, 2, ... lines until the first incorrect prefix) is cheaper; the default
``mode="auto"`` picks, per response, the search expected to cost fewer executions
(:class:`SearchCost`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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


#: Values of :attr:`LabelConfig.mode`.
SEARCH_MODES = ("auto", "binary", "linear")


@dataclass(frozen=True)
class LabelConfig(Config):
    """Settings of the labeler.

    Attributes:
        k: Completions sampled (at most) per prefix; a prefix is correct when one passes.
        chunk: Completions sampled per call to the completer; sampling for a prefix stops
            after the first chunk that contains a passing completion. Each chunk is executed
            in parallel through the sandbox pool.
        mode: ``"auto"`` (default: per response, whichever of binary search and linear scan
            is expected to cost fewer executions, see :class:`SearchCost`), ``"binary"``
            (binary search) or ``"linear"`` (check prefixes of 1, 2, ... code lines until the
            first incorrect one). All three give the same labels when correctness is
            monotone; they differ in cost only.
        prefetch: Sample all ``k`` completions of a prefix in one completer call (one batch:
            much faster for an LM on CPU), but still execute them ``chunk`` at a time and stop
            at the first chunk with a pass; completions never executed are dropped and not
            counted. Same distribution of verdicts and executions as lazy sampling.
        k_per_line: ``False`` (default): every prefix check samples at most ``k``
            completions. ``True``: a prefix with ``r`` reference lines still to write gets
            ``min(k_max, k * r)`` -- a completer finishes a correct prefix less often the more
            lines are left, so long remainders get more tries (``r`` counts from the task's
            reference solution; 1 for a task without one).
        k_max: Cap on the completions of one check with ``k_per_line`` (``None``: ``8 * k``).
        timeout: Per-execution time limit in seconds (``None``: the sandbox's default).
        memory_mb: Per-execution memory limit in MiB (``None``: the sandbox's default).
    """

    k: int = 8
    chunk: int = 2
    mode: Literal["auto", "binary", "linear"] = "auto"
    prefetch: bool = False
    k_per_line: bool = False
    k_max: int | None = None
    timeout: float | None = None
    memory_mb: int | None = None

    def validate(self) -> LabelConfig:
        """Raise ``ValueError`` naming a bad setting; returns self (runs on construction)."""
        if not isinstance(self.k, int) or self.k < 1:
            raise ValueError(f"k (completions per prefix) must be an int >= 1, got {self.k!r}")
        if self.k_max is not None and (not isinstance(self.k_max, int) or self.k_max < self.k):
            raise ValueError(f"k_max must be an int >= k={self.k} (or None), got {self.k_max!r}")
        if not isinstance(self.chunk, int) or self.chunk < 1:
            raise ValueError(f"chunk (completions per sampling call) must be >= 1, got {self.chunk!r}")
        if self.mode not in SEARCH_MODES:
            raise ValueError(f"mode must be one of {SEARCH_MODES}, got {self.mode!r}")
        if self.timeout is not None and self.timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds or None, got {self.timeout}")
        return self

    def completions_for(self, task: Task, code_lines: int) -> int:
        """Completions a check of a ``code_lines``-line prefix of ``task`` may sample."""
        if not self.k_per_line:
            return self.k
        remaining = max(1, task.horizon - code_lines) if task.horizon else 1
        return min(self.k_max if self.k_max is not None else 8 * self.k, self.k * remaining)


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


def search_checks(mode: str, code_lines: int, correct: int) -> tuple[int, int]:
    """(correct checks, incorrect checks) that ``mode`` makes on a failed response of
    ``code_lines`` code lines whose longest correct prefix has ``correct`` code lines
    (``0 <= correct < code_lines``; the whole response's own run not counted).

    Binary search keeps ``lo`` correct and ``hi`` incorrect and halves ``(lo, hi)``; a linear
    scan checks 1, 2, ... until the first incorrect prefix (at most ``code_lines - 1``).
    """
    if not 0 <= correct < max(code_lines, 1):
        raise ValueError(f"need 0 <= correct < code_lines, got correct={correct}, code_lines={code_lines}")
    if mode == "linear":
        return correct, int(correct + 1 < code_lines)
    if mode != "binary":
        raise ValueError(f"mode must be 'binary' or 'linear', got {mode!r}")
    lo, hi, ok, bad = 0, code_lines, 0, 0
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if mid <= correct:
            lo, ok = mid, ok + 1
        else:
            hi, bad = mid, bad + 1
    return ok, bad


class SearchCost:
    """Expected executions of binary search and linear scan, learned from labeled responses.

    A prefix check that finds a pass stops early (``e_ok`` executions on average), one that
    finds none runs all ``K`` completions (``e_fail``). Which search is cheaper depends on
    where first errors fall: a linear scan pays ``e_ok`` per correct line and one ``e_fail``,
    binary search about ``log2(C)`` checks, half of them failing. With early errors (weak
    policies, short programs) the scan wins; with late errors in long programs the search.

    The distribution of the longest correct prefix ``m`` given ``C`` code lines is estimated
    from the failed responses seen so far: ``P(m | C) ∝ n(C, m) + P_pool(m | C)``, with
    ``P_pool`` the counts of ``m`` over every ``C`` (truncated to ``m < C``) plus a prior of
    weight one, ``∝ 2^-m`` (first errors early: what the policies of ``codegym reproduce``
    write on 2-8-line ``pipelines`` tasks, where binary search cost 1.8-2x a linear scan).
    ``e_ok`` and ``e_fail`` are the means of the executed (not cached) checks so far,
    ``chunk`` and ``k`` before any. Before any history the scan is chosen for short programs
    and the search for long ones; a run of a few dozen responses learns its own distribution.

    Args:
        k: Completions per prefix check.
        chunk: Completions executed per round (the cost of a check whose first chunk passes).
    """

    def __init__(self, k: int, chunk: int) -> None:
        self.k, self.chunk = int(k), int(chunk)
        self._by_c: dict[int, dict[int, int]] = {}
        self._pool: dict[int, int] = {}
        self._cost = {True: [0.0, 0], False: [0.0, 0]}  # ok -> [executions, checks]

    def observe(self, code_lines: int, correct: int, checks: Sequence[tuple[bool, int, bool]]) -> None:
        """Record a labeled response: its ``code_lines``, longest correct prefix, and its prefix
        checks as ``(ok, executions, cached)`` (the whole response's own run excluded)."""
        for ok, executions, cached in checks:
            if not cached:
                self._cost[bool(ok)][0] += executions
                self._cost[bool(ok)][1] += 1
        if correct < code_lines:  # failed responses only (a pass costs one run either way)
            row = self._by_c.setdefault(code_lines, {})
            row[correct] = row.get(correct, 0) + 1
            self._pool[correct] = self._pool.get(correct, 0) + 1

    def check_cost(self, ok: bool) -> float:
        """Mean executions of a correct (``ok``) or incorrect prefix check."""
        total, n = self._cost[ok]
        if n:
            return total / n
        return float(min(self.chunk, self.k)) if ok else float(self.k)

    def distribution(self, code_lines: int) -> list[float]:
        """``P(m | C)`` for ``m = 0 .. C - 1`` (see the class docstring)."""
        prior = [0.5**m for m in range(code_lines)]
        pool = [self._pool.get(m, 0) + p / sum(prior) for m, p in enumerate(prior)]
        pool = [p / sum(pool) for p in pool]
        own = self._by_c.get(code_lines, {})
        weights = [own.get(m, 0) + pool[m] for m in range(code_lines)]
        return [w / sum(weights) for w in weights]

    def expected(self, mode: str, code_lines: int) -> float:
        """Expected executions of ``mode`` on a failed response with ``code_lines`` code lines."""
        if code_lines <= 1:
            return 0.0
        e_ok, e_fail = self.check_cost(True), self.check_cost(False)
        total = 0.0
        for m, p in enumerate(self.distribution(code_lines)):
            ok, bad = search_checks(mode, code_lines, m)
            total += p * (ok * e_ok + bad * e_fail)
        return total

    def choose(self, code_lines: int) -> str:
        """The mode with the lower expected cost (``"linear"`` on a tie: fewer checks)."""
        linear, binary = self.expected("linear", code_lines), self.expected("binary", code_lines)
        return "binary" if binary < linear else "linear"


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
        #: What each search mode is expected to cost (learned from the responses labeled so far;
        #: ``mode="auto"`` picks the cheaper one per response).
        self.search_cost = SearchCost(self.config.k, self.config.chunk)

    # -- cache -------------------------------------------------------------------------------
    def remember(self, task_id: str, prefix: Sequence[str], ok: bool) -> None:
        """Record a prefix verdict (e.g. restored from a finished row)."""
        self._cache[(task_id, tuple(prefix))] = bool(ok)

    def remember_row(self, row: dict[str, Any]) -> None:
        """Restore the prefix verdicts recorded in a finished row (see :meth:`LabeledResponse.to_row`)."""
        lines = row["lines"] if "line_labels" in row else row["completions"]  # either row format
        checks = row.get("checks", [])[1:]  # the first check is the whole response
        for check in checks:
            self.remember(row["task_id"], lines[: check["num_lines"]], check["ok"])
        self.search_cost.observe(
            row["code_lines"], row["correct_code_lines"],
            [(c["ok"], c["executions"], c["cached"]) for c in checks],
        )  # fmt: skip

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
        k, chunk = self.config.completions_for(task, code_lines), self.config.chunk
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
        mode = self.config.mode if self.config.mode != "auto" else self.search_cost.choose(c)
        oks, ran = self._execute(task, [task.program(lines)], seen)
        checks = [PrefixCheck(c, len(lines), oks[0], 0, ran, False)]
        if oks[0]:
            return LabeledResponse(task, lines, labels_for(lines, c), True, c, None, checks, mode)

        def check(j: int) -> bool:
            # prefix of j code lines: everything up to and including the j-th code line
            res = self.check_prefix(task, lines, j, code_idx[j - 1] + 1, rng, seen)
            checks.append(res)
            return res.ok

        lo = self._search(mode, c, check)
        self.search_cost.observe(c, lo, [(x.ok, x.executions, x.cached) for x in checks[1:]])
        first_error = code_idx[lo] if lo < c else None
        return LabeledResponse(task, lines, labels_for(lines, lo), False, lo, first_error, checks, mode)

    @staticmethod
    def _search(mode: str, c: int, check: Callable[[int], bool]) -> int:
        """The longest correct prefix (in code lines) of a failed response with ``c`` code
        lines, by binary search or a linear scan with ``check(j)`` (prefix of ``j`` lines)."""
        # invariant: prefix lo is taken as correct (lo = 0: the empty prefix, not checked --
        # m* = 0 gives the same labels either way); prefix hi is incorrect (hi = C: the
        # response failed).
        lo, hi = 0, c
        if mode == "binary":
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if check(mid):
                    lo = mid
                else:
                    hi = mid
            return lo
        for j in range(1, c):
            if not check(j):
                break
            lo = j
        return lo
