"""Fixtures of the hostile suite: one long-lived sandbox per backend, probed from the host, with
loopback / Unix-socket servers and a host environment secret the candidates must not reach.

The sandbox is shared by every hostile test of a backend on purpose: a pool that has just run a
fork bomb or had its worker killed must still score the next program correctly (each test ends
with a canary run that must pass).
"""

from __future__ import annotations

import glob
import os
import secrets
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import sandboxes
from sandboxes import ExecResult, Job, Sandbox

from .cases import PROGRAMS, HostileCase
from .hostcheck import (
    HostGuard,
    HostView,
    ProcInfo,
    new_secret,
    probe_candidate,
    suite_for,
    with_prelude,
)

PROJECT_DIR = Path(sandboxes.__file__).resolve().parent.parent
TEST_FILE = Path(__file__).resolve().parent / "test_hostile.py"
ENV_NAME = "CODEGYM_HOSTILE_HOST_SECRET"
WORKERS = 2

PROBE = '''
import time


def f():
    time.sleep(1.0)
    return 1
'''

VICTIM = '''
import time


def f():
    time.sleep(1.2)
    return CTX["victim_secret"]
'''


# --------------------------------------------------------------------------- servers


class Servers:
    """Loopback TCP/UDP and Unix (filesystem + abstract) servers sending ``payload`` to any
    client, counting every contact."""

    def __init__(self, payload: str) -> None:
        self.payload = payload.encode()
        self.contacts = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.bind(("127.0.0.1", 0))
        self.tcp.listen(16)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.sock_dir = tempfile.mkdtemp(prefix="cgh-sockets-", dir="/tmp")
        os.chmod(self.sock_dir, 0o777)
        self.unix_path = os.path.join(self.sock_dir, "server.sock")
        self.unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.unix.bind(self.unix_path)
        os.chmod(self.unix_path, 0o777)
        self.unix.listen(16)
        self.abstract_name = "cgh-abstract-" + secrets.token_hex(6)
        self.abstract = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.abstract.bind("\0" + self.abstract_name)
        self.abstract.listen(16)
        self._threads = [
            threading.Thread(target=self._serve_stream, args=(s,), daemon=True)
            for s in (self.tcp, self.unix, self.abstract)
        ] + [threading.Thread(target=self._serve_udp, daemon=True)]
        for t in self._threads:
            t.start()

    @property
    def tcp_port(self) -> int:
        return self.tcp.getsockname()[1]

    @property
    def udp_port(self) -> int:
        return self.udp.getsockname()[1]

    def _count(self) -> None:
        with self._lock:
            self.contacts += 1

    def _serve_stream(self, server: socket.socket) -> None:
        server.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = server.accept()
            except (TimeoutError, OSError):
                continue
            self._count()
            try:
                conn.sendall(self.payload)
            except OSError:
                pass
            finally:
                conn.close()

    def _serve_udp(self) -> None:
        self.udp.settimeout(0.1)
        while not self._stop.is_set():
            try:
                _, addr = self.udp.recvfrom(4096)
            except (TimeoutError, OSError):
                continue
            self._count()
            try:
                self.udp.sendto(self.payload, addr)
            except OSError:
                pass

    def self_test(self) -> None:
        """Prove the servers answer a host client (so a failed candidate contact means
        containment, not a dead server); resets the contact count."""
        with socket.create_connection(("127.0.0.1", self.tcp_port), timeout=2) as c:
            assert c.recv(4096) == self.payload
        for path in (self.unix_path, "\0" + self.abstract_name):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
                c.settimeout(2)
                c.connect(path)
                assert c.recv(4096) == self.payload
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
            c.settimeout(2)
            c.sendto(b"ping", ("127.0.0.1", self.udp_port))
            assert c.recvfrom(4096)[0] == self.payload
        with self._lock:
            self.contacts = 0

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(2)
        for s in (self.tcp, self.udp, self.unix, self.abstract):
            s.close()
        try:
            os.unlink(self.unix_path)
            os.rmdir(self.sock_dir)
        except OSError:
            pass


# --------------------------------------------------------------------------- environment


def docker_containers_of(sandbox: Sandbox) -> dict[str, str]:
    """``{id: status}`` of the containers a docker sandbox owns (found by its labels)."""
    from sandboxes.docker import list_containers  # low-level listing: no auto-removal race

    return list_containers(**(getattr(sandbox, "labels", None) or {}))


