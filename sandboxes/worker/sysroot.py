"""The files a job can see: a private in-memory copy of the interpreter and its standard library.

Host files cached by the kernel are state that no namespace covers. If a job could open files of
the host's disks, it could leave a value for the next job (or for a new sandbox) in which of
their pages, directory entries and inodes the kernel has cached -- read back through
``mincore``, ``preadv2(RWF_NOWAIT)``, major-fault counts or plain read latency, none of which a
filter can take away -- and it could watch which host files other processes read. So a job
sees none: its read-only root holds a copy, on a tmpfs, of the Python interpreter, its standard
library and the shared libraries they load. A tmpfs keeps every page of its files in memory
(residency cannot change), keeps its directory entries and inodes for as long as the files
exist, and drops a failed lookup at once (no cached "negative" entry is left behind), so
nothing a job does to these files can be observed afterwards. The copy is read-only (no atime
either).

:func:`build` runs once per worker, in the judge's own mount namespace, before the fork servers
exist: a short-lived child (so that nothing it imports or loads stays in the judge, whose pages
every fork copies) finds the files, mounts a tmpfs on :data:`MOUNT`, copies them into
:data:`TREE` at their host paths (symlinks included: ``/lib64`` -> ``usr/lib64``, sonames ->
files), and remounts it read-only. Each fork server binds the entries of :data:`TREE` into its
private root (:meth:`sandboxes.worker.forkserver.ForkServer._build_root`).

What is copied: every directory on ``sys.path`` (the standard library and ``lib-dynload``;
``config-*`` -- a static library and a Makefile for building extensions -- and
``site-packages``/``dist-packages``, which ``-S`` keeps off ``sys.path``, are left out), the
interpreter, and every shared object that the worker or any ``lib-dynload`` module loads, under
the path the dynamic loader used (read from its link map after loading each module), every
other file the worker has mapped (locale data), plus ``/etc/ld.so.cache`` and
``/etc/localtime``. No shell or other program is there. Files of 2 MiB and more are held in
huge pages where the kernel has them (``huge=within_size``): a job maps the interpreter's
code in fewer, cheaper steps.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
from typing import Any

from sandboxes.worker import syscalls as sc

MOUNT = "/tmp"  #: where the judge mounts the copy (in its private mount namespace only)
TREE = MOUNT + "/sys"  #: the copy: host paths below it
ETC_FILES = ("/etc/ld.so.cache", "/etc/localtime")
_SKIP_TOP = ("config-", "site-packages", "dist-packages")
_RTLD_DI_LINKMAP = 2


class _LinkMap(ctypes.Structure):
    pass


_LinkMap._fields_ = [("l_addr", ctypes.c_void_p), ("l_name", ctypes.c_char_p),
                     ("l_ld", ctypes.c_void_p), ("l_next", ctypes.POINTER(_LinkMap)),
                     ("l_prev", ctypes.POINTER(_LinkMap))]


def server_base(index: int) -> str:
    """The dir on the copy's tmpfs where fork server ``index`` mounts its own base."""
    return f"{MOUNT}/fs{index}"


def loaded_objects() -> list[str]:
    """Paths of the shared objects loaded into this process, as the dynamic loader opened
    them (``/lib64/ld-linux-x86-64.so.2``, ``/lib/x86_64-linux-gnu/libffi.so.8``, ...)."""
    libdl = ctypes.CDLL(None)
    lm = ctypes.POINTER(_LinkMap)()
    if libdl.dlinfo(ctypes.c_void_p(libdl._handle), _RTLD_DI_LINKMAP, ctypes.byref(lm)) != 0:
        return []
    while lm and lm.contents.l_prev:
        lm = lm.contents.l_prev
    out = []
    while lm:
        name = lm.contents.l_name
        if name and name.startswith(b"/"):
            out.append(os.fsdecode(name))
        lm = lm.contents.l_next
    return out


def wanted_paths() -> tuple[list[str], list[str]]:
    """(dirs copied whole, single files): the standard library dirs, and the interpreter with
    every shared object it or a ``lib-dynload`` module loads. Loads those modules' libraries
    into this process: call it in a throwaway child."""
    dirs = sorted({os.path.realpath(p) for p in sys.path if p and os.path.isdir(p)})
    files = [sys.executable, os.path.realpath(sys.executable)]
    for d in dirs:
        if os.path.basename(d) != "lib-dynload":
            continue
        for name in sorted(os.listdir(d)):
            if name.endswith(".so"):
                try:
                    ctypes.CDLL(os.path.join(d, name), mode=os.RTLD_LAZY | os.RTLD_LOCAL)
                except OSError:
                    pass  # a module whose libraries are not installed: not importable anyway
    files += loaded_objects()
    files += mapped_files()
    files += [p for p in ETC_FILES if os.path.exists(p)]
    return dirs, sorted(set(files))


def mapped_files() -> list[str]:
    """Files mapped into this process (locale data such as ``LC_CTYPE`` among them)."""
    out = []
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                parts = line.split(maxsplit=5)
                if len(parts) == 6 and parts[5].startswith("/"):
                    path = parts[5].rstrip("\n")
                    if not path.endswith(" (deleted)") and os.path.isfile(path):
                        out.append(path)
    except OSError:
        pass
    return out


