"""When does a PRM pay at inference? Sampling vs PRM best-of-N vs beam search vs oracle pass@N.

For a policy and a PRM, on ``pipelines`` test tasks balanced over horizon buckets, prints per
bucket (:func:`codegym.search.search_table`): pass@1 of one sample, best-of-N reranked by the
PRM under each aggregation (last, min, mean, product), a line-level beam search with
``beams · k = N`` candidate lines per step, and the oracle's pass@N (any of the N passes) --
pass rates with 95 % intervals over tasks, paired differences from sampling with 95 %
bootstrap intervals, and the sampled lines each method spent per task. One table per N::

    python bench/search.py --policy default --prm default --tasks-per-bucket 50 \\
        --buckets 1-3,4-6,7-9,10-12 --n 4 8 --beams 2 --out search.json

Writes the tables (JSON: every task's outcomes, the budgets, the settings) to ``--out`` and
the Markdown tables next to it (``.md``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from codegym.reporting.jsonio import dumps
from codegym.search import SearchTable, search_table

console = Console(width=200)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--policy", default="default", help="causal-LM directory, or 'default' (the embedded policy)")
    p.add_argument("--prm", default="default", help="PRM directory, or 'default' (the embedded PRM)")
    p.add_argument("--split", default="test")
    p.add_argument("--buckets", default="1-3,4-6,7-9,10-12")
    p.add_argument("--tasks-per-bucket", type=int, default=50)
    p.add_argument("--suite-seed", type=int, default=0)
    p.add_argument("--n", type=int, nargs="+", default=[4, 8], help="best-of-N's N (one table each)")
    p.add_argument("--beams", type=int, default=2, help="beam search's B (k = N // B)")
    p.add_argument("--oracle-beam", action="store_true", help="add beam search guided by the exact oracle")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--max-lines", type=int, default=16)
    p.add_argument("--max-line-tokens", type=int, default=48)
    p.add_argument("--batch-size", type=int, default=16, help="tasks searched side by side")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="search.json")
    return p.parse_args(argv)


def tasks(args: argparse.Namespace) -> list[Any]:
    """The first ``--tasks-per-bucket`` tasks of each bucket of the split."""
    from codegym.evaluation import parse_buckets, tasks_by_bucket
    from codegym.tasks import load_suite

    spans = parse_buckets(args.buckets)
    suite = load_suite("pipelines", min_steps=min(lo for lo, _ in spans), max_steps=min(max(hi for _, hi in spans), 64),
                       seed=args.suite_seed)  # fmt: skip
    return tasks_by_bucket(suite, args.split, args.tasks_per_bucket * len(spans), spans)


def print_table(table: SearchTable) -> None:
    """Pass rates and paired differences, one row per method, one column per bucket."""
    s = table.settings
    out = Table(title=f"N={s['n']}, beam {s['beams']}x{s['k']}: pass rate % [95 % CI] | difference from sample, points")
    out.add_column("method")
    for row in table.rows:
        out.add_column(f"{row['group']} ({row['tasks']})", justify="right")
    out.add_column("lines/task", justify="right")
    for m in table.methods:
        cells = []
        for row in table.rows:
            c = row["methods"][m]
            text = f"{100 * c['rate']:.1f} [{100 * c['lo']:.1f}, {100 * c['hi']:.1f}]"
            if "diff" in c:
                d = c["diff"]
                text += f"\n{100 * d['mean']:+.1f} [{100 * d['low']:+.1f}, {100 * d['high']:+.1f}]"
            cells.append(text)
        out.add_row(m, *cells, f"{table.budgets[m]['sampled_lines']:.1f}")
    console.print(out)
    ranking = table.ranking()
    console.print("within-task ranking AUC of the N samples (0.5: a random pick): "
                  + ", ".join(f"{a} {r['auc']:.3f} ({r['pairs']} pairs, {r['tasks']} tasks)" for a, r in ranking.items()))  # fmt: skip


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the tables; returns ``{"settings": ..., "tables": [...]}`` (also written to ``--out``)."""
    import torch

    from codegym.defaults import resolve_model
    from sandboxes import make_sandbox

    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    todo = tasks(args)
    console.print(f"{len(todo)} {args.split} tasks, buckets {args.buckets}")
    results = []
    start = time.perf_counter()
    with make_sandbox("local", workers=args.workers) as box:
        for n in args.n:
            table = search_table(
                resolve_model(args.policy, "policy"), resolve_model(args.prm, "prm"), todo, box, n=n,
                beams=args.beams, oracle_beam=args.oracle_beam, temperature=args.temperature, seed=args.seed,
                max_lines=args.max_lines, max_line_tokens=args.max_line_tokens, batch_size=args.batch_size,
                workers=args.workers, buckets=args.buckets, log=lambda msg: console.print(f"[dim]{msg}[/]"),
            )  # fmt: skip
            print_table(table)
            results.append(table)
    result = {"settings": {**vars(args), "seconds": round(time.perf_counter() - start, 1)},
              "tables": [t.to_dict() for t in results]}  # fmt: skip
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(dumps(result, indent=1))  # strict JSON: -inf aggregates become null
    out.with_suffix(".md").write_text("\n\n".join(f"### N = {t.settings['n']}\n\n{t.markdown()}" for t in results) + "\n")
    console.print(f"wrote {out} and {out.with_suffix('.md')}")
    return result


if __name__ == "__main__":
    main()
