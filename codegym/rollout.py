"""Evaluation rollouts: run any agent on a list of tasks, in batches, with parallel execution."""

from __future__ import annotations

import math
import os
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from codegym.envs.code_prm import CodePRMEnv
from codegym.evaluation import (
    DEFAULT_BUCKETS,
    bucket_of,
    parse_buckets,
    prefix_accuracy,
    task_horizon,
)
from codegym.tasks.base import Task
from codegym.training.checkpoint import MetricsWriter
from sandboxes import Sandbox, make_sandbox

#: Horizon buckets (inclusive step ranges) of the ``pipelines`` tables: the one scheme of
#: :mod:`codegym.evaluation` (``13+`` is open-ended).
HORIZON_BUCKETS: tuple[tuple[int, int], ...] = tuple(parse_buckets(DEFAULT_BUCKETS))


def horizon_bucket(steps: int) -> str:
    """Bucket label for a task with ``steps`` steps, e.g. ``"4-6"`` (``"0"`` outside every bucket)."""
    return bucket_of(steps, HORIZON_BUCKETS) or "0"


#: The k of the pass@k columns reported when there are at least k samples per task.
PASS_AT_K: tuple[int, ...] = (1, 5, 10)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k estimator (Chen et al., 2021) for ``c`` passes out of ``n`` samples."""
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def run_episodes(
    agent: Any,
    tasks: Sequence[Task],
    *,
    samples: int = 1,
    workers: int = 1,
    batch_size: int = 16,
    sandbox: str | Sandbox = "local",
    env_kwargs: dict[str, Any] | None = None,
    on_episode: Callable[[dict[str, Any]], None] | None = None,
    episodes: Sequence[tuple[int, int]] | None = None,
) -> list[dict[str, Any]]:
    """Roll ``agent`` out on every task ``samples`` times and return one row per episode.

    Episodes run in waves of ``max(batch_size, workers)`` envs: the agent acts on the whole
    wave at once (``act_batch``), and env steps — program executions included — run in a
    pool of ``workers`` threads over one sandbox with ``workers`` workers.

    Args:
        agent: An :class:`agents.base.Agent` (anything with ``reset_batch``/``act_batch``).
        tasks: Tasks to evaluate, in order.
        samples: Episodes per task (for pass@k).
        workers: Parallel program executions.
        batch_size: Episodes per wave (the agent's batch).
        sandbox: Backend name or a shared ``Sandbox`` (not closed here).
        env_kwargs: Extra :class:`CodePRMEnv` arguments (``prm``, ``reward_mode``, ...). A
            ``prm`` given by name or directory is loaded once and shared by every env.
        on_episode: Called with each row as soon as its episode ends.
        episodes: Only these ``(task index, sample index)`` pairs (default: every task
            ``samples`` times), e.g. the episodes a resumed evaluation still lacks.

    Returns:
        Rows with ``task_id``, ``sample``, ``steps``, ``lines``, ``rewards``, ``prm_scores``,
        ``return``, ``passed``, ``status``, ``tests_passed``, ``tests_total``,
        ``error_type``, ``duration``, ``num_lines``, ``truncated`` and ``prefix_accuracy``
        (:func:`codegym.evaluation.prefix_accuracy`).
    """
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if not tasks:
        return []
    episodes = list(episodes) if episodes is not None else [(t, s) for t in range(len(tasks)) for s in range(samples)]
    if not episodes:
        return []
    kwargs = dict(env_kwargs or {})
    n_envs = min(max(batch_size, workers), len(episodes))  # the wave
    scorers = _line_scorers(kwargs, tasks, n_envs)
    owns = not isinstance(sandbox, Sandbox)
    box = make_sandbox(sandbox, workers=workers) if owns else sandbox
    envs = [CodePRMEnv(tasks=[tasks[0]], sandbox=box, prm=scorers[i], **kwargs) for i in range(n_envs)]
    try:
        return _run_waves(agent, tasks, episodes, envs, workers, on_episode)
    finally:
        for env in envs:
            env.close()
        if owns:
            box.close()


def _run_waves(agent, tasks, episodes, envs, workers, on_episode) -> list[dict[str, Any]]:
    """The episodes in waves of ``len(envs)``, env steps in a pool of ``workers`` threads."""
    rows: list[dict[str, Any]] = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, len(episodes), len(envs)):
            chunk = episodes[start : start + len(envs)]
            rows.extend(_run_wave(agent, tasks, chunk, envs[: len(chunk)], pool, on_episode))
    return rows


def _line_scorers(kwargs: dict[str, Any], tasks: Sequence[Task], n: int) -> list[Any]:
    """One line scorer per env from ``kwargs["prm"]`` (popped, with ``prm_device``): a PRM
    given by name or directory is loaded once and shared; anything else is used as given."""
    prm = kwargs.pop("prm", "auto")
    if not isinstance(prm, (str, os.PathLike)):
        return [prm] * n
    from codegym.envs.code_prm import resolve_prm

    suites = {str(t.metadata.get("suite", "")) for t in tasks}
    path = resolve_prm(os.fspath(prm), suites, kwargs.get("reward_mode", "delta"))
    if path is None:
        return [None] * n
    from codegym.prm import load_line_scorers

    return list(load_line_scorers(path, n, device=kwargs.pop("prm_device", "cpu")))


def _step(env: Any, action: Any, catch_invalid: bool) -> tuple[Any, ...] | ValueError:
    try:
        return env.step(action)
    except ValueError as exc:
        if not catch_invalid:
            raise
        return exc  # an invalid line: the episode fails, the worker survives


def step_envs(
    envs: Sequence[Any],
    indices: Sequence[int],
    actions: Sequence[Any],
    pool: ThreadPoolExecutor | None = None,
    catch_invalid: bool = False,
) -> list[Any]:
    """Step ``envs[i]`` with ``actions[i]`` for each ``i`` in ``indices``, in ``pool``'s threads
    (program executions in parallel; serially without a pool).

    Returns:
        The ``env.step`` results in the order of ``indices``; with ``catch_invalid`` the
        ``ValueError`` an env raises on an invalid line is returned in its place.
    """
    mapper = pool.map if pool is not None else map
    flags = [catch_invalid] * len(indices)
    return list(mapper(_step, [envs[i] for i in indices], [actions[i] for i in indices], flags))


def _run_wave(agent, tasks, chunk, envs, pool, on_episode) -> list[dict[str, Any]]:
    observations, infos = [], []
    for env, (t, _) in zip(envs, chunk):
        obs, info = env.reset(options={"task": tasks[t]})
        observations.append(obs)
        infos.append(info)
    agent.reset_batch(observations, infos)
    traj = [{"lines": [], "rewards": [], "prm_scores": []} for _ in chunk]
    finished: list[dict[str, Any] | None] = [None] * len(chunk)
    active: list[dict[str, str] | None] = list(observations)
    while any(o is not None for o in active):
        actions = agent.act_batch(active)
        live = [i for i, o in enumerate(active) if o is not None]
        results = step_envs(envs, live, actions, pool)
        for i, (obs, reward, terminated, truncated, info) in zip(live, results):
            traj[i]["rewards"].append(reward)
            if info.get("line_index", -1) >= 0:
                traj[i]["lines"].append(actions[i])
                traj[i]["prm_scores"].append(info.get("prm_score"))
            if terminated or truncated:
                active[i] = None
                finished[i] = _row(tasks[chunk[i][0]], chunk[i][1], traj[i], info, truncated)
                if on_episode is not None:
                    on_episode(finished[i])
            else:
                active[i] = obs
    return [row for row in finished if row is not None]


def _row(task: Task, sample: int, traj: dict[str, list], info: dict[str, Any], truncated: bool) -> dict[str, Any]:
    result = info["exec"]
    return {
        "task_id": task.task_id,
        "sample": sample,
        "suite": task.metadata.get("suite", ""),
        "steps": task_horizon(task),
        "lines": traj["lines"],
        "rewards": traj["rewards"],
        "prm_scores": traj["prm_scores"],
        "return": float(sum(traj["rewards"])),
        "passed": bool(info["passed"]),
        "status": result["status"],
        "tests_passed": result["passed"],
        "tests_total": result["total"],
        "error_type": result["error_type"],
        "duration": result["duration"],
        "num_lines": len(traj["lines"]),
        "truncated": truncated,
        "prefix_accuracy": prefix_accuracy(traj["lines"], task.solution_lines, bool(info["passed"])),
    }


def summarize(rows: Sequence[dict[str, Any]], by_horizon: bool = False) -> list[dict[str, Any]]:
    """Aggregate rows into table rows: overall, and per horizon bucket when asked.

    Each table row has ``group``, ``episodes``, ``tasks``, ``passed``, ``pass@1``,
    ``pass@5`` and ``pass@10`` (when every task has at least that many samples), ``pass@k``
    with ``k`` (k = samples per task, when > 1), ``mean_return``, ``mean_lines`` and
    ``mean_prefix_accuracy`` (when every row has ``prefix_accuracy``).
    """
    groups: dict[str, list[dict[str, Any]]] = {"all": list(rows)}
    if by_horizon:
        for row in rows:
            groups.setdefault(horizon_bucket(row["steps"]), []).append(row)
    table = []
    for name in sorted(groups, key=lambda g: (g != "all", _bucket_key(g))):
        group = groups[name]
        if not group:
            continue
        per_task: dict[str, list[bool]] = defaultdict(list)
        for row in group:
            per_task[row["task_id"]].append(row["passed"])
        k = min(len(v) for v in per_task.values())
        entry = {
            "group": name,
            "episodes": len(group),
            "tasks": len(per_task),
            "passed": sum(r["passed"] for r in group),
            "pass@1": sum(pass_at_k(len(v), sum(v), 1) for v in per_task.values()) / len(per_task),
            "mean_return": sum(r["return"] for r in group) / len(group),
            "mean_lines": sum(r["num_lines"] for r in group) / len(group),
        }
        if all("prefix_accuracy" in r for r in group):  # rows of earlier versions lack it
            entry["mean_prefix_accuracy"] = sum(r["prefix_accuracy"] for r in group) / len(group)
        for kk in PASS_AT_K[1:]:
            if kk <= k:
                entry[f"pass@{kk}"] = sum(pass_at_k(len(v), sum(v), kk) for v in per_task.values()) / len(per_task)
        if k > 1:
            entry["k"] = k
            entry["pass@k"] = sum(pass_at_k(len(v), sum(v), k) for v in per_task.values()) / len(per_task)
        table.append(entry)
    return table


def _bucket_key(name: str) -> int:
    head = name.split("-")[0].rstrip("+")
    return int(head) if head.isdigit() else -1


#: The metrics writer of :mod:`codegym.training.checkpoint` (rows flushed and fsynced as they arrive).
JsonlWriter = MetricsWriter
