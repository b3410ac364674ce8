"""The candidates' seccomp filter: built for both syscall tables, and enforced by the kernel."""

from __future__ import annotations

import errno
import json
import os
import socket

import pytest

from sandboxes.worker import syscalls as sc


@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
def test_the_filter_assembles_for_each_table(machine: str) -> None:
    table = sc._TABLES[machine]
    prog = sc.build_filter(table)
    assert 40 < len(prog) < 200
    assert prog[0] == (0x20, 0, 0, 4) and prog[1][3] == table["_audit_arch"]
    denied = {k for (code, _jt, _jf, k) in prog if code == 0x15}
    assert {table["keyctl"], table["unshare"], table["io_uring_setup"], table["setns"]} <= denied
    assert table["mount"] not in denied  # capabilities refuse it to candidates (see DENIED)


def _probe_in_child() -> dict[str, object]:
    """Install the filter in a forked child and report what it can still do."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        out: dict[str, object] = {}
        try:
            sc.prctl(sc.PR_SET_NO_NEW_PRIVS, 1)
            sc.CandidateFilter().install()
            libc = sc.libc
            nr = sc.NR
            out["keyctl"] = [libc.syscall(nr["keyctl"], 0, -3, 0), sc.ctypes.get_errno()]
            out["unshare_user"] = [libc.unshare(sc.CLONE_NEWUSER), sc.ctypes.get_errno()]
            out["inotify"] = [libc.syscall(nr["inotify_init1"], 0), sc.ctypes.get_errno()]
            for name, fam, kind in (("vsock", 40, socket.SOCK_STREAM),
                                    ("netlink", 16, socket.SOCK_RAW),
                                    ("inet", socket.AF_INET, socket.SOCK_STREAM),
                                    ("unix", socket.AF_UNIX, socket.SOCK_STREAM)):
                try:
                    socket.socket(fam, kind).close()
                    out[name] = "ok"
                except OSError as e:
                    out[name] = errno.errorcode[e.errno]
            child = os.fork()
            if child == 0:
                os._exit(3)
            out["fork"] = os.waitstatus_to_exitcode(os.waitpid(child, 0)[1])
        except BaseException as e:  # noqa: BLE001
            out["error"] = repr(e)
        os.write(w, json.dumps(out).encode())
        os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 4096):
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    return json.loads(data)


@pytest.mark.skipif(not sc.NR, reason=f"no syscall table for {sc.MACHINE}")
def test_the_kernel_enforces_the_filter() -> None:
    out = _probe_in_child()
    assert "error" not in out, out
    assert out["keyctl"] == [-1, errno.EPERM]
    assert out["unshare_user"] == [-1, errno.EPERM]
    assert out["inotify"] == [-1, errno.EPERM]
    assert out["vsock"] == out["netlink"] == "EAFNOSUPPORT"
    assert out["inet"] == out["unix"] == "ok" and out["fork"] == 3
