"""Shared sandbox fixtures: every backend under test, built by one factory.

``sandbox_backend`` is parameterised over the backends: ``"local"`` always runs; ``"docker"``
is skipped, with the reason, where no Docker engine answers (or the backend cannot start). A test
that takes ``sandbox_factory`` therefore runs once per backend.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sandboxes import Sandbox, SandboxUnavailable, make_sandbox

BACKENDS = ("local", "docker")


@functools.lru_cache(maxsize=1)
def docker_skip_reason() -> str | None:
    """Why the docker backend cannot be tested here (None: an engine answers)."""
    try:
        import docker
    except ImportError as e:  # pragma: no cover - docker is a core dependency
        return f"the Docker SDK is not installed ({e}): pip install docker"
    try:
        client = docker.from_env(timeout=5)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as e:  # noqa: BLE001 - any failure means "no engine"
        return (
            f"no Docker engine answers here ({type(e).__name__}: {str(e)[:160]}); "
            "install docker.io and start dockerd (see .ci/run)"
        )
    try:
        import sandboxes.docker  # noqa: F401
    except ImportError as e:
        return f"sandboxes.docker cannot be imported: {e}"
    return None


def backend_params() -> list[Any]:
    """pytest params for :data:`BACKENDS` (docker carries the ``docker`` mark)."""
    return [pytest.param(name, marks=[pytest.mark.docker] if name == "docker" else [], id=name)
            for name in BACKENDS]


def make_or_skip(backend: str, **kwargs: Any) -> Sandbox:
    """``make_sandbox(backend, **kwargs)``, skipping the test if the backend cannot run here."""
    if backend == "docker":
        reason = docker_skip_reason()
        if reason:
            pytest.skip(reason)
    try:
        return make_sandbox(backend, **kwargs)
    except SandboxUnavailable as e:
        pytest.skip(f"{backend} sandbox unavailable: {e}")


@pytest.fixture(scope="session", params=backend_params())
def sandbox_backend(request: pytest.FixtureRequest) -> str:
    """Name of the backend under test (docker skipped with a reason where no engine runs)."""
    name: str = request.param
    if name == "docker":
        reason = docker_skip_reason()
        if reason:
            pytest.skip(reason)
    return name


@pytest.fixture
def sandbox_factory(sandbox_backend: str) -> Iterator[Callable[..., Sandbox]]:
    """Factory ``make(**kwargs) -> Sandbox`` for the backend under test; closes what it made.

    The factory has a ``backend`` attribute naming the backend.
    """
    made: list[Sandbox] = []

    def make(**kwargs: Any) -> Sandbox:
        sandbox = make_or_skip(sandbox_backend, **kwargs)
        made.append(sandbox)
        return sandbox

    make.backend = sandbox_backend  # type: ignore[attr-defined]
    yield make
    for sandbox in made:
        sandbox.close()


@pytest.fixture(scope="session")
def make_sandbox_or_skip() -> Callable[..., Sandbox]:
    """:func:`make_or_skip` as a fixture, for module-scoped fixtures in subdirectories."""
    return make_or_skip
