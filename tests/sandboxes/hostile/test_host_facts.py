"""Class 6: a candidate can neither read facts about the host nor change host files' metadata.

Device nodes are bound read-only (data still flows; timestamps, owner and mode cannot change),
the host name is the sandbox's own (UTS namespace), there is no ``/proc`` or ``/sys`` (no
kernel command line, no host cgroup paths, no other processes), inotify/fanotify (which would
watch the host's files bound read-only into the sandbox) and vsock/netlink sockets are refused.
"""

from __future__ import annotations

import os
import socket
import textwrap
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
