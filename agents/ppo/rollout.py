"""Rollouts for LLM-PPO: sample programs line by line through ``CodePRM`` envs (the token
layout of what they become is described in :mod:`agents.ppo.batch`)."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

from agents.ppo.batch import Episode
from codegym.constants import SUBMIT
from codegym.envs.code_prm import CodePRMEnv
from codegym.rollout import step_envs
from codegym.tasks.base import Task
from codegym.tokenization import encode_lines, task_context


def paper_line_rewards(scores: Sequence[float | None]) -> list[float]:
    """The paper's dense reward: PRM score of line m divided by the number of lines T.

    Neutral (comment/blank) lines have no score and get 0; T counts every line written.
    """
    n = len(scores)
    return [0.0 if s is None else float(s) / n for s in scores]


def _test_reward(info: dict[str, Any], kind: str) -> float:
    result = info["exec"]
    if kind == "binary":
        return 1.0 if info["passed"] else 0.0
    total = result.get("total", 0)
    return result.get("passed", 0) / total if total else 0.0


#: ``dense_reward`` values whose line rewards come from the env's step rewards.
ENV_DENSE = ("delta", "delta_open")


def _finish(ep: Episode, info: dict[str, Any], test: float, final_dense: float, truncated: bool) -> None:
    """Record the end of ``ep`` from the final step's ``info``."""
    ep.test_reward = test
    ep.final_dense = final_dense
    ep.passed = bool(info["passed"])
    ep.status = str(info["exec"]["status"])
    ep.truncated = ep.truncated or truncated
    if "invalid_action" in info:  # an env with invalid_action="end" ended the episode
        ep.invalid, ep.eos = True, False


class _Rewards(NamedTuple):
    """How env outcomes become an episode's rewards (see :func:`collect_episodes`)."""

    dense_reward: str
    dense_coef: float
    unit_test_reward: str


def _record_actions(episodes: list[Episode], actions: list[str | None], live: list[int], sampler: Any) -> None:
    """Add the sampled lines to their episodes (a closed slot submits; EOS counts one token)."""
    line_ids = getattr(sampler, "line_ids", None)
    for i in live:
        action = actions[i]
        if action is None:  # the sampler closed the slot on its own: submit for it
            actions[i] = SUBMIT
        elif action == SUBMIT:
            episodes[i].eos = True
            episodes[i].gen_tokens += 1
        else:
            episodes[i].lines.append(action)
            piece = line_ids[i][-1] if line_ids is not None else encode_lines(sampler.tokenizer, [action])[0]
            episodes[i].gen_tokens += len(piece)


def _record_step(ep: Episode, action: str, result: tuple[Any, ...] | ValueError, rewards: _Rewards) -> bool:
    """Record one env step's outcome in ``ep``; returns True when the episode ended."""
    if isinstance(result, ValueError):  # an env with invalid_action="raise"
        ep.invalid, ep.status, ep.eos = True, "invalid_action", False
        if action != SUBMIT:
            ep.line_rewards.append(0.0)
            ep.prm_scores.append(None)
        return True
    _, reward, terminated, truncated, info = result
    done = terminated or truncated
    test = _test_reward(info, rewards.unit_test_reward) if done else 0.0
    close = float(info.get("shaping_close", 0.0)) if done else 0.0
    if action != SUBMIT:
        ep.prm_scores.append(info.get("prm_score"))
        dense = (reward - test - close) if rewards.dense_reward in ENV_DENSE else 0.0
        ep.line_rewards.append(rewards.dense_coef * dense)
    if done:
        _finish(ep, info, test, rewards.dense_coef * close, truncated=bool(truncated))
    return bool(done)


def _record_forced_submit(ep: Episode, result: tuple[Any, ...] | ValueError, rewards: _Rewards) -> None:
    """Record the submission made for the policy when its token budget ran out."""
    ep.truncated = True
    if isinstance(result, ValueError):
        ep.invalid, ep.status = True, "invalid_action"
        return
    info = result[4]
    close = float(info.get("shaping_close", 0.0))
    _finish(ep, info, _test_reward(info, rewards.unit_test_reward), rewards.dense_coef * close, truncated=True)


