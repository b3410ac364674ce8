"""``codegym eval``: rollouts of any agent on any suite; pass@k table and trajectories JSONL.

Example (the README's main job: the embedded default policy, greedy, 200 test tasks)::

    codegym eval --suite pipelines --agent hf --model default --agent-arg greedy=true --episodes 200

With ``--out`` every finished episode is appended to the JSONL file at once, and the summary
(``OUT.summary.json``: the table and the run's provenance — model path and hash, PRM, seed,
agent arguments, suite, codegym version, time) is written beside it. Running the same
command again resumes: finished episodes are kept and only the missing ones run. With other
settings it refuses and lists the differences; ``--overwrite`` starts over.

Every row carries the ``time_limit`` its program ran under (``--timeout``, or the task's
calibrated limit when that is larger: :mod:`codegym.tasks.timing`). Every timeout is reported
at the end with the reference solution's own time next to it (measured again for those tasks
alone, with a generous limit) and the limit calibrated from it; the summary keeps them under
``timeouts``.
"""

from __future__ import annotations

import argparse
import platform
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from codegym.commands.common import (
    SUITE_FLAGS,
    SUITE_NOT_EXPOSED,
    add_suite_args,
    console,
    results_table,
)
from codegym.config import Config
from codegym.tasks.registry import SuiteConfig, nest_suite_fields

#: Settings that identify an evaluation (a resumed run must match them all).
_RESUME_KEYS = ("agent", "agent_args", "model", "prm", "seed", "suite", "episodes", "samples",
                "reward_mode", "max_lines", "timeout", "sandbox", "dtype")
#: What a summary written before a setting existed ran with.
_RESUME_DEFAULTS = {"dtype": "fp32"}

NAME = "eval"
HELP = "evaluate an agent: pass@k table + trajectories JSONL"


@dataclass
class EvalConfig(Config):
    """Settings of ``codegym eval``."""

    suite: SuiteConfig = field(default_factory=SuiteConfig)
    """Tasks: the suite (pipelines | humaneval | jsonl:PATH | hf:NAME), the split (default: the
    suite's test split) and its knobs."""
    agent: str = "reference"
    """Registered agent name (reference, random, hf, ppo, bestofn, beam) or module:Class."""
    model: str | None = None
    """Model directory for hf/ppo agents; 'default' = the embedded default policy shipped with
    codegym."""
    agent_arg: tuple[str, ...] = ()
    """Extra agent constructor arguments, KEY=VALUE (repeatable), e.g. corrupt=0.2; unknown
    keys are refused with the accepted ones."""
    episodes: int | None = None
    """Number of tasks (default: all of a finite suite, 100 for pipelines)."""
    samples: int = 1
    """Episodes per task (pass@1, and pass@5/pass@10 when there are enough)."""
    workers: int = 2
    """Parallel program executions."""
    batch_size: int = 16
    """Episodes the agent acts on at once."""
    sandbox: str = "local"
    """Sandbox backend: local | docker."""
    timeout: float = 5.0
    """Seconds per execution."""
    prm: str = "auto"
    """Dense-reward PRM: auto (the embedded PRM on pipelines, none on other suites), default
    (the embedded PRM), none, or a PRM directory."""
    reward_mode: Literal["delta", "delta_open", "score", "paper", "none"] = "delta"
    """Dense reward of the env: delta (closed shaping), delta_open, score, paper (score / T) or
    none."""
    max_lines: int = 64
    """Truncation: lines per program."""
    seed: int = 0
    """Agent seed (passed when the agent takes one)."""
    device: str = "cpu"
    """Torch device of the agent's model (cpu, cuda, cuda:N; passed when the agent takes a
    ``device``, e.g. hf, ppo, bestofn, beam): checked first, so a CUDA request without CUDA
    is refused naming that cause. ``--agent-arg device=...`` wins over it."""
    dtype: Literal["fp32", "bf16", "fp16", "auto"] = "fp32"
    """Precision of the agent's model weights (auto: the checkpoint's own), passed when the
    agent takes a ``dtype``."""
    prm_device: str | None = None
    """Torch device of the PRM: the env's dense-reward PRM and a search agent's scorer
    (default: ``device``), e.g. the policy on one GPU and the PRM on another."""
    out: str | None = None
    """Trajectories JSONL (one row per episode; resumes)."""
    summary: str | None = None
    """Summary JSON path (default: next to out as *.summary.json)."""
    plot: str | None = None
    """Draw pass@1 by horizon bucket with 95 % intervals to this image."""
    overwrite: bool = False
    """Discard the episodes already in out and start over."""

    @classmethod
    def upgrade(cls, data: Mapping[str, Any], note: bool = True) -> dict[str, Any]:
        """Settings that predate :class:`SuiteConfig` (flat ``suite``, ``split``, ``min_steps``,
        ``max_steps``, ``suite_seed``): read as ``suite`` (with a note)."""
        return nest_suite_fields(cls, data, note=note)

    def validate(self) -> EvalConfig:
        """Raise ``ValueError`` naming a bad setting; returns self (runs on construction)."""
        counts = ("samples", "workers", "batch_size", "max_lines", "episodes")
        for name in (n for n in counts if getattr(self, n) is not None):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)!r}")
        if self.timeout <= 0:
            raise ValueError(f"--timeout must be > 0 seconds, got {self.timeout}")
        from codegym.precision import resolve_dtype

        resolve_dtype(self.dtype)
        if self.plot and not Path(self.plot).suffix:
            raise ValueError(f"--plot {self.plot!r} needs an image suffix such as .png")
        return self


