"""Class 2: no value passes from one job to the next, or into a new sandbox, through host state.

Namespaces do not cover the kernel's caches and counters: which pages of a file are cached,
which names a directory lookup found missing, socket cookies, the inode numbers of pipes,
sockets, memfds and pidfds. The carrier program (``attacker/carrier.py``) writes a random
32-bit value into each of them in one job and reads each back in the next job, or in a new
sandbox after the first was closed. A carrier *leaks* when what the reader gets agrees with
what was written more often than chance allows (binomial tail below 1e-4 over all trials);
none may. A control runs the same program as plain processes on the host, where the carriers
work: it proves the reader would see the value if it were there.

The mechanisms (see ``docs/sandbox.md``): a job's files are an in-memory copy (every page
resident, no cached failed lookups, no host disk reachable, and the fork server re-runs its
interpreter from that copy so no host file is mapped into a job); seccomp refuses the
page-cache probes, sockets, pipes, memfds, pidfds and hugetlb mappings (whose inode numbers
come from host-wide counters) and the cookie getters.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandboxes import IOCase, Sandbox, TestSuite

from .hostcheck import all_procs, marked

CARRIER = (Path(__file__).parent / "attacker" / "carrier.py").read_text()
TRIALS = 6
P_LEAK = 1e-4


def _suite() -> TestSuite:
    return TestSuite(kind="io", entry_point="f", cases=(IOCase((None,), "never"),))


def _carry(box: Sandbox, arg: list[Any]) -> str:
    """Run the carrier with ``arg`` in ``box``; its output."""
    suite = TestSuite(kind="io", entry_point="f", cases=(IOCase((arg,), "never"),))
    r = box.run(CARRIER, suite, timeout=30.0)
    assert r.error_type in ("WrongAnswer", ""), r  # it ran to the end (and never passed)
    return r.stdout_tail


def _read_back(output: str) -> dict[str, list[int] | None]:
    assert "CARRY " in output, output[-500:]
    return json.loads(output.rsplit("CARRY ", 1)[1].splitlines()[0])


def _tail_p(agree: int, n: int) -> float:
    """P(at least ``agree`` of ``n`` bits agree by chance)."""
    return sum(math.comb(n, k) for k in range(agree, n + 1)) / 2 ** n


def _leaks(trials: list[tuple[int, dict[str, list[int] | None]]]) -> dict[str, str]:
    """Carriers whose reads agree with the written values beyond chance."""
    tally: dict[str, list[int]] = {}
    for value, read in trials:
        for name, bits in read.items():
            if bits is None:
                continue
            t = tally.setdefault(name, [0, 0])
            t[0] += sum(b == (value >> i) & 1 for i, b in enumerate(bits))
            t[1] += len(bits)
    return {name: f"{a}/{n} bits (p={_tail_p(a, n):.1e})" for name, (a, n) in tally.items()
            if _tail_p(a, n) < P_LEAK}


@pytest.fixture(scope="module")
def box(sandbox_backend: str, make_sandbox_or_skip: Any) -> Iterator[Sandbox]:
    sandbox = make_sandbox_or_skip(sandbox_backend, workers=1, timeout=30.0)
    yield sandbox
    sandbox.close()


def test_no_value_passes_to_the_next_job(box: Sandbox) -> None:
    trials = []
    for _ in range(TRIALS):
        value, nonce = secrets.randbits(32), secrets.randbits(40)
        _carry(box, ["write", value, nonce])
        trials.append((value, _read_back(_carry(box, ["read", nonce]))))
    leaks = _leaks(trials)
    assert not leaks, f"values read back in the next job: {leaks}"


def test_no_value_survives_close(sandbox_backend: str, make_sandbox_or_skip: Any) -> None:
    """Written in one sandbox, read in a new one after the first was closed."""
    trials = []
    for _ in range(TRIALS):
        value, nonce = secrets.randbits(32), secrets.randbits(40)
        first = make_sandbox_or_skip(sandbox_backend, workers=1, timeout=30.0)
        try:
            _carry(first, ["write", value, nonce])
        finally:
            first.close()
        second = make_sandbox_or_skip(sandbox_backend, workers=1, timeout=30.0)
        try:
            trials.append((value, _read_back(_carry(second, ["read", nonce]))))
        finally:
            second.close()
    leaks = _leaks(trials)
    assert not leaks, f"values read back in a new sandbox: {leaks}"


def _on_host(arg: list[Any]) -> str:
    code = f"exec(compile({CARRIER!r}, 'carrier', 'exec')); f({arg!r})"
    proc = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True,
                          timeout=300, cwd="/")
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_the_carriers_work_outside_a_sandbox() -> None:
    """Control: the same writer and reader as plain host processes pass the value through
    several carriers (so a reader in a sandbox would see it if it were there)."""
    value, nonce = secrets.randbits(32), secrets.randbits(40)
    _on_host(["write", value, nonce])
    leaks = _leaks([(value, _read_back(_on_host(["read", nonce])))])
    assert len(leaks) >= 3, f"the carriers do not even work on the host: {leaks}"


# --------------------------------------------------------------------------- the job's view

VIEW = r"""
import ctypes, os, time
def f(x):
    ctypes.CDLL(None).prctl(15, MARK, 0, 0, 0)
    time.sleep(1.5)
    return 1
