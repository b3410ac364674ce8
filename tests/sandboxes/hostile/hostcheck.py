"""Host-side checks for the hostile suite: leaked processes, stray files, temp dirs, containers.

Every hostile program is prefixed with a prelude that renames its process (``prctl(PR_SET_NAME)``,
inherited by forks) to a per-run marker, and its exec'd helpers carry the marker (or a unique
``sleep`` argument) on their command line. After a run, :class:`HostGuard` scans the *whole* host
``/proc`` for the marker (so daemonised grandchildren reparented to init are found too), plus the
processes of the sandbox's uid inside this test process's tree, new entries in the temp dirs,
the host paths the program tried to create, files it must not have modified, and containers.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandboxes import IOCase, TestSuite


@dataclass(frozen=True)
class ProcInfo:
    """One host process as seen in ``/proc``."""

    pid: int
    ppid: int
    pgrp: int
    uid: int
    comm: str
    cmdline: str
    nspid: tuple[int, ...]  #: pid in each nested pid namespace (length > 1: inside a pid ns)
    starttime: int

    def describe(self) -> str:
        """One-line description for failure messages."""
        return (
            f"pid={self.pid} ppid={self.ppid} pgrp={self.pgrp} uid={self.uid} "
            f"comm={self.comm!r} cmdline={self.cmdline[:120]!r}"
        )


def read_proc(pid: int) -> ProcInfo | None:
    """Read one process from ``/proc`` (None if it vanished or cannot be read)."""
    base = f"/proc/{pid}"
    try:
        with open(f"{base}/stat", "rb") as fh:
            stat = fh.read().decode("utf-8", "replace")
        with open(f"{base}/status", "rb") as fh:
            status = fh.read().decode("utf-8", "replace")
        with open(f"{base}/cmdline", "rb") as fh:
            cmdline = fh.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
    except OSError:
        return None
    # stat: "pid (comm) state ppid pgrp ..." -- comm may contain spaces and parentheses.
    rparen = stat.rfind(")")
    comm = stat[stat.find("(") + 1 : rparen]
    fields = stat[rparen + 2 :].split()
    uid = -1
    nspid: tuple[int, ...] = (pid,)
    for line in status.splitlines():
        if line.startswith("Uid:"):
            uid = int(line.split()[1])
        elif line.startswith("NSpid:"):
            nspid = tuple(int(x) for x in line.split()[1:])
    try:
        return ProcInfo(
            pid=pid,
            ppid=int(fields[1]),
            pgrp=int(fields[2]),
            uid=uid,
            comm=comm,
            cmdline=cmdline,
            nspid=nspid,
            starttime=int(fields[19]),
        )
    except (IndexError, ValueError):
        return None


def all_procs() -> list[ProcInfo]:
    """Every readable process on the host."""
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            info = read_proc(int(name))
            if info is not None:
                out.append(info)
    return out


def descendants(root: int, procs: Iterable[ProcInfo]) -> list[ProcInfo]:
    """Processes below ``root`` in the parent tree (not ``root`` itself)."""
    children: dict[int, list[ProcInfo]] = {}
    for p in procs:
        children.setdefault(p.ppid, []).append(p)
    out: list[ProcInfo] = []
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), []):
            out.append(child)
            stack.append(child.pid)
    return out


def marked(procs: Iterable[ProcInfo], markers: Iterable[str]) -> list[ProcInfo]:
    """Processes whose name or command line carries one of ``markers``."""
    keys = [m for m in markers if m]
    return [p for p in procs if any(k in p.comm or k in p.cmdline for k in keys)]


def sha256_of(path: str) -> str | None:
    """Content hash of a file (None if it cannot be read)."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def list_dir(path: str) -> set[str]:
    """Entry names of a directory (empty if missing)."""
    try:
        return set(os.listdir(path))
    except OSError:
        return set()


def owner_of(path: str) -> int:
    """Owner uid of a path (-1 if gone)."""
    try:
        return os.lstat(path).st_uid
    except OSError:
        return -1