def _attach_sampler_ids(episodes: list[Episode], sampler: Any) -> None:
    """Copy what the sampler's cache held (ids, forced ids, drawn-as-is flags) into the episodes."""
    exact, eos_exact, line_ids, line_forced = (
        getattr(sampler, a, None) for a in ("line_exact", "eos_exact", "line_ids", "line_forced")
    )
    for i, ep in enumerate(episodes):
        if exact is not None and eos_exact is not None:
            ep.line_exact = list(exact[i][: len(ep.lines)])
            ep.line_exact += [False] * (len(ep.lines) - len(ep.line_exact))
            ep.eos_exact = bool(eos_exact[i])
        if line_ids is not None and len(line_ids[i]) >= len(ep.lines):
            ep.line_ids = [list(x) for x in line_ids[i][: len(ep.lines)]]
            ep.line_forced = list(line_forced[i][: len(ep.lines)]) if line_forced is not None else None


def collect_episodes(
    sampler: Any,
    envs: Sequence[CodePRMEnv],
    tasks: Sequence[Task],
    *,
    max_new_tokens: int,
    dense_reward: str = "none",
    dense_coef: float = 1.0,
    unit_test_reward: str = "binary",
    pool: ThreadPoolExecutor | None = None,
) -> list[Episode]:
    """Run one episode per task (``len(tasks) <= len(envs)``) with the sampler's model.

    Each round: sample a line per live episode, record it, step the envs, record the outcomes,
    submit for episodes whose token budget ran out; finally attach the sampler's ids.

    Args:
        sampler: A :class:`codegym.sampling.LineSampler` wrapping the policy (sampling or
            greedy; its generator makes the draw reproducible).
        envs: ``CodePRM-v0`` envs (sharing a sandbox); env ``i`` runs task ``i``.
        tasks: One task per episode (repeat a task for several samples).
        max_new_tokens: Token budget per program; when it runs out the program is submitted.
        dense_reward: ``"none"``, ``"delta"`` / ``"delta_open"`` (the env's step rewards; the
            closing term of closed shaping goes to :attr:`Episode.final_dense`) or
            ``"paper"`` (PRM score / T from ``info["prm_score"]``).
        dense_coef: Multiplier of the dense part.
        unit_test_reward: ``"binary"`` or ``"fraction"`` (must match the envs').
        pool: Threads that step the envs (program executions in parallel); serial if None.

    Returns:
        One :class:`Episode` per task, in order.
    """
    if len(tasks) > len(envs):
        raise ValueError(f"{len(tasks)} tasks but only {len(envs)} envs")
    rewards = _Rewards(dense_reward, dense_coef, unit_test_reward)
    episodes = [Episode(task=t, context=task_context(t)) for t in tasks]
    for env, task in zip(envs, tasks):
        env.reset(options={"task": task})
    sampler.start([e.context for e in episodes])
    active = [True] * len(tasks)
    while any(active):
        actions = sampler.next_lines(active)
        live = [i for i, a in enumerate(active) if a]
        _record_actions(episodes, actions, live, sampler)
        results = step_envs(envs, live, actions, pool, catch_invalid=True)
        forced = []
        for i, res in zip(live, results):
            if _record_step(episodes[i], actions[i], res, rewards):
                active[i] = False
            elif episodes[i].gen_tokens >= max_new_tokens:
                forced.append(i)
        for i, res in zip(forced, step_envs(envs, forced, [SUBMIT] * len(envs), pool, catch_invalid=True)):  # no EOS to train on
            active[i] = False
            _record_forced_submit(episodes[i], res, rewards)
    _attach_sampler_ids(episodes, sampler)
    if dense_reward == "paper":
        for ep in episodes:
            if ep.lines:
                ep.line_rewards = [dense_coef * p for p in paper_line_rewards(ep.prm_scores)]
    return episodes