"""


def _candidate_pids(box: Sandbox, mark: bytes) -> tuple[list[int], Any]:
    """Run a marked sleeping job; return the host pids of its process (seen while it runs)."""
    found: list[int] = []
    done = threading.Event()
    results: list[Any] = []

    def run() -> None:
        try:
            results.append(box.run(VIEW.replace("MARK", repr(mark)), TestSuite(
                kind="io", entry_point="f", cases=(IOCase((0,), 1),)), timeout=10))
        finally:
            done.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not found and not done.is_set() and time.monotonic() < deadline:
        found = [p.pid for p in marked(all_procs(), [mark.decode()]) if p.comm == mark.decode()]
        time.sleep(0.01)
    views = []
    for pid in found:
        try:
            views.append((Path(f"/proc/{pid}/mountinfo").read_text(),
                          Path(f"/proc/{pid}/maps").read_text()))
        except OSError:
            pass
    thread.join(15)
    assert results and results[0].ok, results
    return found, views


def test_a_job_reaches_no_file_of_a_host_disk(box: Sandbox) -> None:
    """From the host: every mount in a running job's mount namespace is a tmpfs (or the
    bound device nodes), and every file mapped into its process lies on one of them."""
    mark = b"cgview" + secrets.token_hex(4).encode()
    pids, views = _candidate_pids(box, mark)
    assert pids and views, "the job's process was not seen from the host"
    mountinfo, maps = views[0]
    fstype = {}
    for line in mountinfo.splitlines():
        left, _, right = line.partition(" - ")
        fstype[left.split()[2]] = (right.split()[0], left.split()[4])
    disk = {dev: (t, point) for dev, (t, point) in fstype.items()
            if t not in ("tmpfs", "devtmpfs")}
    assert not disk, f"mounts of host filesystems in the job's view: {disk}"
    mapped = {}
    for line in maps.splitlines():
        parts = line.split(maxsplit=5)
        if len(parts) == 6 and parts[5].startswith("/"):
            major, minor = (int(x, 16) for x in parts[3].split(":"))
            mapped[parts[5]] = f"{major}:{minor}"
    assert mapped, maps
    elsewhere = {p: d for p, d in mapped.items() if d not in fstype or d in disk}
    assert not elsewhere, f"files mapped into the job from outside its tmpfs mounts: {elsewhere}"


def _worker_stdlib() -> str:
    """The standard library of the local backend's worker interpreter (a host dir)."""
    from sandboxes.local import _default_python

    return subprocess.run([_default_python(), "-I", "-S", "-c",
                           "import os; print(os.path.dirname(os.__file__))"],
                          capture_output=True, text=True, check=True).stdout.strip()


PROBE_PAGES = r"""
import ctypes, json, mmap, os
LIBC = ctypes.CDLL(None, use_errno=True)
def residency(fd, size):
    m = mmap.mmap(fd, size, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    buf = ctypes.c_char.from_buffer(m)
    addr = ctypes.addressof(buf)
    vec = ctypes.create_string_buffer((size + 4095) // 4096)
    r = LIBC.mincore(ctypes.c_void_p(addr), ctypes.c_size_t(size), vec)
    out = None if r else sum(b & 1 for b in vec.raw) / len(vec.raw)
    for advice in (21, 20):  # MADV_PAGEOUT, MADV_COLD
        LIBC.madvise(ctypes.c_void_p(addr), ctypes.c_size_t(size), advice)
    return out
def f(x):
    seen, evicted = [], 0
    for path in PATHS:  # first look (does the job see the host's cache?), then evict
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            seen.append(None)
            continue
        seen.append(residency(fd, os.fstat(fd).st_size))
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            evicted += 1
        except OSError:
            pass
        os.close(fd)
    print("PAGES " + json.dumps([seen, evicted]), flush=True)
    return None
"""


def _host_residency(path: str) -> float:
    """Fraction of ``path``'s pages in the host's page cache (host-side ``mincore``)."""
    import ctypes
    import mmap

    libc = ctypes.CDLL(None, use_errno=True)
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        m = mmap.mmap(fh.fileno(), size, flags=mmap.MAP_PRIVATE,
                      prot=mmap.PROT_READ | mmap.PROT_WRITE)
        try:
            vec = ctypes.create_string_buffer((size + 4095) // 4096)
            buf = ctypes.c_char.from_buffer(m)
            assert libc.mincore(ctypes.c_void_p(ctypes.addressof(buf)), ctypes.c_size_t(size),
                                vec) == 0
            del buf
            return sum(b & 1 for b in vec.raw) / len(vec.raw)
        finally:
            m.close()


def _evict_on_host(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def test_the_hosts_page_cache_is_out_of_reach(box: Sandbox, sandbox_backend: str) -> None:
    """A job can neither evict the host's cached pages nor see which the host evicted."""
    if sandbox_backend == "docker":
        pytest.skip("the container's files are the image's, not these host files")
    stdlib = _worker_stdlib()  # host files the worker itself uses
    host_files = [os.path.join(stdlib, name) for name in ("os.py", "json/__init__.py",
                                                          "textwrap.py")]
    for path in host_files:
        Path(path).read_bytes()  # cached on the host
    _evict_on_host(host_files[-1])
    program = PROBE_PAGES.replace("PATHS", repr(host_files))
    r = box.run(program, TestSuite(kind="io", entry_point="f", cases=(IOCase((0,), None),)))
    assert r.ok, r
    seen, _evicted = json.loads(r.stdout_tail.rsplit("PAGES ", 1)[1].splitlines()[0])
    for path in host_files[:-1]:
        assert _host_residency(path) > 0.99, f"the job evicted {path} from the host's cache"
    # what the job sees of a file the host just evicted equals what it sees of cached ones
    assert seen[-1] is None or seen[-1] == seen[0], f"the job watched the host's cache: {seen}"
