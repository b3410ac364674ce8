"""Label quality against the exact prefix oracle of ``pipelines``, by horizon, K and completer.

One policy (``--responder``) answers held-out tasks once each; every labeling setting then
labels those same responses, and every line label is compared with the truth
(:class:`codegym.envs.oracle.ReferenceCompletionScorer`: the reference's remaining lines
complete the prefix to a passing program). Printed and saved per horizon bucket: precision and
recall of "prefix correct", first-error agreement and sandbox executions per response
(:mod:`codegym.labeling.quality`).

A setting is ``NAME=COMPLETER:K[:OPTIONS]``: ``COMPLETER`` is ``reference`` (the reference
continued from the prefix: the oracle's own completion) or a policy directory (sampled with
``codegym.labeling.HFCompleter``); ``OPTIONS`` are ``,``-separated ``perline`` (K per
remaining reference line, capped at ``max=N``), ``linear`` / ``auto`` (search mode; binary by
default), ``temp=T`` (the completer's sampling temperature; 1 by default)::

    python bench/label_quality.py --responder runs/sft --per-bucket 30 \\
        --setting sft-k8=runs/sft:8 --setting strong-k8=runs/sft-strong:8 \\
        --setting sft-perline=runs/sft:4:perline,max=32 --setting ref=reference:1 \\
        --out /tmp/label_quality
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from codegym.envs.oracle import ReferenceCompletionScorer, VerdictCache
from codegym.evaluation import bucket_of, parse_buckets, tasks_by_bucket
from codegym.labeling import HFCompleter, LabelConfig, Labeler, ReferenceCompleter
from codegym.labeling.quality import LabelQuality, judge_rows, label_responses
from codegym.tasks import load_suite
from sandboxes import make_sandbox


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--responder", required=True, help="policy directory whose responses are labeled")
    p.add_argument("--setting", action="append", required=True, help="NAME=COMPLETER:K[:OPTIONS]")
    p.add_argument("--buckets", default="2-3,4-5,6-8")
    p.add_argument("--min-task-lines", type=int, default=2)
    p.add_argument("--max-task-lines", type=int, default=8)
    p.add_argument("--split", default="validation", help="held-out split (never the test split)")
    p.add_argument("--per-bucket", type=int, default=30)
    p.add_argument("--max-new-tokens", type=int, default=160)
    p.add_argument("--max-lines", type=int, default=12)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="directory for rows and label_quality.json")
    return p.parse_args(argv)


def parse_setting(spec: str, args: argparse.Namespace) -> tuple[str, Any, LabelConfig]:
    """``NAME=COMPLETER:K[:OPTIONS]`` -> (name, completer, LabelConfig)."""
    name, _, rest = spec.partition("=")
    parts = rest.split(":")
    if not name or len(parts) not in (2, 3):
        raise ValueError(f"--setting {spec!r}: expected NAME=COMPLETER:K[:OPTIONS]")
    options = dict((o.split("=") + [""])[:2] for o in parts[2].split(",")) if len(parts) == 3 else {}
    mode = "linear" if "linear" in options else "auto" if "auto" in options else "binary"
    config = LabelConfig(
        k=int(parts[1]), chunk=2, prefetch=True, mode=mode, k_per_line="perline" in options,
        k_max=int(options["max"]) if options.get("max") else None,
    )  # fmt: skip
    if parts[0] == "reference":
        return name, ReferenceCompleter(0.0), config
    completer = HFCompleter(parts[0], max_new_tokens=args.max_new_tokens, max_lines=args.max_lines,
                            threads=args.threads, temperature=float(options.get("temp") or 1.0))  # fmt: skip
    return name, completer, config


def sample_responses(args: argparse.Namespace, out: Path) -> list[tuple[Any, list[str]]]:
    """The responder's answers to the held-out tasks (cached in ``out/responses.jsonl``)."""
    suite = load_suite("pipelines", min_steps=args.min_task_lines, max_steps=args.max_task_lines, seed=0)
    buckets = parse_buckets(args.buckets)
    tasks = tasks_by_bucket(suite, args.split, args.per_bucket * len(buckets), buckets)
    path = out / "responses.jsonl"
    if path.is_file():
        saved = [json.loads(line) for line in path.read_text().splitlines()]
        if [r["task_id"] for r in saved] == [t.task_id for t in tasks]:
            return [(t, r["lines"]) for t, r in zip(tasks, saved)]
    responder = HFCompleter(args.responder, max_new_tokens=args.max_new_tokens, max_lines=args.max_lines,
                            threads=args.threads)  # fmt: skip
    responses = [(t, responder.complete(t, [], 1, np.random.default_rng([args.seed, i]))[0]) for i, t in enumerate(tasks)]
    path.write_text("".join(json.dumps({"task_id": t.task_id, "lines": lines}) + "\n" for t, lines in responses))
    return responses


def measure(args: argparse.Namespace, responses: list[tuple[Any, list[str]]], box: Any, out: Path) -> list[dict]:
    """Label the responses with every setting and judge the labels; one result per setting."""
    buckets = parse_buckets(args.buckets)
    by_id = {t.task_id: t for t, _ in responses}
    oracle = ReferenceCompletionScorer(box, cache=VerdictCache())
    results = []
    for spec in args.setting:
        name, completer, config = parse_setting(spec, args)
        start = time.perf_counter()
        rows = label_responses(responses, Labeler(completer, box, config), seed=args.seed + 1)
        seconds = time.perf_counter() - start
        (out / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        groups = judge_rows(rows, lambda r: by_id[r["task_id"]], oracle, lambda r: bucket_of(r["horizon"], buckets))
        groups["all"] = sum(groups.values(), LabelQuality())
        results.append({"setting": name, "spec": spec, "seconds": seconds,
                        "quality": {str(k): v.summary() for k, v in groups.items()}})  # fmt: skip
    return results


def print_table(results: list[dict], buckets: list[str]) -> None:
    """precision / recall / first-error agreement / executions per response, by bucket."""
    table = Table(title="labels vs the exact oracle: precision / recall / first error / executions")
    table.add_column("setting")
    for b in [*buckets, "all"]:
        table.add_column(b, justify="right")
    for res in results:
        cells = []
        for b in [*buckets, "all"]:
            q = res["quality"].get(b)
            cells.append("—" if q is None else f"{q['precision']:.2f} / {q['recall']:.2f} / "
                         f"{q['first_error_agreement']:.2f} / {q['executions_per_response']:.1f}")  # fmt: skip
        table.add_row(res["setting"], *cells)
    Console(width=200).print(table)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    import torch

    torch.set_num_threads(args.threads)
    buckets = [f"{lo}-{hi}" for lo, hi in parse_buckets(args.buckets)]
    with make_sandbox("local", workers=args.workers) as box:
        responses = sample_responses(args, out)
        results = measure(args, responses, box, out)
    print_table(results, buckets)
    (out / "label_quality.json").write_text(json.dumps(results, indent=2, default=float) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
