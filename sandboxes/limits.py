"""The resource limits of a sandbox: one frozen dataclass shared by every backend."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Limits"]


def _number(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be a number > 0, got {value!r}")


def _count(name: str, value: Any, low: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")


@dataclass(frozen=True)
class Limits:
    """Per-execution limits, validated on construction (``ValueError`` names the bad field)."""

    timeout: float = 5.0
    """Default wall-clock seconds per execution (program load + tests); CPU time is capped at
    ``timeout + 1`` seconds."""
    memory_mb: int = 512
    """Default memory budget in MiB: the candidate's address space on top of the worker's own
    size, and (where a memory cgroup is available) everything the job's processes hold --
    anonymous memory, page cache, shared memory -- up to ``memory_mb`` plus a stated margin."""
    max_procs: int = 64
    """Processes + threads a job may have (``RLIMIT_NPROC`` for its uid or user namespace)."""
    max_file_mb: int = 16
    """Largest file a job may write (``RLIMIT_FSIZE``), MiB."""
    max_open_files: int = 256
    """Open file descriptors per process (``RLIMIT_NOFILE``)."""
    tmpfs_mb: int = 64
    """Size of the job's private tmpfs work dir, MiB."""
    tmpfs_inodes: int = 16384
    """Files and dirs the job's tmpfs may hold."""
    output_tail: int = 4096
    """Bytes of stdout/stderr kept (the tail) in results."""
    output_limit: int = 8 << 20
    """Total output bytes after which the execution is killed."""
    max_result_bytes: int = 8 << 20
    """Cap on one encoded return value."""

    def __post_init__(self) -> None:
        _number("timeout", self.timeout)
        _count("max_open_files", self.max_open_files, 16)
        for name in ("memory_mb", "max_procs", "max_file_mb", "tmpfs_mb", "tmpfs_inodes",
                     "output_tail", "output_limit", "max_result_bytes"):
            _count(name, getattr(self, name))

    def worker_config(self) -> dict[str, Any]:
        """The limits as the worker's boot config reads them."""
        return asdict(self)
