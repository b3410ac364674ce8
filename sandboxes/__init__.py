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
    """
    if isinstance(name, Sandbox):
        return name
    if name == "local":
        from sandboxes.local import LocalSandbox

        return LocalSandbox(**kwargs)
    if name == "docker":
        from sandboxes.docker import DockerSandbox

        return DockerSandbox(**kwargs)
    raise ValueError(f"unknown sandbox {name!r}: choose 'local' or 'docker'")
