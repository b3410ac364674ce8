"""Worker entry point: set up the judge and its fork servers, then score jobs until EOF.

Runs as the judge (``J``), the process the host talks to over fds 0/1 (framed tagged JSON,
:mod:`sandboxes.worker.protocol`). Before any job it

1. pre-imports the common standard library (candidates get it for free);
2. creates one memory cgroup leaf per fork server (:mod:`sandboxes.worker.cgroups`; reported
   missing where the host has no usable memory controller);
3. on root hosts claims one sandbox uid per fork server that no other live sandbox on this host
   uses (an abstract Unix socket named after the uid, bound for the judge's lifetime: the
   kernel releases it when the judge dies); on other hosts enters a user namespace;
4. forks the fork servers (:mod:`sandboxes.worker.forkserver`), each through a short-lived
   intermediate that unshares the PID namespace, so each is pid 1 of its own.

Any failure of the judge on a job's data is that job's ``error`` verdict; only a fork server
that died or cannot be reached (:class:`~sandboxes.worker.calls.WorkerBroken`, or an ``OSError``
of the judge's own plumbing) ends the worker: it says so in a ``killed``/``HarnessError``
verdict, which the host reads as a dead worker (it starts a new one and runs the job again).
While it scores a job the judge's own address space is capped (soft ``RLIMIT_AS``: its size
at the job's start plus the job's budget and a margin, see
:meth:`~sandboxes.worker.judge.Judge.run_job`).
"""

from __future__ import annotations

import gc
import json
import os
import signal
import socket
import sys
from typing import Any

from sandboxes import encoding as enc
from sandboxes.status import Status
from sandboxes.worker import protocol as proto
from sandboxes.worker import syscalls as sc
from sandboxes.worker import sysroot
from sandboxes.worker.calls import WorkerBroken
from sandboxes.worker.cgroups import CgroupUnavailable, JobCgroups
from sandboxes.worker.forkserver import ForkServer, enter_user_namespace, resume
from sandboxes.worker.judge import Judge, ServerLink

# Imported once in the worker so candidates get them for free. Every resident page makes each
# fork + exit dearer (~1 us/page here), so modules that few programs use and that pull in
# big libraries (hashlib -> OpenSSL, ~930 pages) are left for the candidate to import.
PREIMPORT = (
    "abc array bisect collections collections.abc contextlib copy decimal enum fractions "
    "functools heapq io itertools json math numbers operator random re statistics string "
    "struct textwrap typing"
).split()
_UID_CLAIMS = 65536  # uids tried above uid_base before giving up


def _format_exc() -> str:
    import traceback  # lazily: every module the judge holds is copied into each fork

    return traceback.format_exc()


def claim_uids(base: int, n: int) -> tuple[list[int], list[socket.socket]]:
    """``n`` uids from ``base`` up that no other live sandbox on this host holds."""
    uids: list[int] = []
    held: list[socket.socket] = []
    for uid in range(base, base + _UID_CLAIMS):
        if len(uids) == n:
            break
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            s.bind(f"\0codegym-sandbox-uid-{uid}")
        except OSError:
            s.close()
            continue
        uids.append(uid)
        held.append(s)
    if len(uids) < n:
        raise RuntimeError(f"no free sandbox uid in [{base}, {base + _UID_CLAIMS})")
    return uids, held


def start_fork_servers(cfg: dict[str, Any]) -> tuple[list[ServerLink], Any, list[str],
                                                     list[str], list[socket.socket]]:
    """Start ``cfg["fork_servers"]`` fork servers; (links, cgroups, applied, missing, held)."""
    n = int(cfg.get("fork_servers", 2))
    missing: list[str] = []
    applied: list[str] = []
    userns = False
    if os.geteuid() != 0 and cfg["namespaces"]:
        userns = enter_user_namespace()
    # no ptrace and no /proc/<judge>/mem for anything of the same uid (after the user
    # namespace: a non-dumpable process may not write its own uid_map)
    sc.prctl(sc.PR_SET_DUMPABLE, 0)
    want_pid_ns = (os.geteuid() == 0 or userns) and cfg["namespaces"]
    cgroups = None
    try:
        cgroups = JobCgroups(n, cfg.get("cgroup_dir"), int(cfg.get("cgroup_version", 1)))
        applied.append(cgroups.describe())
        if cgroups.swap_unbounded:
            missing.append("swap limit (cgroup v1 without swap accounting on a host with "
                           "swap: a job could push memory to swap beyond its limit)")
    except CgroupUnavailable as e:
        missing.append(f"per-job memory cgroup ({e})")
    if want_pid_ns:
        applied, missing = _private_system_files(cfg, n, applied, missing)
    held: list[socket.socket] = []
    uids = [int(cfg["uid"])] * n
    if os.geteuid() == 0 and not userns:
        uids, held = claim_uids(int(cfg["uid"]), n)
    sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)
    links = []
    hello: dict[str, Any] = {}
    for index in range(n):
        link, hello = _start_one(cfg, index, want_pid_ns, userns, uids[index],
                                 cgroups.leaves[index].procs_fd if cgroups else -1, held)
        links.append(link)
    cfg["_uids"] = uids if os.geteuid() == 0 and not userns else []
    return links, cgroups, applied + hello["applied"], missing + hello["missing"], held