class _Copier:
    """Copies host paths into ``dest`` at the same absolute paths, symlinks kept as symlinks."""

    def __init__(self, dest: str) -> None:
        self.dest = dest
        self.done: set[str] = set()
        self.bytes = 0
        self.files = 0

    def _target(self, path: str) -> str:
        return self.dest + path

    def chain(self, path: str) -> str:
        """Make ``path`` resolvable inside the copy the way it resolves on the host: every
        symlink on the way is recreated; returns the host's real path (dirs created)."""
        parts = [p for p in path.split("/") if p]
        here = "/"
        for _ in range(64):  # symlink hops
            if not parts:
                return here
            step = os.path.join(here, parts.pop(0))
            if os.path.islink(step):
                link = os.readlink(step)
                if step not in self.done:
                    self.done.add(step)
                    os.makedirs(os.path.dirname(self._target(step)), 0o755, exist_ok=True)
                    if not os.path.lexists(self._target(step)):
                        os.symlink(link, self._target(step))
                base = "/" if link.startswith("/") else here
                parts = [p for p in os.path.normpath(os.path.join(base, link)).split("/")
                         if p] + parts
                here = "/"
                continue
            here = step
            if parts and not os.path.isdir(self._target(here)):
                os.makedirs(self._target(here), 0o755, exist_ok=True)
        raise OSError(f"too many symlinks resolving {path}")

    def copy_file(self, real: str, st: os.stat_result) -> None:
        dst = self._target(real)
        if real in self.done:
            return
        self.done.add(real)
        os.makedirs(os.path.dirname(dst), 0o755, exist_ok=True)
        src_fd = os.open(real, os.O_RDONLY | os.O_CLOEXEC)
        try:
            dst_fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                os.ftruncate(dst_fd, st.st_size)  # its full size first: huge pages fit in it
                offset = 0
                while offset < st.st_size:
                    n = os.sendfile(dst_fd, src_fd, offset, st.st_size - offset)
                    if n <= 0:
                        break
                    offset += n
            finally:
                os.close(dst_fd)
        finally:
            os.close(src_fd)
        os.chmod(dst, st.st_mode & 0o755)
        # the interpreter checks each cached .pyc against its source's mtime
        os.utime(dst, ns=(st.st_mtime_ns, st.st_mtime_ns))
        self.bytes += st.st_size
        self.files += 1

    def copy_path(self, path: str) -> None:
        real = self.chain(path)
        st = os.stat(real)
        if not os.path.isdir(real):
            self.copy_file(real, st)
            return
        os.makedirs(self._target(real), 0o755, exist_ok=True)
        stack = [(real, True)]
        while stack:
            d, top = stack.pop()
            for entry in sorted(os.scandir(d), key=lambda e: e.name):
                if top and entry.name.startswith(_SKIP_TOP):
                    continue
                if entry.is_symlink():
                    dst = self._target(entry.path)
                    if not os.path.lexists(dst):
                        os.symlink(os.readlink(entry.path), dst)
                elif entry.is_dir():
                    os.makedirs(self._target(entry.path), 0o755, exist_ok=True)
                    stack.append((entry.path, False))
                elif entry.is_file():
                    self.copy_file(entry.path, entry.stat())
        for d in [real]:
            os.chmod(self._target(d), 0o755)


def _size(dirs: list[str], files: list[str]) -> int:
    total = 0
    for d in dirs:
        for root, subdirs, names in os.walk(d):
            if root == d:
                subdirs[:] = [s for s in subdirs if not s.startswith(_SKIP_TOP)]
            for name in names:
                try:
                    total += os.lstat(os.path.join(root, name)).st_size
                except OSError:
                    pass
    for f in files:
        try:
            total += os.stat(f).st_size
        except OSError:
            pass
    return total


def _build_in_child(n_servers: int) -> dict[str, Any]:
    """Find, mount, copy, remount read-only (runs in the throwaway child)."""
    dirs, files = wanted_paths()
    size_mb = (_size(dirs, files) >> 20) + 16
    options = f"size={size_mb}m,mode=755"
    try:  # big files (the interpreter, libcrypto) in huge pages: cheaper to map in every job
        sc.mount("tmpfs", MOUNT, "tmpfs", sc.MS_NOSUID | sc.MS_NODEV,
                 options + ",huge=within_size")
    except OSError:  # a kernel without transparent huge pages
        sc.mount("tmpfs", MOUNT, "tmpfs", sc.MS_NOSUID | sc.MS_NODEV, options)
    copier = _Copier(TREE)
    os.mkdir(TREE, 0o755)
    for path in dirs + files:
        copier.copy_path(path)
    for i in range(n_servers):
        os.mkdir(server_base(i), 0o755)
    sc.mount(None, MOUNT, None, sc.MS_REMOUNT | sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NODEV)
    return {"files": copier.files, "mb": round(copier.bytes / (1 << 20), 1),
            "tree": sorted(os.listdir(TREE))}


def build(n_servers: int) -> dict[str, Any]:
    """Mount the copy on :data:`MOUNT` in the calling process's mount namespace (which must
    be its own, private one), through a child; returns what it made.

    Raises:
        OSError: The copy could not be made (the message says why).
    """
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the throwaway child
        os.close(r)
        try:
            out = _build_in_child(n_servers)
        except BaseException as e:  # noqa: BLE001 - reported to the judge
            out = {"error": f"{type(e).__name__}: {e}"}
        try:
            os.write(w, json.dumps(out).encode())
        finally:
            os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 1 << 16):
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    out = json.loads(data or b'{"error": "the copying child died"}')
    if "error" in out:
        try:
            sc.umount(MOUNT)
        except OSError:
            pass
        raise OSError(out["error"])
    return out