@dataclass
class HostileEnv:
    """Everything a hostile test needs: the sandbox and what the host knows about it."""

    backend: str
    sandbox: Sandbox
    probe: ProcInfo | None
    view: HostView
    servers: Servers
    env_value: str
    private_tmp: str
    notes: list[str] = field(default_factory=list)

    # -- preconditions ---------------------------------------------------------------------
    def require(self, case: HostileCase) -> None:
        """Skip or fail when a case cannot be run safely / meaningfully on this host."""
        if "shadow" in case.needs and not os.access("/etc/shadow", os.R_OK):
            pytest.skip("/etc/shadow is not readable by the test itself")
        if any(n in case.needs for n in ("nonroot", "not_child_of_test")) and self.probe is None:
            pytest.fail(f"{self.backend}: the probe could not observe a candidate process in "
                        "/proc (prctl(PR_SET_NAME) and /proc/self/comm both failed?)")
        if "nonroot" in case.needs and self.probe is not None and self.probe.uid == 0:
            pytest.fail(f"{self.backend}: candidate processes run as host root (uid 0): "
                        f"RLIMIT_NPROC does not bind root and kill(-1) reaches every process; "
                        f"refusing to run {case.name!r} on this host ({self.probe.describe()})")
        can_signal_us = self.probe is not None and self.probe.uid in (0, os.getuid())
        if "not_child_of_test" in case.needs and self.probe is not None and can_signal_us:
            parent = _proc(self.probe.ppid)
            if self.probe.ppid == os.getpid() or self.probe.pgrp == os.getpgrp() or (
                    parent is not None and parent.pgrp == os.getpgrp()):
                pytest.fail(f"{self.backend}: the candidate's parent or process group is the "
                            f"test process itself; {case.name!r} would kill/stop the harness")

    # -- one run ---------------------------------------------------------------------------
    def ctx(self, token: str) -> dict[str, Any]:
        """The data a hostile program gets (``CTX``): marker, host targets, server addresses."""
        name = f"cgh-{token}"
        return {
            "token": token,
            "comm": f"cgh{token}",
            "sleep_arg": f"37.{int(token, 16) % 10**9:09d}",
            "targets": {
                "tmp": f"/tmp/{name}",
                "tmp_link": f"/tmp/{name}-link",
                "tmp_sh": f"/tmp/{name}-sh",
                "tmp_reduce": f"/tmp/{name}-reduce",
                "vartmp": f"/var/tmp/{name}",
                "shm": f"/dev/shm/{name}",
                "project": str(PROJECT_DIR / name),
                "root": f"/root/{name}",
                "home": os.path.join(os.path.expanduser("~"), f"{name}-home"),
                "sandbox_pkg": str(PROJECT_DIR / "sandboxes" / name),
            },
            "project_file": str(PROJECT_DIR / "pyproject.toml"),
            "project_dir": str(PROJECT_DIR),
            "test_file": str(TEST_FILE),
            "harness_files": sorted(str(p) for p in (PROJECT_DIR / "sandboxes").glob("*.py")),
            "env_name": ENV_NAME,
            "tcp_port": self.servers.tcp_port,
            "udp_port": self.servers.udp_port,
            "unix_path": self.servers.unix_path,
            "abstract_name": self.servers.abstract_name,
            "persist_token": token,
        }

    def forbidden_paths(self, ctx: dict[str, Any]) -> list[str]:
        """Host paths the hostile programs try to create."""
        name = f"cgh-{ctx['token']}"
        paths = list(ctx["targets"].values())
        stdlibs = {os.path.dirname(os.__file__), *glob.glob("/usr/lib/python3*"),
                   *glob.glob("/usr/local/lib/python3*")}
        paths += [os.path.join(d, name) for d in sorted(stdlibs)]
        paths += [os.path.join(d, f"{name}-up") for d in ("/", "/tmp", "/var/tmp", "/dev/shm",
                                                          self.private_tmp)]
        persist = f"cgh-persist-{ctx['persist_token']}"
        paths += [os.path.join(d, persist) for d in ("/", "/tmp", "/var/tmp", "/dev/shm",
                                                     os.path.expanduser("~"), self.private_tmp)]
        return paths

    def watched_files(self, ctx: dict[str, Any]) -> list[str]:
        """Host files whose content must not change (files nobody edits while tests run: the
        suite's own files and the host stdlib; attempts on the harness sources are caught by
        ``tamper_files`` itself)."""
        own = sorted(str(p) for p in Path(__file__).parent.glob("*.py"))
        return [ctx["test_file"], *own, os.__file__]

    def expected(self, case: HostileCase, secret: str) -> Any:
        """The value only a successful attack could return (see cases.py)."""
        if case.expect == "secret":
            return secret
        if case.expect == "pwned":
            return "pwned"
        if case.expect == "project_file":
            return (PROJECT_DIR / "pyproject.toml").read_text()
        if case.expect == "test_file":
            return TEST_FILE.read_text()
        if case.expect == "project_listing":
            return sorted(os.listdir(PROJECT_DIR))
        if case.expect == "env":
            return self.env_value
        if case.expect == "shadow":
            return Path("/etc/shadow").read_text()
        if case.expect == "server":
            return self.servers.payload.decode()
        raise ValueError(f"unknown expectation {case.expect!r} in case {case.name!r}")

    def guard(self, ctx: dict[str, Any]) -> HostGuard:
        """Snapshot the host before running a program with ``ctx``."""
        return HostGuard(self.view, markers=[ctx["token"], ctx["sleep_arg"]],
                         forbidden_paths=self.forbidden_paths(ctx),
                         watched_files=self.watched_files(ctx))

    def canary(self) -> ExecResult:
        """A correct program on a fresh secret: must pass (the pool still works)."""
        secret = new_secret()
        return self.sandbox.run(f"def f():\n    return {secret!r}\n", suite_for("io", secret),
                                timeout=10)