def _private_system_files(cfg: dict[str, Any], n: int, applied: list[str],
                          missing: list[str]) -> tuple[list[str], list[str]]:
    """Give the judge a mount namespace of its own holding the in-memory copy of the system
    files that the fork servers' roots are made of (:mod:`sandboxes.worker.sysroot`)."""
    try:
        sc.unshare(sc.CLONE_NEWNS)
        sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)
        info = sysroot.build(n)
    except OSError as e:
        missing.append(f"private copy of the system files ({e}): jobs see the host's system "
                       "dirs and could leave state in the host's page cache")
        return applied, missing
    cfg["_sysroot"] = True
    applied.append(f"system files: a private in-memory copy ({info['files']} files, "
                   f"{info['mb']} MiB); no file of the host's disks is reachable")
    return applied, missing


def _start_one(cfg: dict[str, Any], index: int, want_pid_ns: bool, userns: bool, uid: int,
               cgroup_fd: int, held: list[socket.socket]) -> tuple[ServerLink, dict[str, Any]]:
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    info_r, info_w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    mid = os.fork()
    if mid == 0:  # the intermediate
        try:
            mine.close()
            os.close(info_r)
            pid_ns = False
            if want_pid_ns:
                try:
                    sc.unshare(sc.CLONE_NEWPID)
                    pid_ns = True
                except OSError:
                    pid_ns = False
            pid = os.fork()
            if pid == 0:  # the fork server
                os.close(info_w)
                try:
                    for fd in (cfg["_in"], cfg["_out"]):
                        os.close(fd)
                    for s in held:
                        s.close()
                    if theirs.recv(16) != b"go":  # the judge adopted us (or died)
                        os._exit(0)
                    sc.prctl(sc.PR_SET_PDEATHSIG, signal.SIGKILL)
                    sc.set_name(b"codegym-sbx")  # its candidates inherit the name
                    fs = ForkServer(dict(cfg, fs_index=index), theirs, pid_ns, userns, uid,
                                    cgroup_fd)
                    fs.setup()
                    fs.serve()
                except BaseException:  # noqa: BLE001
                    try:
                        theirs.send(json.dumps({"fatal": _format_exc()}).encode())
                    finally:
                        os._exit(1)
                os._exit(0)
            os.write(info_w, str(pid).encode())
        finally:
            os._exit(0)
    theirs.close()
    os.close(info_w)
    pid = int(os.read(info_r, 32) or b"0")
    os.close(info_r)
    os.waitpid(mid, 0)  # the server is now our child (subreaper)
    if not pid:
        raise RuntimeError("could not fork a fork server")
    mine.send(b"go")
    hello = json.loads(mine.recv(1 << 20) or b'{"fatal": "fork server died at start"}')
    if "fatal" in hello:
        raise RuntimeError("fork server failed to start:\n" + hello["fatal"])
    return ServerLink(mine, pid, index), hello


def main(cfg: dict[str, Any]) -> None:
    """Run the judge loop on fds 0/1; ``cfg`` comes from the host (or, in a fork server that
    re-ran the interpreter from the in-memory system files, from that server: it resumes)."""
    if "_resume" in cfg:
        _preimport(cfg)
        resume(cfg)
    proto_in = os.dup(0)
    proto_out = os.dup(1)
    devnull = os.open("/dev/null", os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(2, 1)
    os.close(devnull)
    cfg["_in"], cfg["_out"] = proto_in, proto_out
    sc.set_name(b"codegym-judge")
    _preimport(cfg)
    try:
        links, cgroups, applied, missing, held = start_fork_servers(cfg)
    except BaseException:  # noqa: BLE001
        proto.send_frame(proto_out, {"fatal": _format_exc()})
        raise SystemExit(1) from None
    judge = Judge(cfg, links, cgroups)
    judge.prepare_all()  # the first children
    proto.send_frame(proto_out, {"ready": True, "applied": applied, "missing": missing,
                                 "pid": os.getpid(), "python": sys.version.split()[0],
                                 "uids": cfg.get("_uids", [])})
    gc.collect()
    gc.freeze()
    try:
        serve(judge, proto_in, proto_out)
    finally:
        judge.shutdown()
        for s in held:
            s.close()


def _preimport(cfg: dict[str, Any]) -> None:
    for name in cfg.get("preimport", PREIMPORT):
        try:
            __import__(name)
        except ImportError:
            pass


def serve(judge: Judge, proto_in: int, proto_out: int) -> None:
    while True:
        try:
            job = proto.recv_frame(proto_in)
        except enc.EncodingError:
            job = None
        if job is None:
            return
        try:
            result = judge.run_job(job)
        except (WorkerBroken, OSError):  # a fork server died: this worker cannot go on
            proto.send_frame(proto_out, proto.verdict(
                Status.KILLED, error_type="HarnessError", error=_format_exc()[-2000:]))
            raise SystemExit(1) from None
        except BaseException:  # noqa: BLE001 - the judge failed on this job's data
            result = proto.verdict(Status.ERROR, error_type="JudgeError",
                                   error=_format_exc()[-2000:])
        try:
            proto.send_frame(proto_out, result)
        except (enc.EncodingError, UnicodeError, ValueError):
            proto.send_frame(proto_out, proto.verdict(
                Status.ERROR, error_type="JudgeError", error="the verdict could not be encoded"))
