"""The body of ``codegym reproduce`` (the CLI module in ``codegym`` loads it by name)."""

from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path
from typing import Any

from agents.reproduce.config import ReproduceConfig, preset_config
from agents.reproduce.pipeline import (
    Layout,
    check_or_write_config,
    job_progress,
    plan,
    run_pipeline,
)
from agents.reproduce.report import make_report, prm_table, results_tables


def config_from_args(args: argparse.Namespace) -> ReproduceConfig:
    """The run's config: the preset, then ``--config`` JSON, then ``--set``, then the flags.

    ``--set`` keys name :class:`ReproduceConfig` fields; ``sft.KEY``, ``ppo.KEY`` and ``prm.KEY``
    override a field of the SFT, PPO or PRM-training config.
    """
    from codegym.plugins import parse_kv

    overrides: dict[str, Any] = {}
    if args.config:
        try:
            overrides.update(json.loads(Path(args.config).read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"--config {args.config}: cannot read JSON: {exc}") from exc
    for key, value in parse_kv(args.set).items():
        section, dot, name = key.partition(".")
        if dot:
            if section not in ("sft", "ppo", "prm"):
                raise ValueError(f"--set {key}: only sft.*, ppo.* and prm.* are nested sections")
            overrides.setdefault(section, {})[name] = value
        else:
            overrides[key] = value
    for flag in ("seeds", "device", "jobs", "threads"):
        value = getattr(args, flag)
        if value is not None:
            overrides[flag] = value
    if args.arms:
        overrides["arms"] = tuple(a.strip() for a in args.arms.split(",") if a.strip())
    return preset_config(args.preset, **overrides)


def run(args: argparse.Namespace) -> int:
    """``codegym reproduce``: run (or resume) the pipeline, then print and write the report."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console()
    cfg = config_from_args(args)
    layout = Layout(args.out)
    if not args.report_only:
        check_or_write_config(cfg, layout, overwrite=args.overwrite)
    elif not layout.config.is_file():
        raise ValueError(f"--report-only: {args.out} holds no reproduce run (no {layout.config.name})")
    else:
        cfg = ReproduceConfig.load(layout.config)
    start = time.perf_counter()
    wall_file = layout.root / "wall_seconds.json"
    previous = json.loads(wall_file.read_text())["seconds"] if wall_file.is_file() else 0.0
    jobs = plan(cfg)
    if not args.report_only:
        progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=console, disable=args.quiet,
        )  # fmt: skip
        overall = progress.add_task("reproduce", total=len(jobs), info=f"-> {args.out}")
        bars: dict[str, int] = {}
        stop = threading.Event()

        def on_event(name: str, what: str) -> None:
            if what == "start":
                bars[name] = progress.add_task(name, total=1, info="")
            else:
                if name in bars:
                    progress.remove_task(bars.pop(name))
                progress.advance(overall)
                console.print(f"{what}: {name}", highlight=False)

        def poll() -> None:  # stages write progress to disk; mirror it in the bars
            while not stop.wait(1.0):
                for name, bar in list(bars.items()):
                    done, total, info = job_progress(layout, name, cfg)
                    progress.update(bar, completed=done, total=max(total, 1), info=info)

        done_before = sum(j.done_marker(layout).exists() for j in jobs)
        progress.update(overall, completed=done_before)
        poller = threading.Thread(target=poll, daemon=True)
        try:
            with progress:
                poller.start()
                run_pipeline(cfg, layout.root, on_event=on_event)
        except KeyboardInterrupt:
            console.print(f"[yellow]interrupted[/]: finished stages are kept in {args.out}; re-run "
                          "the same command to resume")  # fmt: skip
            return 130
        finally:
            stop.set()
            elapsed = previous + time.perf_counter() - start
            wall_file.write_text(json.dumps({"seconds": elapsed}) + "\n")
    results = make_report(cfg, layout, wall_seconds=previous + time.perf_counter() - start)
    if "prm" in results:
        console.print(prm_table(results))
    measures = ["sampled", "greedy", "sampled_prefix_accuracy"] if cfg.eval_samples else ["greedy", "greedy_prefix_accuracy"]
    for i, measure in enumerate(measures):
        tables = results_tables(results, measure)
        for table in tables if i == 0 else tables[:2]:  # the diagnostics table once
            console.print(table)
    console.print(f"results: {layout.root / 'results.json'}; plots: {layout.plots}")
    return 0
