"""One episode of writing a program line by line: the logic :class:`CodePRMEnv` and every
slot of :class:`CodePRMVectorEnv` share.

An env step is four moves, and only two of them touch the outside world:

1. :meth:`Episode.parse` checks the action (pure; ``ValueError`` for an invalid one under
   ``invalid_action="raise"``, a :class:`Move` that ends the episode under ``"end"``);
2. the env scores the new line with its line scorer (the single env: one incremental call;
   the vector env: one batched forward for every slot);
3. when :meth:`Episode.ends_after` the move, the env runs :meth:`Episode.program_after` in
   the sandbox for :meth:`Episode.time_limit` seconds (the vector env: every ending slot in
   parallel);
4. :meth:`Episode.apply` records the move with its score and verdict and returns the
   observation, the reward, the flags and ``info`` (pure).

The reward of a step is split into named terms by one pure function, :func:`reward_terms`:
``dense`` (the line scorer's part), ``test`` (the unit tests, on the final step) and
``shaping_close`` (the closing term of closed shaping, on the final step); the reward is their
sum, and every step's ``info["reward_terms"]`` holds them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
from gymnasium import spaces

from codegym.constants import SUBMIT
from codegym.envs.spaces import CodeText, first_bad_char
from codegym.tasks.base import Task
from codegym.tasks.registry import TaskSuite, load_suite
from codegym.tasks.timing import time_limit
from sandboxes import ExecResult, Status

REWARD_MODES = ("delta", "delta_open", "score", "paper", "none")
TEST_REWARDS = ("binary", "fraction")
INVALID_ACTIONS = ("raise", "end")
POTENTIALS = ("probability", "score")


def potential_of(score: float, potential: str) -> float:
    """The shaping potential Φ of a line score.

    ``"probability"``: a PRM's score on its label scale [−1, 1] read as the probability that
    the prefix is correct, ``(score + 1) / 2`` clipped to [0, 1] — the scale of the binary
    unit-test reward, so a prefix the PRM calls wrong has the potential of a failed program
    (0) and a sure one that of a pass (1). ``"score"``: the raw score.
    """
    if potential == "probability":
        return min(1.0, max(0.0, (score + 1.0) / 2.0))
    return score


def is_neutral_line(line: str) -> bool:
    """True for blank and comment-only lines: they get the neutral reward 0 and label 0.

    Neutral lines are never scored, so writing comments cannot farm dense reward.
    """
    stripped = line.strip()
    return not stripped or stripped.startswith("#")


@dataclass(frozen=True)
class EpisodeConfig:
    """The env arguments that shape an episode, checked once for both envs.

    Raises:
        ValueError: naming the first bad argument, its value and what is allowed.
    """

    reward_mode: str = "delta"
    test_reward: str = "binary"
    potential: str = "probability"
    invalid_action: str = "raise"
    max_lines: int = 64
    max_line_chars: int = 256
    max_prompt_chars: int = 8192
    timeout: float = 5.0
    memory_mb: int = 512

    def __post_init__(self) -> None:
        for name, allowed in (
            ("reward_mode", REWARD_MODES),
            ("potential", POTENTIALS),
            ("invalid_action", INVALID_ACTIONS),
            ("test_reward", TEST_REWARDS),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name}={getattr(self, name)!r} is not one of {allowed}")
        for name in ("max_lines", "max_line_chars", "max_prompt_chars"):
            count = getattr(self, name)
            if not isinstance(count, int) or isinstance(count, bool) or count < 1:
                raise ValueError(f"{name} must be a positive int, got {count!r}")
        for name, unit in (("timeout", " seconds"), ("memory_mb", " MB")):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{name} must be > 0{unit}, got {value!r}")
        object.__setattr__(self, "timeout", float(self.timeout))
        object.__setattr__(self, "memory_mb", int(self.memory_mb))

    def spaces(self) -> tuple[CodeText, spaces.Dict]:
        """``(action_space, observation_space)`` of one episode."""
        action = CodeText(self.max_line_chars, min_length=0)
        observation = spaces.Dict(
            {
                "prompt": CodeText(self.max_prompt_chars, min_length=0, multiline=True),
                "code": CodeText(self.max_lines * (self.max_line_chars + 1), min_length=0, multiline=True),
            }
        )
        return action, observation


def check_render_mode(render_mode: str | None, allowed: Sequence[str]) -> None:
    """Raise ``ValueError`` unless ``render_mode`` is ``None`` or one of ``allowed``."""
    if render_mode is not None and render_mode not in allowed:
        raise ValueError(f"render_mode={render_mode!r} is not one of {list(allowed)}")


class RewardTerms(NamedTuple):
    """The named parts of one step's reward (their sum is the reward)."""

    dense: float
    """The line scorer's part (see the env's ``reward_mode``)."""
    test: float
    """The unit-test reward (final step only)."""
    shaping_close: float
    """The closing term −Φ(last prefix) of closed shaping (final step, ``reward_mode="delta"``)."""

    @property
    def total(self) -> float:
        """The step's reward: ``dense + test + shaping_close``."""
        return self.dense + self.test + self.shaping_close

    def as_dict(self) -> dict[str, float]:
        """``{"dense": ..., "test": ..., "shaping_close": ...}`` (``info["reward_terms"]``)."""
        return {"dense": self.dense, "test": self.test, "shaping_close": self.shaping_close}


