"""The ``docker`` sandbox backend: a pool of warm, locked-down containers.

Each container runs the *same* worker as the local backend (:mod:`sandboxes.worker`, booted
with the same loader and sent the same source over stdin), so an execution is one clone inside
an already running container, not a container start. Two boundaries:

* the container: ``--network none``, read-only root, ``cap_drop=ALL``, ``no-new-privileges``,
  a non-root uid, memory (swap included) / pids / CPU limits, a private IPC namespace, no logs;
* inside it, the local backend's sandbox, built by the worker in a user namespace it creates
  (uid 1000 inside, capabilities only over its own namespaces): per job a fresh PID namespace
  (the candidate is its pid 1; it never sees the judge or the fork servers), a fresh tmpfs
  work dir, a private read-only root without ``/proc`` made of an in-memory copy of the
  image's interpreter and standard library, a memory cgroup of its own, the candidates'
  seccomp filter (:mod:`sandboxes.worker.syscalls`), no capabilities. Building those namespaces needs ``unshare``/``mount``, which Docker's
  default seccomp profile refuses to unprivileged containers, so the containers run with
  Docker's profile off (``seccomp=unconfined``) and every candidate under codegym's own filter.

The host talks to the judge over the container's stdin/stdout (a Docker attach socket),
framed tagged JSON (:mod:`sandboxes.encoding`, never pickle). The judge, pid 1 of the
container and non-dumpable, holds the expected values and ``check`` code; the candidate
answers calls by value. A container whose judge died or hung is removed and replaced.

Memory: a container's cgroup limit (``container_memory_mb``, default ``memory_mb + 256``)
bounds everything in it -- judge, fork servers and the job's processes, page cache and shared
memory; inside, each job is charged to a memory cgroup of its own (``memory_mb`` + 32 MiB, a
``memory`` verdict when it goes over), made in a host cgroup per container
(:mod:`sandboxes.hostcgroups`; cgroup v1 engines with the cgroupfs driver, as root), and its
address space is capped at ``memory_mb`` above the worker's size.

Every container carries the labels ``codegym.sandbox=1``, ``codegym.sandbox.id=<uuid>`` and its
owner (host, pid, process start time). Containers are created with ``AutoRemove`` and
``StdinOnce``: when the owner exits -- even by SIGKILL -- its attach socket closes, the judge
reads EOF and exits, and the engine removes the container. :func:`cleanup_containers`
(``codegym sandbox cleanup``) removes any that remain.

The image (:func:`image_ref`) is built offline by ``sandboxes/images/python/build.sh``
(``codegym sandbox build``): ``debootstrap`` + ``docker import`` for the base, then the
Dockerfile. A missing sandbox image is built automatically when its base exists.

Example:
    >>> from sandboxes import make_sandbox, TestSuite, IOCase
    >>> with make_sandbox("docker", workers=2) as sb:  # doctest: +SKIP
    ...     r = sb.run("def f(x):\\n    return x + 1\\n",
    ...                TestSuite(kind="io", entry_point="f", cases=(IOCase((1,), 2),)))
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from sandboxes import hostcgroups
from sandboxes.base import SandboxUnavailable
from sandboxes.limits import Limits
from sandboxes.pooled import (
    BOOT as _LOCAL_BOOT,
)
from sandboxes.pooled import (
    FramedWorker,
    PooledSandbox,
    WorkerDied,
    WorkerHung,
    boot_message,
)

__all__ = [
    "CONTAINER_UID",
    "DockerSandbox",
    "IMAGE_DIR",
    "LABEL",
    "build_image",
    "cleanup_containers",
    "engine_client",
    "image_ref",
    "list_containers",
]

log = logging.getLogger(__name__)

IMAGE_DIR = Path(__file__).resolve().parent / "images" / "python"  #: Dockerfile + build.sh
IMAGE_REPO = os.environ.get("CODEGYM_IMAGE_REPO", "codegym-sandbox-python")
BASE_IMAGE = os.environ.get("CODEGYM_BASE_IMAGE", "codegym-base:bookworm")
LABEL = "codegym.sandbox"  #: every sandbox container has ``LABEL=1``
ID_LABEL = "codegym.sandbox.id"  #: one value per DockerSandbox instance
OWNER_LABELS = ("codegym.owner.host", "codegym.owner.pid", "codegym.owner.start")
CONTAINER_UID = 10001  #: uid:gid of every process in the containers (no host account)

# Before the shared boot loader: leave SIGINT at its default action, which the kernel ignores
# for a namespace's init when sent from inside (the worker makes itself non-dumpable once its
# user namespace is set up: no ptrace, no /proc/1/mem for processes of the same uid).
_PRELUDE = r"""
import signal
signal.signal(signal.SIGINT, signal.SIG_DFL)
"""
BOOT = _PRELUDE + _LOCAL_BOOT

#: the protection the worker reports missing when the host made no job cgroups for it
_PROVIDED_BY_CONTAINER = ("per-job memory cgroup",)
_DOCKER_ISOLATION = [
    "container (docker): own pid/mount/ipc/uts/network namespaces",
    "network none",
    "read-only root filesystem",
    "cap_drop ALL",
    "no-new-privileges",
    f"non-root uid {CONTAINER_UID}",
    "container memory limit incl. page cache and shared memory (cgroup, no swap)",
    "pids limit (cgroup)",
    "cpu limit (cgroup)",
    "judge is pid 1 and non-dumpable",
]


# --------------------------------------------------------------------------- engine / image


def engine_client(timeout: float = 30.0, pool_size: int = 10) -> Any:
    """A Docker SDK client for the engine in the environment (``DOCKER_HOST`` or the socket).

    Raises:
        SandboxUnavailable: The SDK is missing or no engine answers; the message says how to
            start one.
    """
    try:
        import docker
    except ImportError as e:  # pragma: no cover - docker is a core dependency
        raise SandboxUnavailable(f"the Docker SDK is not installed ({e}): pip install docker") from None
    where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        client = docker.from_env(timeout=int(timeout), max_pool_size=pool_size)
        client.ping()
    except Exception as e:  # noqa: BLE001 - every failure here means "no engine"
        raise SandboxUnavailable(
            f"no Docker engine answers at {where} ({type(e).__name__}: {str(e)[:200]}). "
            "Install it and start it in the background (as root): `apt-get install -y docker.io "
            "&& (dockerd > /var/log/dockerd.log 2>&1 &)`, or run `bash .ci/setup_docker.sh`, "
            "which also builds the sandbox image."
        ) from None
    return client


def image_tag() -> str:
    """Content hash of ``sandboxes/images/python/`` (same value as ``build.sh --print-tag``)."""
    h = hashlib.sha256()
    for path in sorted(IMAGE_DIR.iterdir(), key=lambda p: p.name.encode()):
        if path.is_file() and not path.name.startswith("."):
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


def image_ref() -> str:
    """The sandbox image the current sources build to, e.g. ``codegym-sandbox-python:<hash>``."""
    return f"{IMAGE_REPO}:{image_tag()}"


def _has_image(client: Any, ref: str) -> bool:
    import docker

    try:
        client.images.get(ref)
        return True
    except docker.errors.ImageNotFound:
        return False


def build_image(*, force: bool = False, timeout: float = 1800.0) -> str:
    """Build the sandbox image offline with ``build.sh`` (base with debootstrap if missing).

    Args:
        force: Rebuild the sandbox image even if its tag exists (the base is kept).
        timeout: Seconds before the build is abandoned.

    Returns:
        The image reference.

    Raises:
        SandboxUnavailable: The build failed; the message carries build.sh's diagnostics.
    """
    if shutil.which("docker") is None:
        raise SandboxUnavailable("the docker CLI is not installed (apt-get install -y docker.io)")
    cmd = ["bash", str(IMAGE_DIR / "build.sh")] + (["--force"] if force else [])
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise SandboxUnavailable(f"building the sandbox image took over {timeout:.0f} s") from None
    if proc.returncode != 0:
        raise SandboxUnavailable(
            f"building the sandbox image failed (exit {proc.returncode}): "
            + (proc.stderr.strip()[-2000:] or proc.stdout.strip()[-2000:])
        )
    return proc.stdout.strip().splitlines()[-1]


def _ensure_image(client: Any, image: str | None, auto_build: bool) -> str:
    if image is not None:
        if not _has_image(client, image):
            raise SandboxUnavailable(f"the Docker image {image!r} does not exist on this engine")
        return image
    ref = image_ref()
    if _has_image(client, ref):
        return ref
    if not auto_build or not _has_image(client, BASE_IMAGE):
        raise SandboxUnavailable(
            f"the sandbox image {ref} is not built (base {BASE_IMAGE} "
            f"{'present' if _has_image(client, BASE_IMAGE) else 'missing'}). Build it offline "
            "with `codegym sandbox build` (as root, needs debootstrap and a Debian mirror) or "
            "`bash .ci/setup_docker.sh`."
        )
    log.info("building the sandbox image %s on top of %s", ref, BASE_IMAGE)
    built = build_image()
    if built != ref:
        raise SandboxUnavailable(f"build.sh built {built}, expected {ref} (sources changed?)")
    return ref


def _engine_missing(info: dict[str, Any]) -> list[str]:
    """Protections the engine cannot apply, from its ``docker info``."""
    missing = []
    for key, what in (("MemoryLimit", "memory limit (cgroup)"),
                      ("SwapLimit", "swap limit (memory limit can be bypassed with swap)"),
                      ("PidsLimit", "pids limit (cgroup)"),
                      ("CpuCfsQuota", "cpu limit (CFS quota)")):
        if info.get(key) is False:
            missing.append(f"{what}: not supported by this engine")
    return missing


# --------------------------------------------------------------------------- ownership / cleanup


def _proc_start(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return ""


def _owner_labels() -> dict[str, str]:
    pid = os.getpid()
    return {OWNER_LABELS[0]: socket.gethostname(), OWNER_LABELS[1]: str(pid),
            OWNER_LABELS[2]: _proc_start(pid)}


def _owner_alive(labels: dict[str, str]) -> bool:
    """Whether the process that created a container still runs (unknown host: assumed alive)."""
    if labels.get(OWNER_LABELS[0]) != socket.gethostname():
        return True
    try:
        pid = int(labels.get(OWNER_LABELS[1], ""))
    except ValueError:
        return False
    start = _proc_start(pid)
    return bool(start) and start == labels.get(OWNER_LABELS[2], start)


def list_containers(client: Any | None = None, **labels: str) -> dict[str, str]:
    """``{container id: status}`` of sandbox containers, optionally filtered by more labels.

    Example: ``list_containers(**sandbox.labels)`` lists one sandbox's containers.
    """
    own = client is None
    client = client or engine_client(timeout=10)
    try:
        filters = [f"{LABEL}=1"] + [f"{k}={v}" for k, v in labels.items() if k != LABEL]
        # The low-level listing: ``containers.list`` inspects each container afterwards and
        # fails on one that was auto-removed in between.
        return {c["Id"]: c["State"]
                for c in client.api.containers(all=True, filters={"label": filters})}
    finally:
        if own:
            client.close()


def cleanup_containers(*, all_owners: bool = False, client: Any | None = None) -> list[str]:
    """Remove sandbox containers whose owner process is gone (or all with ``all_owners``), and
    the host cgroups made for containers whose owner is gone.

    Returns:
        Ids of the removed containers.
    """
    import docker

    own = client is None
    client = client or engine_client(timeout=30)
    removed = []
    try:
        for c in client.api.containers(all=True, filters={"label": f"{LABEL}=1"}):
            if not all_owners and _owner_alive(c.get("Labels") or {}):
                continue
            try:
                client.api.remove_container(c["Id"], force=True)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as e:
                if e.status_code != 409:  # 409: removal already in progress
                    raise
            removed.append(c["Id"])
    finally:
        if own:
            client.close()
    if os.geteuid() == 0:
        hostcgroups.remove_stale()  # the host cgroups of containers whose owner is gone
    return removed


# --------------------------------------------------------------------------- one container


class _ContainerWorker(FramedWorker):
    """Host-side handle of one container running the worker.

    Frames go to the judge over the container's attach socket (stdin); stdout comes back in
    Docker's multiplexed stream format (8-byte headers), demultiplexed here.
    """

    def __init__(self, client: Any, slot: int, image: str, host_config: dict[str, Any],
                 labels: dict[str, str], config: dict[str, Any], start_timeout: float,
                 cgroup: hostcgroups.ContainerCgroup | None = None):
        self.slot = slot
        self.cgroup = cgroup  # the host cgroup parent made for this container (removed last)
        self.client = client
        self.api = client.api
        self.buf = bytearray()  # demultiplexed stdout bytes not yet consumed
        self.err = bytearray()  # tail of stderr (diagnostics when the judge dies)
        self.pending = bytearray()  # raw stream bytes not yet demultiplexed
        self.dead = False
        self.container_id = ""
        self.sock: socket.socket | None = None
        try:
            self.container_id = self.api.create_container(
                image, ["python3", "-I", "-S", "-c", BOOT],
                user=f"{CONTAINER_UID}:{CONTAINER_UID}",
                stdin_open=True,  # with detach=False the SDK also sets StdinOnce
                environment={"LANG": "C.UTF-8"},
                working_dir="/",
                hostname="sandbox",
                network_disabled=True,
                labels=labels,
                host_config=host_config,
            )["Id"]
            self._resp = self.api.attach_socket(
                self.container_id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
            self.sock = self._resp._sock
            self.api.start(self.container_id)
            hello = self._hello(boot_message(config), start_timeout)
        except (WorkerDied, WorkerHung) as e:
            self.kill()
            raise SandboxUnavailable(
                f"a sandbox container ({image}) failed to start: {e}"
                + (f"; its stderr: {bytes(self.err).decode('utf-8', 'replace')[-1500:]}"
                   if self.err else "")
            ) from None
        except Exception as e:
            self.kill()
            raise SandboxUnavailable(
                f"could not start a sandbox container from {image}: {type(e).__name__}: "
                f"{str(e)[:300]} (is the Docker engine still running? `docker info`)"
            ) from None
        if "fatal" in hello:
            self.kill()
            raise SandboxUnavailable("the sandbox container's judge failed to start:\n"
                                     + str(hello["fatal"]))
        self.pid = int(hello["pid"])

    # -- transport ----------------------------------------------------------------
    def _write(self, data: bytes) -> None:
        if self.dead or self.sock is None:
            raise WorkerDied("the container's stdin is closed")
        try:
            self.sock.settimeout(30.0)
            self.sock.sendall(data)
        except OSError as e:
            self.dead = True
            raise WorkerDied(f"the container's stdin closed ({e})") from None

    def _pump(self, deadline: float) -> None:
        """Receive once from the attach socket and demultiplex into ``buf``/``err``."""
        assert self.sock is not None
        left = deadline - time.monotonic()
        if left <= 0:
            raise WorkerHung("the container's judge did not answer in time")
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(1 << 20)
        except TimeoutError:
            raise WorkerHung("the container's judge did not answer in time") from None
        except OSError as e:
            self.dead = True
            raise WorkerDied(f"the container's attach stream broke ({e})") from None
        if not data:
            self.dead = True
            raise WorkerDied("the container exited")
        p = self.pending
        p += data
        while len(p) >= 8:
            size = int.from_bytes(p[4:8], "big")
            if len(p) < 8 + size:
                break
            stream = p[0]
            if stream == 1:
                self.buf += p[8:8 + size]
            elif stream == 2:
                self.err += p[8:8 + size]
                del self.err[:-4096]
            del p[:8 + size]

    def _read_some(self, n: int, deadline: float) -> bytes:
        if self.dead or self.sock is None:
            raise WorkerDied("the container is gone")
        while not self.buf:
            self._pump(deadline)
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def execute(self, payload: bytes, deadline: float) -> dict[str, Any]:
        try:
            return super().execute(payload, deadline)
        except WorkerDied:
            self._close_socket()
            raise

    def alive(self) -> bool:
        return not self.dead

    # -- teardown -----------------------------------------------------------------
    def _close_socket(self) -> None:
        self.dead = True
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None
        resp = getattr(self, "_resp", None)
        if resp is not None:
            try:
                resp.close()
            except Exception:  # noqa: BLE001
                pass

    def _wait_removed(self, timeout: float) -> bool:
        """Wait until the engine no longer lists the container (AutoRemove)."""
        import docker

        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                self.api.inspect_container(self.container_id)
            except docker.errors.NotFound:
                return True
            except Exception:  # noqa: BLE001 - engine gone: nothing more to wait for
                return False
            time.sleep(0.02)
        return False

    def _remove_cgroup(self) -> None:
        """Remove the host cgroup parent once the container is gone (it can take the engine
        a moment to remove the container's own cgroup below it)."""
        if self.cgroup is None:
            return
        for _ in range(100):
            if not self.cgroup.remove():
                self.cgroup = None
                return
            time.sleep(0.05)
        log.warning("could not remove the cgroups %s", self.cgroup.dirs())

    def kill(self) -> None:
        """Remove the container now (SIGKILL) and wait until it is gone."""
        try:
            self._kill()
        finally:
            self._remove_cgroup()

    def _kill(self) -> None:
        import docker

        self._close_socket()
        if not self.container_id:
            return
        try:
            self.api.remove_container(self.container_id, force=True)
        except docker.errors.NotFound:
            return
        except docker.errors.APIError as e:
            if e.status_code != 409:  # 409: auto-removal already in progress
                log.warning("could not remove sandbox container %s: %s", self.container_id[:12], e)
        except Exception as e:  # noqa: BLE001 - engine gone
            log.warning("could not remove sandbox container %s: %s", self.container_id[:12], e)
            return
        self._wait_removed(10.0)

    def close(self) -> None:
        """Graceful stop: EOF on the judge's stdin (it kills its candidates and exits, the
        engine auto-removes the container); removal by force if that takes too long."""
        if self.sock is not None and not self.dead:
            try:
                self.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            if self._wait_removed(3.0):
                self._close_socket()
                self._remove_cgroup()
                return
        self.kill()


# --------------------------------------------------------------------------- the backend


def _container_limits(workers: int, memory_mb: int, container_memory_mb: int | None,
                      cpus: float, cpu_shares: int, pids_limit: int | None,
                      max_procs: int) -> tuple[int, int]:
    """The container's memory and pids limits (defaults filled in); ``ValueError`` naming
    the first bad argument."""
    memory = memory_mb + 256 if container_memory_mb is None else container_memory_mb
    if isinstance(memory, bool) or not isinstance(memory, int) or memory <= 0:
        raise ValueError(f"container_memory_mb must be an int > 0, got {memory!r}")
    if memory < memory_mb + 128:
        raise ValueError(
            f"container_memory_mb={memory} leaves no room for the judge: "
            f"use at least memory_mb + 128 = {memory_mb + 128}")
    if isinstance(cpus, bool) or not isinstance(cpus, (int, float)) or not 0 < cpus <= 64:
        raise ValueError(f"cpus must be a number in (0, 64], got {cpus!r}")
    if isinstance(cpu_shares, bool) or not isinstance(cpu_shares, int) or not (
            2 <= cpu_shares <= 262144):
        raise ValueError(f"cpu_shares must be an int in [2, 262144], got {cpu_shares!r}")
    pids = max_procs + 16 if pids_limit is None else pids_limit
    if isinstance(pids, bool) or not isinstance(pids, int) or pids <= 0:
        raise ValueError(f"pids_limit must be an int > 0, got {pids!r}")
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ValueError(f"workers must be an int >= 1, got {workers!r}")
    return memory, pids


class DockerSandbox(PooledSandbox):
    """Sandbox backend running each execution in a pool of warm Docker containers.

    The worker inside each container is the local backend's (:mod:`sandboxes.worker`); this
    class manages the containers.

    Args:
        workers: Parallel containers; all are started (warm) by the constructor.
        timeout: Default wall-clock limit in seconds per execution.
        memory_mb: Default memory budget in MiB for a job (its address space on top of the
            worker's own size); a job may ask for at most ``container_memory_mb - 128``.
        strict: Refuse to run (``SandboxUnavailable``) when the engine or the worker cannot
            apply a protection, instead of warning once.
        image: Image to run (default: :func:`image_ref`, built automatically from its base).
        auto_build: Build the sandbox image when it is missing and its base image exists.
        container_memory_mb: Memory cgroup limit of each container (judge + fork servers +
            the job's processes, page cache and shared memory; swap disabled). Default
            ``memory_mb + 256``.
        cpus: CPUs each container may use (CFS quota: a hard cap).
        cpu_shares: CFS weight of each container. A container's processes compete for CPU
            as *one* group against each host process; 4096 weighs it like the few processes
            of a local worker (judge, fork server, candidate). The ``cpus`` quota caps it.
        cgroup_parent: Parent cgroup of the containers. ``None`` (auto): ``"/"`` on a
            cgroup-v1 engine with the cgroupfs driver, else the engine's default. There the
            default parent ``/docker`` weighs *all* containers together like one host process,
            which starves them on a busy host (fork + exit measured 6-12 ms there vs ~1 ms
            directly under the root cgroup, on 2 loaded cores).
        pids_limit: Processes + threads per container (cgroup). Default ``max_procs + 16``.
        max_procs: ``RLIMIT_NPROC`` of a job (counted in the container's user namespace).
        max_file_mb: ``RLIMIT_FSIZE`` in MiB.
        max_open_files: ``RLIMIT_NOFILE``.
        tmpfs_mb: Size of a job's tmpfs work dir in MiB.
        output_tail: Bytes of stdout/stderr kept (the tail) in results.
        output_limit: Total output bytes after which the execution is killed.
        max_result_bytes: Cap on one encoded return value.
        start_timeout: Seconds to wait for a container's judge to start.
    """

    name = "docker"

    def __init__(
        self,
        workers: int = 1,
        *,
        timeout: float = 5.0,
        memory_mb: int = 512,
        strict: bool = False,
        image: str | None = None,
        auto_build: bool = True,
        container_memory_mb: int | None = None,
        cpus: float = 1.0,
        cpu_shares: int = 4096,
        cgroup_parent: str | None = None,
        pids_limit: int | None = None,
        max_procs: int = 64,
        max_file_mb: int = 16,
        max_open_files: int = 256,
        tmpfs_mb: int = 64,
        output_tail: int = 4096,
        output_limit: int = 8 << 20,
        max_result_bytes: int = 8 << 20,
        start_timeout: float = 60.0,
    ) -> None:
        limits = Limits(timeout=timeout, memory_mb=memory_mb, max_procs=max_procs,
                        max_file_mb=max_file_mb, max_open_files=max_open_files,
                        tmpfs_mb=tmpfs_mb, output_tail=output_tail, output_limit=output_limit,
                        max_result_bytes=max_result_bytes)
        self.container_memory_mb, self.pids_limit = _container_limits(
            workers, memory_mb, container_memory_mb, cpus, cpu_shares, pids_limit, max_procs)
        self.start_timeout = float(start_timeout)
        self._client = engine_client(pool_size=workers + 4)
        try:
            info = self._engine_setup(image, auto_build, cpus, cgroup_parent)
        except BaseException:
            self._client.close()
            raise
        self.labels: dict[str, str] = {LABEL: "1", ID_LABEL: uuid.uuid4().hex}
        self._container_labels = {**self.labels, **_owner_labels()}
        self._cpu_shares = cpu_shares
        self._host_config_args = self._host_config_kwargs(info, cpus, cpu_shares)
        self._host_config = self._client.api.create_host_config(**self._host_config_args)
        self._host_cgroup_dirs: list[str] = []  # every host cgroup dir made, for leak checks
        super().__init__(workers, limits, strict)
        self._cleanups.append(self._client.close)
        try:
            self._warm()
        except BaseException:
            self.close()
            raise

    def _engine_setup(self, image: str | None, auto_build: bool, cpus: float,
                      cgroup_parent: str | None) -> dict[str, Any]:
        """Ask the engine what it is, check ``cpus``, make sure the image exists, and pick the
        parent of the containers' cgroups (and whether jobs get their own); returns the
        engine's info."""
        info = self._client.info()
        if cpus > int(info.get("NCPU") or 1):
            raise ValueError(f"cpus={cpus} exceeds the engine's {info.get('NCPU')} CPUs")
        self.image = _ensure_image(self._client, image, auto_build)
        self.engine_missing = _engine_missing(info)
        if cgroup_parent is None and str(info.get("CgroupVersion")) == "1" and info.get(
                "CgroupDriver") == "cgroupfs":
            cgroup_parent = "/"
        self.cgroup_parent = cgroup_parent
        self.job_cgroups_missing = hostcgroups.unavailable_reason(info, os.environ.get("DOCKER_HOST", ""))
        if self.job_cgroups_missing is None:
            hostcgroups.remove_stale(cgroup_parent or "/")
        return info

    def _host_config_kwargs(self, info: dict[str, Any], cpus: float,
                            cpu_shares: int) -> dict[str, Any]:
        """Every container's host config: no network, read-only root, no capabilities,
        memory (swap included) / pids / CPU limits, private IPC, no logs, no core dumps."""
        security = ["no-new-privileges", "seccomp=unconfined"]
        if any("apparmor" in str(o) for o in info.get("SecurityOptions") or []):
            security.append("apparmor=unconfined")  # docker-default denies mount
        return dict(
            network_mode="none",
            read_only=True,
            cap_drop=["ALL"],
            security_opt=security,
            mem_limit=f"{self.container_memory_mb}m",
            memswap_limit=f"{self.container_memory_mb}m",
            pids_limit=self.pids_limit,
            nano_cpus=int(cpus * 1e9),
            cpu_shares=cpu_shares,
            cgroup_parent=self.cgroup_parent,
            ipc_mode="private",
            auto_remove=True,
            log_config={"Type": "none", "Config": {}},
            ulimits=[{"Name": "core", "Soft": 0, "Hard": 0}],
        )

    def _forked(self) -> None:
        """A forked copy of the owner gets an engine client and containers of its own (the
        parent's attach sockets and client connections are not the child's to use)."""
        self._client = engine_client(pool_size=self._size + 4)
        self._container_labels = {**self.labels, **_owner_labels()}
        self._cleanups.append(self._client.close)

    def _warm(self) -> None:
        """Start every container now, in parallel, so the first executions are warm."""
        n = self._pool.size
        barrier = threading.Barrier(n)

        def hold(i: int) -> None:
            slot, worker = self._pool.acquire()
            try:
                barrier.wait(timeout=self.start_timeout * 2)
            except threading.BrokenBarrierError:
                pass
            finally:
                self._pool.release(slot, worker)

        with ThreadPoolExecutor(n) as ex:
            futures = [ex.submit(hold, i) for i in range(n)]
            errors = []
            for f in futures:
                try:
                    f.result()
                except BaseException as e:  # noqa: BLE001 - re-raised below
                    barrier.abort()
                    errors.append(e)
        if errors:
            raise errors[0]

    def worker_config(self, slot: int) -> dict[str, Any]:
        """The worker's boot config for the container in ``slot``."""
        cfg = self.limits.worker_config()
        # The judge builds the inner sandbox in a user namespace (uid 1000 inside).
        cfg.update(namespaces=True, fork_servers=2, uid=CONTAINER_UID, slot=slot,
                   temp_root=None, container_mb=self.container_memory_mb)  # judge's budget
        return cfg

    def _start_worker(self, slot: int) -> _ContainerWorker:
        config = self.worker_config(slot)
        host_config, cgroup = self._host_config, None
        if self.job_cgroups_missing is None:
            cgroup = hostcgroups.ContainerCgroup(self.cgroup_parent or "/",
                                                 self.container_memory_mb, self._cpu_shares,
                                                 CONTAINER_UID)
            self._host_cgroup_dirs += cgroup.dirs()
            host_config = self._client.api.create_host_config(**dict(
                self._host_config_args, cgroup_parent=cgroup.parent,
                binds={cgroup.jobs_dir: {"bind": hostcgroups.CONTAINER_DIR, "mode": "rw"}}))
            config.update(cgroup_dir=hostcgroups.CONTAINER_DIR, cgroup_version=1)
        w = _ContainerWorker(self._client, slot, self.image, host_config,
                             self._container_labels, config, self.start_timeout, cgroup)
        if cgroup is not None:
            self._host_cgroup_dirs += [d for d in cgroup.dirs()
                                       if d not in self._host_cgroup_dirs]
        missing = []
        for m in w.missing:
            if m.startswith(_PROVIDED_BY_CONTAINER) and self.job_cgroups_missing:
                m = (f"per-job memory cgroup (docker: {self.job_cgroups_missing}): a job's "
                     "memory is bounded by its container's limit only")
            missing.append(m)
        w.missing = self.engine_missing + missing
        w.applied = _DOCKER_ISOLATION + w.applied
        return w

    def host_cgroup_dirs(self) -> list[str]:
        """Every host cgroup dir this sandbox made for its containers (removed with them)."""
        return list(self._host_cgroup_dirs)

    def _check_job(self, memory_mb: int) -> None:
        if memory_mb > self.container_memory_mb - 128:
            raise ValueError(
                f"memory_mb={memory_mb} does not fit the containers' memory limit "
                f"({self.container_memory_mb} MiB incl. 128 MiB for the judge): build the "
                f"DockerSandbox with container_memory_mb >= {memory_mb + 128}")

    def _meta(self, slot: int, worker: Any, attempt: int) -> dict[str, Any]:
        return {
            "backend": "docker",
            "worker": slot,
            "container": worker.container_id[:12],
            "isolation": list(worker.applied),
            "missing_protections": list(worker.missing),
            "python": worker.python_version,
            "attempts": attempt,
        }

    def container_ids(self) -> list[str]:
        """Ids of this sandbox's running containers (a snapshot)."""
        return [w.container_id for w in self._pool.workers()]