@dataclass
class HostView:
    """What the guard needs to know about the backend under test.

    Attributes:
        sandbox_uids: Host uids candidate processes run as (from the probe; root excluded).
        temp_dirs: Directories whose *new* entries after a run count as leaked temp dirs
            (the private ``TMPDIR`` the sandbox was started with).
        shared_temp_dirs: Shared dirs (``/tmp``, ``/dev/shm``, ``/var/tmp``) where only new
            entries owned by a sandbox uid or named with the run's marker count.
        containers: Callable returning ``{container_id: status}`` of the backend's containers
            (empty for non-container backends).
        max_containers: How many containers the backend may keep running (its pool size).
        spare_cmdline: Command-line fragment of the backend's workers: one unmarked child per
            fork server carrying it is a pre-forked spare, not a leak.
    """

    sandbox_uids: set[int] = field(default_factory=set)
    temp_dirs: list[str] = field(default_factory=list)
    shared_temp_dirs: list[str] = field(default_factory=lambda: ["/tmp", "/dev/shm", "/var/tmp"])
    containers: Callable[[], dict[str, str]] = dict
    max_containers: int = 0
    spare_cmdline: str = "sandboxes.worker.main"


class HostGuard:
    """Snapshot of the host before a hostile run, and the checks after it.

    Args:
        view: Backend facts (uids, temp dirs, containers).
        markers: Strings that mark this run's processes (prelude process name, sleep argument).
        forbidden_paths: Host paths the program tried to create; none may exist afterwards.
        watched_files: Host files whose content must be unchanged.
    """

    def __init__(
        self,
        view: HostView,
        markers: Iterable[str],
        forbidden_paths: Iterable[str],
        watched_files: Iterable[str] = (),
    ) -> None:
        self.view = view
        self.markers = [m for m in markers if m]
        self.forbidden = list(forbidden_paths)
        self.hashes = {p: sha256_of(p) for p in watched_files}
        self.me = os.getpid()
        procs = all_procs()
        self.tree_before = {(p.pid, p.starttime) for p in descendants(self.me, procs)}
        self.temp_before = {d: list_dir(d) for d in view.temp_dirs}
        self.shared_before = {d: list_dir(d) for d in view.shared_temp_dirs}
        self.containers_before = view.containers()
        for path in self.forbidden:
            if os.path.lexists(path):
                raise RuntimeError(f"forbidden path {path} exists before the run")

    # -- processes -------------------------------------------------------------------------
    def leaked_processes(self) -> list[ProcInfo]:
        """Marked processes anywhere, and new sandbox-uid processes in this process's tree."""
        procs = all_procs()
        leaks = {p.pid: p for p in marked(procs, self.markers) if p.pid != self.me}
        spares: dict[int, int] = {}
        for p in descendants(self.me, procs):
            is_new = (p.pid, p.starttime) not in self.tree_before
            if not is_new or p.uid not in self.view.sandbox_uids or p.pid in leaks:
                continue
            # A worker may keep one pre-forked child per fork server, waiting for the next job:
            # it never exec'd (the worker's boot command line) and ran no candidate code (it
            # would carry the marker). Anything beyond one per parent is a leak.
            if self.view.spare_cmdline and self.view.spare_cmdline in p.cmdline:
                spares[p.ppid] = spares.get(p.ppid, 0) + 1
                if spares[p.ppid] == 1:
                    continue
            leaks[p.pid] = p
        return sorted(leaks.values(), key=lambda p: p.pid)

    def wait_processes_gone(self, grace: float = 3.0) -> list[ProcInfo]:
        """Poll up to ``grace`` seconds for leaked processes to disappear; return the rest."""
        deadline = time.monotonic() + grace
        while True:
            leaks = [p for p in self.leaked_processes() if not _is_zombie(p.pid)]
            if not leaks or time.monotonic() > deadline:
                return leaks
            time.sleep(0.05)

    # -- files -----------------------------------------------------------------------------
    def stray_paths(self) -> list[str]:
        """Forbidden host paths that now exist."""
        return [p for p in self.forbidden if os.path.lexists(p)]

    def modified_files(self) -> list[str]:
        """Watched host files whose content changed."""
        return [p for p, h in self.hashes.items() if sha256_of(p) != h]

    def new_temp_entries(self) -> list[str]:
        """New entries in the private temp dirs, and sandbox-owned / marked ones in shared dirs."""
        out = []
        for d, before in self.temp_before.items():
            out += [os.path.join(d, n) for n in sorted(list_dir(d) - before)]
        for d, before in self.shared_before.items():
            for n in sorted(list_dir(d) - before):
                path = os.path.join(d, n)
                if any(m in n for m in self.markers) or owner_of(path) in self.view.sandbox_uids:
                    out.append(path)
        return out

    def wait_temp_gone(self, grace: float = 2.0) -> list[str]:
        """Poll up to ``grace`` seconds for new temp entries to be removed; return the rest."""
        deadline = time.monotonic() + grace
        while True:
            left = self.new_temp_entries()
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.05)

    # -- containers ------------------------------------------------------------------------
    def container_problems(self) -> list[str]:
        """Stopped/dead containers of the backend, or more running than its pool size.

        A container whose judge exited on its own (e.g. after its fork server was killed) is
        auto-removed by the engine: states ``exited``/``removing`` count only if they last.
        """
        now = self.view.containers()
        deadline = time.monotonic() + 10.0
        while any(st != "running" for st in now.values()) and time.monotonic() < deadline:
            time.sleep(0.1)
            now = self.view.containers()
        problems = [f"container {cid[:12]} left in state {st!r}" for cid, st in now.items() if st != "running"]
        running = [cid for cid, st in now.items() if st == "running"]
        if self.view.max_containers and len(running) > self.view.max_containers:
            problems.append(f"{len(running)} running containers > pool size {self.view.max_containers}")
        return problems

    # -- all together ----------------------------------------------------------------------
    def problems(self) -> list[str]:
        """Everything that shows the host changed (empty list: host unchanged)."""
        out = [f"leaked process: {p.describe()}" for p in self.wait_processes_gone()]
        out += [f"file created outside the sandbox: {p}" for p in self.stray_paths()]
        out += [f"host file modified: {p}" for p in self.modified_files()]
        out += [f"temp entry left behind: {p}" for p in self.wait_temp_gone()]
        out += self.container_problems()
        return out

    def cleanup(self) -> None:
        """Undo what a failing run left (kill marked processes by pid, remove stray paths), so
        one hole does not cascade into the next test. Only touches this run's own traces."""
        for p in marked(all_procs(), self.markers):
            if p.pid != self.me:
                try:
                    os.kill(p.pid, signal.SIGKILL)
                except OSError:
                    pass
        for path in self.stray_paths():
            try:
                if os.path.isdir(path) and not os.path.islink(path):
                    os.rmdir(path)
                else:
                    os.unlink(path)
            except OSError:
                pass


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return True
    return stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] in (b"Z", b"X")


