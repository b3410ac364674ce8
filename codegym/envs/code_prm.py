"""``CodePRM-v1``: write a program one line per step, rewarded per line and by unit tests."""

from __future__ import annotations

import math
import os
import warnings
from typing import Any

import gymnasium as gym
from gymnasium import spaces

from codegym.constants import SUBMIT
from codegym.envs.scoring import LineScorer
from codegym.envs.spaces import CodeText, first_bad_char
from codegym.tasks.base import Task
from codegym.tasks.registry import TaskSuite, load_suite
from codegym.tasks.timing import time_limit
from sandboxes import ExecResult, Sandbox, make_sandbox

REWARD_MODES = ("delta", "delta_open", "score", "none")
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


class CodePRMEnv(gym.Env[dict[str, str], str]):
    """Write a program line by line; a PRM scores each line, unit tests score the program.

    ## Description

    Each episode presents one programming task (from a suite such as the built-in
    ``pipelines`` or ``humaneval``). The agent writes the program **one line of code per
    step**, after the task's code prefix (for HumanEval and ``pipelines``: the signature and
    docstring; for MBPP-style tasks: nothing). An optional Process Reward Model (PRM), or any
    :class:`~codegym.envs.scoring.LineScorer`, scores every line as it is written (a dense
    reward); when the agent submits, the program runs against the task's unit tests in a
    sandbox (the terminal reward). This is the setting of "Process Supervision-Guided Policy
    Optimization for Code Generation" (Dai et al.).

    ## Action Space

    ``CodeText(max_length=max_line_chars, min_length=0)`` (a Gymnasium ``Text`` space that holds
    any Unicode; see :class:`codegym.envs.spaces.CodeText`): one line of code without its
    newline (indentation included, e.g. ``"    return sum(xs)"``). The sentinel
    :data:`codegym.SUBMIT` (``"\\x04"``, which can never be a line of code) ends the episode;
    an LLM agent maps its EOS token to it. An invalid action (not a ``str``, contains a line
    break, too long, a NUL or a lone surrogate) raises ``ValueError`` naming the problem
    and leaves the episode unchanged (``invalid_action="raise"``, the default); with
    ``invalid_action="end"`` it ends the episode instead, scored as a failed program that was
    never run (an RL learner's sampled line can be invalid; the learner keeps running).

    ## Observation Space

    ``Dict({"prompt": CodeText, "code": CodeText})`` with ``min_length=0``, any Unicode text
    (prompts with emoji, CJK, typographic quotes work): ``prompt`` is the task text the agent
    reads; ``code`` is the lines written so far, each followed by ``"\\n"``. With
    ``gym.make_vec(..., vectorization_mode="async")`` pass
    ``vector_kwargs={"shared_memory": False}``: Gymnasium's shared-memory buffers cannot carry
    text, so making the vector env with them raises ``ValueError`` saying so (they would
    return stale observations).

    ## Rewards

    Per step, the dense reward of the new line (0 when no scorer is attached and for blank
    or comment lines, which are never scored). By default (``prm="auto"``) the scorer on the
    ``pipelines`` suite is the **embedded default PRM** shipped with codegym
    (:func:`codegym.defaults.prm_dir`, trained on the embedded default policy's own responses),
    so ``gym.make("CodePRM-v1")`` gives dense rewards out of the box; ``prm=None`` turns them
    off. No default PRM applies to other suites (``humaneval``, ``jsonl:...``): there
    ``prm="auto"`` attaches none and warns once; pass ``prm=DIR`` (a PRM trained with
    ``codegym train-prm``) or ``prm="default"`` to force the embedded one.
    ``env.unwrapped.prm_source`` says which PRM is attached.

    * ``reward_mode="delta"`` (default): potential-based shaping
      ``r_m = Φ(prefix_m) − Φ(prefix_{m−1})`` with Φ the PRM's estimate that the prefix is
      correct (``potential="probability"``, the default: ``(score + 1) / 2`` in [0, 1], the
      unit-test reward's scale; ``potential="score"``: the raw score), **closed** at the end:
      the terminal state has potential 0 on every way an episode ends (submission,
      truncation, an invalid action under ``invalid_action="end"``), so the final step also
      carries ``−Φ(last prefix)``. The dense return of every episode is then the constant
      ``−Φ(empty)``: the PRM cannot change which programs are best (Ng et al., 1999), it
      only moves credit between lines. ``info["shaping_close"]`` holds the closing term.
      On the probability scale a prefix the PRM calls wrong has Φ = 0, so ending an episode
      there earns nothing; with raw scores in [−1, 1] it would earn +1 at once, which an RL
      learner that cannot see correctness exploits by ending episodes early.
    * ``"delta_open"``: the same differences without the closing term (the behaviour of
      ``CodePRM-v0``). The dense return is ``Φ(last) − Φ(empty)``: the PRM's opinion of the
      final program becomes part of the objective, and an agent can gain by ending episodes
      early. For ablations only.
    * ``"score"``: the raw per-line score Φ(prefix_m) (the exploitable scheme, for ablations;
      the paper's 1/T normalisation is applied by the agent from ``info["prm_score"]``).
    * ``"none"``: no dense reward.

    On the final step (submission or truncation) the unit-test reward is added:
    ``test_reward="binary"`` gives 1 for a pass and 0 otherwise, ``"fraction"`` gives the
    fraction of tests passed. Only the sandbox's harness declares a pass. An episode ended by
    an invalid action gets unit-test reward 0, the same as a program that fails every test.

    ## Starting State

    ``reset`` draws a task from the suite's ``split`` with the env's seeded generator (or
    takes ``options={"task": Task}`` / ``options={"task_index": i}``); the code is empty.
    The default split is ``train`` when the suite has one (``gym.make`` builds training
    envs; evaluate with ``split="test"`` or ``codegym eval``, whose default is the test
    split), else the suite's only split (``test`` for ``humaneval``).

    ## Episode End

    * Termination: the agent sends :data:`codegym.SUBMIT`; the program is executed. With
      ``invalid_action="end"`` an invalid action terminates too (the program is not run;
      ``info["invalid_action"]`` holds the reason and ``info["exec"]["status"]`` is
      ``"invalid_action"``).
    * Truncation: the program reached ``max_lines`` lines; the program **is still executed**
      so the agent gets its unit-test outcome. ``max_lines`` alone controls the episode:
      ``CodePRM-v1`` is registered without ``max_episode_steps``, so no ``TimeLimit`` wrapper
      can cut an episode without running its program. (Passing ``max_episode_steps`` to
      ``gym.make`` adds one; keep it above ``max_lines``.)

    ``info`` at every step: ``line_index`` (0-based index of the line just written, -1 on a
    bare submission), ``prm_score`` (Φ after this line, ``None`` when not scored), ``neutral``.
    At the end also: ``exec`` (the :class:`sandboxes.ExecResult` as a dict: status, passed,
    total, error type, duration, ...), ``passed`` (bool), ``task_id``, ``num_lines``.

    ## Arguments

    | Argument         | Default       | Meaning                                                        |
    |------------------|---------------|----------------------------------------------------------------|
    | ``suite``        | ``"pipelines"`` | suite spec (``pipelines``, ``humaneval``, ``jsonl:PATH``) or a ``TaskSuite`` |
    | ``split``        | ``None``      | split to draw tasks from (``None``: ``train`` when present, else the suite's only split) |
    | ``suite_kwargs`` | ``None``      | constructor arguments of the suite (e.g. ``max_steps``)        |
    | ``tasks``        | ``None``      | an explicit list of ``Task`` (overrides ``suite``)             |
    | ``prm``          | ``"auto"``    | ``"auto"`` (embedded PRM on ``pipelines``, none elsewhere), ``"default"``, a PRM checkpoint directory, any ``LineScorer``, or ``None`` |
    | ``prm_device``   | ``"cpu"``     | torch device of a PRM loaded from a directory                  |
    | ``reward_mode``  | ``"delta"``   | ``delta`` / ``delta_open`` / ``score`` / ``none``              |
    | ``test_reward``  | ``"binary"``  | ``binary`` / ``fraction``                                      |
    | ``sandbox``      | ``"local"``   | ``local`` / ``docker`` or a ``Sandbox`` instance (shared, not closed) |
    | ``timeout``      | ``5.0``       | seconds per program execution (a task's calibrated ``metadata["time_limit"]`` raises it, see ``codegym.tasks.timing``) |
    | ``memory_mb``    | ``512``       | memory budget per program execution                            |
    | ``max_lines``    | ``64``        | truncation: lines per program                                  |
    | ``max_line_chars`` | ``256``     | longest accepted line                                          |
    | ``max_prompt_chars`` | ``8192``  | longest accepted prompt                                        |
    | ``potential``    | ``"probability"`` | Φ of ``delta`` shaping: ``probability`` ((score + 1) / 2) / ``score`` (raw) |
    | ``invalid_action`` | ``"raise"`` | ``raise`` (``ValueError``, episode unchanged) / ``end`` (fails the episode) |
    | ``render_mode``  | ``None``      | ``"ansi"`` (returns text) or ``"human"`` (prints the prompt at reset, each line as it is written, the verdict at the end) |

    ## Version History

    * v1: ``reward_mode="delta"`` is closed (Φ of the terminal state is 0, so the dense
      return is a constant and shaping cannot be gamed by ending episodes early);
      Φ is the probability-scale PRM score (``potential``); ``invalid_action`` added;
      ``prm="auto"`` by default (the embedded default PRM on ``pipelines``: dense rewards out
      of the box); the default split is ``train`` when the suite has one; registered without
      ``max_episode_steps`` (``max_lines`` alone ends an episode, and the program always
      runs); spaces hold any Unicode text (``CodeText``); ``render_mode="human"`` prints each
      line once and the verdict. ``CodePRM-v0`` stays registered with its old defaults
      (``reward_mode="delta_open"``, ``potential="score"``, ``prm=None``, the suite's test
      split, ``max_episode_steps=65``).
    * v0: initial version.
    """

    metadata = {"render_modes": ["ansi", "human"], "render_fps": 4}

    def __init__(
        self,
        suite: str | TaskSuite = "pipelines",
        split: str | None = None,
        suite_kwargs: dict[str, Any] | None = None,
        tasks: list[Task] | None = None,
        prm: str | os.PathLike[str] | LineScorer | None = "auto",
        prm_device: str = "cpu",
        reward_mode: str = "delta",
        test_reward: str = "binary",
        sandbox: str | Sandbox = "local",
        timeout: float = 5.0,
        memory_mb: int = 512,
        max_lines: int = 64,
        max_line_chars: int = 256,
        max_prompt_chars: int = 8192,
        invalid_action: str = "raise",
        potential: str = "probability",
        render_mode: str | None = None,
    ) -> None:
        self._check_arguments(
            reward_mode=reward_mode, potential=potential, invalid_action=invalid_action,
            test_reward=test_reward, render_mode=render_mode, max_lines=max_lines,
            max_line_chars=max_line_chars, max_prompt_chars=max_prompt_chars, timeout=timeout,
        )
        self._set_tasks(suite, split, suite_kwargs, tasks)
        self.reward_mode = reward_mode
        self.invalid_action = invalid_action
        self.potential = potential
        self.test_reward = test_reward
        self.timeout = float(timeout)
        self.memory_mb = int(memory_mb)
        self.max_lines = max_lines
        self.max_line_chars = max_line_chars
        self.max_prompt_chars = max_prompt_chars
        self.render_mode = render_mode

        self._sandbox_spec = sandbox
        self._sandbox: Sandbox | None = sandbox if isinstance(sandbox, Sandbox) else None
        self._owns_sandbox = not isinstance(sandbox, Sandbox)

        self._attach_scorer(prm, prm_device, reward_mode)

        self.action_space = CodeText(max_line_chars, min_length=0)
        self.observation_space = spaces.Dict(
            {
                "prompt": CodeText(max_prompt_chars, min_length=0, multiline=True),
                "code": CodeText(max_lines * (max_line_chars + 1), min_length=0, multiline=True),
            }
        )
        self._rendered = -1  # human mode: lines already printed (-1: not even the prompt)

        self.task: Task | None = None
        self.lines: list[str] = []
        self.scores: list[float | None] = []
        self._phi = 0.0
        self._done = True
        self.last_result: ExecResult | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def _check_arguments(
        cls,
        *,
        reward_mode: str,
        potential: str,
        invalid_action: str,
        test_reward: str,
        render_mode: str | None,
        max_lines: int,
        max_line_chars: int,
        max_prompt_chars: int,
        timeout: float,
    ) -> None:
        """Raise ``ValueError`` naming the first bad constructor argument."""
        for name, value, allowed in (
            ("reward_mode", reward_mode, REWARD_MODES),
            ("potential", potential, POTENTIALS),
            ("invalid_action", invalid_action, INVALID_ACTIONS),
            ("test_reward", test_reward, TEST_REWARDS),
        ):
            if value not in allowed:
                raise ValueError(f"{name}={value!r} is not one of {allowed}")
        if render_mode is not None and render_mode not in cls.metadata["render_modes"]:
            raise ValueError(
                f"render_mode={render_mode!r} is not one of {cls.metadata['render_modes']}"
            )
        for name, count in (
            ("max_lines", max_lines),
            ("max_line_chars", max_line_chars),
            ("max_prompt_chars", max_prompt_chars),
        ):
            if not isinstance(count, int) or count < 1:
                raise ValueError(f"{name} must be a positive int, got {count!r}")
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")

    def _set_tasks(
        self,
        suite: str | TaskSuite,
        split: str | None,
        suite_kwargs: dict[str, Any] | None,
        tasks: list[Task] | None,
    ) -> None:
        """Where tasks come from: an explicit list, or a suite's split."""
        if tasks is not None:
            if not tasks:
                raise ValueError("tasks must be a non-empty list of Task")
            self._tasks: list[Task] | None = list(tasks)
            self.suite: TaskSuite | None = None
            self.split = split
        else:
            self._tasks = None
            self.suite = load_suite(suite, **(suite_kwargs or {}))
            self.split = self.suite.check_split(split or self._default_split(self.suite))

    def _attach_scorer(
        self, prm: str | os.PathLike[str] | LineScorer | None, prm_device: str, reward_mode: str
    ) -> None:
        """Set :attr:`scorer` and :attr:`prm_source` from the ``prm`` argument."""
        self.scorer: LineScorer | None
        #: Which PRM gives the dense reward: "none", "embedded default", a directory, or the
        #: scorer's class name.
        self.prm_source: str
        if prm is None or isinstance(prm, LineScorer):
            self.scorer = prm
            self.prm_source = "none" if prm is None else type(prm).__name__
        elif isinstance(prm, (str, os.PathLike)):
            # (called here, not through a helper: its warning points at the env's caller)
            path = resolve_prm(os.fspath(prm), self._suite_names(), reward_mode)
            if path is None:
                self.scorer, self.prm_source = None, "none"
            else:
                from codegym.prm import load_line_scorer

                self.scorer = load_line_scorer(path, device=prm_device)
                self.prm_source = "embedded default" if prm in ("auto", "default") else path
        else:
            raise ValueError(
                "prm must be 'auto', 'default', None, a checkpoint directory or a LineScorer, "
                f"got {type(prm).__name__}"
            )

    # ------------------------------------------------------------------ helpers
    #: ``split=None`` means ``train`` when the suite has one (``gym.make`` builds training
    #: envs); ``None`` here means the suite's own default (its test split), as in v0.
    _preferred_split: str | None = "train"

    def _default_split(self, suite: TaskSuite) -> str:
        if self._preferred_split is not None and self._preferred_split in suite.splits:
            return self._preferred_split
        return suite.default_split()

    def _suite_names(self) -> set[str]:
        if self._tasks is not None:
            return {str(t.metadata.get("suite", "")) for t in self._tasks}
        assert self.suite is not None
        return {self.suite.name}

    @property
    def sandbox(self) -> Sandbox:
        """The sandbox that executes programs (built on first use)."""
        if self._sandbox is None:
            self._sandbox = make_sandbox(self._sandbox_spec, workers=1)
        return self._sandbox

    def _obs(self) -> dict[str, str]:
        assert self.task is not None
        return {"prompt": self.task.prompt, "code": "".join(line + "\n" for line in self.lines)}

    def _draw_task(self, options: dict[str, Any] | None) -> Task:
        options = options or {}
        if "task" in options:
            task = options["task"]
            if not isinstance(task, Task):
                raise ValueError(f"options['task'] must be a Task, got {type(task).__name__}")
            return task
        if self._tasks is not None:
            n = len(self._tasks)
            index = options.get("task_index", int(self.np_random.integers(0, n)))
            if not 0 <= int(index) < n:
                raise ValueError(f"options['task_index']={index} out of range [0, {n})")
            return self._tasks[int(index)]
        assert self.suite is not None and self.split is not None
        if "task_index" in options:
            return self.suite.get(self.split, int(options["task_index"]))
        return self.suite.sample(self.np_random, self.split)

    def _check_action(self, action: Any) -> str:
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
        if len(action) > self.max_line_chars:
            raise ValueError(
                f"action has {len(action)} characters, more than max_line_chars="
                f"{self.max_line_chars}; shorten the line or raise max_line_chars"
            )
        bad = first_bad_char(action, multiline=False)
        if bad is not None:
            raise ValueError(
                f"action contains character {bad!r} (U+{ord(bad):04X}), which no line of a "
                "program can hold (NUL or a lone surrogate)"
            )
        return action

    def _execute(self) -> tuple[float, dict[str, Any]]:
        assert self.task is not None
        program = self.task.program(self.lines)
        result = self.sandbox.run(
            program, self.task.tests, timeout=time_limit(self.task, self.timeout),
            memory_mb=self.memory_mb
        )
        self.last_result = result
        reward = (1.0 if result.ok else 0.0) if self.test_reward == "binary" else result.fraction
        info = {
            "exec": result.to_dict(),
            "passed": result.ok,
            "task_id": self.task.task_id,
            "num_lines": len(self.lines),
        }
        return reward, info

    # ---------------------------------------------------------------- gym API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, str], dict[str, Any]]:
        super().reset(seed=seed)
        task = self._draw_task(options)
        if len(task.prompt) > self.max_prompt_chars:
            raise ValueError(
                f"task {task.task_id!r} has a {len(task.prompt)}-character prompt, more than "
                f"max_prompt_chars={self.max_prompt_chars}; raise max_prompt_chars"
            )
        bad = first_bad_char(task.prompt, multiline=True)
        if bad is not None:
            raise ValueError(
                f"task {task.task_id!r} prompt contains {bad!r} (U+{ord(bad):04X}), which text "
                "cannot hold (NUL or a lone surrogate); fix the task file"
            )
        self.task = task
        self.lines = []
        self.scores = []
        self.last_result = None
        empty = float(self.scorer.reset(task)) if self.scorer is not None else None
        self._phi = potential_of(empty, self.potential) if empty is not None else 0.0
        self._done = False
        self._rendered = -1
        info = {"task_id": task.task_id, "task": task, "prm_score": empty}
        if self.render_mode == "human":
            self.render()
        return self._obs(), info

    def _closing_term(self) -> float:
        """−Φ(current prefix) under closed shaping (``reward_mode="delta"``), else 0."""
        if self.reward_mode != "delta" or self.scorer is None:
            return 0.0
        return -self._phi

    def _end_invalid(self, reason: str) -> tuple[dict[str, str], float, bool, bool, dict[str, Any]]:
        """``invalid_action="end"``: the episode fails without running the program."""
        assert self.task is not None
        self._done = True
        close = self._closing_term()
        total = self.task.tests.total
        info: dict[str, Any] = {
            "line_index": -1,
            "prm_score": None,
            "neutral": True,
            "invalid_action": reason,
            "exec": {
                "status": "invalid_action", "passed": 0, "total": total, "error_type": "InvalidAction",
                "error": reason, "stdout_tail": "", "duration": 0.0, "metadata": {},
            },
            "passed": False,
            "task_id": self.task.task_id,
            "num_lines": len(self.lines),
            "shaping_close": close,
        }  # fmt: skip
        if self.render_mode == "human":
            self.render()
        return self._obs(), float(close), True, False, info

    def step(self, action: str) -> tuple[dict[str, str], float, bool, bool, dict[str, Any]]:
        if self._done or self.task is None:
            raise RuntimeError("step() called on a finished episode: call reset() first")
        try:
            line = self._check_action(action)
        except ValueError as exc:
            if self.invalid_action == "raise":
                raise
            return self._end_invalid(str(exc))

        if line == SUBMIT:
            self._done = True
            close = self._closing_term()
            reward, info = self._execute()
            info.update(line_index=-1, prm_score=None, neutral=True, shaping_close=close)
            if self.render_mode == "human":
                self.render()
            return self._obs(), reward + close, True, False, info

        self.lines.append(line)
        score: float | None = None
        reward = 0.0
        neutral = is_neutral_line(line)
        if self.scorer is not None:
            if neutral:
                append = getattr(self.scorer, "append", None)
                if append is not None:
                    append(line)
            else:
                score = float(self.scorer.score(line))
                if not math.isfinite(score):
                    raise RuntimeError(f"the line scorer returned a non-finite score {score}")
                phi = potential_of(score, self.potential)
                if self.reward_mode in ("delta", "delta_open"):
                    reward = phi - self._phi
                elif self.reward_mode == "score":
                    reward = score
                self._phi = phi
        self.scores.append(score)
        info: dict[str, Any] = {
            "line_index": len(self.lines) - 1,
            "prm_score": score,
            "potential": self._phi if self.scorer is not None else None,
            "neutral": neutral,
        }
        truncated = len(self.lines) >= self.max_lines
        if truncated:
            self._done = True
            close = self._closing_term()
            test_reward, exec_info = self._execute()
            reward += close + test_reward
            info.update(exec_info)
            info["shaping_close"] = close
        if self.render_mode == "human":
            self.render()
        return self._obs(), float(reward), False, truncated, info

    def _render_lines(self) -> list[str]:
        """The episode as text lines: the prompt's lines, ``[score] line`` per written line,
        and ``-> verdict`` once the episode has ended."""
        assert self.task is not None
        out = self.task.prompt.rstrip("\n").split("\n")
        for line, score in zip(self.lines, self.scores):
            tag = "      " if score is None else f"{score:+.3f}"
            out.append(f"[{tag}] {line}")
        if self._done and self.last_result is not None:
            r = self.last_result
            out.append(f"-> {r.status.value}: {r.passed}/{r.total} tests {r.error_type}".rstrip())
        elif self._done:  # ended by an invalid action: the program never ran
            out.append("-> invalid_action: the program was not run")
        return out

    def render(self) -> str | None:
        """``"ansi"``: the whole episode so far as text. ``"human"``: print what is new since
        the last call (the prompt after ``reset``, each line once, the verdict at the end)."""
        if self.render_mode is None or self.task is None:
            return None
        if self.render_mode == "human":
            n_prompt = len(self.task.prompt.rstrip("\n").split("\n"))
            out = self._render_lines()
            start = 0 if self._rendered < 0 else n_prompt + self._rendered
            if start < len(out):
                print("\n".join(out[start:]), flush=True)
            self._rendered = len(out) - n_prompt
            return None
        return "\n".join(self._render_lines()) + "\n"

    def close(self) -> None:
        if self._owns_sandbox and self._sandbox is not None:
            self._sandbox.close()
            self._sandbox = None
        close = getattr(self.scorer, "close", None)
        if close is not None:
            close()
        super().close()