def unit_test_reward(test_reward: str, result: ExecResult) -> float:
    """The unit-test reward of a verdict: 1/0 (``"binary"``) or the fraction of tests passed."""
    return (1.0 if result.ok else 0.0) if test_reward == "binary" else result.fraction


def paper_line_rewards(scores: Sequence[float | None]) -> list[float]:
    """The paper's dense reward of each line: its PRM score divided by the number of lines T.

    Neutral (comment/blank) lines have no score and get 0; T counts every line written.
    """
    n = len(scores)
    return [0.0 if s is None else float(s) / n for s in scores]


def reward_terms(
    config: EpisodeConfig,
    scored: bool,
    phi: float,
    score: float | None,
    result: ExecResult | None,
    scores: Sequence[float | None] = (),
) -> tuple[RewardTerms, float]:
    """The reward terms of one step and the potential after it (a pure function).

    Args:
        config: The episode's rules (``reward_mode``, ``potential``, ``test_reward``).
        scored: A line scorer is attached (closed shaping closes only then).
        phi: Φ of the prefix before this step.
        score: The score of the line written at this step (``None``: no line, or a line the
            scorer did not score).
        result: The verdict when the episode ends at this step, else ``None``.
        scores: Every line score of the episode including this step's (``reward_mode="paper"``
            pays ``sum(s_m) / T`` on the final step).

    Returns:
        ``(terms, Φ after this step)``.
    """
    dense, new_phi = 0.0, phi
    if score is not None:
        new_phi = potential_of(score, config.potential)
        if config.reward_mode in ("delta", "delta_open"):
            dense = new_phi - phi
        elif config.reward_mode == "score":
            dense = score
    if result is None:
        return RewardTerms(dense, 0.0, 0.0), new_phi
    if config.reward_mode == "paper":
        dense = sum(paper_line_rewards(scores))
    close = -new_phi if config.reward_mode == "delta" and scored else 0.0
    return RewardTerms(dense, unit_test_reward(config.test_reward, result), close), new_phi


class Move(NamedTuple):
    """A checked action: a line, a submission, or (``invalid_action="end"``) a refused action."""

    line: str | None = None
    """The line to write (``None``: submit, or an invalid action)."""
    invalid: str | None = None
    """Why the action was refused (the episode ends as a failed program, never run)."""

    @property
    def neutral(self) -> bool:
        """A blank or comment line (fed to the scorer, never scored), or no line at all."""
        return self.line is None or is_neutral_line(self.line)


class TaskSource:
    """Where an env's tasks come from: an explicit list, or a split of a suite.

    Args:
        suite: A suite spec or instance (ignored when ``tasks`` is given).
        split: The split to draw from (``None``: ``train`` when the suite has one, else its
            default split).
        suite_kwargs: Constructor arguments of the suite.
        tasks: An explicit, non-empty list of tasks.
    """

    def __init__(
        self,
        suite: str | TaskSuite = "pipelines",
        split: str | None = None,
        suite_kwargs: dict[str, Any] | None = None,
        tasks: Sequence[Task] | None = None,
    ) -> None:
        self.tasks: list[Task] | None
        self.suite: TaskSuite | None
        if tasks is not None:
            if not tasks:
                raise ValueError("tasks must be a non-empty list of Task")
            self.tasks, self.suite, self.split = list(tasks), None, split
        else:
            self.tasks = None
            self.suite = load_suite(suite, **(suite_kwargs or {}))
            wanted = split or ("train" if "train" in self.suite.splits else self.suite.default_split())
            self.split = self.suite.check_split(wanted)

    def suite_names(self) -> set[str]:
        """The suites the tasks come from (for the choice of a default PRM)."""
        if self.tasks is not None:
            return {str(t.metadata.get("suite", "")) for t in self.tasks}
        assert self.suite is not None
        return {self.suite.name}

    def draw(self, rng: np.random.Generator, options: dict[str, Any] | None = None) -> Task:
        """A task: ``options["task"]``, ``options["task_index"]``, or one drawn with ``rng``."""
        options = options or {}
        if "task" in options:
            task = options["task"]
            if not isinstance(task, Task):
                raise ValueError(f"options['task'] must be a Task, got {type(task).__name__}")
            return task
        if self.tasks is not None:
            n = len(self.tasks)
            index = options.get("task_index", int(rng.integers(0, n)))
            if not 0 <= int(index) < n:
                raise ValueError(f"options['task_index']={index} out of range [0, {n})")
            return self.tasks[int(index)]
        assert self.suite is not None and self.split is not None
        if "task_index" in options:
            return self.suite.get(self.split, int(options["task_index"]))
        return self.suite.sample(rng, self.split)


