"""The docker backend's host cgroups: when they can be made, and that they are removed."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from sandboxes import hostcgroups
from sandboxes.hostcgroups import ContainerCgroup, remove_stale, unavailable_reason, v1_mounts

V1 = {"CgroupVersion": "1", "CgroupDriver": "cgroupfs"}
CAN_MAKE = os.geteuid() == 0 and unavailable_reason(V1, "") is None


def test_unavailable_reasons_name_the_cause() -> None:
    assert "not on this machine" in str(unavailable_reason(V1, "tcp://10.0.0.1:2375"))
    reason = unavailable_reason({"CgroupVersion": "2", "CgroupDriver": "systemd"}, "")
    assert "cgroup v2 with the systemd driver" in str(reason)


@pytest.mark.skipif(not CAN_MAKE, reason="needs root and a writable cgroup v1 memory hierarchy")
def test_a_container_cgroup_is_limited_owned_and_removed() -> None:
    cg = ContainerCgroup("/", 300, 4096, 10001)
    try:
        memory = v1_mounts()["memory"] + cg.name
        with open(os.path.join(memory, "memory.limit_in_bytes")) as f:
            assert int(f.read()) == 300 << 20
        assert os.stat(cg.jobs_dir).st_uid == 10001
        assert cg.parent == cg.name and cg.name.startswith("/codegym-d")
        os.mkdir(os.path.join(cg.jobs_dir, "leaf"))  # what the worker makes below it
    finally:
        assert cg.remove() == []
    assert cg.dirs() == []


@pytest.mark.skipif(not CAN_MAKE, reason="needs root and a writable cgroup v1 memory hierarchy")
def test_stale_cgroups_of_dead_owners_are_removed() -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    memory = v1_mounts()["memory"]
    stale = os.path.join(memory, f"{hostcgroups.PREFIX}{dead}-0123456789")
    mine = ContainerCgroup("/", 300, 4096, 10001)  # its owner (this process) lives
    os.makedirs(os.path.join(stale, "jobs", "leaf"))
    try:
        removed = remove_stale()
        assert stale in removed and not os.path.exists(stale)
        assert mine.dirs(), "a live owner's cgroup was removed"
    finally:
        mine.remove()
        if os.path.exists(stale):
            for d in (os.path.join(stale, "jobs", "leaf"), os.path.join(stale, "jobs"), stale):
                os.rmdir(d)
