"""Per-job memory cgroups: one leaf per fork server, under the judge's own cgroup.

A job's processes (the candidate and everything it forks) are charged to its fork server's
leaf, whose limit covers anonymous memory, page cache (``memfd``, files on the job's tmpfs) and
shared memory alike. cgroup v2 is used where its memory controller is available; otherwise the
v1 memory hierarchy (hosts that still mount it, such as this project's CI machines). The judge
creates the leaves before it forks its fork servers, which keep an open ``cgroup.procs`` file
to put each child in its leaf before the child runs any candidate code; the judge sets each
job's limit and reads the OOM kill count after a job. The leaves are removed when the judge
exits; leaves of judges that died (SIGKILL) are removed by the next judge in the same cgroup.

In a docker container the worker cannot reach the host's cgroup tree by itself: the host makes
a cgroup per container whose ``jobs`` dir the container's user owns, binds that dir into the
container, and passes its path (``cgroup_dir``); the leaves are made there, so a job's memory
is charged to the job on ``docker`` exactly as on ``local`` (see :mod:`sandboxes.docker`).
"""

from __future__ import annotations

import os

__all__ = ["CgroupUnavailable", "JobCgroups", "MARGIN_MB"]

#: a job's cgroup limit is its ``memory_mb`` plus this (the interpreter's own copy-on-write
#: pages and kernel memory; the address-space rlimit still stops a single big allocation)
MARGIN_MB = 32
_PREFIX = "codegym-"


class CgroupUnavailable(OSError):
    """No writable memory cgroup hierarchy on this host (the reason is the message)."""


