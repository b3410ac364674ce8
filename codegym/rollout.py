"""Rollouts: the one loop that runs agents through the vector env, and the language-model agent.

Every rollout in codegym — ``codegym eval``, :func:`codegym.evaluation.evaluate_policy`, PPO's
rollout, labeling's sampled responses — is :func:`run_episodes`: episodes go in *waves* of
``envs.num_envs`` slots of a :class:`~codegym.envs.vector.CodePRMVectorEnv` (autoreset
disabled, so a slot whose episode ended is left alone until the next wave). Each round the
agent acts on every live slot at once (``act_batch``) and the vector env takes one step for all
of them: one batched PRM forward for the new lines, the programs that ended executed in
parallel. What comes back per episode is an :class:`EpisodeRecord`: the lines the env
accepted, every step's reward and its named terms (``info["reward_terms"]``), the line scores
and the final info (verdict, ``line_rewards``). Rewards are never recomputed here.

:class:`SamplerAgent` is the agent behind every model: it drives a
:class:`~codegym.sampling.LineSampler` (one KV cache for all slots, kept across lines), reads
each task through the model's chat template when its tokenizer has one (instruct models),
maps EOS to :data:`codegym.SUBMIT`, submits for a slot whose token budget is spent, and
records per slot how its program ended — what PPO needs to train on the ids the policy drew.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from gymnasium.vector import AutoresetMode

from codegym.constants import SUBMIT
from codegym.envs.vector import CodePRMVectorEnv
from codegym.sampling import LineSampler
from codegym.tasks.base import Task
from codegym.tokenization import policy_context

#: Characters a sampled line cannot carry into the env (see :meth:`SamplerAgent.sanitize`).
_UNFIT = re.compile("[\x00\r\n\ud800-\udfff" + re.escape(SUBMIT) + "]")


@dataclass
class EpisodeRecord:
    """One episode as the env reported it."""

    task: Task
    sample: int
    """Index of this episode among the task's samples."""
    slot: int
    """Vector-env slot (and agent slot) that ran it."""
    lines: list[str] = field(default_factory=list)
    """Lines the env accepted, in order."""
    rewards: list[float] = field(default_factory=list)
    """Reward of every step."""
    reward_terms: list[dict[str, float]] = field(default_factory=list)
    """Every step's named reward terms (``dense``, ``test``, ``shaping_close``)."""
    prm_scores: list[float | None] = field(default_factory=list)
    """Per accepted line: the line score (``None`` for neutral lines or without a scorer)."""
    final_info: dict[str, Any] = field(default_factory=dict)
    """The info of the episode's last step (``exec``, ``passed``, ``line_rewards``, ...)."""
    truncated: bool = False
    """The env truncated the episode at ``max_lines`` (the program still ran)."""
    last_action: str = ""
    """The action that ended the episode (a line, :data:`codegym.SUBMIT`, or an invalid one)."""

    @property
    def passed(self) -> bool:
        """The harness declared a pass."""
        return bool(self.final_info.get("passed", False))

    @property
    def invalid(self) -> bool:
        """An invalid action ended the episode (the program was not run)."""
        return "invalid_action" in self.final_info

    @property
    def status(self) -> str:
        """The verdict's status (``passed``, ``failed``, ``timeout``, ..., ``invalid_action``)."""
        return str(self.final_info.get("exec", {}).get("status", ""))

    @property
    def line_rewards(self) -> list[float]:
        """The dense reward the env attributes to each accepted line (``info["line_rewards"]``)."""
        return [float(r) for r in self.final_info.get("line_rewards", [0.0] * len(self.lines))]

    @property
    def final_terms(self) -> dict[str, float]:
        """The reward terms of the last step."""
        return self.reward_terms[-1] if self.reward_terms else {"dense": 0.0, "test": 0.0, "shaping_close": 0.0}