def probe_candidate(run: Callable[[], Any], marker: str, timeout: float = 10.0) -> ProcInfo | None:
    """Run ``run`` (a sandbox call executing a program that names itself ``marker`` and sleeps)
    in a thread and catch its process in ``/proc`` from the host side."""
    import threading

    found: list[ProcInfo] = []
    done = threading.Event()

    def target() -> None:
        try:
            run()
        finally:
            done.set()

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not found and not done.is_set() and time.monotonic() < deadline:
        found = [p for p in marked(all_procs(), [marker]) if p.comm == marker]
        time.sleep(0.01)
    thread.join(timeout)
    return found[0] if found else None


# --------------------------------------------------------------------------- programs

PRELUDE = '''\
CTX = {ctx!r}


def _cgh_mark():
    name = CTX["comm"].encode()
    try:
        import ctypes

        ctypes.CDLL(None).prctl(15, ctypes.c_char_p(name), 0, 0, 0)
        return
    except Exception:
        pass
    try:
        with open("/proc/self/comm", "wb") as fh:
            fh.write(name)
    except OSError:
        pass


_cgh_mark()
'''


def new_secret() -> str:
    """A value no candidate can guess: ``secret-`` + 32 hex digits."""
    return "secret-" + secrets.token_hex(16)


def with_prelude(ctx: dict[str, Any], source: str) -> str:
    """The program text the sandbox runs: the marking prelude, then the hostile source."""
    return PRELUDE.format(ctx=ctx) + "\n" + source


def suite_for(kind: str, expected: Any) -> TestSuite:
    """A one-test suite for ``f()`` expecting ``expected`` (io: compared by the harness;
    assert: a trusted ``check``)."""
    if kind == "io":
        return TestSuite(kind="io", entry_point="f", cases=(IOCase(args=(), expected=expected),))
    check = f"def check(candidate):\n    assert candidate() == {expected!r}\n"
    return TestSuite(kind="assert", entry_point="f", check=check)
