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


def _call(name: str, *args: object) -> list[int]:
    """``[return value, errno]`` of a raw system call (args: ints, bytes or ctypes objects)."""
    ctypes = sc.ctypes
    conv = [ctypes.c_long(a) if isinstance(a, int) else a for a in args]
    ctypes.set_errno(0)
    ret = sc.libc.syscall(ctypes.c_long(sc.NR[name]), *conv)
    return [ret, ctypes.get_errno() if ret < 0 else 0]


def _probe_in_child() -> dict[str, object]:
    """Install the filter in a forked child and report what it can still do."""
    import mmap

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        out: dict[str, object] = {}
        try:
            ctypes = sc.ctypes
            held = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # made before the filter
            page = mmap.mmap(-1, 4096)
            addr = ctypes.addressof(ctypes.c_char.from_buffer(page))
            fd = os.open(os.__file__, os.O_RDONLY)
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
            vec = ctypes.create_string_buffer(1)
            buf = ctypes.create_string_buffer(512)
            out["fadvise64"] = _call("fadvise64", fd, 0, 0, 4)  # POSIX_FADV_DONTNEED
            out["readahead"] = _call("readahead", fd, 0, 4096)
            out["mincore"] = _call("mincore", addr, 4096, vec)
            out["cachestat"] = _call("cachestat", fd, buf, buf, 0)
            out["preadv2"] = _call("preadv2", fd, buf, 1, 0, 0, 8)  # RWF_NOWAIT
            out["pipe2"] = _call("pipe2", buf, 0)
            out["memfd_create"] = _call("memfd_create", b"x", 0)
            out["socketpair"] = _call("socketpair", 1, 1, 0, buf)
            out["pidfd_open"] = _call("pidfd_open", os.getpid(), 0)
            out["io_setup"] = _call("io_setup", 8, buf)
            out["sysinfo"] = _call("sysinfo", buf)
            out["statfs"] = _call("statfs", b"/", buf)
            out["statx"] = _call("statx", -100, b"/", 0, 0xFFF, buf)
            out["listmount"] = _call("listmount", buf, buf, 0, 0)
            out["hugetlb"] = _call("mmap", 0, 2 << 20, 3, 0x22 | sc.MAP_HUGETLB, -1, 0)
            out["mergeable"] = _call("madvise", addr, 4096, sc.MADV_MERGEABLE)
            out["memory_merge"] = _call("prctl", sc.PR_SET_MEMORY_MERGE, 1, 0, 0, 0)
            out["clone_pidfd"] = _call("clone", sc.CLONE_PIDFD | 17, 0, 0, 0, 0)
            out["cookie"] = _call("getsockopt", held.fileno(), 1, 57, buf, ctypes.byref(
                ctypes.c_uint(8)))
            # what ordinary programs need still works
            out["mmap"] = _call("mmap", 0, 4096, 3, 0x22, -1, 0)[1]
            out["dontneed"] = _call("madvise", addr, 4096, 4)
            out["sndbuf"] = _call("getsockopt", held.fileno(), 1, 7, buf, ctypes.byref(
                ctypes.c_uint(4)))
            out["read"] = len(os.pread(fd, 16, 0))
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


@pytest.mark.skipif(sc.MACHINE != "x86_64", reason="the probe's raw calls use x86_64 layouts")
def test_the_kernel_enforces_the_filter() -> None:
    out = _probe_in_child()
    assert "error" not in out, out
    assert out["keyctl"] == [-1, errno.EPERM]
    assert out["unshare_user"] == [-1, errno.EPERM]
    assert out["inotify"] == [-1, errno.EPERM]
    # no socket of any family (no network, and each would take a host-wide inode number)
    assert out["vsock"] == out["netlink"] == out["inet"] == out["unix"] == "EAFNOSUPPORT"
    # page-cache probes, host-wide counters, host facts
    for name in ("fadvise64", "readahead", "mincore", "cachestat", "pipe2", "memfd_create",
                 "sysinfo", "statfs", "hugetlb", "mergeable", "memory_merge", "clone_pidfd"):
        assert out[name] == [-1, errno.EPERM], (name, out[name])
    for name in ("preadv2", "pidfd_open", "io_setup", "statx", "listmount"):
        assert out[name] == [-1, errno.ENOSYS], (name, out[name])
    assert out["socketpair"] == [-1, errno.EAFNOSUPPORT]
    assert out["cookie"] == [-1, errno.ENOPROTOOPT]
    # ... and what ordinary programs use still works
    assert out["mmap"] == 0 and out["dontneed"] == [0, 0] and out["sndbuf"] == [0, 0]
    assert out["read"] == 16 and out["fork"] == 3