def run_episodes(
    agent: Any,
    tasks: Sequence[Task],
    *,
    envs: CodePRMVectorEnv | None = None,
    samples: int = 1,
    num_envs: int = 16,
    workers: int = 1,
    sandbox: Any = "local",
    env_kwargs: dict[str, Any] | None = None,
    episodes: Sequence[tuple[int, int]] | None = None,
    on_episode: Callable[[EpisodeRecord], None] | None = None,
    on_wave: Callable[[list[EpisodeRecord]], None] | None = None,
) -> list[EpisodeRecord]:
    """Roll ``agent`` out on every task ``samples`` times, in waves of vector-env slots.

    Args:
        agent: Anything with ``reset_batch(observations, infos)`` and ``act_batch(observations)
            -> actions`` (an :class:`agents.Agent`, a :class:`SamplerAgent`); a ``None``
            observation marks a finished slot, whose action is ignored.
        tasks: Tasks, in order.
        envs: A vector env with ``autoreset_mode=DISABLED`` (not closed here); ``None``: one is
            made from ``num_envs``, ``workers``, ``sandbox``, ``env_kwargs`` and closed after.
        samples: Episodes per task (for pass@k).
        num_envs: Slots of the vector env made here (the agent's batch).
        workers: Parallel program executions of the vector env made here.
        sandbox: Backend name or a shared ``Sandbox`` for the vector env made here.
        env_kwargs: Further :class:`CodePRMVectorEnv` arguments (``prm``, ``reward_mode``, ...).
        episodes: Only these ``(task index, sample index)`` pairs (default: every task
            ``samples`` times), e.g. the episodes a resumed evaluation still lacks.
        on_episode: Called with each record as soon as its episode ends.
        on_wave: Called with each wave's records (in slot order) when the wave is done, before
            the agent is reset for the next one (e.g. to read the agent's per-slot state).

    Returns:
        One :class:`EpisodeRecord` per episode, in the order of ``episodes``.
    """
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    todo = list(episodes) if episodes is not None else [(t, s) for t in range(len(tasks)) for s in range(samples)]
    if not todo:
        return []
    own = envs is None
    if envs is None:
        envs = CodePRMVectorEnv(
            min(num_envs, len(todo)), tasks=[tasks[0]], sandbox=sandbox, workers=workers,
            autoreset_mode=AutoresetMode.DISABLED, **(env_kwargs or {}),
        )  # fmt: skip
    try:
        records: list[EpisodeRecord] = []
        for lo in range(0, len(todo), envs.num_envs):
            wave = [EpisodeRecord(tasks[t], s, slot) for slot, (t, s) in enumerate(todo[lo : lo + envs.num_envs])]
            _run_wave(agent, envs, wave, on_episode)
            if on_wave is not None:
                on_wave(wave)
            records.extend(wave)
        return records
    finally:
        if own:
            envs.close()


def _run_wave(agent: Any, envs: CodePRMVectorEnv, wave: list[EpisodeRecord], on_episode: Any) -> None:
    """One wave: reset the wave's slots with its tasks, then step until every episode ended."""
    n = envs.num_envs
    mask = np.zeros(n, dtype=bool)
    mask[: len(wave)] = True
    tasks = [wave[min(i, len(wave) - 1)].task for i in range(n)]
    obs, infos = envs.reset(options={"tasks": tasks, "reset_mask": mask})
    agent.reset_batch(_slot_obs(obs, range(len(wave))), _slot_infos(infos, len(wave)))
    live = list(range(len(wave)))
    while live:
        view = _slot_obs(obs, range(len(wave)))
        actions = agent.act_batch([view[i] if i in live else None for i in range(len(wave))])
        step_actions: list[str | None] = [None] * n
        for i in live:
            step_actions[i] = actions[i] if actions[i] is not None else SUBMIT
        obs, rewards, terminated, truncated, infos = envs.step(step_actions)
        for i in list(live):
            _record_step(wave[i], step_actions[i], float(rewards[i]), _slot_info(infos, i), bool(truncated[i]))
            if terminated[i] or truncated[i]:
                live.remove(i)
                if on_episode is not None:
                    on_episode(wave[i])


