"""Sandboxes: run untrusted code against trusted tests. Knows nothing of RL."""

from sandboxes.base import (
    ExecResult,
    IOCase,
    Job,
    Sandbox,
    SandboxUnavailable,
    Status,
    TestSuite,
)

__all__ = [
    "ExecResult",
    "IOCase",
    "Job",
    "Sandbox",
    "SandboxUnavailable",
    "Status",
    "TestSuite",
    "make_sandbox",
]


def make_sandbox(name: str = "local", **kwargs) -> Sandbox:
    """Build a sandbox backend by name: ``"local"`` or ``"docker"``.

    Keyword arguments go to the backend's constructor (e.g. ``workers=2``, ``strict=True``).
    ``pool="ray"`` (or ``sandbox_pool="ray"``) spreads executions over a Ray cluster, each Ray
    actor holding its own sandbox of that backend (:class:`sandboxes.ray_pool.RaySandboxPool`).
    """
    if isinstance(name, Sandbox):
        return name
    pool = kwargs.pop("sandbox_pool", kwargs.pop("pool", None))
    if pool not in (None, "local", "ray"):
        raise ValueError(f"unknown sandbox pool {pool!r}: choose None or 'local' (the backend's own workers) or 'ray'")
    if pool == "ray" and name in ("local", "docker"):
        from sandboxes.ray_pool import RaySandboxPool

        return RaySandboxPool(name, **kwargs)
    if name == "local":
        from sandboxes.local import LocalSandbox

        return LocalSandbox(**kwargs)
    if name == "docker":
        from sandboxes.docker import DockerSandbox

        return DockerSandbox(**kwargs)
    raise ValueError(f"unknown sandbox {name!r}: choose 'local' or 'docker'")
