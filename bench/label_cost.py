"""Labeling cost: executions per response, binary search vs linear scan, by horizon.

Runs ``codegym label`` (in process) twice per horizon -- binary and ``--mode linear`` -- on the
same responses (response ``r`` is sampled first from its own generator, so both modes label
identical responses), then prints executions / completions / prefix checks per response for
both, the linear cost computed from the binary run, and how often the two modes agree on
every label (they must when correctness is monotone).

    python bench/label_cost.py --policy default --horizons 4 8 12 \
        --responses 100 --k 8 --out-dir /tmp/label_cost
    python bench/label_cost.py --completer reference --horizons 4 8 12   # no model needed
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from codegym.cli import main as cli_main
from codegym.labeling import read_rows, summary_path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--policy", default=None)
    p.add_argument("--completer", default="hf")
    p.add_argument("--horizons", type=int, nargs="+", default=[4, 8, 12])
    p.add_argument("--responses", type=int, default=100)
    p.add_argument("--k", type=int, default=8)
    p.add_argument("--chunk", type=int, default=2)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--corrupt-rate", type=float, default=None, help="completer 'reference' only")
    p.add_argument("--prefetch", action="store_true", help="sample K completions per prefix at once")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-dir", default="label_cost")
    return p.parse_args(argv)


def label_argv(args: argparse.Namespace, horizon: int, mode: str, out: Path) -> list[str]:
    """The ``codegym label`` command line for one horizon and mode (``binary`` or ``linear``)."""
    argv = [
        "label", "--suite", "pipelines", "--min-task-lines", str(horizon), "--max-task-lines", str(horizon),
        "--completer", args.completer, "--responses", str(args.responses),
        "--k", str(args.k), "--chunk", str(args.chunk), "--workers", str(args.workers),
        "--seed", str(args.seed), "--out", str(out),
    ]
    if args.policy:
        argv += ["--policy", args.policy]
    if args.prefetch:
        argv.append("--prefetch")
    if args.corrupt_rate is not None:
        argv += ["--corrupt-rate", str(args.corrupt_rate)]
    if args.threads:
        argv += ["--threads", str(args.threads)]
    if mode == "linear":
        argv += ["--mode", "linear"]
    return argv


def measure_horizon(args: argparse.Namespace, horizon: int, out_dir: Path) -> dict | None:
    """Label at one horizon in both modes; the summaries, timings and label agreement, or
    ``None`` when a ``codegym label`` run fails."""
    res: dict = {"horizon": horizon}
    for mode in ("binary", "linear"):
        out = out_dir / f"h{horizon}-{mode}.jsonl"
        t0 = time.perf_counter()
        if cli_main(label_argv(args, horizon, mode, out)) != 0:
            return None
        res[f"{mode}_seconds"] = time.perf_counter() - t0
        res[mode] = json.loads(summary_path(out).read_text())
    rb = read_rows(out_dir / f"h{horizon}-binary.jsonl")
    rl = read_rows(out_dir / f"h{horizon}-linear.jsonl")
    assert [r["completions"] for r in rb] == [r["completions"] for r in rl], "responses differ"
    res["labels_agree"] = sum(a["labels"] == b["labels"] for a, b in zip(rb, rl)) / max(len(rb), 1)
    return res


def print_table(results: list[dict], k: int, completer: str) -> None:
    """The per-horizon cost table, binary vs linear."""
    table = Table(title=f"labeling cost per response (K={k}, completer={completer})")
    for col in ("horizon", "pass", "revised", "checks bin", "checks lin", "exec bin", "exec lin",
                "exec lin (computed)", "exec every prefix", "bin/lin", "labels agree"):
        table.add_column(col, justify="right")
    for r in results:
        b, lin = r["binary"], r["linear"]
        table.add_row(
            str(r["horizon"]), f"{b['fraction_passed']:.2f}", f"{b['fraction_revised']:.2f}",
            f"{b['prefix_checks_per_response']:.2f}", f"{lin['prefix_checks_per_response']:.2f}",
            f"{b['executions_per_response']:.2f}", f"{lin['executions_per_response']:.2f}",
            f"{b['linear']['executions_per_response']:.2f}",
            f"{b['exhaustive']['executions_per_response']:.2f}",
            f"{b['executions_per_response'] / max(lin['executions_per_response'], 1e-9):.2f}",
            f"{r['labels_agree']:.2f}",
        )
    Console(width=170).print(table)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for h in args.horizons:
        res = measure_horizon(args, h, out_dir)
        if res is None:
            return 1
        results.append(res)
    print_table(results, args.k, args.completer)
    (out_dir / "label_cost.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
