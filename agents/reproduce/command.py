"""The body of ``codegym reproduce`` (its options are in :mod:`agents.commands.reproduce`)."""

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

    ``--set`` keys name :class:`ReproduceConfig` fields; ``sft.KEY``, ``ppo.KEY``, ``grpo.KEY``
    and ``prm.KEY`` override a field of the SFT, PPO, GRPO or PRM-training config.
    """
    from codegym.config import config_data

    data = config_data(args)
    return preset_config(data.pop("preset", "quick"), **data)


def run(args: argparse.Namespace) -> int:
    """``codegym reproduce``: run (or resume) the pipeline, then print and write the report."""
    from rich.console import Console

    console = Console()
    cfg = config_from_args(args)
    layout = Layout(args.out)
    if not args.report_only:
        check_or_write_config(cfg, layout, overwrite=args.overwrite)
    elif not layout.config.is_file():
        raise ValueError(f"--report-only: {args.out} holds no reproduce run (no {layout.config.name})")
    else:
        cfg = ReproduceConfig.load(layout.config)
    wall = _WallClock(layout.root / "wall_seconds.json")
    if not args.report_only:
        try:
            _run_stages(cfg, layout, console, quiet=args.quiet, wall=wall)
        except KeyboardInterrupt:
            console.print(f"[yellow]interrupted[/]: finished stages are kept in {args.out}; re-run "
                          "the same command to resume")  # fmt: skip
            return 130
    _print_report(cfg, layout, console, wall.seconds())
    return 0


class _WallClock:
    """Wall seconds of the run, summed over every invocation (kept in ``wall_seconds.json``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.previous = json.loads(path.read_text())["seconds"] if path.is_file() else 0.0
        self.start = time.perf_counter()

    def seconds(self) -> float:
        return self.previous + time.perf_counter() - self.start

    def save(self) -> None:
        self.path.write_text(json.dumps({"seconds": self.seconds()}) + "\n")


def _run_stages(cfg: ReproduceConfig, layout: Layout, console: Any, quiet: bool, wall: _WallClock) -> None:
    """Run the pipeline with one bar for the stages and one per running stage (mirroring the
    progress each stage writes to disk)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    jobs = plan(cfg)
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=console, disable=quiet,
    )  # fmt: skip
    done_before = sum(j.done_marker(layout).exists() for j in jobs)
    overall = progress.add_task("reproduce", total=len(jobs), completed=done_before, info=f"-> {layout.root}")
    bars: dict[str, Any] = {}
    stop = threading.Event()

    def on_event(name: str, what: str) -> None:
        if what == "start":
            bars[name] = progress.add_task(name, total=1, info="")
            return
        if name in bars:
            progress.remove_task(bars.pop(name))
        progress.advance(overall)
        console.print(f"{what}: {name}", highlight=False)

    def poll() -> None:
        while not stop.wait(1.0):
            for name, bar in list(bars.items()):
                done, total, info = job_progress(layout, name, cfg)
                progress.update(bar, completed=done, total=max(total, 1), info=info)

    poller = threading.Thread(target=poll, daemon=True)
    try:
        with progress:
            poller.start()
            run_pipeline(cfg, layout.root, on_event=on_event)
    finally:
        stop.set()
        wall.save()


def _print_report(cfg: ReproduceConfig, layout: Layout, console: Any, wall_seconds: float) -> None:
    """Write the report (``results.json``, plots) and print its tables."""
    results = make_report(cfg, layout, wall_seconds=wall_seconds)
    if "prm" in results:
        console.print(prm_table(results))
    measures = (["sampled", "greedy", "sampled_prefix_accuracy"] if cfg.eval_samples
                else ["greedy", "greedy_prefix_accuracy"])
    for i, measure in enumerate(measures):
        tables = results_tables(results, measure)
        for table in tables if i == 0 else tables[:-1]:  # the diagnostics table (last) once
            console.print(table)
    console.print(f"results: {layout.root / 'results.json'}; plots: {layout.plots}")