def add_parser(sub: argparse._SubParsersAction) -> None:
    from codegym.config import add_config_args

    p = sub.add_parser(NAME, help=HELP,
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(p, EvalConfig, not_exposed=SUITE_NOT_EXPOSED,
                    options={"agent_arg": {"action": "append", "metavar": "KEY=VALUE"},
                             "plot": {"metavar": "F.png"}})  # fmt: skip
    add_suite_args(p)
    p.set_defaults(run=run, on_interrupt=_interrupted)


def _interrupted(args: argparse.Namespace) -> str:
    if not getattr(args, "out", None):
        return "nothing was saved (pass --out FILE to keep finished episodes and resume)"
    return (f"finished episodes are saved in {args.out}; run the same command again to run "
            "only the missing ones (or add --overwrite to start over)")


def _model_info(path: str | None) -> dict[str, Any] | None:
    if path is None:
        return None
    from codegym.defaults import tree_hash

    p = Path(path)
    return {"path": str(p.resolve()), "sha256": tree_hash(p) if p.exists() else None}


def _settings(cfg: EvalConfig, split: str, agent_args: dict[str, Any],
              model: str | None, prm: str | None, n: int) -> dict[str, Any]:
    return {
        "agent": cfg.agent,
        "agent_args": agent_args,
        "model": _model_info(model),
        "prm": {"spec": cfg.prm, **(_model_info(prm) or {})} if prm else {"spec": cfg.prm},
        "seed": cfg.seed,
        "suite": {**cfg.suite.to_dict(), "split": split},
        "episodes": n,
        "samples": cfg.samples,
        "reward_mode": cfg.reward_mode,
        "max_lines": cfg.max_lines,
        "timeout": cfg.timeout,
        "sandbox": cfg.sandbox,
        "dtype": cfg.dtype,
    }


def _resume(cfg: EvalConfig, summary_path: Path | None, settings: dict[str, Any]) -> list[dict]:
    """Rows already in ``--out`` (after checking they come from the same settings)."""
    import json

    from codegym.training.rundir import diff_settings, read_record

    out = Path(cfg.out)
    if out.is_dir():
        raise ValueError(f"--out {out} is a directory; pass a JSONL file path")
    if cfg.overwrite or not out.is_file() or out.stat().st_size == 0:
        return []
    record = read_record(summary_path) if summary_path else None
    if record is None or "settings" not in record:
        raise ValueError(
            f"{out} already holds episodes but no summary with their settings ({summary_path}); "
            "add --overwrite to replace it, or choose another --out"
        )
    diff = diff_settings({k: record["settings"].get(k, _RESUME_DEFAULTS.get(k)) for k in _RESUME_KEYS},
                         {k: settings.get(k) for k in _RESUME_KEYS})
    if diff:
        raise ValueError(
            f"{out} holds an evaluation with other settings ({'; '.join(diff)}): run the same "
            "command to resume it, add --overwrite to start over, or choose another --out"
        )
    data = out.read_bytes()
    cut = data.rfind(b"\n") + 1  # a half-written last line (a crash) is dropped
    rows = []
    for n, raw in enumerate(data[:cut].split(b"\n")[:-1], start=1):
        if raw.strip():
            try:
                rows.append(json.loads(raw))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{out}:{n}: corrupt row ({exc.msg}); add --overwrite to start over") from None
    if cut < len(data):
        with open(out, "r+b") as f:
            f.truncate(cut)
    return rows


def _tasks(cfg: EvalConfig) -> tuple[Any, str, list[Any]]:
    """The suite, the split and the tasks to run (``--episodes`` of them)."""
    suite = cfg.suite.load()
    split = cfg.suite.pick_split(suite)
    n = cfg.episodes
    if n is None:
        n = suite.size(split) or 100
    if n < 1:
        raise ValueError(f"--episodes must be >= 1, got {n}")
    return suite, split, suite.take(n, split)


def _prm(cfg: EvalConfig, tasks: list[Any]) -> str | None:
    """The dense-reward PRM of ``--prm`` (with a note when ``auto`` finds none for the suite)."""
    from codegym.defaults import resolve_model
    from codegym.envs.code_prm import resolve_prm

    with warnings.catch_warnings(record=True) as caught:  # said once, as a note, below
        warnings.simplefilter("always")
        prm = resolve_prm(resolve_model(cfg.prm, "prm"), {str(t.metadata.get("suite", "")) for t in tasks},
                          cfg.reward_mode)
    if prm is None and cfg.prm == "auto" and cfg.reward_mode != "none" and caught:
        console.print(f"[dim]note: no default PRM applies to suite {cfg.suite.name!r} (the embedded PRM "
                      "is trained on pipelines): no dense reward; pass --prm DIR to add one[/]")
    return prm


def _provenance(cfg: EvalConfig, agent_args: dict[str, Any]) -> dict[str, Any]:
    """Versions, start time, the command and the agent's effective decoding settings."""
    import codegym
    from codegym.plugins import agent_defaults, resolve

    decoding = {**agent_defaults(resolve(cfg.agent)), **agent_args}
    if "seed" in decoding:
        decoding["seed"] = agent_args.get("seed", cfg.seed)
    decoding.pop("model", None)
    return {
        "codegym": codegym.__version__, "python": platform.python_version(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": "codegym eval " + " ".join(_argv(cfg)), "agent_config": decoding,
    }  # fmt: skip


def _summary_path(cfg: EvalConfig) -> Path | None:
    if cfg.summary:
        return Path(cfg.summary)
    return Path(str(Path(cfg.out).with_suffix("")) + ".summary.json") if cfg.out else None


def _write_summary(path: Path | None, data: dict[str, Any]) -> None:
    """Write the summary JSON atomically (nothing without a path)."""
    from codegym.reporting.jsonio import dumps

    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(dumps(data, indent=2) + "\n")
    tmp.replace(path)


def _run_with_progress(cfg: EvalConfig, agent: Any, tasks: list[Any], todo: list[tuple[int, int]],
                       done_rows: list[dict], prm: str | None, title: str, prm_device: str = "cpu") -> list[dict]:
    """Run the ``todo`` episodes under a progress bar, appending each row to ``--out`` at once."""
    from codegym.evaluation import episode_row
    from codegym.rollout import run_episodes
    from codegym.tasks.timing import time_limit
    from codegym.training.checkpoint import MetricsWriter

    writer = MetricsWriter(cfg.out, append=bool(done_rows)) if cfg.out else None
    limits = {t.task_id: time_limit(t, cfg.timeout) for t in tasks}
    columns = (TextColumn("[bold]eval[/] {task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("pass {task.fields[passed]}"), TimeElapsedColumn())
    rows: dict[int, dict] = {}  # id(record) -> its row
    with Progress(*columns, console=console, transient=False) as progress:
        passed = sum(bool(r.get("passed")) for r in done_rows)
        bar = progress.add_task(title, total=len(tasks) * cfg.samples, completed=len(done_rows), passed=passed)

        def on_episode(record: Any) -> None:
            nonlocal passed
            row = rows[id(record)] = {**episode_row(record), "agent": cfg.agent, **_episode_stats(agent, record.slot)}
            passed += row["passed"]
            row["time_limit"] = limits.get(row["task_id"], cfg.timeout)
            if writer is not None:
                writer(row)
            progress.update(bar, advance=1, passed=passed)

        try:
            records = run_episodes(
                agent, tasks, samples=cfg.samples, workers=cfg.workers, num_envs=cfg.batch_size,
                sandbox=cfg.sandbox, on_episode=on_episode, episodes=todo,
                env_kwargs={"prm": prm, "prm_device": prm_device, "reward_mode": cfg.reward_mode,
                            "timeout": cfg.timeout, "max_lines": cfg.max_lines},
            )  # fmt: skip
        finally:
            if writer is not None:
                writer.close()
    return [rows[id(record)] for record in records]


def _episode_stats(agent: Any, slot: int) -> dict[str, Any]:
    """What the agent reports about the episode of ``slot`` (``budget``, a search's choice),
    when it reports anything (:meth:`codegym.rollout.SamplerAgent.episode_stats`)."""
    stats = getattr(agent, "episode_stats", None)
    return dict(stats(slot)) if callable(stats) else {}


def _report_budget(rows: list[dict]) -> dict[str, Any] | None:
    """Print and return what the agent spent, summed over the episodes whose rows carry a
    ``budget`` (sampled lines and tokens, scored lines, executions); None when none does."""
    from codegym.search.aggregate import SearchBudget

    spent = [r["budget"] for r in rows if isinstance(r.get("budget"), dict)]
    if not spent:
        return None
    total = SearchBudget.total(spent).to_dict()
    per = {k: v / len(spent) for k, v in total.items()}
    console.print(f"budget: {total['sampled_lines']} sampled lines ({per['sampled_lines']:.1f} per episode), "
                  f"{total['sampled_tokens']} sampled tokens ({per['sampled_tokens']:.1f} per episode), "
                  f"{total['programs']} programs, {total['scored_lines']} scored lines, "
                  f"{total['executions']} scorer executions")  # fmt: skip
    return {"episodes": len(spent), "total": total, "per_episode": per}


def _report_timeouts(cfg: EvalConfig, tasks: list[Any], rows: list[dict]) -> list[dict]:
    """Every timed-out task with its reference solution's own time beside its limit (the
    reference run again alone, with ten times the limit and at least 60 s)."""
    from rich.table import Table

    from codegym.tasks.timing import reference_times
    from sandboxes import make_sandbox

    timed_out = {r["task_id"]: r for r in rows if r.get("status") == "timeout"}
    if not timed_out:
        return []
    todo = [t for t in tasks if t.task_id in timed_out]
    limit = max(float(timed_out[t.task_id].get("time_limit", cfg.timeout)) for t in todo)
    with make_sandbox(cfg.sandbox, workers=cfg.workers) as box:
        times = reference_times(todo, box, timeout=max(60.0, 10 * limit))
    table = Table(title=f"{len(times)} timeouts: the reference solution's own time")
    for col in ("task", "limit s", "reference s", "reference status", "calibrated limit s"):
        table.add_column(col, justify="left" if col == "task" else "right")
    out = []
    for t in times:
        lim = float(timed_out[t.task_id].get("time_limit", cfg.timeout))
        table.add_row(t.task_id, f"{lim:g}", f"{t.seconds:.3f}", t.status, f"{t.time_limit:g}")
        out.append({"task_id": t.task_id, "time_limit": lim, "reference_time": t.seconds,
                    "reference_status": t.status, "calibrated_limit": t.time_limit})
    console.print(table)
    return out


def _plot(cfg: EvalConfig, rows: list[dict], title: str) -> None:
    from codegym.reporting.plotting import rates_plot, save_figure
    from codegym.reporting.stats import rates_by_horizon

    fig = rates_plot({cfg.agent: rates_by_horizon(rows)}, title=f"{title}: pass@1 by horizon (95 % intervals)")
    console.print(f"plot: {save_figure(fig, cfg.plot)}")


def run(args: argparse.Namespace) -> int:
    from codegym.config import config_data
    from codegym.defaults import resolve_model
    from codegym.evaluation import summarize
    from codegym.plugins import build_agent, parse_kv
    from codegym.training.smoke import cap

    cfg = EvalConfig.from_dict(config_data(args))
    if cap(cfg, {"episodes": 8, "max_lines": 8}, "eval"):
        cfg.validate()
    prm_device = _check_devices(cfg)
    suite, split, tasks = _tasks(cfg)
    agent_args = parse_kv(cfg.agent_arg)
    model = resolve_model(cfg.model, "policy")
    prm = _prm(cfg, tasks)
    settings = _settings(cfg, split, agent_args, model, prm, len(tasks))
    summary_path = _summary_path(cfg)
    done_rows = _resume(cfg, summary_path, settings) if cfg.out else []
    agent = build_agent(cfg.agent, {**agent_args, **({"model": model} if model is not None else {})},
                        optional={"seed": cfg.seed, "device": cfg.device, "dtype": cfg.dtype,
                                  "prm_device": prm_device})  # fmt: skip
    summary = {"agent": cfg.agent, "suite": cfg.suite.name, "split": split, "complete": False,
               "table": [], "settings": settings, "provenance": _provenance(cfg, agent_args)}
    _write_summary(summary_path, summary)

    done = {(r.get("task_id"), r.get("sample")) for r in done_rows}
    todo = [(t, s) for t in range(len(tasks)) for s in range(cfg.samples)
            if (tasks[t].task_id, s) not in done]
    if done_rows:
        console.print(f"resuming {cfg.out}: {len(done_rows)} episodes done, {len(todo)} to run")
    title = f"{cfg.agent} on {cfg.suite.name}/{split}"
    t0 = time.perf_counter()
    rows = [*done_rows, *_run_with_progress(cfg, agent, tasks, todo, done_rows, prm, title, prm_device)]

    table = summarize(rows, by_horizon=suite.supports_horizon)
    console.print(results_table(title, table))
    summary["budget"] = _report_budget(rows)
    summary["timeouts"] = _report_timeouts(cfg, tasks, rows)
    if cfg.plot:
        _plot(cfg, rows, title)
    summary["provenance"].update(finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                 seconds=round(time.perf_counter() - t0, 3))
    _write_summary(summary_path, {**summary, "table": table, "complete": True})
    if summary_path:
        console.print(f"trajectories: {cfg.out}\nsummary: {summary_path}")
    return 0


def _check_devices(cfg: EvalConfig) -> str:
    """Refuse a ``--device`` / ``--prm-device`` this machine lacks, naming the real cause
    (:func:`codegym.precision.check_device`); returns the PRM's device."""
    from codegym.precision import check_device

    check_device(cfg.device, flag="--device")
    prm_device = cfg.prm_device or cfg.device
    check_device(prm_device, flag="--prm-device" if cfg.prm_device else "--device")
    return prm_device


def _argv(cfg: EvalConfig) -> list[str]:
    """The options of this run, as flags (recorded in the summary)."""
    out = [f"--suite {cfg.suite.name}", f"--agent {cfg.agent}"]
    if cfg.model:
        out.append(f"--model {cfg.model}")
    out += [f"--agent-arg {a}" for a in cfg.agent_arg]
    given = [(flag, getattr(cfg.suite, name)) for name, flag in SUITE_FLAGS.items() if name != "name"]
    for flag, value in [*given, ("--episodes", cfg.episodes)]:
        if value is not None:
            out.append(f"{flag} {value}")
    out += [f"--samples {cfg.samples}", f"--seed {cfg.seed}", f"--prm {cfg.prm}"]
    out += [f"--{k.replace('_', '-')} {v}" for k, v in (("device", cfg.device), ("dtype", cfg.dtype),
            ("prm_device", cfg.prm_device)) if v not in (None, "cpu", "fp32")]  # fmt: skip
    return out
