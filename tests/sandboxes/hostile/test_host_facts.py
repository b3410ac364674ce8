"""Class 5/6: a candidate can neither read facts about the host nor change host files' metadata.

Device nodes are bound read-only (data still flows; timestamps, owner and mode cannot change),
the host name is the sandbox's own (UTS namespace), there is no ``/proc`` or ``/sys`` (no
kernel command line, no host cgroup paths, no other processes), inotify/fanotify and sockets
are refused; ``sysinfo``, ``statfs``, the mount table, mount ids and pidfds are refused, and
the monotonic and boot clocks count from the fork server's start (a time namespace). What a
job can still see of the host is listed in ``docs/sandbox.md``.
"""

from __future__ import annotations

import os
import socket
import textwrap
import time
from collections.abc import Iterator
from typing import Any

import pytest

from sandboxes import IOCase, Sandbox, TestSuite

PROBE = textwrap.dedent(
    """
    import ctypes, errno, os, socket
    def attempt(fn):
        try:
            fn()
            return "ok"
        except OSError as e:
            return errno.errorcode.get(e.errno, str(e.errno))
    def f(x):
        libc = ctypes.CDLL(None, use_errno=True)
        out = {}
        out["utime /dev/null"] = attempt(lambda: os.utime("/dev/null", (1, 1)))
        out["chmod /dev/null"] = attempt(lambda: os.chmod("/dev/null", 0o600))
        out["write /dev/null"] = attempt(lambda: open("/dev/null", "w").write("x"))
        out["read /dev/urandom"] = attempt(lambda: open("/dev/urandom", "rb").read(4))
        out["inotify"] = "refused" if libc.inotify_init() < 0 else "ok"
        out["fanotify"] = "refused" if libc.fanotify_init(0, 0) < 0 else "ok"
        out["vsock"] = attempt(lambda: socket.socket(40, socket.SOCK_STREAM))
        out["netlink"] = attempt(lambda: socket.socket(16, socket.SOCK_RAW, 0))
        out["hostname"] = socket.gethostname()
        out["uname"] = os.uname().nodename
        for p in ("/proc/cmdline", "/proc/self/cgroup", "/proc/self/mountinfo", "/sys",
                  "/proc/keys", "/etc/hostname", "/etc/shadow"):
            out[p] = os.path.exists(p)
        return out
    """
)
EXPECTED = {
    "utime /dev/null": "EROFS", "chmod /dev/null": "EROFS", "write /dev/null": "ok",
    "read /dev/urandom": "ok", "inotify": "refused", "fanotify": "refused",
    "vsock": "EAFNOSUPPORT", "netlink": "EAFNOSUPPORT", "hostname": "sandbox",
    "uname": "sandbox", "/proc/cmdline": False, "/proc/self/cgroup": False,
    "/proc/self/mountinfo": False, "/sys": False, "/proc/keys": False, "/etc/hostname": False,
    "/etc/shadow": False,
}


@pytest.fixture(scope="module")
def box(sandbox_backend: str, make_sandbox_or_skip: Any) -> Iterator[Sandbox]:
    sandbox = make_sandbox_or_skip(sandbox_backend, workers=1)
    yield sandbox
    sandbox.close()


def test_host_facts_are_out_of_reach(box: Sandbox) -> None:
    before = os.stat("/dev/null")
    r = box.run(PROBE, TestSuite(kind="io", entry_point="f", cases=(IOCase((0,), EXPECTED),)))
    assert r.ok, r.error
    after = os.stat("/dev/null")
    assert (after.st_mtime_ns, after.st_mode, after.st_uid) == (
        before.st_mtime_ns, before.st_mode, before.st_uid)


def test_the_host_name_stays_the_hosts(box: Sandbox) -> None:
    """The UTS namespace is the sandbox's: renaming is refused and the host keeps its name."""
    name = socket.gethostname()
    prog = ("import ctypes, socket\ndef f(x):\n    libc = ctypes.CDLL(None, use_errno=True)\n"
            "    return [libc.sethostname(b'pwned', 5), ctypes.get_errno()]\n")
    r = box.run(prog, TestSuite(kind="io", entry_point="f", cases=(IOCase((0,), [-1, 1]),)))
    assert r.ok, r.error
    assert socket.gethostname() == name


HOST_WIDE = textwrap.dedent(
    """
    import ctypes, errno, json, os, time
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    def call(nr, *args):
        r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) if isinstance(a, int) else a
                                              for a in args])
        if r == 0 and nr == 56:  # a clone that succeeded: this is the child
            os._exit(0)
        return [r if r < 0 else "ok", errno.errorcode.get(ctypes.get_errno(), "") if r < 0 else ""]
    def attempt(fn):
        try:
            fn()
            return "ok"
        except OSError as e:
            return errno.errorcode.get(e.errno, str(e.errno))
    def f(x):
        buf = ctypes.create_string_buffer(512)
        out = {
            "sysinfo": call(99, buf),
            "statfs /dev/null": attempt(lambda: os.statvfs("/dev/null")),
            "statfs /": attempt(lambda: os.statvfs("/")),
            "statx": call(332, -100, b"/", 0, 0xFFF, buf),
            "listmount": call(458, buf, buf, 0, 0),
            "statmount": call(457, buf, buf, 0, 0),
            "pidfd_open": attempt(lambda: os.pidfd_open(os.getpid())),
            "clone(CLONE_PIDFD)": call(56, 0x1000 | 17, 0, 0, 0, 0),
            "boottime": time.clock_gettime(time.CLOCK_BOOTTIME),
            "monotonic": time.clock_gettime(time.CLOCK_MONOTONIC),
        }
        print("FACTS " + json.dumps(out), flush=True)
        return None
    """
)


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="x86_64 syscall numbers")
def test_host_wide_facts_are_refused_or_virtualised(sandbox_factory: Any) -> None:
    """Host RAM, load, process count and uptime (``sysinfo``), filesystem sizes (``statfs``:
    ``/dev`` is sized from the host's RAM), the mount table and mount ids (``listmount``,
    ``statmount``, ``statx``), pidfds (whose inode numbers count the host's processes and
    lead to namespace inode numbers) are refused; the monotonic and boot clocks count from
    the fork server's start, not from the host's boot."""
    import json

    started = time.monotonic()
    box = sandbox_factory(workers=1)
    r = box.run(HOST_WIDE, TestSuite(kind="io", entry_point="f", cases=(IOCase((0,), None),)))
    age = time.monotonic() - started
    assert r.ok, r
    out = json.loads(r.stdout_tail.rsplit("FACTS ", 1)[1].splitlines()[0])
    assert out["sysinfo"] == [-1, "EPERM"], out
    assert out["statfs /dev/null"] == out["statfs /"] == "EPERM", out
    for name in ("statx", "listmount", "statmount"):
        assert out[name] == [-1, "ENOSYS"], (name, out)
    assert out["pidfd_open"] == "ENOSYS", out
    assert out["clone(CLONE_PIDFD)"] == [-1, "EPERM"], out
    assert 0 <= out["boottime"] <= age + 1 and 0 <= out["monotonic"] <= age + 1, (out, age)
    with open("/proc/uptime") as fh:
        uptime = float(fh.read().split()[0])
    assert uptime > age + 1, "the host booted during this test: nothing to compare"
