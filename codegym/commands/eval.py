"""``codegym eval``: rollouts of any agent on any suite; pass@k table and trajectories JSONL.

Example (the README's main job: the embedded default policy, greedy, 200 test tasks)::

    codegym eval --suite pipelines --agent hf --model default --agent-arg greedy=true --episodes 200

With ``--out`` every finished episode is appended to the JSONL file at once, and the summary
(``OUT.summary.json``: the table and the run's provenance — model path and hash, PRM, seed,
agent arguments, suite, codegym version, time) is written beside it. Running the same
command again resumes: finished episodes are kept and only the missing ones run. With other
settings it refuses and lists the differences; ``--overwrite`` starts over.
"""

from __future__ import annotations

import argparse
import platform
import time
import warnings
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from codegym.commands.common import (
    SUITE_KWARG_FLAGS,
    add_suite_args,
    console,
    results_table,
    suite_kwargs,
)

#: Settings that identify an evaluation (a resumed run must match them all).
_RESUME_KEYS = ("agent", "agent_args", "model", "prm", "seed", "suite", "episodes", "samples",
                "reward_mode", "max_lines", "timeout", "sandbox")


NAME = "eval"
HELP = "evaluate an agent: pass@k table + trajectories JSONL"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(NAME, help=HELP,
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_suite_args(p)
    p.add_argument("--agent", default="reference",
                   help="registered name (reference, random, hf, ppo) or module:Class")
    p.add_argument("--model", default=None,
                   help="model directory for hf/ppo agents; 'default' = the embedded default "
                        "policy shipped with codegym")
    p.add_argument("--agent-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="extra agent constructor argument (repeatable), e.g. corrupt=0.2; "
                        "unknown keys are refused with the accepted ones")
    p.add_argument("--episodes", type=int, default=None,
                   help="number of tasks (default: all of a finite suite, 100 for pipelines)")
    p.add_argument("--samples", type=int, default=1,
                   help="episodes per task (pass@1, and pass@5/pass@10 when there are enough)")
    p.add_argument("--workers", type=int, default=2, help="parallel program executions")
    p.add_argument("--batch-size", type=int, default=16, help="episodes the agent acts on at once")
    p.add_argument("--sandbox", default="local", help="local | docker")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds per execution")
    p.add_argument("--prm", default="auto",
                   help="dense-reward PRM: auto (default: the embedded PRM on pipelines, none on "
                        "other suites), default (the embedded PRM), none, or a PRM directory")
    p.add_argument("--reward-mode", default="delta", choices=["delta", "delta_open", "score", "none"])
    p.add_argument("--max-lines", type=int, default=64, help="truncation: lines per program")
    p.add_argument("--seed", type=int, default=0, help="agent seed (passed when the agent takes one)")
    p.add_argument("--out", default=None, help="trajectories JSONL (one row per episode; resumes)")
    p.add_argument("--summary", default=None,
                   help="summary JSON path (default: next to --out as *.summary.json)")
    p.add_argument("--plot", default=None, metavar="F.png",
                   help="draw pass@1 by horizon bucket with 95 %% intervals to this image")
    p.add_argument("--overwrite", action="store_true",
                   help="discard the episodes already in --out and start over")
    p.set_defaults(run=run, on_interrupt=_interrupted)


def _interrupted(args: argparse.Namespace) -> str:
    if not args.out:
        return "nothing was saved (pass --out FILE to keep finished episodes and resume)"
    return (f"finished episodes are saved in {args.out}; run the same command again to run "
            "only the missing ones (or add --overwrite to start over)")


def _model_info(path: str | None) -> dict[str, Any] | None:
    if path is None:
        return None
    from codegym.defaults import tree_hash

    p = Path(path)
    return {"path": str(p.resolve()), "sha256": tree_hash(p) if p.exists() else None}


def _settings(args: argparse.Namespace, split: str, skw: dict[str, Any], agent_args: dict[str, Any],
              model: str | None, prm: str | None, n: int) -> dict[str, Any]:
    return {
        "agent": args.agent,
        "agent_args": agent_args,
        "model": _model_info(model),
        "prm": {"spec": args.prm, **(_model_info(prm) or {})} if prm else {"spec": args.prm},
        "seed": args.seed,
        "suite": {"spec": args.suite, "kwargs": skw, "split": split},
        "episodes": n,
        "samples": args.samples,
        "reward_mode": args.reward_mode,
        "max_lines": args.max_lines,
        "timeout": args.timeout,
        "sandbox": args.sandbox,
    }


def _resume(args: argparse.Namespace, summary_path: Path | None, settings: dict[str, Any]) -> list[dict]:
    """Rows already in ``--out`` (after checking they come from the same settings)."""
    import json

    from codegym.runs import diff_settings, read_record

    out = Path(args.out)
    if out.is_dir():
        raise ValueError(f"--out {out} is a directory; pass a JSONL file path")
    if args.overwrite or not out.is_file() or out.stat().st_size == 0:
        return []
    record = read_record(summary_path) if summary_path else None
    if record is None or "settings" not in record:
        raise ValueError(
            f"{out} already holds episodes but no summary with their settings ({summary_path}); "
            "add --overwrite to replace it, or choose another --out"
        )
    diff = diff_settings({k: record["settings"].get(k) for k in _RESUME_KEYS},
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


def _tasks(args: argparse.Namespace) -> tuple[str, dict[str, Any], list[Any]]:
    """The split, the suite's kwargs and the tasks to run (``--episodes`` of them)."""
    from codegym.tasks import load_suite

    if args.plot and not Path(args.plot).suffix:
        raise ValueError(f"--plot {args.plot!r} needs an image suffix such as .png")
    skw = suite_kwargs(args)
    suite = load_suite(args.suite, **skw)
    split = suite.check_split(args.split or suite.default_split())
    n = args.episodes
    if n is None:
        n = suite.size(split) or 100
    if n < 1:
        raise ValueError(f"--episodes must be >= 1, got {n}")
    if args.samples < 1:
        raise ValueError(f"--samples must be >= 1, got {args.samples}")
    return split, skw, suite.take(n, split)


def _prm(args: argparse.Namespace, tasks: list[Any]) -> str | None:
    """The dense-reward PRM of ``--prm`` (with a note when ``auto`` finds none for the suite)."""
    from codegym.defaults import resolve_model
    from codegym.envs.code_prm import resolve_prm

    with warnings.catch_warnings(record=True) as caught:  # said once, as a note, below
        warnings.simplefilter("always")
        prm = resolve_prm(resolve_model(args.prm, "prm"), {str(t.metadata.get("suite", "")) for t in tasks},
                          args.reward_mode)
    if prm is None and args.prm == "auto" and args.reward_mode != "none" and caught:
        console.print(f"[dim]note: no default PRM applies to suite {args.suite!r} (the embedded PRM "
                      "is trained on pipelines): no dense reward; pass --prm DIR to add one[/]")
    return prm


def _provenance(args: argparse.Namespace, agent_args: dict[str, Any]) -> dict[str, Any]:
    """Versions, start time, the command and the agent's effective decoding settings."""
    import codegym
    from codegym.plugins import agent_defaults, resolve

    decoding = {**agent_defaults(resolve(args.agent)), **agent_args}
    if "seed" in decoding:
        decoding["seed"] = agent_args.get("seed", args.seed)
    decoding.pop("model", None)
    return {
        "codegym": codegym.__version__, "python": platform.python_version(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": "codegym eval " + " ".join(_argv(args)), "agent_config": decoding,
    }  # fmt: skip


def _summary_path(args: argparse.Namespace) -> Path | None:
    if args.summary:
        return Path(args.summary)
    return Path(str(Path(args.out).with_suffix("")) + ".summary.json") if args.out else None


def _write_summary(path: Path | None, data: dict[str, Any]) -> None:
    """Write the summary JSON atomically (nothing without a path)."""
    from codegym.jsonutil import dumps

    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(dumps(data, indent=2) + "\n")
    tmp.replace(path)


def _run_with_progress(args: argparse.Namespace, agent: Any, tasks: list[Any], todo: list[tuple[int, int]],
                       done_rows: list[dict], prm: str | None, title: str) -> list[dict]:
    """Run the ``todo`` episodes under a progress bar, appending each row to ``--out`` at once."""
    from codegym.rollout import JsonlWriter, run_episodes

    writer = JsonlWriter(args.out, append=bool(done_rows)) if args.out else None
    columns = (TextColumn("[bold]eval[/] {task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("pass {task.fields[passed]}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        passed = sum(bool(r.get("passed")) for r in done_rows)
        bar = progress.add_task(title, total=len(tasks) * args.samples, completed=len(done_rows), passed=passed)

        def on_episode(row: dict) -> None:
            nonlocal passed
            passed += row["passed"]
            row["agent"] = args.agent
            if writer is not None:
                writer(row)
            progress.update(bar, advance=1, passed=passed)

        try:
            return run_episodes(
                agent, tasks, samples=args.samples, workers=args.workers,
                batch_size=args.batch_size, sandbox=args.sandbox, on_episode=on_episode,
                env_kwargs={"prm": prm, "reward_mode": args.reward_mode,
                            "timeout": args.timeout, "max_lines": args.max_lines},
                episodes=todo,
            )  # fmt: skip
        finally:
            if writer is not None:
                writer.close()


def _plot(args: argparse.Namespace, rows: list[dict], title: str) -> None:
    from codegym.plotting import rates_plot, save_figure
    from codegym.stats import rates_by_horizon

    fig = rates_plot({args.agent: rates_by_horizon(rows)}, title=f"{title}: pass@1 by horizon (95 % intervals)")
    console.print(f"plot: {save_figure(fig, args.plot)}")


def run(args: argparse.Namespace) -> int:
    from codegym.defaults import resolve_model
    from codegym.plugins import build_agent, parse_kv
    from codegym.rollout import summarize
    from codegym.smoke import cap

    cap(args, {"episodes": 8, "max_lines": 8}, "eval")
    split, skw, tasks = _tasks(args)
    agent_args = parse_kv(args.agent_arg)
    model = resolve_model(args.model, "policy")
    prm = _prm(args, tasks)
    settings = _settings(args, split, skw, agent_args, model, prm, len(tasks))
    summary_path = _summary_path(args)
    done_rows = _resume(args, summary_path, settings) if args.out else []
    agent = build_agent(args.agent, {**agent_args, **({"model": model} if model is not None else {})},
                        optional={"seed": args.seed})
    summary = {"agent": args.agent, "suite": args.suite, "split": split, "complete": False,
               "table": [], "settings": settings, "provenance": _provenance(args, agent_args)}
    _write_summary(summary_path, summary)

    done = {(r.get("task_id"), r.get("sample")) for r in done_rows}
    todo = [(t, s) for t in range(len(tasks)) for s in range(args.samples)
            if (tasks[t].task_id, s) not in done]
    if done_rows:
        console.print(f"resuming {args.out}: {len(done_rows)} episodes done, {len(todo)} to run")
    title = f"{args.agent} on {args.suite}/{split}"
    t0 = time.perf_counter()
    rows = [*done_rows, *_run_with_progress(args, agent, tasks, todo, done_rows, prm, title)]

    table = summarize(rows, by_horizon=args.suite == "pipelines")
    console.print(results_table(title, table))
    if args.plot:
        _plot(args, rows, title)
    summary["provenance"].update(finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                 seconds=round(time.perf_counter() - t0, 3))
    _write_summary(summary_path, {**summary, "table": table, "complete": True})
    if summary_path:
        console.print(f"trajectories: {args.out}\nsummary: {summary_path}")
    return 0


def _argv(args: argparse.Namespace) -> list[str]:
    """The options of this run, as flags (recorded in the summary)."""
    out = [f"--suite {args.suite}", f"--agent {args.agent}"]
    if args.model:
        out.append(f"--model {args.model}")
    out += [f"--agent-arg {a}" for a in args.agent_arg]
    flags = {"split": "--split", **SUITE_KWARG_FLAGS, "suite_seed": "--suite-seed", "episodes": "--episodes"}
    for name, flag in flags.items():
        value = getattr(args, name)
        if value is not None:
            out.append(f"{flag} {value}")
    out += [f"--samples {args.samples}", f"--seed {args.seed}", f"--prm {args.prm}"]
    return out
