"""``CodePRM-v0``: write a program one line per step, rewarded per line and by unit tests."""

from __future__ import annotations

import os
import warnings
from typing import Any

import gymnasium as gym

from codegym.envs.episode import (
    INVALID_ACTIONS,
    POTENTIALS,
    REWARD_MODES,
    TEST_REWARDS,
    Episode,
    EpisodeConfig,
    TaskSource,
    check_render_mode,
    is_neutral_line,
    potential_of,
)
from codegym.envs.scoring import LineScorer, feed_line
from codegym.tasks.base import Task
from codegym.tasks.registry import TaskSuite
from sandboxes import Sandbox, make_sandbox


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
    Optimization for Code Generation" (Dai et al.). :class:`codegym.envs.CodePRMVectorEnv`
    runs N episodes at once with the same rules (``gym.make_vec("CodePRM-v0", N)``).

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

    Every step's reward is the sum of three named terms, which ``info["reward_terms"]`` holds:
    ``{"dense": ..., "test": ..., "shaping_close": ...}`` (Gymnasium's "individual reward
    terms"; a learner reads them, it never rebuilds them).

    **dense**: the line scorer's part. By default (``prm="auto"``) the scorer on the
    ``pipelines`` suite is the **embedded default PRM** shipped with codegym
    (:func:`codegym.defaults.prm_dir`, trained on the embedded default policy's own responses),
    so ``gym.make("CodePRM-v0")`` gives dense rewards out of the box; ``prm=None`` turns them
    off. No default PRM applies to other suites (``humaneval``, ``jsonl:...``): there
    ``prm="auto"`` attaches none and warns once; pass ``prm=DIR`` (a PRM trained with
    ``codegym train-prm``) or ``prm="default"`` to force the embedded one.
    ``env.unwrapped.prm_source`` says which PRM is attached. Blank and comment lines are never
    scored (their dense term is 0). ``reward_mode`` picks the scheme:

    * ``"delta"`` (default): potential-based shaping
      ``r_m = Φ(prefix_m) − Φ(prefix_{m−1})`` with Φ the PRM's estimate that the prefix is
      correct (``potential="probability"``, the default: ``(score + 1) / 2`` in [0, 1], the
      unit-test reward's scale; ``potential="score"``: the raw score), **closed** at the end:
      the terminal state has potential 0 on every way an episode ends (submission,
      truncation, an invalid action under ``invalid_action="end"``), so the final step also
      carries ``shaping_close = −Φ(last prefix)``. The dense return of every episode is then
      the constant ``−Φ(empty)``: the PRM cannot change which programs are best (Ng et al.,
      1999), it only moves credit between lines. On the probability scale a prefix the PRM
      calls wrong has Φ = 0, so ending an episode there earns nothing; with raw scores in
      [−1, 1] it would earn +1 at once, which an RL learner that cannot see correctness
      exploits by ending episodes early.
    * ``"delta_open"``: the same differences without the closing term. The dense return is
      ``Φ(last) − Φ(empty)``: the PRM's opinion of the final program becomes part of the
      objective, and an agent can gain by ending episodes early. For ablations only.
    * ``"score"``: the raw per-line score (the exploitable scheme, for ablations).
    * ``"paper"``: the PRM score of line m divided by T, the number of lines of the finished
      program (neutral lines count in T and score 0). T is known only at the end, so line
      steps pay 0 and the final step's dense term carries the whole ``Σ s_m / T``.
    * ``"none"``: no dense reward.

    **test**: on the final step (submission or truncation), the unit-test reward:
    ``test_reward="binary"`` gives 1 for a pass and 0 otherwise, ``"fraction"`` gives the
    fraction of tests passed. Only the sandbox's harness declares a pass. An episode ended by
    an invalid action gets 0, the same as a program that fails every test.

    **shaping_close**: the closing term of ``"delta"`` on the final step (0 otherwise).

    On the final step ``info["line_rewards"]`` lists the dense reward the env attributes to
    each line written (the line steps' dense terms; ``s_m / T`` for ``"paper"``), so that
    ``sum(line_rewards) + test + shaping_close`` (the final step's terms) is the episode's
    return: a learner that places rewards on tokens puts ``line_rewards[m]`` on line m's last
    token and ``test + shaping_close`` on the final one.

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
      ``CodePRM-v0`` is registered without ``max_episode_steps``, so no ``TimeLimit`` wrapper
      can cut an episode without running its program. (Passing ``max_episode_steps`` to
      ``gym.make`` adds one; keep it above ``max_lines``.)

    ``info`` at every step: ``reward_terms``, ``line_index`` (0-based index of the line just
    written, -1 on a bare submission or an invalid action), ``prm_score`` (the line's score,
    ``None`` when not scored), ``neutral``, and after a line ``potential`` (Φ after it,
    ``None`` without a scorer). At the end also: ``exec`` (the :class:`sandboxes.ExecResult`
    as its ``to_dict()``: status, passed, total, error type, duration, ...), ``passed``
    (bool), ``task_id``, ``num_lines``, ``shaping_close`` and ``line_rewards``.

    ## Arguments

    | Argument         | Default       | Meaning                                                        |
    |------------------|---------------|----------------------------------------------------------------|
    | ``suite``        | ``"pipelines"`` | suite spec (``pipelines``, ``humaneval``, ``jsonl:PATH``) or a ``TaskSuite`` |
    | ``split``        | ``None``      | split to draw tasks from (``None``: ``train`` when present, else the suite's only split) |
    | ``suite_kwargs`` | ``None``      | constructor arguments of the suite (e.g. ``max_steps``)        |
    | ``tasks``        | ``None``      | an explicit list of ``Task`` (overrides ``suite``)             |
    | ``prm``          | ``"auto"``    | ``"auto"`` (embedded PRM on ``pipelines``, none elsewhere), ``"default"``, a PRM checkpoint directory, any ``LineScorer``, or ``None`` |
    | ``prm_device``   | ``"cpu"``     | torch device of a PRM loaded from a directory                  |
    | ``reward_mode``  | ``"delta"``   | ``delta`` / ``delta_open`` / ``score`` / ``paper`` / ``none``  |
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

    * v0: initial version: closed potential-based shaping by default (``reward_mode="delta"``,
      Φ the probability-scale PRM score), the embedded default PRM on ``pipelines``
      (``prm="auto"``), the train split by default, no ``max_episode_steps`` (``max_lines``
      alone ends an episode and the program always runs), ``invalid_action``, spaces that
      hold any Unicode text (``CodeText``), the named reward terms
      (``info["reward_terms"]``, ``info["line_rewards"]``), the ``"paper"`` reward mode, and
      the native vector env :class:`codegym.envs.CodePRMVectorEnv` as its
      ``vector_entry_point``. Pre-release builds registered this env as ``CodePRM-v1`` and
      an open-shaping ``CodePRM-v0``; only ``CodePRM-v0`` is registered now (Gymnasium
      would call it out of date while a higher version exists), and the open shaping is
      ``reward_mode="delta_open"``.
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
        #: The rules of an episode (the arguments, checked).
        self.config = EpisodeConfig(
            reward_mode=reward_mode, test_reward=test_reward, potential=potential,
            invalid_action=invalid_action, max_lines=max_lines, max_line_chars=max_line_chars,
            max_prompt_chars=max_prompt_chars, timeout=timeout, memory_mb=memory_mb,
        )  # fmt: skip
        check_render_mode(render_mode, self.metadata["render_modes"])
        self.render_mode = render_mode
        #: Where tasks come from (an explicit list, or a suite's split).
        self.source = TaskSource(suite, split, suite_kwargs, tasks)
        self.suite, self.split = self.source.suite, self.source.split
        self._sandbox_spec = sandbox
        self._sandbox: Sandbox | None = sandbox if isinstance(sandbox, Sandbox) else None
        self._owns_sandbox = not isinstance(sandbox, Sandbox)
        #: The dense-reward scorer (``None``: none) and which PRM it is.
        self.scorer, self.prm_source = load_scorer(prm, prm_device, reward_mode, self.source.suite_names())
        self.action_space, self.observation_space = self.config.spaces()
        #: The episode being written (task, lines, scores, potential, verdict).
        self.episode = Episode(self.config, scored=self.scorer is not None)
        self._rendered = -1  # human mode: lines already printed (-1: not even the prompt)

    # ------------------------------------------------------------------ views
    reward_mode = property(lambda self: self.config.reward_mode, doc="Dense reward scheme.")
    test_reward = property(lambda self: self.config.test_reward, doc="Unit-test reward scheme.")
    potential = property(lambda self: self.config.potential, doc="Φ of delta shaping.")
    invalid_action = property(lambda self: self.config.invalid_action, doc="raise / end.")
    timeout = property(lambda self: self.config.timeout, doc="Seconds per program execution.")
    memory_mb = property(lambda self: self.config.memory_mb, doc="Memory budget per execution.")
    max_lines = property(lambda self: self.config.max_lines, doc="Lines per program (truncation).")
    max_line_chars = property(lambda self: self.config.max_line_chars, doc="Longest line.")
    max_prompt_chars = property(lambda self: self.config.max_prompt_chars, doc="Longest prompt.")
    task = property(lambda self: self.episode.task, doc="The current task.")
    lines = property(lambda self: self.episode.lines, doc="The lines written so far.")
    scores = property(lambda self: self.episode.scores, doc="Per line, its score (None: not scored).")
    last_result = property(lambda self: self.episode.result, doc="The verdict of the ended episode.")

    @property
    def sandbox(self) -> Sandbox:
        """The sandbox that executes programs (built on first use)."""
        if self._sandbox is None:
            self._sandbox = make_sandbox(self._sandbox_spec, workers=1)
        return self._sandbox

    # ---------------------------------------------------------------- gym API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, str], dict[str, Any]]:
        super().reset(seed=seed)
        task = self.source.draw(self.np_random, options)
        self.episode.check_task(task)
        empty = float(self.scorer.reset(task)) if self.scorer is not None else None
        info = self.episode.start(task, empty)
        self._rendered = -1
        if self.render_mode == "human":
            self.render()
        return self.episode.obs(), info

    def step(self, action: str) -> tuple[dict[str, str], float, bool, bool, dict[str, Any]]:
        episode = self.episode
        if episode.done or episode.task is None:
            raise RuntimeError("step() called on a finished episode: call reset() first")
        move = episode.parse(action)
        score = None
        if self.scorer is not None and move.line is not None:
            score = feed_line(self.scorer, move.line, scored=not move.neutral)
        result = None
        if move.invalid is not None:
            result = episode.refused(move)
        elif episode.ends_after(move):
            result = self.sandbox.run(
                episode.program_after(move), episode.task.tests,
                timeout=episode.time_limit(), memory_mb=self.config.memory_mb,
            )  # fmt: skip
        out = episode.apply(move, score, result)
        if self.render_mode == "human":
            self.render()
        return out

    def render(self) -> str | None:
        """``"ansi"``: the whole episode so far as text. ``"human"``: print what is new since
        the last call (the prompt after ``reset``, each line once, the verdict at the end)."""
        if self.render_mode is None or self.task is None:
            return None
        out = self.episode.render_lines()
        if self.render_mode == "human":
            n_prompt = len(self.task.prompt.rstrip("\n").split("\n"))
            start = 0 if self._rendered < 0 else n_prompt + self._rendered
            if start < len(out):
                print("\n".join(out[start:]), flush=True)
            self._rendered = len(out) - n_prompt
            return None
        return "\n".join(out) + "\n"

    def close(self) -> None:
        if self._owns_sandbox and self._sandbox is not None:
            self._sandbox.close()
            self._sandbox = None
        close = getattr(self.scorer, "close", None)
        if close is not None:
            close()
        super().close()


def load_scorer(
    prm: str | os.PathLike[str] | LineScorer | None, prm_device: str, reward_mode: str, suites: set[str]
) -> tuple[LineScorer | None, str]:
    """The env's line scorer and its source from the ``prm`` argument: ``(scorer or None,
    "none" / "embedded default" / a directory / the scorer's class name)``."""
    if prm is None or isinstance(prm, LineScorer):
        return prm, "none" if prm is None else type(prm).__name__
    if not isinstance(prm, (str, os.PathLike)):
        raise ValueError(
            "prm must be 'auto', 'default', None, a checkpoint directory or a LineScorer, "
            f"got {type(prm).__name__}"
        )
    # (called here, not deeper: its warning points at the line that made the env)
    path = resolve_prm(os.fspath(prm), suites, reward_mode)
    if path is None:
        return None, "none"
    from codegym.prm import load_line_scorer

    return load_line_scorer(path, device=prm_device), prm_source_name(prm, path)


def prm_source_name(prm: str | os.PathLike[str], path: str) -> str:
    """What ``env.prm_source`` says for a PRM named by ``prm`` and found at ``path``."""
    return "embedded default" if prm in ("auto", "default") else path


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


__all__ = [
    "INVALID_ACTIONS", "POTENTIALS", "REWARD_MODES", "TEST_REWARDS", "CodePRMEnv", "is_neutral_line",
    "load_scorer", "potential_of", "prm_source_name", "resolve_prm",
]
