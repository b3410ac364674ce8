"""A Ray-backed sandbox pool: executions run as Ray actor tasks spread over a cluster.

Each Ray actor is one Ray worker process that holds its *own* sandbox (``local`` by default,
or ``docker``) and runs one execution at a time; the pool hands each execution to an idle actor,
so a cluster of many nodes scores many programs in parallel while every node keeps the full
isolation of its backend. Only trusted data crosses Ray (the program text, the trusted suite,
the :class:`~sandboxes.base.ExecResult`); the candidate's process never talks to Ray.

Ray is an optional extra: ``pip install 'codegym[ray]'`` (or ``pip install ray``).

Example:
    >>> from sandboxes import make_sandbox
    >>> with make_sandbox("local", pool="ray", ray_init={"num_cpus": 2}) as sb:  # doctest: +SKIP
    ...     print(sb.run(program, tests).status)
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sandboxes.base import (
    ExecResult,
    Job,
    Sandbox,
    SandboxUnavailable,
    Status,
    TestSuite,
    check_jobs,
)

__all__ = ["ACTOR_UID_OFFSET", "RaySandboxPool", "import_ray"]

log = logging.getLogger(__name__)

#: actor ``i`` of a local-backend pool runs candidates as uid ``DEFAULT_UID_BASE + 1024 + i``
#: (apart from the uids of plain local sandboxes, ``DEFAULT_UID_BASE + slot``)
ACTOR_UID_OFFSET = 1024

_INSTALL_HINT = "the Ray sandbox pool needs Ray: pip install 'codegym[ray]' (or pip install ray)"


def import_ray() -> Any:
    """Import Ray, or raise :class:`SandboxUnavailable` saying how to install it."""
    try:
        import ray
    except ImportError as e:
        raise SandboxUnavailable(f"{_INSTALL_HINT} ({e})") from None
    return ray


class _SandboxActor:
    """Body of the Ray actor: one sandbox in one Ray worker process."""

    def __init__(self, backend: str, kwargs: dict[str, Any]) -> None:
        from sandboxes import make_sandbox

        self.backend = backend
        self.sandbox = make_sandbox(backend, **kwargs)

    def run(self, program: str, tests: TestSuite, timeout: float | None,
            memory_mb: int | None) -> ExecResult:
        return self.sandbox.run(program, tests, timeout=timeout, memory_mb=memory_mb)

    def ping(self) -> int:
        import os

        return os.getpid()

    def close(self) -> bool:
        self.sandbox.close()
        return True


class RaySandboxPool(Sandbox):
    """Runs executions as Ray tasks on actors, each actor holding its own sandbox.

    Args:
        backend: Sandbox backend each actor builds (``"local"`` or ``"docker"``).
        actors: Number of actors (parallel executions). Default: the cluster's CPU count.
        address: Ray cluster address (``"auto"``, ``"ray://host:10001"``); None starts or
            joins a local instance.
        ray_init: Extra keyword arguments for ``ray.init`` when this pool starts Ray
            (e.g. ``{"num_cpus": 2}``). A pool that started Ray shuts it down on close.
        num_cpus: CPUs reserved per actor (Ray scheduling).
        **sandbox_kwargs: Passed to the backend's constructor in every actor (``timeout``,
            ``memory_mb``, ``strict``, ...). Each actor's sandbox has one worker; a
            ``workers=N`` argument means ``actors=N`` when ``actors`` is not given.

    Raises:
        SandboxUnavailable: Ray is not installed, or the actors cannot build their sandbox.
        ValueError: Bad arguments (named in the message).
    """

    name = "ray"

    def __init__(
        self,
        backend: str = "local",
        *,
        actors: int | None = None,
        address: str | None = None,
        ray_init: dict[str, Any] | None = None,
        num_cpus: float = 1.0,
        **sandbox_kwargs: Any,
    ) -> None:
        if backend not in ("local", "docker"):
            raise ValueError(f"backend must be 'local' or 'docker' for the Ray pool, got {backend!r}")
        if actors is not None and (isinstance(actors, bool) or not isinstance(actors, int) or actors < 1):
            raise ValueError(f"actors must be an int >= 1 (or None for one per CPU), got {actors!r}")
        if not isinstance(num_cpus, (int, float)) or num_cpus < 0:
            raise ValueError(f"num_cpus must be a number >= 0, got {num_cpus!r}")
        workers = sandbox_kwargs.pop("workers", None)
        if actors is None and workers is not None:
            actors = workers  # make_sandbox(..., workers=N, pool="ray"): N actors
        ray = import_ray()
        self._ray = ray
        self.backend = backend
        self._owns_ray = False
        if not ray.is_initialized():
            init = {"include_dashboard": False, "log_to_driver": False, **(ray_init or {})}
            if address is not None:
                init["address"] = address
            ray.init(**init)
            self._owns_ray = True
        if actors is None:
            actors = max(1, int(ray.cluster_resources().get("CPU", 1) // max(num_cpus, 1e-9)))
        self._actor_cls = ray.remote(num_cpus=num_cpus, max_restarts=0)(_SandboxActor)
        self._sandbox_kwargs = {**sandbox_kwargs, "workers": 1}
        self._lock = threading.Lock()
        self._closed = False
        self._actors: list[Any] = [None] * actors
        self._free: queue.Queue[int] = queue.Queue()
        self._executor: ThreadPoolExecutor | None = None
        try:
            for i in range(actors):
                self._actors[i] = self._new_actor(i)
            # Fail fast (and clearly) if an actor cannot build its sandbox.
            ray.get([a.ping.remote() for a in self._actors], timeout=120)
        except Exception as e:
            self.close()
            if isinstance(e, SandboxUnavailable):
                raise
            if isinstance(e, ray.exceptions.GetTimeoutError):
                cpus = ray.cluster_resources().get("CPU", 0) if ray.is_initialized() else "?"
                raise SandboxUnavailable(
                    f"the Ray pool's {actors} actors (num_cpus={num_cpus} each) were not all "
                    f"scheduled within 120 s on a cluster with {cpus} CPUs: pass fewer actors, "
                    "a smaller num_cpus (0 is allowed), or add nodes") from e
            raise SandboxUnavailable(f"the Ray pool's actors could not start a {backend!r} "
                                     f"sandbox: {type(e).__name__}: {e}") from e
        for i in range(actors):
            self._free.put(i)

    def _new_actor(self, slot: int) -> Any:
        kwargs = dict(self._sandbox_kwargs)
        if self.backend == "local" and "uid_base" not in kwargs:
            # Actors on one node must not share a sandbox uid: RLIMIT_NPROC counts every
            # process of a uid on the host, so one actor's fork-heavy job would starve another.
            from sandboxes.local import DEFAULT_UID_BASE

            kwargs["uid_base"] = DEFAULT_UID_BASE + ACTOR_UID_OFFSET + slot
        return self._actor_cls.remote(self.backend, kwargs)

    @property
    def actors(self) -> int:
        """Number of actors (parallel executions)."""
        return len(self._actors)

    def actor_pids(self) -> list[int]:
        """Process ids of the live actors (Ray worker processes)."""
        return self._ray.get([a.ping.remote() for a in self._actors if a is not None], timeout=60)

    # -- API ----------------------------------------------------------------------------
    def run(
        self,
        program: str,
        tests: TestSuite,
        *,
        timeout: float | None = None,
        memory_mb: int | None = None,
    ) -> ExecResult:
        """Run one execution on an idle actor (blocks while all are busy). Thread-safe.

        An actor that dies mid-execution is replaced and the execution retried once; a second
        death gives a ``killed`` result with ``error_type="RayActorDied"``.
        """
        if not isinstance(program, str):
            raise ValueError(f"program must be str, got {type(program).__name__}")
        if not isinstance(tests, TestSuite):
            raise ValueError(f"tests must be a sandboxes.TestSuite, got {type(tests).__name__}")
        ray = self._ray
        t0 = time.monotonic()
        last = ""
        for attempt in (1, 2):
            slot = self._acquire()
            actor = self._actors[slot]
            try:
                result: ExecResult = ray.get(actor.run.remote(program, tests, timeout, memory_mb))
            except ray.exceptions.RayActorError as e:
                last = f"Ray actor {slot} died during the execution ({type(e).__name__})"
                log.warning("%s; attempt %d", last, attempt)
                self._replace(slot, actor)
                continue
            except BaseException:
                self._free.put(slot)
                raise
            self._free.put(slot)
            meta = {**result.metadata, "pool": "ray", "ray_actor": slot, "ray_attempts": attempt}
            return ExecResult(result.status, result.passed, result.total, result.error_type,
                              result.error, result.stdout_tail, result.duration, meta)
        return ExecResult(Status.KILLED, 0, tests.total, "RayActorDied", last, "",
                          time.monotonic() - t0, {"pool": "ray", "backend": self.backend})

    def run_many(self, jobs: Iterable[Job]) -> list[ExecResult]:
        """Run jobs on all actors in parallel; results in input order."""
        jobs = list(jobs)
        check_jobs(jobs)
        if len(jobs) <= 1 or self.actors == 1:
            return [self.run(j.program, j.tests, timeout=j.timeout, memory_mb=j.memory_mb)
                    for j in jobs]
        with self._lock:
            if self._closed:
                raise RuntimeError("the Ray sandbox pool is closed")
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.actors, thread_name_prefix="ray-sandbox")
            ex = self._executor
        return list(ex.map(
            lambda j: self.run(j.program, j.tests, timeout=j.timeout, memory_mb=j.memory_mb), jobs))

    def close(self) -> None:
        """Close every actor's sandbox, kill the actors, and shut Ray down if this pool
        started it. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            actors, self._actors = [a for a in self._actors if a is not None], []
            ex, self._executor = self._executor, None
        if ex is not None:
            ex.shutdown(wait=False, cancel_futures=True)
        ray = self._ray
        if actors:
            try:
                ray.get([a.close.remote() for a in actors], timeout=60)
            except Exception as e:  # noqa: BLE001 - a dead actor has nothing left to close
                log.warning("closing Ray sandbox actors: %s", e)
        for a in actors:
            try:
                ray.kill(a)
            except Exception:  # noqa: BLE001
                pass
        if self._owns_ray and ray.is_initialized():
            ray.shutdown()

    # -- internals ------------------------------------------------------------------------
    def _acquire(self) -> int:
        while True:
            if self._closed:
                raise RuntimeError("the Ray sandbox pool is closed")
            try:
                return self._free.get(timeout=0.5)
            except queue.Empty:
                continue

    def _replace(self, slot: int, dead: Any) -> None:
        try:
            self._ray.kill(dead)
        except Exception:  # noqa: BLE001
            pass
        try:
            if not self._closed:
                self._actors[slot] = self._new_actor(slot)
        finally:
            self._free.put(slot)