def _proc(pid: int) -> ProcInfo | None:
    from .hostcheck import read_proc

    return read_proc(pid)


def _probe(sandbox: Sandbox) -> ProcInfo | None:
    token = secrets.token_hex(6)
    ctx = {"comm": f"cgh{token}", "token": token}
    program = with_prelude(ctx, PROBE)
    return probe_candidate(lambda: sandbox.run(program, suite_for("io", 1), timeout=10),
                           marker=ctx["comm"])


@pytest.fixture(scope="module")
def hostile_env(sandbox_backend: str, make_sandbox_or_skip: Any) -> Iterator[HostileEnv]:
    """One sandbox (``workers=2``) per backend for the whole hostile module, started with a
    private ``TMPDIR`` and a host secret in the environment, plus its host-side probe."""
    env_value = new_secret()
    private_tmp = tempfile.mkdtemp(prefix="cgh-private-tmp-")
    os.chmod(private_tmp, 0o755)
    saved_env = {k: os.environ.get(k) for k in ("TMPDIR", ENV_NAME)}
    saved_tempdir = tempfile.tempdir
    os.environ["TMPDIR"] = private_tmp
    os.environ[ENV_NAME] = env_value
    tempfile.tempdir = None
    servers = Servers(new_secret())
    sandbox: Sandbox | None = None
    try:
        servers.self_test()
        sandbox = make_sandbox_or_skip(sandbox_backend, workers=WORKERS)
        warm = sandbox.run("def f():\n    return 1\n", suite_for("io", 1), timeout=30)
        assert warm.ok, f"{sandbox_backend}: a trivial program does not pass: {warm}"
        probe = _probe(sandbox)
        uids = {probe.uid} if probe is not None else set()
        if sandbox_backend == "local":
            uids |= set(sandbox.sandbox_uids())  # type: ignore[attr-defined]
        uids -= {0, os.getuid()}
        view = HostView(sandbox_uids=uids, temp_dirs=[private_tmp])
        if sandbox_backend == "docker":
            view.containers = lambda: docker_containers_of(sandbox)  # type: ignore[misc]
            view.max_containers = WORKERS
        env = HostileEnv(sandbox_backend, sandbox, probe, view, servers, env_value, private_tmp)
        yield env
    finally:
        if sandbox is not None:
            sandbox.close()
        servers.close()
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        tempfile.tempdir = saved_tempdir
    # After close: nothing of the sandbox may remain.
    time.sleep(0.2)
    left = os.listdir(private_tmp)
    try:
        os.rmdir(private_tmp)
    except OSError:
        pass
    assert not left, f"{sandbox_backend}: temp entries left after close: {left}"
    if sandbox_backend == "docker":
        assert not docker_containers_of(sandbox), "containers left after close"  # type: ignore[arg-type]


def run_hostile(env: HostileEnv, case: HostileCase) -> tuple[ExecResult, ExecResult | None, list[str]]:
    """Run one hostile case (and its victim, if any); return (result, victim result, problems)."""
    token = secrets.token_hex(6)
    ctx = env.ctx(token)
    secret = new_secret()
    expected = env.expected(case, secret)
    program = with_prelude(ctx, case.source)
    suite = suite_for(case.kind, expected)
    guard = env.guard(ctx)
    contacts_before = env.servers.contacts
    victim_result: list[ExecResult] = []
    victim_thread = None
    if "victim" in case.needs:
        vtoken = secrets.token_hex(6)
        vsecret = new_secret()
        vctx = {**env.ctx(vtoken), "victim_secret": vsecret}
        vprogram = with_prelude(vctx, VICTIM)

        def victim() -> None:
            victim_result.append(env.sandbox.run(vprogram, suite_for("io", vsecret), timeout=8))

        victim_thread = threading.Thread(target=victim, daemon=True)
        victim_thread.start()
        time.sleep(0.4)  # let the victim start before the attack
    try:
        if "persist_writer" in case.needs:  # plant state on every worker first
            writer = with_prelude(ctx, (PROGRAMS / "persist_state_writer.py").read_text())
            planted = env.sandbox.run_many([Job(writer, suite_for("io", "planted"), timeout=5.0)]
                                           * (2 * WORKERS))
            assert all(r.ok for r in planted), f"the writer half did not run: {planted[0]}"
        result = env.sandbox.run(program, suite, timeout=case.timeout, memory_mb=case.memory_mb)
        if "persist_writer" in case.needs:  # the reader on every worker: any pass is a hole
            more = env.sandbox.run_many([Job(program, suite, timeout=case.timeout)] * (2 * WORKERS))
            result = next((r for r in more if r.ok), result)
        if victim_thread is not None:
            victim_thread.join(30)
        problems = guard.problems()
        if env.servers.contacts != contacts_before:
            problems.append(f"the candidate reached a host server "
                            f"({env.servers.contacts - contacts_before} contacts)")
    finally:
        guard.cleanup()
    return result, (victim_result[0] if victim_result else None), problems


