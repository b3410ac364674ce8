"""``CodePRMVectorEnv``: N ``CodePRM-v0`` episodes stepped together, a native Gymnasium
``VectorEnv`` (as ``CartPoleVectorEnv`` sits beside ``CartPoleEnv``)."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from codegym.envs.code_prm import prm_source_name, resolve_prm
from codegym.envs.episode import (
    Episode,
    EpisodeConfig,
    Move,
    RewardTerms,
    TaskSource,
    check_render_mode,
)
from codegym.envs.scoring import BatchedLineScorer, LineScorer, PerSlotScorers
from codegym.tasks.base import Task
from codegym.tasks.registry import TaskSuite
from sandboxes import ExecResult, Sandbox, make_sandbox

#: ``info["reward_terms"]`` of a step that only reset its slot.
_NO_TERMS = RewardTerms(0.0, 0.0, 0.0).as_dict()


class CodePRMVectorEnv(VectorEnv):
    """``num_envs`` programs written line by line at once; one PRM forward scores every line.

    ## Description

    The vector form of :class:`codegym.envs.CodePRMEnv` (``CodePRM-v0``): the same tasks,
    actions, rewards and endings, for ``num_envs`` episodes (slots) stepped together. Each
    slot's episode follows the single env's rules exactly (they share one implementation,
    :class:`codegym.envs.episode.Episode`); what the vector env adds is the batch:

    * the PRM scores the new lines of **all** slots in one forward pass per step, over one KV
      cache shared by the slots (:class:`codegym.prm.BatchedPRMScorer`: a 2-D attention mask,
      per-slot position ids, the history of a reset slot masked out, a rebuild when masked
      columns dominate); each score equals the single env's incremental score up to float
      rounding. Any other line scorer (e.g. the oracle
      :class:`~codegym.envs.oracle.ReferenceCompletionScorer`) works as one scorer per slot,
      called in a thread pool;
    * programs that end in the same step run in the sandbox in parallel (a pool of
      ``workers`` threads over one sandbox with ``workers`` workers), while the PRM scores
      the other slots' lines.

    ``gym.make_vec("CodePRM-v0", num_envs=N)`` returns it (also with
    ``vectorization_mode="vector_entry_point"``); ``"sync"``/``"async"`` still wrap N single
    envs.

    ## Action Space

    ``Tuple`` of ``num_envs`` ``CodeText`` spaces (the batched single action space): one line
    of code or :data:`codegym.SUBMIT` per slot, as any sequence of ``num_envs`` actions
    (tuple, list, object array). An invalid action raises ``ValueError`` naming the slot
    (``invalid_action="raise"``; nothing changes in any slot) or ends that slot's episode
    (``"end"``).

    ## Observation Space

    ``Dict({"prompt": Tuple(CodeText, ...), "code": Tuple(CodeText, ...)})``: per slot, the
    task's prompt and the code written so far (what ``SyncVectorEnv`` gives for the single
    env's ``Dict`` of ``Text`` spaces).

    ## Rewards

    Per slot, the single env's reward, with the same terms in ``info["reward_terms"]``
    (``dense``, ``test``, ``shaping_close``; arrays, their sum is the reward array on every
    step, autoreset steps included, where all three are 0) and, on a slot's final step,
    ``info["line_rewards"]``. See :class:`codegym.envs.CodePRMEnv`.

    ## Starting State

    ``reset(seed=s)`` seeds slot ``i``'s task generator with ``s + i`` (as ``SyncVectorEnv``
    does), so N single envs reset with seeds ``s .. s + N - 1`` draw the same tasks, and a
    slot's later episodes draw from its own generator. ``seed`` may also be a list of
    ``num_envs`` seeds (``None`` entries: keep / randomise that slot's generator). Options:
    ``{"tasks": [Task, ...]}`` or ``{"task_index": [i, ...]}`` (one entry per slot, ``None``:
    draw), and ``{"reset_mask": np.ndarray of bool}`` to reset only those slots.

    ## Episode End

    A slot ends as the single env does (submission, ``max_lines`` truncation with the program
    still run, an invalid action under ``invalid_action="end"``). Autoreset follows
    Gymnasium's modes (``autoreset_mode``, also in ``metadata["autoreset_mode"]``):

    * ``NEXT_STEP`` (default): a slot that ended is reset on its next step; that step ignores
      its action and returns reward 0, ``terminated = truncated = False`` and the reset's
      ``info`` (``task_id``, ``task``, ``prm_score``).
    * ``SAME_STEP``: the slot is reset in the step that ended it; the observation is the new
      episode's, ``info["final_obs"]`` / ``info["final_info"]`` hold the ended one's, and the
      slot's ``info`` is the reset's plus the final step's ``reward_terms``.
    * ``DISABLED``: a slot that ended stays ended until ``reset(options={"reset_mask":
      mask})``; its action must be ``None`` (it is then left untouched: reward 0, flags
      False, no ``info``); anything else raises ``ValueError``.

    ``info`` follows Gymnasium's vector convention: one array per key with a boolean
    ``_key`` mask of the slots that have it (nested for ``reward_terms`` and ``exec``); a
    value that is ``None`` in the single env (an unscored line's ``prm_score``) is absent:
    its mask is False there.

    ## Arguments

    Those of :class:`codegym.envs.CodePRMEnv` (same defaults), keyword-only after
    ``num_envs``, plus:

    | Argument         | Default       | Meaning                                                        |
    |------------------|---------------|----------------------------------------------------------------|
    | ``num_envs``     | ``1``         | slots (episodes stepped together)                              |
    | ``prm``          | ``"auto"``    | as the single env's (a PRM, also given as ``IncrementalScorer`` of one model, is scored batched), a list of ``num_envs`` ``LineScorer`` (one per slot), or a ``BatchedLineScorer`` |
    | ``workers``      | ``None``      | sandbox workers and threads (``None``: ``min(num_envs, CPUs)``) |
    | ``autoreset_mode`` | ``NEXT_STEP`` | a ``gymnasium.vector.AutoresetMode`` (or its value)          |
    | ``render_mode``  | ``None``      | ``"ansi"``: ``render()`` returns each slot's text              |

    ## Version History

    * v0: initial version (the ``vector_entry_point`` of ``CodePRM-v0``).
    """

    metadata: dict[str, Any] = {"render_modes": ["ansi"], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(
        self,
        num_envs: int = 1,
        *,
        suite: str | TaskSuite = "pipelines",
        split: str | None = None,
        suite_kwargs: dict[str, Any] | None = None,
        tasks: list[Task] | None = None,
        prm: Any = "auto",
        prm_device: str = "cpu",
        reward_mode: str = "delta",
        test_reward: str = "binary",
        sandbox: str | Sandbox = "local",
        workers: int | None = None,
        timeout: float = 5.0,
        memory_mb: int = 512,
        max_lines: int = 64,
        max_line_chars: int = 256,
        max_prompt_chars: int = 8192,
        invalid_action: str = "raise",
        potential: str = "probability",
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        render_mode: str | None = None,
    ) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be an int >= 1, got {num_envs!r}")
        #: The rules of every slot's episode (the arguments, checked as the single env does).
        self.config = EpisodeConfig(
            reward_mode=reward_mode, test_reward=test_reward, potential=potential,
            invalid_action=invalid_action, max_lines=max_lines, max_line_chars=max_line_chars,
            max_prompt_chars=max_prompt_chars, timeout=timeout, memory_mb=memory_mb,
        )  # fmt: skip
        check_render_mode(render_mode, self.metadata["render_modes"])
        self.autoreset_mode = _autoreset_mode(autoreset_mode)
        self.metadata = {**type(self).metadata, "autoreset_mode": self.autoreset_mode}
        self.num_envs, self.render_mode = num_envs, render_mode
        self.workers = _workers(workers, num_envs)
        self.source = TaskSource(suite, split, suite_kwargs, tasks)
        self.single_action_space, self.single_observation_space = self.config.spaces()
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="codegym-vector")
        self._sandbox_spec = sandbox
        self._sandbox: Sandbox | None = sandbox if isinstance(sandbox, Sandbox) else None
        self._owns_sandbox = not isinstance(sandbox, Sandbox)
        #: Scores every slot's lines (``None``: no dense reward) and which PRM it is.
        self.scorer, self.prm_source = load_batched_scorer(
            prm, prm_device, reward_mode, self.source.suite_names(), num_envs, self._pool
        )
        #: One episode per slot (task, lines, scores, potential, verdict).
        self.episodes = [Episode(self.config, scored=self.scorer is not None) for _ in range(num_envs)]
        self._rngs: list[np.random.Generator | None] = [None] * num_envs
        self._autoreset = np.zeros(num_envs, dtype=np.bool_)

    # ------------------------------------------------------------------ views
    @property
    def sandbox(self) -> Sandbox:
        """The sandbox that executes programs (built on first use, with ``workers`` workers)."""
        if self._sandbox is None:
            self._sandbox = make_sandbox(self._sandbox_spec, workers=self.workers)
        return self._sandbox

    @property
    def tasks(self) -> tuple[Task | None, ...]:
        """Each slot's current task."""
        return tuple(ep.task for ep in self.episodes)

    def _obs(self) -> dict[str, tuple[str, ...]]:
        obs = [ep.obs() if ep.task is not None else {"prompt": "", "code": ""} for ep in self.episodes]
        return {"prompt": tuple(o["prompt"] for o in obs), "code": tuple(o["code"] for o in obs)}

    def _merge(self, infos: dict[str, Any], info: dict[str, Any], slot: int) -> dict[str, Any]:
        """Add one slot's info (the single env's dict; ``None`` values, nested ones too, left
        out: their ``_key`` mask stays False, and a float array never meets a ``None``)."""
        return self._add_info(infos, _without_none(info), slot)

    # ------------------------------------------------------------------ reset
    def reset(
        self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, tuple[str, ...]], dict[str, Any]]:
        """Reset every slot (or those of ``options["reset_mask"]``); see Starting State."""
        super().reset(seed=seed if isinstance(seed, int) else None)
        options = dict(options or {})
        mask = self._reset_mask(options.pop("reset_mask", None))
        seeds = self._seeds(seed)
        per_slot = self._slot_options(options)
        slots = [i for i in range(self.num_envs) if mask[i]]
        infos: dict[str, Any] = {}
        for i, info in self._reset_slots(slots, seeds, per_slot).items():
            infos = self._merge(infos, info, i)
        self._autoreset[slots] = False
        return self._obs(), infos

    def _reset_slots(
        self, slots: list[int], seeds: Sequence[int | None], options: Sequence[dict[str, Any]]
    ) -> dict[int, dict[str, Any]]:
        """Start a new episode in each of ``slots``; their reset infos."""
        tasks: dict[int, Task] = {}
        for i in slots:
            if seeds[i] is not None or self._rngs[i] is None:
                self._rngs[i] = seeding.np_random(seeds[i])[0]
            rng = self._rngs[i]
            assert rng is not None
            tasks[i] = self.source.draw(rng, options[i])
            self.episodes[i].check_task(tasks[i])
        empties = self.scorer.reset(tasks) if self.scorer is not None and tasks else {}
        return {i: self.episodes[i].start(tasks[i], empties.get(i)) for i in slots}

    def _seeds(self, seed: int | Sequence[int | None] | None) -> list[int | None]:
        if seed is None:
            return [None] * self.num_envs
        if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
            return [int(seed) + i for i in range(self.num_envs)]
        seeds = list(seed)
        if len(seeds) != self.num_envs:
            raise ValueError(f"seed must be an int or {self.num_envs} seeds (one per env), got {len(seeds)}")
        return seeds

    def _reset_mask(self, mask: Any) -> np.ndarray:
        if mask is None:
            return np.ones(self.num_envs, dtype=np.bool_)
        if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_ or mask.shape != (self.num_envs,):
            raise ValueError(
                f"options['reset_mask'] must be a bool numpy array of shape ({self.num_envs},), "
                f"got {type(mask).__name__} {getattr(mask, 'dtype', '')} {getattr(mask, 'shape', '')}"
            )
        if not mask.any():
            raise ValueError("options['reset_mask'] must select at least one env")
        return mask

    def _slot_options(self, options: dict[str, Any]) -> list[dict[str, Any]]:
        """Per slot, the single env's reset options (``task`` / ``task_index``)."""
        if "task" in options:
            raise ValueError(
                "options['task'] is the single env's option; give the vector env one task per "
                "env: options={'tasks': [task_0, ..., task_N-1]}"
            )
        per: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        for key, single in (("tasks", "task"), ("task_index", "task_index")):
            if key not in options:
                continue
            values = options[key]
            if isinstance(values, (str, bytes, Task)) or not hasattr(values, "__len__") or len(values) != self.num_envs:
                raise ValueError(
                    f"options[{key!r}] must hold one entry per env ({self.num_envs}; None: draw), "
                    f"got {values!r:.100}"
                )
            for i, value in enumerate(values):
                if value is not None:
                    per[i][single] = value
        return per

    # ------------------------------------------------------------------ step
    def step(
        self, actions: Sequence[Any]
    ) -> tuple[dict[str, tuple[str, ...]], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every slot with its action (see Episode End for autoreset)."""
        if any(ep.task is None for ep in self.episodes):
            raise RuntimeError("step() before reset(): call reset() first")
        actions = self._check_actions(actions)
        moves = self._moves(actions)  # every check before anything changes
        infos: dict[str, Any] = {}
        if self.autoreset_mode is AutoresetMode.NEXT_STEP:
            resetting = [i for i in range(self.num_envs) if self._autoreset[i]]
            blank = [{} for _ in range(self.num_envs)]
            for i, info in self._reset_slots(resetting, [None] * self.num_envs, blank).items():
                infos = self._merge(infos, {**info, "reward_terms": _NO_TERMS}, i)
        runs = self._start_programs(moves)  # programs run while the PRM scores lines
        scores = self._score(moves)
        results = {i: r.result() if isinstance(r, Future) else r for i, r in runs.items()}
        rewards = np.zeros(self.num_envs, dtype=np.float64)
        terminated = np.zeros(self.num_envs, dtype=np.bool_)
        truncated = np.zeros(self.num_envs, dtype=np.bool_)
        for i, move in moves.items():
            obs, rewards[i], terminated[i], truncated[i], info = self.episodes[i].apply(move, scores[i], results.get(i))
            if self.autoreset_mode is AutoresetMode.SAME_STEP and (terminated[i] or truncated[i]):
                infos = self._add_info(infos, {"final_obs": obs, "final_info": _without_none(info)}, i)
                reset = self._reset_slots([i], [None] * self.num_envs, [{}] * self.num_envs)[i]
                info = {**reset, "reward_terms": info["reward_terms"]}
            infos = self._merge(infos, info, i)
        if self.autoreset_mode is AutoresetMode.NEXT_STEP:
            self._autoreset = np.logical_or(terminated, truncated)
        return self._obs(), rewards, terminated, truncated, infos

    def _check_actions(self, actions: Any) -> list[Any]:
        if isinstance(actions, (str, bytes)) or not hasattr(actions, "__len__"):
            raise ValueError(
                f"actions must be a sequence of {self.num_envs} actions (a line or codegym.SUBMIT "
                f"per env), got {type(actions).__name__}"
            )
        actions = list(actions)
        if len(actions) != self.num_envs:
            raise ValueError(f"actions holds {len(actions)} actions for {self.num_envs} envs; give one per env")
        return actions

    def _moves(self, actions: list[Any]) -> dict[int, Move]:
        """The checked move of every slot that acts this step (``ValueError`` naming the slot
        for an invalid action under ``invalid_action="raise"``, or for an action sent to a
        finished slot in ``DISABLED`` mode)."""
        moves: dict[int, Move] = {}
        for i, action in enumerate(actions):
            if self.autoreset_mode is AutoresetMode.NEXT_STEP and self._autoreset[i]:
                continue  # reset this step: the action is ignored
            if self.episodes[i].done:
                if self.autoreset_mode is AutoresetMode.DISABLED and action is None:
                    continue  # a finished slot left alone
                raise ValueError(
                    f"actions[{i}]: env {i}'s episode has ended (autoreset_mode=DISABLED); send "
                    "None for it, or reset it with reset(options={'reset_mask': mask})"
                )
            try:
                moves[i] = self.episodes[i].parse(action)
            except ValueError as exc:
                raise ValueError(f"actions[{i}]: {exc}") from None
        return moves

    def _start_programs(self, moves: dict[int, Move]) -> dict[int, Future[ExecResult] | ExecResult]:
        """Submit the program of every slot whose move ends its episode (an invalid action's
        verdict is immediate)."""
        runs: dict[int, Future[ExecResult] | ExecResult] = {}
        ending = [i for i, m in moves.items() if m.invalid is None and self.episodes[i].ends_after(m)]
        box = self.sandbox if ending else None
        for i, move in moves.items():
            episode = self.episodes[i]
            if move.invalid is not None:
                runs[i] = episode.refused(move)
            elif i in ending:
                assert box is not None and episode.task is not None
                runs[i] = self._pool.submit(
                    box.run, episode.program_after(move), episode.task.tests,
                    timeout=episode.time_limit(), memory_mb=self.config.memory_mb,
                )  # fmt: skip
        return runs

    def _score(self, moves: dict[int, Move]) -> list[float | None]:
        """Every slot's new line, scored by the batched scorer in one call."""
        lines: list[str | None] = [None] * self.num_envs
        scored = [False] * self.num_envs
        for i, move in moves.items():
            lines[i], scored[i] = move.line, not move.neutral
        if self.scorer is None or all(line is None for line in lines):
            return [None] * self.num_envs
        return self.scorer.score_lines(lines, scored)

    # ------------------------------------------------------------------ other
    def render(self) -> tuple[str, ...] | None:
        """``"ansi"``: each slot's episode so far as text (as the single env's)."""
        if self.render_mode is None:
            return None
        return tuple("\n".join(ep.render_lines()) + "\n" if ep.task is not None else "" for ep in self.episodes)

    def close_extras(self, **kwargs: Any) -> None:
        """Stop the thread pool, close the sandbox (when the env made it) and the scorer."""
        self._pool.shutdown(wait=True)
        if self._owns_sandbox and self._sandbox is not None:
            self._sandbox.close()
            self._sandbox = None
        close = getattr(self.scorer, "close", None)
        if close is not None:
            close()


def _without_none(info: dict[str, Any]) -> dict[str, Any]:
    """``info`` without its ``None`` values, in nested dicts too."""
    return {k: _without_none(v) if isinstance(v, dict) else v for k, v in info.items() if v is not None}


def _autoreset_mode(mode: AutoresetMode | str) -> AutoresetMode:
    if isinstance(mode, AutoresetMode):
        return mode
    try:
        return AutoresetMode(mode)
    except ValueError:
        raise ValueError(
            f"autoreset_mode={mode!r} is not one of {[m.value for m in AutoresetMode]} "
            "(or a gymnasium.vector.AutoresetMode)"
        ) from None


def _workers(workers: int | None, num_envs: int) -> int:
    if workers is None:
        return max(1, min(num_envs, os.cpu_count() or 1))
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an int >= 1 (or None), got {workers!r}")
    return workers


def _shared_prm(scorers: list[Any]) -> Any | None:
    """The PRM model when every scorer is an :class:`~codegym.prm.IncrementalScorer` of that
    one model (with the same empty score), else ``None``. (Looked up in ``sys.modules``: an
    IncrementalScorer exists only once its module is loaded, so torch is never imported
    here for nothing.)"""
    module = sys.modules.get("codegym.prm.scoring")
    if module is None or not scorers or not all(isinstance(s, module.IncrementalScorer) for s in scorers):
        return None
    if len({id(s.prm) for s in scorers}) != 1 or len({s.empty_score for s in scorers}) != 1:
        return None
    return scorers[0].prm


def load_batched_scorer(
    prm: Any, prm_device: str, reward_mode: str, suites: set[str], num_envs: int, pool: ThreadPoolExecutor
) -> tuple[BatchedLineScorer | None, str]:
    """The vector env's scorer and its source from the ``prm`` argument.

    A PRM (``"auto"``, ``"default"``, a directory, or one or ``num_envs``
    :class:`~codegym.prm.IncrementalScorer` of one model, e.g. from
    :func:`~codegym.prm.load_line_scorers`) becomes one :class:`~codegym.prm.BatchedPRMScorer`
    (same scores, one forward per step); another list of ``num_envs`` line scorers becomes
    :class:`~codegym.envs.scoring.PerSlotScorers`; a ``BatchedLineScorer`` is used as is.
    """
    if prm is None:
        return None, "none"
    if isinstance(prm, BatchedLineScorer):
        if prm.num_slots != num_envs:
            raise ValueError(f"prm scores {prm.num_slots} slots but num_envs={num_envs}")
        return prm, type(prm).__name__
    if isinstance(prm, (str, os.PathLike)):
        # (called here, not deeper: its warning points at the line that made the env)
        path = resolve_prm(os.fspath(prm), suites, reward_mode)
        if path is None:
            return None, "none"
        from codegym.prm import BatchedPRMScorer, ProcessRewardModel

        model = ProcessRewardModel.from_pretrained(path, device=prm_device)
        return BatchedPRMScorer(model, num_envs), prm_source_name(prm, path)
    if isinstance(prm, (list, tuple)) and len(prm) != num_envs:
        raise ValueError(f"prm holds {len(prm)} LineScorers for {num_envs} envs; give one per env")
    scorers = list(prm) if isinstance(prm, (list, tuple)) else [prm] * num_envs
    model = _shared_prm(scorers)
    if model is not None:  # IncrementalScorers of one PRM: score them batched
        from codegym.prm import BatchedPRMScorer

        return BatchedPRMScorer(model, num_envs, empty_score=scorers[0].empty_score), type(scorers[0]).__name__
    if isinstance(prm, LineScorer):
        raise ValueError(
            f"prm is one {type(prm).__name__}, which keeps one episode's state; pass a list of "
            f"{num_envs} LineScorers (one per env)"
        )
    if isinstance(prm, (list, tuple)):
        return PerSlotScorers(prm, pool), f"{type(prm[0]).__name__} per env"
    raise ValueError(
        "prm must be 'auto', 'default', None, a checkpoint directory, a LineScorer list (one per "
        f"env) or a BatchedLineScorer, got {type(prm).__name__}"
    )


__all__ = ["CodePRMVectorEnv", "load_batched_scorer"]
