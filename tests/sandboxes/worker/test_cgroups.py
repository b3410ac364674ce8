"""Per-job memory cgroups on this host (skipped, with the reason, where none can be made)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from sandboxes.worker.cgroups import MARGIN_MB, CgroupUnavailable, JobCgroups


@pytest.fixture
def cgroups() -> Iterator[JobCgroups]:
    try:
        cg = JobCgroups(2)
    except CgroupUnavailable as e:
        pytest.skip(f"no memory cgroup here: {e}")
    yield cg
    cg.remove()


def test_leaves_limits_and_removal(cgroups: JobCgroups) -> None:
    assert len(cgroups.leaves) == 2 and all(os.path.isdir(leaf.path) for leaf in cgroups.leaves)
    for mb in (64, 512, 32):  # up and down (v1 keeps memory <= memory+swap at every step)
        cgroups.set_limit(1, mb)
        with open(cgroups.leaves[1].limit_file) as f:
            assert int(f.read()) == (mb + MARGIN_MB) << 20
    assert cgroups.oom_kills(1) == 0
    root = cgroups.root
    cgroups.remove()
    assert not os.path.exists(root)


def test_leaves_of_a_dead_judge_are_removed(cgroups: JobCgroups) -> None:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)  # a pid that no longer runs
    stale = os.path.join(cgroups.parent, f"codegym-{pid}-deadbeef")
    os.mkdir(stale)
    os.mkdir(os.path.join(stale, "fs0"))
    fresh = JobCgroups(1)
    try:
        assert not os.path.exists(stale)
        assert os.path.exists(cgroups.root)  # a live judge's leaves stay
    finally:
        fresh.remove()


def _tree(root: str, controllers: dict[str, str]) -> None:
    for rel, subtree in controllers.items():
        d = os.path.join(root, rel)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "cgroup.subtree_control"), "w") as f:
            f.write(subtree)


def test_the_v2_parent_is_the_nearest_ancestor_that_hands_memory_down(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Hierarchy selection only (this host's v2 hierarchy has no memory controller): a cgroup
    with processes cannot enable controllers for its children, so the leaves go beside it,
    under the nearest ancestor whose subtree_control lists memory."""
    point = str(tmp_path / "cg")
    _tree(point, {"": "cpu memory pids", "user.slice": "memory pids",
                  "user.slice/session-1.scope": ""})
    mounts = [(point, "cgroup2", "rw")]
    assert JobCgroups._choose(mounts, {"": "/user.slice/session-1.scope"}) == (
        2, os.path.join(point, "user.slice"))
    _tree(point, {"user.slice": "pids"})
    assert JobCgroups._choose(mounts, {"": "/user.slice/session-1.scope"}) == (2, point)
    _tree(point, {"": "cpu"})
    v1 = str(tmp_path / "memory")
    os.makedirs(os.path.join(v1, "job"))
    with pytest.raises(CgroupUnavailable, match="no memory controller"):
        JobCgroups._choose(mounts, {"": "/user.slice/session-1.scope"})
    assert JobCgroups._choose(mounts + [(v1, "cgroup", "rw,memory")],
                              {"": "/user.slice/session-1.scope", "memory": "/job"}) == (
        1, os.path.join(v1, "job"))
