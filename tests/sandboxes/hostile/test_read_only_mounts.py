"""Class 7: everything a job sees outside its work dir is read-only, mounts below mounts too.

A read-only bind of a directory tree used to remount only its top mount read-only: a writable
filesystem mounted below it on the host stayed writable inside. Now a job's root is made of
the in-memory copy of the system files (read-only), and every bind the fork server makes is
read-only recursively (``mount_setattr(AT_RECURSIVE)``, or each mount below it remounted on
kernels before 5.12).
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandboxes import IOCase, Sandbox, TestSuite

ROOT = os.geteuid() == 0

WRITE_EVERYWHERE = textwrap.dedent(
    """
    import errno, json, os
    def f(x):
        wrote, refused = [], {}
        for d, subdirs, _files in os.walk("/"):
            if d == "/tmp" or d.startswith("/tmp/"):
                subdirs[:] = []
                continue
            for attempt in (lambda: open(os.path.join(d, ".cg-w"), "w").close(),
                            lambda: os.mkdir(os.path.join(d, ".cg-d"))):
                try:
                    attempt()
                    wrote.append(d)
                except OSError as e:
                    name = errno.errorcode.get(e.errno, str(e.errno))
                    refused[name] = refused.get(name, 0) + 1
        print("WRITE " + json.dumps([wrote, refused]), flush=True)
        return None
    """
)


@pytest.fixture(scope="module")
def box(sandbox_backend: str, make_sandbox_or_skip: Any) -> Iterator[Sandbox]:
    sandbox = make_sandbox_or_skip(sandbox_backend, workers=1)
    yield sandbox
    sandbox.close()


def _suite() -> TestSuite:
    return TestSuite(kind="io", entry_point="f", cases=(IOCase((0,), None),))


def test_no_dir_outside_the_work_dir_is_writable(box: Sandbox) -> None:
    r = box.run(WRITE_EVERYWHERE, _suite(), timeout=20)
    assert r.ok, r
    wrote, refused = json.loads(r.stdout_tail.rsplit("WRITE ", 1)[1].splitlines()[0])
    assert not wrote, f"the job wrote into {wrote[:10]}"
    assert set(refused) == {"EROFS"} and sum(refused.values()) > 50, refused


_SUBMOUNT_SCRIPT = """
import ctypes, json, os, sys
sys.path.insert(0, {root!r})
from sandboxes import IOCase, TestSuite
from sandboxes.local import LocalSandbox
libc = ctypes.CDLL(None, use_errno=True)
target = {target!r}
assert libc.mount(b"tmpfs", target.encode(), b"tmpfs", 0, b"size=1m,mode=1777") == 0, \\
    ctypes.get_errno()
with open(os.path.join(target, "cg_marker.txt"), "w") as fh:
    fh.write("from the submount")
prog = ("import errno, os\\ndef f(x):\\n    out = {{}}\\n"
        "    try:\\n        out['read'] = open({target!r} + '/cg_marker.txt').read()\\n"
        "    except OSError as e:\\n        out['read'] = errno.errorcode[e.errno]\\n"
        "    try:\\n        open({target!r} + '/cg_written', 'w').close()\\n"
        "        out['write'] = 'ok'\\n"
        "    except OSError as e:\\n        out['write'] = errno.errorcode[e.errno]\\n"
        "    return out\\n")
with LocalSandbox(workers=1) as box:
    r = box.run(prog, TestSuite(kind="io", entry_point="f", cases=(IOCase((0,), None),)))
print(json.dumps([r.error, os.path.exists(os.path.join(target, "cg_written"))]))
"""


@pytest.mark.skipif(not ROOT or not os.path.exists("/usr/bin/unshare"),
                    reason="mounting a filesystem in a private mount namespace needs root "
                           "and unshare(1)")
def test_a_writable_mount_below_a_system_dir_is_read_only_in_a_job() -> None:
    """On the host a writable tmpfs is mounted below the worker's standard library (in a
    private mount namespace of the test's own, so the host is untouched); a job sees its
    contents but cannot write there."""
    from sandboxes.local import _default_python

    stdlib = subprocess.run([_default_python(), "-I", "-S", "-c",
                             "import os; print(os.path.dirname(os.__file__))"],
                            capture_output=True, text=True, check=True).stdout.strip()
    target = os.path.join(stdlib, "xmlrpc")
    assert os.path.isdir(target), target
    script = _SUBMOUNT_SCRIPT.format(root=str(Path(__file__).resolve().parents[3]),
                                     target=target)
    proc = subprocess.run(["/usr/bin/unshare", "--mount", "--propagation", "private",
                           sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    error, written = json.loads(proc.stdout.strip().splitlines()[-1])
    got = eval(error.rsplit(" got ", 1)[1])  # noqa: S307 - our own repr of plain data
    assert got == {"read": "from the submount", "write": "EROFS"}, got
    assert not written


_BIND_SCRIPT = """
import json, os, sys, tempfile
sys.path.insert(0, {root!r})
from sandboxes.worker import syscalls as sc
from sandboxes.worker.forkserver import ForkServer
sc.unshare(sc.CLONE_NEWNS)
sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)
top = tempfile.mkdtemp()
src, dst = os.path.join(top, "src"), os.path.join(top, "dst")
os.makedirs(os.path.join(src, "sub"))
os.mkdir(dst)
sc.mount("tmpfs", os.path.join(src, "sub"), "tmpfs", 0, "size=1m")
if {no_setattr!r}:
    def refused(*args):
        raise OSError(38, "mount_setattr: not on this kernel")
    sc.mount_setattr_recursive = refused
ForkServer._bind_ro(None, src, dst, sc.MS_NOSUID | sc.MS_NODEV)
out = {{}}
for where in (dst, os.path.join(dst, "sub")):
    try:
        open(os.path.join(where, "x"), "w").close()
        out[where[len(top):]] = "ok"
    except OSError as e:
        out[where[len(top):]] = e.errno
sc.umount(dst)
sc.umount(os.path.join(src, "sub"))
import shutil
shutil.rmtree(top)
print(json.dumps(out))
"""


@pytest.mark.skipif(not ROOT, reason="bind mounts need root")
@pytest.mark.parametrize("no_setattr", [False, True], ids=["mount_setattr", "remount-each"])
def test_read_only_binds_cover_every_mount_below(no_setattr: bool) -> None:
    """The fork server's read-only bind, with ``mount_setattr`` and with the per-mount
    remount used where the kernel lacks it: the mount below the bound dir is read-only too."""
    script = _BIND_SCRIPT.format(root=str(Path(__file__).resolve().parents[3]),
                                 no_setattr=no_setattr)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout) == {"/dst": errno.EROFS, "/dst/sub": errno.EROFS}
