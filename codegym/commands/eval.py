"""``codegym eval``: rollouts of any agent on any suite; pass@k table and trajectories JSONL."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from codegym.commands.common import add_suite_args, console, results_table, suite_kwargs


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate an agent: pass@k table + trajectories JSONL",
                       description=__doc__)
    add_suite_args(p)
    p.add_argument("--agent", default="reference",
                   help="registered name (reference, random, hf, ppo) or module:Class")
    p.add_argument("--model", default=None,
                   help="model directory for hf/ppo agents; 'default' = the embedded default SFT "
                        "policy (trained locally on first use, then cached)")
    p.add_argument("--agent-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="extra agent constructor argument (repeatable), e.g. corrupt=0.2")
    p.add_argument("--episodes", type=int, default=None,
                   help="number of tasks (default: all of a finite suite, 100 for pipelines)")
    p.add_argument("--samples", type=int, default=1, help="episodes per task (pass@k)")
    p.add_argument("--workers", type=int, default=2, help="parallel program executions")
    p.add_argument("--batch-size", type=int, default=16, help="episodes the agent acts on at once")
    p.add_argument("--sandbox", default="local", help="local | docker")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds per execution")
    p.add_argument("--prm", default=None, help="PRM checkpoint dir: adds dense rewards")
    p.add_argument("--reward-mode", default="delta", choices=["delta", "score", "none"])
    p.add_argument("--max-lines", type=int, default=64, help="truncation: lines per program")
    p.add_argument("--seed", type=int, default=0, help="agent seed")
    p.add_argument("--out", default=None, help="trajectories JSONL (one row per episode)")
    p.add_argument("--summary", default=None,
                   help="summary JSON path (default: next to --out as *.summary.json)")
    p.add_argument("--plot", default=None, metavar="F.png",
                   help="draw pass@1 by horizon bucket with 95 %% intervals to this image")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from codegym.plugins import load_agent, parse_kv
    from codegym.rollout import JsonlWriter, run_episodes, summarize
    from codegym.tasks import load_suite

    if args.plot and not Path(args.plot).suffix:
        raise ValueError(f"--plot {args.plot!r} needs an image suffix such as .png")
    suite = load_suite(args.suite, **suite_kwargs(args))
    split = suite.check_split(args.split or suite.default_split())
    n = args.episodes
    if n is None:
        n = suite.size(split) or 100
    if n < 1:
        raise ValueError(f"--episodes must be >= 1, got {n}")
    tasks = suite.take(n, split)

    agent_kwargs = parse_kv(args.agent_arg)
    agent_kwargs.setdefault("seed", args.seed)
    if args.model == "default":
        # Resolved by string: codegym never imports agents statically.
        from codegym.plugins import resolve_object

        agent_kwargs["model"] = str(resolve_object("agents.sft:default_policy")())
    elif args.model is not None:
        agent_kwargs["model"] = args.model
    agent = load_agent(args.agent, **agent_kwargs)

    writer = JsonlWriter(args.out) if args.out else None
    total = len(tasks) * args.samples
    columns = (TextColumn("[bold]eval[/] {task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("pass {task.fields[passed]}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        bar = progress.add_task(f"{args.agent} on {args.suite}/{split}", total=total, passed=0)
        passed = 0

        def on_episode(row: dict) -> None:
            nonlocal passed
            passed += row["passed"]
            row["agent"] = args.agent
            if writer is not None:
                writer(row)
            progress.update(bar, advance=1, passed=passed)

        try:
            rows = run_episodes(
                agent, tasks, samples=args.samples, workers=args.workers,
                batch_size=args.batch_size, sandbox=args.sandbox, on_episode=on_episode,
                env_kwargs={"prm": args.prm, "reward_mode": args.reward_mode,
                            "timeout": args.timeout, "max_lines": args.max_lines},
            )
        finally:
            if writer is not None:
                writer.close()

    table = summarize(rows, by_horizon=args.suite == "pipelines")
    console.print(results_table(f"{args.agent} on {args.suite}/{split}", table))
    if args.plot:
        from codegym.plotting import rates_plot, save_figure
        from codegym.stats import rates_by_horizon

        fig = rates_plot({args.agent: rates_by_horizon(rows)},
                         title=f"{args.agent} on {args.suite}/{split}: pass@1 by horizon (95 % intervals)")
        console.print(f"plot: {save_figure(fig, args.plot)}")
    summary_path = args.summary or (str(Path(args.out).with_suffix("")) + ".summary.json" if args.out else None)
    if summary_path:
        Path(summary_path).write_text(json.dumps({"agent": args.agent, "suite": args.suite,
                                                  "split": split, "table": table}, indent=2))
        console.print(f"trajectories: {args.out}\nsummary: {summary_path}")
    return 0
