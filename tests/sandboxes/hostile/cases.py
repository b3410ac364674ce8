"""The hostile catalogue: which program, which suite, what counts as contained.

Every program defines ``f()`` (the entry point, called with no arguments) and is run against a
suite whose expected value the candidate can only produce if its attack *worked*:

* ``"secret"``: a fresh random ``secret-<32 hex>`` that exists only in the test process and in the
  sandbox's trusted judge. Forging attacks (frame inspection, memory scans, fake output, patched
  harness, ``__eq__`` tricks) would have to find or fake it.
* ``"pwned"``: the literal ``"pwned"``, which the program returns only when a capability it must
  not have worked (ptrace, user namespaces, raising hard limits, 1,000 processes, 3 GiB, ...).
* ``"project_file"`` / ``"test_file"`` / ``"project_listing"`` / ``"env"`` / ``"shadow"``: host
  content the program returns if it could read it.
* ``"server"``: the payload the test's loopback / Unix-socket servers send to any client.

So a pass is always a hole, and the test asserts a non-pass plus the attack-specific statuses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sandboxes import Status

PROGRAMS = Path(__file__).parent / "programs"

#: statuses that mean "stopped by a limit or killed"
STOPPED = frozenset({Status.TIMEOUT, Status.KILLED, Status.MEMORY, Status.ERROR})
NOT_PASSED = frozenset(set(Status) - {Status.PASSED})


@dataclass(frozen=True)
class HostileCase:
    """One hostile program and what the test demands of the sandbox.

    Attributes:
        name: Program file stem in ``programs/`` (also the test id).
        expect: What the expected value is (see the module docstring).
        statuses: Allowed result statuses (all non-pass).
        kind: Suite kind: ``"io"`` (values compared by the harness) or ``"assert"``
            (a trusted ``check(candidate)``).
        needs: Preconditions: ``"nonroot"`` (the candidate must not be host root: the attack
            would hurt the host otherwise), ``"not_child_of_test"`` (the candidate's parent
            and process group must not be the test process), ``"victim"`` (run a benign job
            beside it that must still pass), ``"servers"`` (the loopback/Unix servers), and
            ``"shadow"`` (the host has a readable /etc/shadow), ``"persist_writer"`` (run
            ``persist_state_writer`` a few times first, with the same ``persist_token``).
        timeout: Per-run timeout in seconds.
        memory_mb: Memory limit for the run (None: the backend's default).
    """

    name: str
    expect: str = "secret"
    statuses: frozenset[Status] = NOT_PASSED
    kind: str = "io"
    needs: tuple[str, ...] = ()
    timeout: float = 1.5
    memory_mb: int | None = None
    notes: str = field(default="", compare=False)

    @property
    def source(self) -> str:
        """The program text (without the prelude)."""
        return (PROGRAMS / f"{self.name}.py").read_text()


_T = frozenset({Status.TIMEOUT})
_TK = frozenset({Status.TIMEOUT, Status.KILLED})
_MEM = frozenset({Status.MEMORY, Status.ERROR, Status.KILLED})
_ERR = frozenset({Status.ERROR})
_FAILED_OR_ERROR = frozenset({Status.FAILED, Status.ERROR})

CASES: tuple[HostileCase, ...] = (
    # --- resources ------------------------------------------------------------------------
    HostileCase("fork_bomb", needs=("nonroot",), statuses=STOPPED | {Status.FAILED}),
    HostileCase("fork_bomb_capped", expect="pwned", needs=("nonroot",)),
    HostileCase("thread_bomb", expect="pwned", needs=("nonroot",)),
    HostileCase("memory_bomb", expect="pwned", statuses=_MEM, memory_mb=256, timeout=6.0),
    HostileCase("memory_single_alloc", statuses=_MEM, memory_mb=256, timeout=6.0),
    HostileCase("cpu_loop", statuses=_T),
    HostileCase("cpu_loop_toplevel", statuses=_T),
    HostileCase("sleep_forever", statuses=_T),
    HostileCase("ignore_signals", statuses=_T),
    HostileCase("huge_output", statuses=STOPPED),
    HostileCase("huge_file", expect="pwned"),
    HostileCase("many_files", expect="pwned"),
    HostileCase("fd_exhaustion", expect="pwned"),
    HostileCase("deep_recursion", statuses=_ERR),
    HostileCase("c_stack_overflow", statuses=STOPPED),
    HostileCase("huge_return", statuses=NOT_PASSED),
    HostileCase("nested_return", statuses=NOT_PASSED),
    # --- host files -----------------------------------------------------------------------
    HostileCase("write_tmp"),
    HostileCase("write_vartmp_shm"),
    HostileCase("write_project"),
    HostileCase("write_root"),
    HostileCase("write_parent_dir"),
    HostileCase("symlink_escape"),
    HostileCase("hardlink_tamper", expect="pwned"),
    HostileCase("tamper_files", expect="pwned"),
    HostileCase("read_project_file", expect="project_file"),
    HostileCase("read_test_file", expect="test_file"),
    HostileCase("list_project_dir", expect="project_listing"),
    HostileCase("read_host_env", expect="env"),
    HostileCase("read_root_only_file", expect="shadow", needs=("shadow",)),
    HostileCase("ptrace_parent", expect="pwned"),
    HostileCase("proc_mem_scan"),
    # --- network and sockets --------------------------------------------------------------
    HostileCase("loopback_tcp", expect="server", needs=("servers",)),
    HostileCase("loopback_udp", expect="server", needs=("servers",)),
    HostileCase("dns_lookup", expect="pwned", timeout=4.0),
    HostileCase("unix_socket_fs", expect="server", needs=("servers",)),
    HostileCase("unix_socket_abstract", expect="server", needs=("servers",)),
    HostileCase("docker_socket", expect="pwned"),
    # --- the harness and the worker -------------------------------------------------------
    HostileCase("kill_parent", needs=("not_child_of_test",)),
    HostileCase("kill_all", needs=("nonroot", "not_child_of_test", "victim")),
    HostileCase("kill_visible", needs=("nonroot", "not_child_of_test", "victim")),
    HostileCase("stop_parent", needs=("not_child_of_test",)),
    HostileCase("escape_pgroup"),
    HostileCase("setsid_daemon"),
    HostileCase("threads_outlive"),
    HostileCase("atexit_hang"),
    HostileCase("subprocess_spawn"),
    HostileCase("os_system"),
    HostileCase("sys_exit0", statuses=_ERR | {Status.KILLED}),
    HostileCase("os_exit0", statuses=_ERR | {Status.KILLED}),
    HostileCase("os_exit0_in_fn", statuses=_ERR | {Status.KILLED}),
    HostileCase("raise_systemexit_in_fn", statuses=_ERR),
    HostileCase("raise_keyboardinterrupt", statuses=_ERR),
    HostileCase("fake_pass_output", statuses=frozenset({Status.FAILED})),
    HostileCase("write_harness_fds", statuses=_ERR | {Status.KILLED}),
    HostileCase("close_harness_fds", statuses=_ERR | {Status.KILLED}),
    HostileCase("read_harness_fds"),
    HostileCase("monkeypatch_harness", statuses=_FAILED_OR_ERROR),
    HostileCase("monkeypatch_harness", kind="assert", statuses=_FAILED_OR_ERROR),
    HostileCase("frame_inspection"),
    HostileCase("frame_inspection", kind="assert"),
    HostileCase("gc_scan"),
    HostileCase("gc_scan", kind="assert"),
    HostileCase("eq_always_true", statuses=_FAILED_OR_ERROR),
    HostileCase("eq_always_true", kind="assert", statuses=_FAILED_OR_ERROR),
    HostileCase("eq_str_subclass", statuses=_FAILED_OR_ERROR),
    HostileCase("eq_str_subclass", kind="assert", statuses=_FAILED_OR_ERROR),
    HostileCase("patch_assert", kind="assert", statuses=_FAILED_OR_ERROR),
    HostileCase("user_namespace", expect="pwned"),
    HostileCase("raise_rlimits", expect="pwned"),
    HostileCase("rmtree_workdir"),
    HostileCase("evil_exception", statuses=_ERR),
    HostileCase("binary_output", statuses=frozenset({Status.FAILED})),
    HostileCase("unencodable_return", statuses=_FAILED_OR_ERROR),
    HostileCase("unencodable_return", kind="assert", statuses=_FAILED_OR_ERROR),
    HostileCase("persist_state_reader", expect="pwned", needs=("persist_writer",)),
)

#: programs that are not cases themselves (run by another case first)
HELPERS = frozenset({"persist_state_writer"})


def case_id(case: HostileCase) -> str:
    """pytest id: the program name, with the suite kind when it is not ``io``."""
    return case.name if case.kind == "io" else f"{case.name}[{case.kind}]"