def _record_step(rec: EpisodeRecord, action: str, reward: float, info: dict[str, Any], truncated: bool) -> None:
    rec.rewards.append(reward)
    rec.reward_terms.append({k: float(v) for k, v in info.get("reward_terms", {}).items()})
    if info.get("line_index", -1) >= 0:
        rec.lines.append(action)
        score = info.get("prm_score")
        rec.prm_scores.append(None if score is None or _isnan(score) else float(score))
    rec.final_info = info
    rec.truncated = truncated
    rec.last_action = action


def _isnan(x: Any) -> bool:
    try:
        return bool(np.isnan(x))
    except TypeError:
        return False


def _slot_obs(obs: dict[str, Sequence[str]], slots: Sequence[int] | range) -> list[dict[str, str]]:
    """Per-slot observations of a vector observation ``{"prompt": (...), "code": (...)}``."""
    return [{key: obs[key][i] for key in obs} for i in slots]


def _slot_info(infos: dict[str, Any], i: int) -> dict[str, Any]:
    """Slot ``i``'s entries of a vector info dict (Gymnasium's ``_key`` masks honoured)."""
    out: dict[str, Any] = {}
    for key, value in infos.items():
        if key.startswith("_"):
            continue
        present = infos.get("_" + key)
        if present is not None and not bool(present[i]):
            continue
        out[key] = _slot_info(value, i) if isinstance(value, dict) else value[i]
    return out


def _slot_infos(infos: dict[str, Any], n: int) -> list[dict[str, Any]]:
    return [_slot_info(infos, i) for i in range(n)]


# --------------------------------------------------------------------------------- agent
SubmitCause = Literal["", "eos", "budget", "closed"]