@dataclass
class Episode:
    """The state of one program being written, and the rules of its steps.

    Attributes:
        config: The rules.
        scored: A line scorer is attached (set by the env).
        task: The task (``None`` before the first :meth:`start`).
        lines: The lines written so far.
        scores: Per line, its score (``None``: neutral or no scorer).
        line_dense: Per line, the dense reward term paid at its step.
        phi: Φ of the prefix written so far.
        done: The episode has ended.
        result: The verdict of the ending (``None`` while the episode runs).
    """

    config: EpisodeConfig
    scored: bool = False
    task: Task | None = None
    lines: list[str] = field(default_factory=list)
    scores: list[float | None] = field(default_factory=list)
    line_dense: list[float] = field(default_factory=list)
    phi: float = 0.0
    done: bool = True
    result: ExecResult | None = None

    # ------------------------------------------------------------------ start
    def check_task(self, task: Task) -> None:
        """Raise ``ValueError`` when ``task``'s prompt does not fit the observation space."""
        if len(task.prompt) > self.config.max_prompt_chars:
            raise ValueError(
                f"task {task.task_id!r} has a {len(task.prompt)}-character prompt, more than "
                f"max_prompt_chars={self.config.max_prompt_chars}; raise max_prompt_chars"
            )
        bad = first_bad_char(task.prompt, multiline=True)
        if bad is not None:
            raise ValueError(
                f"task {task.task_id!r} prompt contains {bad!r} (U+{ord(bad):04X}), which text "
                "cannot hold (NUL or a lone surrogate); fix the task file"
            )

    def start(self, task: Task, empty: float | None) -> dict[str, Any]:
        """Start writing ``task``'s program; ``empty`` is the scorer's Φ of the empty program
        (``None`` without a scorer). Returns the reset ``info``."""
        self.check_task(task)
        self.task, self.lines, self.scores, self.line_dense = task, [], [], []
        self.result, self.done = None, False
        self.phi = potential_of(empty, self.config.potential) if empty is not None else 0.0
        return {"task_id": task.task_id, "task": task, "prm_score": empty}

    def obs(self) -> dict[str, str]:
        """The observation: the task's prompt and the code written so far."""
        assert self.task is not None
        return {"prompt": self.task.prompt, "code": "".join(line + "\n" for line in self.lines)}

    # ------------------------------------------------------------------ step
    def parse(self, action: Any) -> Move:
        """Check ``action``: a :class:`Move`, or ``ValueError`` naming what is wrong
        (``invalid_action="raise"``; nothing changes)."""
        if isinstance(action, str) and action == SUBMIT:
            return Move()
        try:
            return Move(line=self._check_line(action))
        except ValueError as exc:
            if self.config.invalid_action == "raise":
                raise
            return Move(invalid=str(exc))

    def _check_line(self, action: Any) -> str:
        if not isinstance(action, str):
            raise ValueError(
                f"action must be one line of code as str, got {type(action).__name__}; "
                "send codegym.SUBMIT to end the episode"
            )
        if "\n" in action or "\r" in action:
            raise ValueError(
                f"action must be a single line without line breaks, got {action[:60]!r}: "
                "send one line per step"
            )
        if len(action) > self.config.max_line_chars:
            raise ValueError(
                f"action has {len(action)} characters, more than max_line_chars="
                f"{self.config.max_line_chars}; shorten the line or raise max_line_chars"
            )
        bad = first_bad_char(action, multiline=False)
        if bad is not None:
            raise ValueError(
                f"action contains character {bad!r} (U+{ord(bad):04X}), which no line of a "
                "program can hold (NUL or a lone surrogate)"
            )
        return action

    def ends_after(self, move: Move) -> bool:
        """Whether ``move`` ends the episode (a submission, an invalid action, or the line
        that reaches ``max_lines``)."""
        return move.line is None or len(self.lines) + 1 >= self.config.max_lines

    def program_after(self, move: Move) -> str:
        """The program to execute when ``move`` ends the episode."""
        assert self.task is not None
        return self.task.program(self.lines + ([move.line] if move.line is not None else []))

    def time_limit(self) -> float:
        """Seconds the program may run: the env's ``timeout``, or the task's calibrated
        ``metadata["time_limit"]`` when larger (:mod:`codegym.tasks.timing`)."""
        assert self.task is not None
        return time_limit(self.task, self.config.timeout)

    def refused(self, move: Move) -> ExecResult:
        """The verdict of an episode ended by an invalid action: failed, never run."""
        assert self.task is not None and move.invalid is not None
        return ExecResult(Status.INVALID_ACTION, 0, self.task.tests.total, "InvalidAction", move.invalid)

    def apply(
        self, move: Move, score: float | None, result: ExecResult | None
    ) -> tuple[dict[str, str], float, bool, bool, dict[str, Any]]:
        """Record ``move`` with its line's ``score`` and, when it ends the episode, the
        program's verdict ``result``; returns ``(obs, reward, terminated, truncated, info)``."""
        if self.done or self.task is None:
            raise RuntimeError("step() called on a finished episode: call reset() first")
        if score is not None and not math.isfinite(score):
            raise RuntimeError(f"the line scorer returned a non-finite score {score}")
        if (result is not None) != self.ends_after(move):
            raise RuntimeError("a verdict is given exactly when the move ends the episode")
        line = move.line
        scores = self.scores + [score] if line is not None else self.scores
        terms, phi = reward_terms(self.config, self.scored, self.phi, score, result, scores)
        info: dict[str, Any] = {"line_index": -1, "prm_score": None, "neutral": True}
        if line is not None:
            self.lines.append(line)
            self.scores.append(score)
            self.line_dense.append(terms.dense if result is None or self.config.reward_mode != "paper" else 0.0)
            self.phi = phi
            info = {"line_index": len(self.lines) - 1, "prm_score": score,
                    "potential": phi if self.scored else None, "neutral": move.neutral}  # fmt: skip
        if move.invalid is not None:
            info["invalid_action"] = move.invalid
        info["reward_terms"] = terms.as_dict()
        if result is not None:
            info.update(self._finish(result, terms))
        terminated = result is not None and line is None
        return self.obs(), terms.total, terminated, result is not None and line is not None, info

    def _finish(self, result: ExecResult, terms: RewardTerms) -> dict[str, Any]:
        """End the episode on ``result``: the final step's extra ``info``."""
        assert self.task is not None
        self.done, self.result = True, result
        return {
            "exec": result.to_dict(),
            "passed": result.ok,
            "task_id": self.task.task_id,
            "num_lines": len(self.lines),
            "shaping_close": terms.shaping_close,
            "line_rewards": self.line_rewards(),
        }

    def line_rewards(self) -> list[float]:
        """The dense reward attributed to each line written (``s_m / T`` for ``"paper"``, the
        per-step dense terms otherwise)."""
        if self.config.reward_mode == "paper":
            return paper_line_rewards(self.scores)
        return list(self.line_dense)

    # ----------------------------------------------------------------- render
    def render_lines(self) -> list[str]:
        """The episode as text lines: the prompt's lines, ``[score] line`` per written line,
        and ``-> verdict`` once the episode has ended."""
        assert self.task is not None
        out = self.task.prompt.rstrip("\n").split("\n")
        for line, score in zip(self.lines, self.scores):
            tag = "      " if score is None else f"{score:+.3f}"
            out.append(f"[{tag}] {line}")
        r = self.result
        if self.done and r is not None and r.status is Status.INVALID_ACTION:
            out.append("-> invalid_action: the program was not run")
        elif self.done and r is not None:
            out.append(f"-> {r.status.value}: {r.passed}/{r.total} tests {r.error_type}".rstrip())
        return out


__all__ = [
    "INVALID_ACTIONS", "POTENTIALS", "REWARD_MODES", "TEST_REWARDS", "Episode", "EpisodeConfig",
    "Move", "RewardTerms", "TaskSource", "check_render_mode", "is_neutral_line", "paper_line_rewards",
    "potential_of", "reward_terms", "unit_test_reward",
]
