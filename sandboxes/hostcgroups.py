"""Host-side cgroups of the docker backend: one parent per container, with room for its jobs.

A container's processes are charged to the cgroup Docker makes for it, so without help a job
inside is bounded by the container's limit only: its socket buffers, children and page cache
count against the judge's and the fork servers' room, and a job that fills it takes the worker
down instead of getting a ``memory`` verdict. The worker cannot make cgroups of its own there
(``/sys/fs/cgroup`` is read-only in a container). So for each container the host makes

* ``<parent>`` (``codegym-d<host pid>-<random>``), limited to ``container_memory_mb`` (swap
  included) and weighted like the container (``cpu.shares``); Docker puts the container
  below it (``cgroup_parent``);
* ``<parent>/jobs``, owned by the container's uid and bound into the container
  (:data:`CONTAINER_DIR`): the worker makes its per-job memory leaves there
  (:mod:`sandboxes.worker.cgroups`), exactly as the local backend does under its own cgroup.

A job is then charged to its own leaf (limit ``memory_mb`` + the worker's margin) and gets a
``memory`` verdict from that leaf's OOM count, while the whole container, jobs included, stays
within ``container_memory_mb``. This needs a cgroup v1 host whose engine uses the ``cgroupfs``
driver, on this machine, as root; elsewhere :func:`unavailable_reason` says why and the backend
reports the per-job memory cgroup as missing. The parents are removed when their container is
gone (:meth:`ContainerCgroup.remove`); :func:`remove_stale` removes those of dead owners.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

from sandboxes.worker.cgroups import pid_alive

__all__ = ["CONTAINER_DIR", "ContainerCgroup", "remove_stale", "unavailable_reason", "v1_mounts"]

CONTAINER_DIR = "/run/codegym-memcg"  #: where the container sees its ``jobs`` dir
PREFIX = "codegym-d"


def v1_mounts() -> dict[str, str]:
    """``{controller: mount point}`` of the host's cgroup v1 hierarchies (``name=systemd``
    style named hierarchies included, under their full option)."""
    out: dict[str, str] = {}
    try:
        with open("/proc/self/mountinfo") as f:
            lines = f.readlines()
    except OSError:
        return out
    for line in lines:
        left, _, right = line.partition(" - ")
        fields, rfields = left.split(), right.split()
        if len(rfields) >= 3 and rfields[0] == "cgroup":
            for opt in rfields[2].split(","):
                if opt in ("rw", "ro", "relatime", "noatime", "nosuid", "nodev", "noexec"):
                    continue
                out.setdefault(opt, fields[4])
    return out


def unavailable_reason(info: dict[str, Any], docker_host: str) -> str | None:
    """Why host-side job cgroups cannot be made for this engine (None: they can)."""
    if docker_host and not docker_host.startswith("unix://"):
        return f"the engine is not on this machine (DOCKER_HOST={docker_host})"
    if str(info.get("CgroupVersion")) != "1" or info.get("CgroupDriver") != "cgroupfs":
        return (f"implemented for cgroup v1 engines with the cgroupfs driver; this one has "
                f"cgroup v{info.get('CgroupVersion')} with the {info.get('CgroupDriver')} driver")
    if os.geteuid() != 0:
        return "making cgroups for the containers needs root"
    memory = v1_mounts().get("memory")
    if memory is None or not os.access(memory, os.W_OK):
        return "no writable cgroup v1 memory hierarchy is mounted here"
    return None


def _write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


class ContainerCgroup:
    """The host cgroup parent of one container (see the module docstring).

    Args:
        base: The engine's cgroup parent for containers (``"/"`` by default).
        memory_mb: Limit of the parent: the container with its jobs.
        cpu_shares: CFS weight of the parent (the container's own weight).
        uid: Owner of the ``jobs`` dir (the container's user).
    """

    def __init__(self, base: str, memory_mb: int, cpu_shares: int, uid: int) -> None:
        self.mounts = v1_mounts()
        self.name = f"{base.rstrip('/')}/{PREFIX}{os.getpid()}-{uuid.uuid4().hex[:10]}"
        memory = self.mounts["memory"] + self.name
        try:
            os.makedirs(memory, 0o755)
            _write(os.path.join(memory, "memory.limit_in_bytes"), str(memory_mb << 20))
            memsw = os.path.join(memory, "memory.memsw.limit_in_bytes")
            if os.path.exists(memsw):
                _write(memsw, str(memory_mb << 20))
            self.jobs_dir = os.path.join(memory, "jobs")
            os.mkdir(self.jobs_dir, 0o755)
            os.chown(self.jobs_dir, uid, uid)
            cpu = self.mounts.get("cpu")
            if cpu is not None:
                os.makedirs(cpu + self.name, 0o755, exist_ok=True)
                _write(os.path.join(cpu + self.name, "cpu.shares"), str(cpu_shares))
        except OSError:
            self.remove()
            raise

    @property
    def parent(self) -> str:
        """The ``cgroup_parent`` to give Docker for this container."""
        return self.name

    def dirs(self) -> list[str]:
        """This parent's dir in every hierarchy where it exists."""
        return [m + self.name for m in sorted(set(self.mounts.values()))
                if os.path.isdir(m + self.name)]

    def remove(self) -> list[str]:
        """Remove the parent (and what is left below it) in every hierarchy, once the
        container is gone; returns the dirs that could not be removed (still in use)."""
        return [d for d in self.dirs() if not _rmdir_tree(d)]


def _rmdir_tree(top: str) -> bool:
    """rmdir a cgroup dir and its sub-cgroups, deepest first (only empty cgroups go)."""
    for root, subdirs, _files in sorted(os.walk(top), key=lambda t: -t[0].count("/")):
        for d in subdirs:
            try:
                os.rmdir(os.path.join(root, d))
            except OSError:
                pass
    try:
        os.rmdir(top)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return True


def remove_stale(base: str = "/") -> list[str]:
    """Remove container parents (in every hierarchy) whose owner process is gone and that hold
    no process any more; returns the dirs removed."""
    removed = []
    for mount in sorted(set(v1_mounts().values())):
        root = mount + base.rstrip("/")
        try:
            names = os.listdir(root or "/")
        except OSError:
            continue
        for name in names:
            pid = name[len(PREFIX):].split("-", 1)[0]
            if not name.startswith(PREFIX) or not pid.isdigit() or pid_alive(int(pid)):
                continue
            path = os.path.join(root, name)
            if _rmdir_tree(path):
                removed.append(path)
    return removed