class SamplerAgent:
    """A batched agent that samples lines from a causal LM with a :class:`LineSampler`.

    One slot per vector-env slot; the context of slot ``i`` is its task's context
    (:func:`codegym.tokenization.policy_context`: the chat template's rendering of the prompt
    followed by the code prefix for an instruct model, else the prompt and code prefix),
    encoded once into the shared KV cache.

    Args:
        sampler: The line sampler (greedy or sampling, re-encoding or keeping lines as drawn).
        max_new_tokens: Token budget per program: when a slot's lines reach it, the agent
            submits for it (``submit_cause == "budget"``, not an EOS the model drew).
            ``None``: no budget.
        sanitize: Fit each sampled line to the env's action space (characters no line can
            hold become ``?``, cut at ``max_line_chars``; the cache is re-encoded to match).
            Off for RL, whose invalid lines must reach the env as drawn.
        max_line_chars: The env's longest line (with ``sanitize``).
        chat_template: Read each task through the tokenizer's chat template when it has one
            (False: the plain prompt, as for a base model).
    """

    def __init__(self, sampler: LineSampler, *, max_new_tokens: int | None = None, sanitize: bool = True,
                 max_line_chars: int = 256, chat_template: bool = True) -> None:  # fmt: skip
        if max_new_tokens is not None and max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1 or None, got {max_new_tokens}")
        self.sampler = sampler
        self.max_new_tokens = max_new_tokens
        self.sanitize_lines = bool(sanitize)
        self.max_line_chars = int(max_line_chars)
        self.chat_template = bool(chat_template)
        self.contexts: list[str] = []
        #: Per slot: tokens of the program's lines as the cache holds them, + the ids drawn
        #: after the last line and the EOS itself when the model ended the program.
        self.gen_tokens: list[int] = []
        #: Per slot: why the agent submitted (``"eos"``: the model drew EOS; ``"budget"``: the
        #: token budget ran out; ``"closed"``: the sampler had no room left; ``""``: not yet).
        self.submit_cause: list[SubmitCause] = []

    def reset_batch(self, observations: Sequence[dict[str, str]], infos: Sequence[dict[str, Any]]) -> None:
        """Start one program per slot; encodes every context once."""
        if len(observations) != len(infos):
            raise ValueError(f"reset_batch got {len(observations)} observations but {len(infos)} infos")
        self.contexts = [self._context(obs, info) for obs, info in zip(observations, infos)]
        self.sampler.start(self.contexts)
        self.gen_tokens = [0] * len(self.contexts)
        self.submit_cause = [""] * len(self.contexts)
        for b, obs in enumerate(observations):
            if obs.get("code"):
                self._resync(b, obs)

    def _context(self, obs: dict[str, str], info: dict[str, Any]) -> str:
        """The text the model reads before the slot's first line (the task's prompt and code prefix)."""
        task = info.get("task") if isinstance(info, dict) else None
        prompt, prefix = (task.prompt, task.code_prefix) if task is not None else (obs["prompt"], "")
        return policy_context(self.sampler.tokenizer, prompt, prefix, chat=self.chat_template)

    def act_batch(self, observations: Sequence[dict[str, str] | None]) -> list[str | None]:
        """One line (or SUBMIT) per live slot; ``None`` for finished slots."""
        if len(observations) != self.sampler.batch_size:
            raise ValueError("act_batch needs reset_batch with the same number of slots first")
        out: list[str | None] = [None] * len(observations)
        active = [obs is not None for obs in observations]
        for b, obs in enumerate(observations):
            if obs is None:
                continue
            if self.max_new_tokens is not None and self.gen_tokens[b] >= self.max_new_tokens:
                active[b], out[b] = False, SUBMIT
                self.submit_cause[b] = self.submit_cause[b] or "budget"
            elif obs.get("code", "") != "".join(line + "\n" for line in self.sampler.lines[b]):
                self._resync(b, obs)  # the env changed the program: re-encode it
        for b, line in enumerate(self.sampler.next_lines(active)):
            if active[b]:
                out[b] = self._take(b, line)
        return out

    def select_slots(self, index: Sequence[int]) -> None:
        """Make slot ``i`` a copy of slot ``index[i]`` (the sampler's cache and record, the
        context, tokens and submit cause): ``len(index)`` slots after (see
        :meth:`codegym.sampling.LineSampler.select_slots`)."""
        rows = [int(i) for i in index]
        self.sampler.select_slots(rows)  # checks the index
        self.contexts = [self.contexts[i] for i in rows]
        self.gen_tokens = [self.gen_tokens[i] for i in rows]
        self.submit_cause = [self.submit_cause[i] for i in rows]

    def episode_stats(self, slot: int) -> dict[str, Any]:
        """What slot ``slot``'s program cost (``codegym eval`` adds it to the episode's row):
        ``{"budget": {"programs": 1, "sampled_lines", "sampled_tokens", "scored_lines": 0,
        "executions": 0}}`` -- the lines and tokens (+1 for an EOS) the policy drew for it."""
        self._check(slot)
        return {"budget": {"programs": 1, "sampled_lines": len(self.sampler.lines[slot]),
                           "sampled_tokens": int(self.gen_tokens[slot]), "scored_lines": 0, "executions": 0}}

    def _check(self, slot: int) -> None:
        if not 0 <= slot < len(self.gen_tokens):
            raise ValueError(f"slot must be in [0, {len(self.gen_tokens)}), got {slot}")

    def _take(self, b: int, line: str | None) -> str:
        """Record what the sampler produced for live slot ``b`` and return the action."""
        if line is None:  # the sampler closed the slot earlier: submit for it
            self.submit_cause[b] = self.submit_cause[b] or "closed"
            return SUBMIT
        if line == SUBMIT:
            self.submit_cause[b] = "eos"
            self.gen_tokens[b] += 1 + len(self.sampler.slots[b].tail_ids)
            return SUBMIT
        if self.sanitize_lines:
            line = self._fit(b, line)
        self.gen_tokens[b] += len(self.sampler.slots[b].line_ids[-1])
        return line

    def _fit(self, b: int, line: str) -> str:
        clean = _UNFIT.sub("?", line)[: self.max_line_chars]
        if clean != line:  # keep the cache equal to the program the env will hold
            self.sampler.set_slot(b, self.contexts[b], self.sampler.lines[b][:-1] + [clean], keep_flags=True)
        return clean

    def _resync(self, slot: int, obs: dict[str, str]) -> None:
        code = obs.get("code", "")
        lines = code[:-1].split("\n") if code.endswith("\n") else (code.split("\n") if code else [])
        self.sampler.set_slot(slot, self.contexts[slot], lines)


__all__ = ["EpisodeRecord", "SamplerAgent", "run_episodes"]
