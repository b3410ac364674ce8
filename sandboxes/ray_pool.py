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
import time
from collections.abc import Iterable
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
from sandboxes.pool import PoolClosed, WorkerPool

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

    The actors are the workers of a :class:`~sandboxes.pool.WorkerPool` (the same fan-out as
    the local and Docker backends): a call checks an idle actor out, a dead actor is replaced
    when its slot is next used, and :meth:`run_many` keeps the input order.

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
        self._closed = False
        self._pool: WorkerPool[Any] = WorkerPool(actors, self._new_actor, self._kill_actor)
        try:
            # start every actor now and fail fast (and clearly) if one cannot build its sandbox
            held = [self._pool.acquire() for _ in range(actors)]
            ray.get([a.ping.remote() for _, a in held], timeout=120)
            for slot, actor in held:
                self._pool.release(slot, actor)
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

    def _new_actor(self, slot: int) -> Any:
        kwargs = dict(self._sandbox_kwargs)
        if self.backend == "local" and "uid_base" not in kwargs:
            # apart from the uids plain local sandboxes try first (each fork server claims a
            # free one from here up anyway)
            from sandboxes.local import DEFAULT_UID_BASE

            kwargs["uid_base"] = DEFAULT_UID_BASE + ACTOR_UID_OFFSET + 2 * slot
        return self._actor_cls.remote(self.backend, kwargs)

    def _kill_actor(self, actor: Any) -> None:
        try:
            self._ray.kill(actor)
        except Exception:  # noqa: BLE001 - already dead
            pass

    @property
    def actors(self) -> int:
        """Number of actors (parallel executions)."""
        return self._pool.size

    @property
    def _actors(self) -> list[Any]:
        """The actor of each slot (None where a dead one awaits its replacement)."""
        return list(self._pool._workers)

    def actor_pids(self) -> list[int]:
        """Process ids of the live actors (Ray worker processes)."""
        return self._ray.get([a.ping.remote() for a in self._pool.workers()], timeout=60)

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
            slot, actor = self._acquire()
            try:
                result: ExecResult = ray.get(actor.run.remote(program, tests, timeout, memory_mb))
            except ray.exceptions.RayActorError as e:
                last = f"Ray actor {slot} died during the execution ({type(e).__name__})"
                log.warning("%s; attempt %d", last, attempt)
                self._pool.release(slot, actor, broken=True)
                continue
            except BaseException:
                self._pool.release(slot, actor)
                raise
            self._pool.release(slot, actor)
            meta = {**result.metadata, "pool": "ray", "ray_actor": slot, "ray_attempts": attempt}
            return ExecResult(result.status, result.passed, result.total, result.error_type,
                              result.error, result.stdout_tail, result.duration, meta)
        return ExecResult(Status.KILLED, 0, tests.total, "RayActorDied", last, "",
                          time.monotonic() - t0, {"pool": "ray", "backend": self.backend})

    def run_many(self, jobs: Iterable[Job]) -> list[ExecResult]:
        """Run jobs on all actors in parallel (the pool's fan-out); results in input order."""
        jobs = list(jobs)
        check_jobs(jobs)
        return self._pool.map(
            lambda j: self.run(j.program, j.tests, timeout=j.timeout, memory_mb=j.memory_mb), jobs)

    def close(self) -> None:
        """Close every actor's sandbox, kill the actors, and shut Ray down if this pool
        started it. Idempotent."""
        if self._closed:
            return
        self._closed = True
        pool = getattr(self, "_pool", None)
        ray = self._ray
        actors = pool.workers() if pool is not None else []
        if actors:
            try:
                ray.get([a.close.remote() for a in actors], timeout=60)
            except Exception as e:  # noqa: BLE001 - a dead actor has nothing left to close
                log.warning("closing Ray sandbox actors: %s", e)
        if pool is not None:
            pool.close()  # kills the actors
        if self._owns_ray and ray.is_initialized():
            ray.shutdown()

    # -- internals ------------------------------------------------------------------------
    def _acquire(self) -> tuple[int, Any]:
        try:
            return self._pool.acquire()
        except PoolClosed:
            raise RuntimeError("the Ray sandbox pool is closed") from None