#: Suites for which "no default PRM applies" was already said (warn once per process).
_WARNED_NO_PRM: set[str] = set()


def resolve_prm(prm: str | None, suites: set[str], reward_mode: str = "delta") -> str | None:
    """The PRM checkpoint directory that ``prm`` names for tasks of ``suites``, or ``None``.

    ``"default"``: the embedded PRM. ``"auto"``: the embedded PRM when every suite is one it
    was trained for (``pipelines``) and a dense reward is asked for (``reward_mode`` other
    than ``"none"``), else none (with a one-time warning naming the suite). ``None`` or
    ``"none"``: none. Anything else is a checkpoint directory, returned as is.
    """
    from codegym import defaults

    if prm is None or prm == "none":
        return None
    if prm == "default":
        return str(defaults.prm_dir())
    if prm != "auto":
        return prm
    if reward_mode == "none":
        return None  # no dense reward asked for: do not load a model for nothing
    if suites and suites <= set(defaults.PRM_SUITES):
        return str(defaults.prm_dir())
    key = ",".join(sorted(suites)) or "custom tasks"
    if key not in _WARNED_NO_PRM:
        _WARNED_NO_PRM.add(key)
        warnings.warn(
            f"CodePRM: no default PRM applies to suite {key!r} (the embedded PRM is trained on "
            f"{list(defaults.PRM_SUITES)} only): no dense reward. Pass prm=DIR (a PRM from "
            "`codegym train-prm`), prm='default' to use the embedded one anyway, or prm=None "
            "to silence this warning.",
            stacklevel=4,
        )
    return None


class CodePRMEnvV0(CodePRMEnv):
    """``CodePRM-v0``: :class:`CodePRMEnv` with the first version's defaults (``prm=None``,
    ``reward_mode="delta_open"`` from the registration, the suite's test split)."""

    _preferred_split = None

    def __init__(self, *args: Any, prm: str | os.PathLike[str] | LineScorer | None = None, **kwargs: Any) -> None:
        super().__init__(*args, prm=prm, **kwargs)


__all__ = [
    "INVALID_ACTIONS", "POTENTIALS", "REWARD_MODES", "TEST_REWARDS", "CodePRMEnv", "CodePRMEnvV0",
    "is_neutral_line", "potential_of", "resolve_prm",
]