def _mounts() -> list[tuple[str, str, str]]:
    """(mount point, fstype, super options) of every cgroup mount."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields, rfields = left.split(), right.split()
            if len(rfields) >= 3 and rfields[0] in ("cgroup", "cgroup2"):
                out.append((fields[4], rfields[0], rfields[2]))
    return out


def _own_paths() -> dict[str, str]:
    """This process's cgroup path per hierarchy key ("" for v2, else the controllers)."""
    out = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            parts = line.rstrip("\n").split(":", 2)
            if len(parts) == 3:
                out[parts[1]] = parts[2]
    return out


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (signal 0; a process of another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _Leaf:
    def __init__(self, path: str, version: int) -> None:
        self.path = path
        self.version = version
        self.procs_fd = os.open(os.path.join(path, "cgroup.procs"), os.O_WRONLY | os.O_CLOEXEC)
        self.limit_file = os.path.join(path, "memory.max" if version == 2
                                       else "memory.limit_in_bytes")
        self.events_file = os.path.join(path, "memory.events" if version == 2
                                        else "memory.oom_control")
        raw = _read(self.limit_file).strip()
        self.limit = 1 << 62 if raw == "max" else int(raw)

    def oom_kills(self) -> int:
        for line in _read(self.events_file).splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0


class JobCgroups:
    """Memory-limited leaf cgroups, ``leaves[i]`` for fork server ``i``.

    Raises:
        CgroupUnavailable: No usable memory controller (not root, no delegation, read-only
            ``/sys/fs/cgroup`` in a container, ...).
    """

    def __init__(self, n: int, parent: str | None = None, version: int = 1) -> None:
        if parent:  # handed down by the host (a docker container's share of the host's tree)
            if not os.access(parent, os.W_OK):
                raise CgroupUnavailable(f"the cgroup dir {parent} handed to the worker is not "
                                        "writable")
            self.version, self.parent = version, parent
        else:
            self.version, self.parent = self._choose()
        self.root = os.path.join(self.parent, f"{_PREFIX}{os.getpid()}-{os.urandom(4).hex()}")
        self._remove_stale()
        self.leaves: list[_Leaf] = []
        try:
            os.mkdir(self.root, 0o700)
            if self.version == 2:
                with open(os.path.join(self.root, "cgroup.subtree_control"), "w") as f:
                    f.write("+memory")
            for i in range(n):
                path = os.path.join(self.root, f"fs{i}")
                os.mkdir(path, 0o700)
                self._configure(path)
                self.leaves.append(_Leaf(path, self.version))
        except OSError as e:
            self.remove()
            raise CgroupUnavailable(f"cannot create memory cgroups under {self.parent}: {e}") \
                from None

    @staticmethod
    def _choose(mounts: list[tuple[str, str, str]] | None = None,
                own: dict[str, str] | None = None) -> tuple[int, str]:
        """(version, parent dir) of the hierarchy to use: cgroup v2 where an ancestor of this
        process's cgroup hands the memory controller down (its ``cgroup.subtree_control``
        lists it), else the v1 memory hierarchy. ``mounts``/``own`` default to this
        process's (``/proc/self/mountinfo``, ``/proc/self/cgroup``)."""
        try:
            mounts = _mounts() if mounts is None else mounts
            own = _own_paths() if own is None else own
        except OSError as e:
            raise CgroupUnavailable(f"cannot read this process's cgroups: {e}") from None
        why = []
        for point, fstype, _opts in mounts:  # v2 first
            if fstype != "cgroup2" or "" not in own:
                continue
            path = own[""]
            while True:
                here = point + path.rstrip("/")
                try:
                    if "memory" in _read(os.path.join(here or "/", "cgroup.subtree_control")).split():
                        if os.access(here, os.W_OK):
                            return 2, here
                except OSError:
                    pass
                if path in ("", "/"):
                    break
                path = os.path.dirname(path.rstrip("/"))
            why.append(f"cgroup v2 at {point} has no memory controller we may use")
        for point, fstype, opts in mounts:
            if fstype != "cgroup" or "memory" not in opts.split(","):
                continue
            key = next((k for k in own if "memory" in k.split(",")), None)
            if key is None:
                continue
            here = point + own[key].rstrip("/")
            if os.access(here, os.W_OK):
                return 1, here
            why.append(f"cgroup v1 memory hierarchy {here} is not writable")
        raise CgroupUnavailable("; ".join(why) or "no memory cgroup hierarchy is mounted")

    def _configure(self, path: str) -> None:
        if self.version == 2:
            swap = os.path.join(path, "memory.swap.max")
            if os.path.exists(swap):
                with open(swap, "w") as f:
                    f.write("0")
            oom_group = os.path.join(path, "memory.oom.group")
            if os.path.exists(oom_group):  # an OOM kill takes the whole job down
                with open(oom_group, "w") as f:
                    f.write("1")
        else:
            swappiness = os.path.join(path, "memory.swappiness")
            if os.path.exists(swappiness):
                try:
                    with open(swappiness, "w") as f:
                        f.write("0")
                except OSError:
                    pass

    @property
    def swap_unbounded(self) -> bool:
        """True when a job could push memory to swap beyond its limit (v1 without swap
        accounting on a host with swap)."""
        if self.version == 2 or not self.leaves:
            return False
        if os.path.exists(os.path.join(self.leaves[0].path, "memory.memsw.limit_in_bytes")):
            return False
        try:
            return len(_read("/proc/swaps").splitlines()) > 1
        except OSError:
            return False

    def describe(self) -> str:
        return f"per-job memory cgroup (v{self.version}, limit = memory_mb + {MARGIN_MB} MiB)"

    def set_limit(self, i: int, memory_mb: int) -> None:
        """Limit leaf ``i`` to ``memory_mb + MARGIN_MB`` MiB (no-op when unchanged)."""
        leaf = self.leaves[i]
        want = (memory_mb + MARGIN_MB) << 20
        if leaf.limit == want:
            return
        files = [leaf.limit_file]
        memsw = os.path.join(leaf.path, "memory.memsw.limit_in_bytes")
        if self.version == 1 and os.path.exists(memsw):
            # v1 needs memory <= memsw at every step: raise memsw first, lower it last
            files = [memsw, leaf.limit_file] if want > leaf.limit else [leaf.limit_file, memsw]
        for path in files:
            with open(path, "w") as f:
                f.write(str(want))
        leaf.limit = want

    def oom_kills(self, i: int) -> int:
        """OOM kills in leaf ``i`` so far."""
        return self.leaves[i].oom_kills()

    def remove(self) -> None:
        """Remove the leaves and their parent (they must be empty of processes)."""
        for leaf in self.leaves:
            try:
                os.close(leaf.procs_fd)
            except OSError:
                pass
        for path in [leaf.path for leaf in self.leaves] + [self.root]:
            try:
                os.rmdir(path)
            except OSError:
                pass
        if os.path.isdir(self.root):
            for name in os.listdir(self.root):
                try:
                    os.rmdir(os.path.join(self.root, name))
                except OSError:
                    pass
            try:
                os.rmdir(self.root)
            except OSError:
                pass

    def _remove_stale(self) -> None:
        """Remove leaves left by judges that died without cleaning up."""
        try:
            names = os.listdir(self.parent)
        except OSError:
            return
        for name in names:
            if not name.startswith(_PREFIX):
                continue
            pid = name[len(_PREFIX):].split("-", 1)[0]
            if not pid.isdigit() or pid_alive(int(pid)):
                continue
            base = os.path.join(self.parent, name)
            try:
                for leaf in os.listdir(base):
                    if os.path.isdir(os.path.join(base, leaf)):
                        os.rmdir(os.path.join(base, leaf))
                os.rmdir(base)
            except OSError:
                pass
