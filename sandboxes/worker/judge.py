"""The judge (``J``): the trusted side of a worker. It owns the fork servers and scores jobs.

Per job, in this order:

1. **Send everything at once.** For an ``io`` suite, a call per case. For an ``assert`` suite,
   the calls the trusted ``check`` will make: predicted by running it once against stand-in
   results (:class:`_Unknown`, which behave like the results of a correct program: every
   comparison holds, every ``assert`` is taken as passed) with ``random`` seeded the same way
   as in the real run. Predictions depend on trusted code only and are cached per task.
2. **Collect every answer** (raw bytes, not decoded, charged to the job's budget) until all
   are in, the candidate died, or the time is up; then the by-value views of any program
   objects it returned.
3. **Kill the candidate's whole tree** (its PID namespace) and wait until it is gone.
4. **Only then judge:** decode the answers (each charged to the job's :class:`Budget`
   before it is decoded, under an alarm that ends at the job's deadline plus a second) and
   compare them with the expected values, or run the real ``check`` against them, each call
   it makes checked against the prediction (a call on a result that came back by value and
   that the check made locally is skipped).

So nothing the judge does while the candidate lives depends on the verdict: not which calls
it sends, not when it stops sending, not when it closes a pipe, not how long it takes. There
is one candidate per job and it only ever sees the predicted calls, a function of the test
code alone. Where the real ``check`` makes a call the prediction did not have (its calls
depend on the program's answers: a branch on a result, a call on a value computed from one),
the job is scored ``failed`` (``UnpredictableCheck``): answering that call would need a
candidate that learns from the call it is asked which way the check went. An ``assert``
message that calls the program (``assert candidate(x) == y, f"got {candidate(x)}"``) is
evaluated only from answers already collected (the message is for the report; the failed
``assert`` already decided the verdict).

The harness's own names never meet the program's: the check's ``def check`` is compiled
under a private name, so a program (or a test) may define and call a function ``check`` of
its own.

Checks may use the program's own top-level names (``root = Node(1)``, ``sys.getsizeof(...)``):
a name the trusted code reads but does not define is a standard-library module the judge
imports itself (:data:`JUDGE_MODULES`), or a proxy (:class:`_Ref`) whose calls, attribute
reads and writes run in the candidate and come back by value. Results that are not data
(objects of the program's classes) stay in the candidate as handles (:class:`_Remote`) and are
compared by value through their views (class name and attributes, never the program's
``__eq__``).

Resource verdicts come from the kernel only: ``memory`` when the job's memory cgroup counted
an OOM kill during the job, ``timeout`` from the deadline or the CPU-time signal. A
``MemoryError`` the program raises or prints is its own ``error``.
"""

from __future__ import annotations

import builtins
import json
import os
import random
import resource
import select
import signal
import socket
import time
from typing import Any

from sandboxes import encoding as enc
from sandboxes.status import Status
from sandboxes.worker import protocol as proto
from sandboxes.worker.calls import (
    Budget,
    CandidateError,
    Diverged,
    Fault,
    NotRecorded,
    StopRecording,
    WorkerBroken,
    _Ops,
    _Ref,
    referenced,
    request_bytes,
)

#: standard-library modules a check may use without importing them (as the program did): the
#: judge imports its own copy, so the program's names never stand in for them
JUDGE_MODULES = frozenset(
    "array bisect calendar cmath collections copy datetime decimal fractions functools heapq "
    "itertools json math numbers operator random re statistics string struct sys textwrap "
    "typing unicodedata".split())
_RECORD_BUDGET = 1.0  # seconds the prediction run of a check may take (once per task)
CHECK_NAME = "__codegym_check__"  #: the harness's ``check``, renamed: no program name meets it
MESSAGE_NAME = "__codegym_message__"  #: evaluates an ``assert`` message from collected answers
#: bytes the judge may spend on one job's answers: twice the job's memory limit, at least this
#: (see Judge._budget)
MIN_JUDGE_BUDGET = 256 << 20
#: the judge's own address space may exceed its size at the start of a job by its budget and
#: this much more (the soft ``RLIMIT_AS`` of the judge process while it scores the job)
JUDGE_SLACK = 256 << 20
_SEED = 20240917  # ``random`` state of every run of a check (prediction and real)
_JOB_FDS = 3
_PAGE = os.sysconf("SC_PAGE_SIZE")


# --------------------------------------------------------------------------- channel


class Channel:
    """Judge side of one candidate: non-blocking request writes, reply lines, capped output."""

    def __init__(self, req_w: int, rep_r: int, out_r: int, deadline: float,
                 cfg: dict[str, Any], budget: Budget) -> None:
        self.req_w, self.rep_r, self.out_r = req_w, rep_r, out_r
        self.budget = budget
        for fd in (req_w, rep_r, out_r):
            os.set_blocking(fd, False)
        self.deadline = deadline
        self.tail_cap = cfg["output_tail"]
        self.out_limit = cfg["output_limit"]
        self.max_line = cfg["max_result_bytes"] + 64
        self.wbuf = bytearray()
        self.rbuf = bytearray()
        self.tail = bytearray()
        self.out_total = 0
        self.rep_open = True
        self.out_open = True
        self.fault: Fault | None = None

    def close(self) -> None:
        for fd in (self.req_w, self.rep_r, self.out_r):
            try:
                os.close(fd)
            except OSError:
                pass

    def fail(self, kind: str, detail: str = "") -> Fault:
        if self.fault is None:
            self.fault = Fault(kind, detail)
        return self.fault

    def send(self, data: bytes) -> None:
        if self.fault is not None:
            raise self.fault
        self.wbuf += data
        self._flush()

    def _flush(self) -> None:
        while self.wbuf:
            try:
                n = os.write(self.req_w, self.wbuf[: 1 << 16])
            except BlockingIOError:
                return
            except OSError:  # broken pipe: the candidate is gone
                self.wbuf.clear()
                return
            del self.wbuf[:n]

    def _read_out(self) -> None:
        data = _read_ready(self.out_r, 1 << 16)
        if data is None:
            return
        if not data:
            self.out_open = False
            return
        self.out_total += len(data)
        self.tail += data
        if len(self.tail) > 2 * self.tail_cap:
            del self.tail[: len(self.tail) - self.tail_cap]
        if self.out_total > self.out_limit:
            raise self.fail("output", f"more than {self.out_limit} bytes of output")

    def drain_output(self) -> None:
        """Read what is left in the output pipe (non-blocking) for the tail."""
        for _ in range(64):
            if not self.out_open:
                return
            before = self.out_total
            try:
                self._read_out()
            except Fault:
                return
            if self.out_total == before:
                return

    def tail_text(self) -> str:
        return bytes(self.tail[-self.tail_cap:]).decode("utf-8", "replace")

    def recv(self) -> tuple[int, bytes]:
        """Next reply line as (tag byte, payload)."""
        if self.fault is not None:
            raise self.fault
        while True:
            nl = self.rbuf.find(b"\n")
            if nl >= 0:
                line = bytes(self.rbuf[:nl])
                del self.rbuf[: nl + 1]
                if not line:
                    raise self.fail("protocol", "an empty reply")
                return line[0], line[1:]
            if len(self.rbuf) > self.max_line:
                raise self.fail("too_large", f"a reply over {self.max_line} bytes")
            if not self.rep_open:
                raise self.fail("eof")
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise self.fail("timeout")
            rl = [self.rep_r] + ([self.out_r] if self.out_open else [])
            wl = [self.req_w] if self.wbuf else []
            r, w, _ = select.select(rl, wl, [], remaining)
            if w:
                self._flush()
            if self.out_r in r:
                self._read_out()
            if self.rep_r in r:
                data = _read_ready(self.rep_r, 1 << 20)
                if data is None:
                    continue
                if data:
                    over = self.budget.hold(len(data))
                    if over is not None:
                        raise self.fail(over.kind, over.detail)
                    self.rbuf += data
                else:
                    self.rep_open = False


def _read_ready(fd: int, size: int) -> bytes | None:
    """Up to ``size`` bytes from a non-blocking pipe: None when nothing is there yet, ``b""``
    at end of file or when the pipe is broken (the candidate is gone either way)."""
    try:
        return os.read(fd, size)
    except BlockingIOError:
        return None
    except OSError:
        return b""


# --------------------------------------------------------------------------- fork servers


class ServerLink:
    """The judge's end of one fork server: its prepared child and the running one."""

    def __init__(self, sock: socket.socket, pid: int, index: int) -> None:
        self.sock = sock
        self.pid = pid
        self.index = index
        self.pending = 0  # prepare replies not yet read
        self.next_fds: tuple[int, int, int] | None = None  # pipes of the prepared child
        self.next_pid: int | None = None
        self.running: int | None = None  # the child of the current job (not yet killed)
        self.dying = False  # a kill was asked for and its reply not read yet

    def _pipes(self) -> tuple[list[int], tuple[int, int, int]]:
        req_r, req_w = os.pipe()
        rep_r, rep_w = os.pipe()
        out_r, out_w = os.pipe()
        return [req_r, rep_w, out_w], (req_w, rep_r, out_r)

    def _request(self, msg: bytes) -> None:
        theirs, mine = self._pipes()
        try:
            socket.send_fds(self.sock, [msg], theirs)
        except OSError as e:
            for fd in mine:
                os.close(fd)
            raise WorkerBroken(f"cannot reach fork server {self.index}: {e}") from None
        finally:
            for fd in theirs:
                os.close(fd)
        self.next_fds = mine
        self.next_pid = None
        self.pending += 1

    def _reply(self) -> bytes:
        try:
            reply = self.sock.recv(1 << 16)
        except OSError as e:
            raise WorkerBroken(f"fork server {self.index}: {e}") from None
        if not reply:
            raise WorkerBroken(f"fork server {self.index} died")
        return reply

    def prepare(self) -> None:
        """Ask for the next child (asynchronously)."""
        self._request(b"r")

    def collect(self) -> None:
        """Read the prepare reply, if one is pending."""
        while self.pending:
            reply = self._reply()
            self.pending -= 1
            if reply[:1] != b"p":
                raise WorkerBroken(reply[1:].decode("utf-8", "replace"))
            self.next_pid = int(reply[1:])

    def take(self) -> tuple[int, tuple[int, int, int]]:
        """The prepared child (pid, its pipes), now running a job."""
        self.collect()
        if self.next_pid is None or self.next_fds is None:
            self.prepare()
            self.collect()
        assert self.next_pid is not None and self.next_fds is not None
        pid, fds = self.next_pid, self.next_fds
        self.next_pid = self.next_fds = None
        self.running = pid
        return pid, fds

    def kill(self, grace: float = 0.0) -> tuple[int, bool, float]:
        """Kill the running child's whole tree; see :meth:`kill_begin`/:meth:`kill_end`."""
        self.kill_begin(grace)
        return self.kill_end()

    def kill_begin(self, grace: float = 0.0) -> None:
        """Ask the server to kill the running child's whole tree (``grace``: seconds a child
        that is exiting by itself gets first); it prepares the next child right after (that
        reply is read later)."""
        pid, self.running = self.running, None
        self.collect()
        self._request(b"k%d %d" % (pid or 0, int(grace * 1000)))
        self.dying = True

    def kill_end(self) -> tuple[int, bool, float]:
        """Wait until the child's tree is gone: (its wait status, whether it was still alive
        when killed, its CPU seconds)."""
        self.dying = False
        reply = self._reply()
        if reply[:1] != b"d":
            raise WorkerBroken(reply[1:].decode("utf-8", "replace"))
        status, alive, cpu = reply[1:].split()
        return int(status), alive == b"1", float(cpu)

    def shutdown(self) -> None:
        try:
            self.collect()
        except (OSError, RuntimeError, ValueError, WorkerBroken):
            pass
        if self.next_fds is not None:
            for fd in self.next_fds:
                try:
                    os.close(fd)
                except OSError:
                    pass
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass


# --------------------------------------------------------------------------- trusted code


def _compile(src: str, filename: str, record: bool, rename: bool) -> Any:
    """Trusted test code, compiled for the prediction run (``record``: each ``assert test,
    msg`` evaluates ``test`` and goes on) or for the real one (each message goes through
    :data:`MESSAGE_NAME`, which evaluates it from collected answers only); ``rename``: its
    top-level ``def check`` becomes :data:`CHECK_NAME`. (``ast`` is imported here, after the
    fork servers were forked: every module the judge holds before that is copied into each
    fork.)"""
    import ast

    class Transform(ast.NodeTransformer):
        def visit_Assert(self, node: ast.Assert) -> ast.AST:
            self.generic_visit(node)
            if record:
                return ast.copy_location(ast.Expr(value=node.test), node)
            if node.msg is not None:
                lazy = ast.Lambda(args=ast.arguments(posonlyargs=[], args=[], kwonlyargs=[],
                                                     kw_defaults=[], defaults=[]),
                                  body=node.msg)
                node.msg = ast.Call(func=ast.Name(id=MESSAGE_NAME, ctx=ast.Load()),
                                    args=[lazy], keywords=[])
            return node

    tree = Transform().visit(ast.parse(src, filename))
    if rename:
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == "check":
                node.name = CHECK_NAME
    return compile(ast.fix_missing_locations(tree), filename, "exec")


def _names(code: Any) -> tuple[set[str], set[str]]:
    """(global names read, names stored) by a code object and the ones inside it."""
    import dis

    loads: set[str] = set()
    stores: set[str] = set()
    stack = [code]
    while stack:
        co = stack.pop()
        for ins in dis.get_instructions(co):
            if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME"):
                loads.add(str(ins.argval))
            elif ins.opname in ("STORE_NAME", "STORE_GLOBAL", "DELETE_NAME", "DELETE_GLOBAL"):
                stores.add(str(ins.argval))
        stack.extend(c for c in co.co_consts if hasattr(c, "co_code"))
    return loads, stores


class _Trusted:
    """The compiled test code of one task: real and prediction variants, and the names it
    needs from the program."""

    def __init__(self, helpers: str, check: str, entry: str) -> None:
        self.helpers = _compile(helpers, "<helpers>", False, False) if helpers else None
        self.check = _compile(check, "<check>", False, True)
        self.check_rec = _compile(check, "<check>", True, True)
        self.helpers_rec = _compile(helpers, "<helpers>", True, False) if helpers else None
        loads, stores = _names(self.check)
        if self.helpers is not None:
            hl, hs = _names(self.helpers)
            loads |= hl
            stores |= hs
        if CHECK_NAME not in stores:
            raise ValueError("the check code defines no top-level function check(candidate)")
        skip = stores | set(vars(builtins)) | {entry, "candidate", MESSAGE_NAME}
        self.program_names = sorted(loads - skip)
        self.prediction: tuple[list[tuple[bytes, Any]], bool] | None = None
        self.request_bytes = b""  # the predicted requests, as sent


# --------------------------------------------------------------------------- the judge


class Judge:
    """The trusted side: runs the tests of each job against a child of its fork servers."""

    def __init__(self, cfg: dict[str, Any], links: list[ServerLink], cgroups: Any) -> None:
        self.cfg = cfg
        self.links = links
        self.cgroups = cgroups
        self.jobs = 0
        self._armed = False
        self._recording = False
        self._trusted: dict[tuple[str, str, str], _Trusted] = {}
        self._cpu_limit = 0
        self._ch: Channel | None = None  # the running job's channel (closed at its end)
        self._as_hard: int | None = None  # the judge's hard RLIMIT_AS (read once)
        self._statm = -1  # /proc/self/statm, kept open
        self._events: dict[int, int] = {}  # fork server index -> its cgroup's events file
        self._oom: list[int] = [self._oom_kills(i) for i in range(len(links))] \
            if cgroups is not None else []
        signal.signal(signal.SIGALRM, self._on_alarm)

    def _on_alarm(self, signum: int, frame: object) -> None:
        if self._recording:
            self._recording = False  # the prediction is over, even if the check swallows this
            raise StopRecording
        if self._armed:
            raise Fault("timeout", "judge deadline")

    def prepare_all(self) -> None:
        for link in self.links:
            link.prepare()

    def shutdown(self) -> None:
        for link in self.links:
            link.shutdown()
        for fd in self._events.values():
            os.close(fd)
        self._events.clear()
        if self.cgroups is not None:
            self.cgroups.remove()

    # -- one job ------------------------------------------------------------------------
    def run_job(self, job: dict[str, Any]) -> dict[str, Any]:
        """Score one job; a verdict for every outcome that candidate data can cause.

        Raises:
            WorkerBroken: A fork server died (the only way a job ends the worker).
        """
        link = self.links[self.jobs % len(self.links)]
        self.jobs += 1
        self._cpu_limit = int(job["timeout"]) + 1
        total = len(job["cases"]) if job["kind"] == "io" else 1
        try:
            if self.cgroups is not None:
                self.cgroups.set_limit(link.index, int(job["memory_mb"]))
        except OSError as e:
            return proto.verdict(Status.KILLED, total=total, error_type="SandboxSetupError",
                                 error=f"cannot set the job's memory limit: {e}")
        trusted = None
        if job["kind"] == "io":
            entry = {"g": str(job["entry"])}
            requests = [(proto.CALL, [entry, [], enc.to_jsonable(list(args)), {"d": []}])
                        for args, _ in job["cases"]]
        else:
            try:
                trusted = self._trusted_code(job)
            except Exception as e:  # noqa: BLE001 - the trusted test code is broken
                return proto.verdict(Status.ERROR, total=total, error_type="HarnessError",
                                     error=f"the trusted test code failed to load: "
                                           f"{type(e).__name__}: {e}")
            requests, _complete = self._predict(job, trusted)
        t0 = time.monotonic()
        budget = Budget(self._budget(int(job["memory_mb"])))
        self._limit_memory(budget.limit)
        try:
            out = self._collected(job, link, requests, total, trusted, budget,
                                  trusted.request_bytes if trusted is not None else None)
        finally:
            self._disarm()
            self._limit_memory(0)
            if link.running is not None:  # never leave a child alive into the next job
                link.kill()
            elif link.dying:  # the judge failed while the tree was being killed
                link.kill_end()
            if self._ch is not None:
                self._ch.close()
                self._ch = None
        self._memory_verdict(out, link)
        out["duration"] = time.monotonic() - t0
        return out

    def _budget(self, memory_mb: int) -> int:
        """Bytes the judge may spend on one job's answers: twice the job's memory limit, at
        least :data:`MIN_JUDGE_BUDGET`; in a container (``container_mb`` in the config), no
        more than what the container holds beside the job and 64 MiB for the judge itself
        (at least 32 MiB)."""
        limit = max(MIN_JUDGE_BUDGET, 2 * (memory_mb << 20))
        container = int(self.cfg.get("container_mb") or 0)
        if container:
            limit = min(limit, max(32, container - memory_mb - 64) << 20)
        return limit

    def _limit_memory(self, budget: int) -> None:
        """The judge's own address space while it scores a job: its size now, plus the
        job's budget, plus :data:`JUDGE_SLACK` (``budget=0``: back to the hard limit, for
        reading the next job's frame, which the host sends)."""
        try:
            if self._as_hard is None:
                self._as_hard = resource.getrlimit(resource.RLIMIT_AS)[1]
                self._statm = os.open("/proc/self/statm", os.O_RDONLY | os.O_CLOEXEC)
            hard = self._as_hard
            want = hard
            if budget:
                size = int(os.pread(self._statm, 64, 0).split()[0]) * _PAGE
                want = size + budget + JUDGE_SLACK
                if hard != resource.RLIM_INFINITY:
                    want = min(want, hard)
            resource.setrlimit(resource.RLIMIT_AS, (want, hard))
        except (OSError, ValueError):
            pass  # no /proc: the budget still bounds what the judge decodes

    def _oom_kills(self, index: int) -> int:
        """OOM kills counted so far in fork server ``index``'s memory cgroup (its events
        file is kept open and read with ``pread``: this runs after every job)."""
        fd = self._events.get(index)
        if fd is None:
            path = getattr(self.cgroups.leaves[index], "events_file", None)
            if path is None:
                return int(self.cgroups.oom_kills(index))
            fd = self._events[index] = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        data = b"\n" + os.pread(fd, 4096, 0)
        at = data.find(b"\noom_kill ")
        return int(data[at + 10:].split(None, 1)[0]) if at >= 0 else 0

    def _memory_verdict(self, out: dict[str, Any], link: ServerLink) -> None:
        """``memory`` when, and only when, the job's memory cgroup counted an OOM kill
        during the job (the count is read after every job, so a kill is never charged to a
        later one)."""
        if self.cgroups is None:
            return
        now = self._oom_kills(link.index)
        oom, self._oom[link.index] = now > self._oom[link.index], now
        if oom and out["status"] != Status.PASSED.value:
            out.update(proto.verdict(
                Status.MEMORY, passed=out["passed"], total=out["total"],
                stdout_tail=out["stdout_tail"], error_type="MemoryLimit",
                error="the job's processes went over its memory limit (cgroup) and were "
                      "killed"))

    def _arm(self, seconds: float) -> None:
        """Bound trusted code running on candidate data (the check) to ``seconds``: the
        alarm raises a timeout fault between its bytecodes."""
        self._armed = True
        signal.setitimer(signal.ITIMER_REAL, max(0.01, seconds))

    def _disarm(self) -> None:
        self._armed = False
        signal.setitimer(signal.ITIMER_REAL, 0)

    def _start(self, job: dict[str, Any], link: ServerLink, requests: list[tuple[bytes, Any]],
               timeout: float, budget: Budget, sent: bytes | None = None) -> Channel:
        _pid, fds = link.take()
        deadline = time.monotonic() + timeout
        ch = self._ch = Channel(*fds, deadline, self.cfg, budget)
        entry = str(job["entry"]).encode("utf-8", "surrogatepass")
        program = str(job["program"]).encode("utf-8", "surrogatepass")
        head = b"%d %d %d %d\n" % (int(job["timeout"]) + 1, int(job["memory_mb"]), len(entry),
                                    len(program)) + entry + program
        if sent is None:  # io cases: nothing refers to their results
            sent = b"".join(request_bytes(tag, tree, False) for tag, tree in requests)
        ch.send(head + sent)
        return ch

    def _loaded(self, ch: Channel) -> tuple[str, str] | None:
        """Wait for the program to load: None, or (kind, detail) of why it did not."""
        kind, payload = ch.recv()
        if kind == proto.SETUP_FAILED:
            return "setup", "{}: {}".format(*proto.parse_exception(payload))
        if kind != proto.READY:
            raise ch.fail("protocol", f"unexpected first reply {chr(kind)!r}")
        kind, payload = ch.recv()
        if kind == proto.LOADED:
            return None
        if kind == proto.RAISED:
            return "raised", "{}\0{}".format(*proto.parse_exception(payload))
        raise ch.fail("protocol", f"unexpected reply {chr(kind)!r} to the program")

    def _finish(self, ch: Channel, link: ServerLink) -> tuple[int, bool, float]:
        """Wait until the candidate's tree is gone (the kill was sent), then drain its
        output."""
        died = link.kill_end()
        ch.drain_output()
        ch.close()
        self._ch = None
        return died

    def _kill_begin(self, ch: Channel, link: ServerLink) -> None:
        exiting = ch.fault is not None and ch.fault.kind == "eof"
        link.kill_begin(0.1 if exiting else 0.0)

    def _collected(self, job: dict[str, Any], link: ServerLink,
                   requests: list[tuple[bytes, Any]], total: int, trusted: _Trusted | None,
                   budget: Budget, sent: bytes | None) -> dict[str, Any]:
        """Send all, collect all, kill, then judge."""
        ch = self._start(job, link, requests, float(job["timeout"]), budget, sent)
        ops = _Ops("replay", requests, [], cfg_max(self.cfg), budget)
        failed: tuple[str, str] | None = None
        try:
            failed = self._loaded(ch)
            if failed is None:
                while len(ops.answers) < len(requests):
                    ops.answers.append(ch.recv())
                handles = ops.handles()
                if handles:
                    ch.send(proto.VIEWS + json.dumps(handles).encode() + b"\n")
                    ops.store_views(handles, *ch.recv())
        except Fault as f:
            ops.fault = f
        # The kill is on its way (SIGKILL cannot be caught); judging overlaps with the
        # tree's teardown but does nothing the candidate could see: no pipe is closed and
        # no byte written until the server confirms that every process of the job is gone.
        self._kill_begin(ch, link)
        out: dict[str, Any] | None = None
        late: BaseException | None = None
        if failed is None and not (ops.fault is not None and ops.fault.kind == "budget"):
            try:  # judging gets what is left of the job's time, and a second more
                self._arm(max(ch.deadline - time.monotonic(), 0.0) + 1.0)
                if job["kind"] == "io":
                    out = self._score_io(job, ops)
                else:
                    assert trusted is not None
                    out = self._score_assert(job, trusted, ops)
            except (Diverged, Fault) as e:
                late = e
            finally:
                self._disarm()
        died = self._finish(ch, link)
        tail = ch.tail_text()
        if failed is not None:
            return self._not_loaded(failed, total, tail)
        if isinstance(late, Diverged):
            return proto.verdict(
                Status.FAILED, total=total, stdout_tail=tail, error_type="UnpredictableCheck",
                error=f"{late.detail}: this check's calls depend on the program's answers, "
                      "which the judge does not feed back to a running program, so the job "
                      "is scored as failed")
        if late is None and out is None:  # over budget while collecting
            late = ops.fault
        if isinstance(late, Fault):
            return self._fault_verdict(late, died, tail, 0, total)
        assert out is not None
        if "fault" in out:  # io: answers stopped early; how the candidate ended decides
            return self._fault_verdict(out["fault"], died, tail, out["passed"], total)
        out.update(total=total, stdout_tail=tail)
        return out

    def _not_loaded(self, failed: tuple[str, str], total: int, tail: str) -> dict[str, Any]:
        kind, detail = failed
        if kind == "setup":
            return proto.verdict(Status.KILLED, total=total, error_type="SandboxSetupError",
                                 error=detail, stdout_tail=tail)
        etype, _, msg = detail.partition("\0")
        return proto.verdict(Status.ERROR, total=total, error_type=etype, error=msg,
                             stdout_tail=tail)

    # -- scoring ------------------------------------------------------------------------
    def _score_io(self, job: dict[str, Any], ops: _Ops) -> dict[str, Any]:
        """The verdict of an io job from its answers (``{"fault": ..., "passed": n}`` when
        they stopped early: the caller decides with how the candidate ended)."""
        total = len(job["cases"])
        tol = float(job["tol"])
        passed = 0
        first_exc: tuple[str, str] | None = None
        first_wrong = ""
        for i, (args, expected) in enumerate(job["cases"]):
            if i >= len(ops.answers):
                break
            kind, payload = ops.answers[i]
            if kind == proto.VALUE:
                try:  # a Fault (over the job's budget) ends the scoring
                    got = ops.budget.decode(payload, False, max_bytes=ops.max_result)
                except enc.EncodingError as e:
                    first_exc = first_exc or ("BadResult", f"case {i}: {e}")
                    continue
                try:
                    same = enc.values_equal(got, expected, tol)
                except Exception:  # noqa: BLE001 - e.g. RecursionError on a deep value
                    same = False
                if same:
                    passed += 1
                elif not first_wrong:
                    first_wrong = (f"case {i}: {enc.render(args)} -> expected "
                                   f"{enc.render(expected)}, got {enc.render(got)}")
                del got
            elif kind == proto.HANDLE:
                if not first_wrong:
                    first_wrong = (f"case {i}: {enc.render(args)} -> expected "
                                   f"{enc.render(expected)}, got a "
                                   f"{payload[:100].decode('utf-8', 'replace')} object")
            elif kind in (proto.RAISED, proto.UNENCODABLE):
                et, msg = proto.parse_exception(payload)
                if kind == proto.UNENCODABLE:
                    et, msg = "UnencodableResult", f"{et}: {msg}"
                first_exc = first_exc or (et, f"case {i}: {msg}")
            else:
                ops.fault = ops.fault or Fault("protocol", f"unexpected reply {chr(kind)!r}")
                break
        if len(ops.answers) < total or (ops.fault is not None and ops.fault.kind != "eof"):
            return {"fault": ops.fault or Fault("eof"), "passed": passed}
        if passed == total:
            return proto.verdict(Status.PASSED, passed=total)
        if first_exc is not None:
            return proto.verdict(Status.ERROR, passed=passed, error_type=first_exc[0],
                                 error=first_exc[1])
        return proto.verdict(Status.FAILED, passed=passed, error_type="WrongAnswer",
                             error=first_wrong)

    def _namespace(self, job: dict[str, Any], trusted: _Trusted, ops: _Ops,
                   record: bool) -> dict[str, Any]:
        ns: dict[str, Any] = {"__name__": "__judge__", "__builtins__": builtins}
        for name in trusted.program_names:
            if name in JUDGE_MODULES:
                try:
                    ns[name] = __import__(name)
                    continue
                except ImportError:
                    pass
            ns[name] = _Ref(ops, {"g": name})
        if not record:
            ns[MESSAGE_NAME] = _message(ops)
        random.seed(_SEED)
        helpers = trusted.helpers_rec if record else trusted.helpers
        if helpers is not None:
            exec(helpers, ns)
        exec(trusted.check_rec if record else trusted.check, ns)
        return ns

    def _score_assert(self, job: dict[str, Any], trusted: _Trusted, ops: _Ops) -> dict[str, Any]:
        entry = _Ref(ops, {"g": str(job["entry"])})
        try:
            ns = self._namespace(job, trusted, ops, record=False)
            check = ns[CHECK_NAME]
            # check code may call the function by its name (HumanEval/33 calls sort_third):
            # that name must reach the candidate too, not the helpers' stub
            ns[str(job["entry"])] = entry
            check(entry)
            if ops.raised is not None:  # the check swallowed a fault or a divergence
                raise ops.raised
            if ops.errors:  # the check swallowed a candidate error: still not a pass
                raise ops.errors[0]
        except CandidateError as e:
            return proto.verdict(Status.ERROR, error_type=e.etype, error=e.msg)
        except (Fault, Diverged):
            raise
        except AssertionError as e:
            if isinstance(ops.raised, (Fault, Diverged)):
                raise ops.raised from None
            return proto.verdict(Status.FAILED, error_type="WrongAnswer",
                                 error=f"assertion failed {_where(e)}".strip())
        except Exception as e:  # noqa: BLE001 - the check raised on the candidate's value
            if isinstance(ops.raised, (Fault, Diverged)):
                raise ops.raised from None
            return proto.verdict(Status.FAILED, error_type="WrongAnswer",
                                 error=f"check raised {type(e).__name__}: {_safe_str(e)}")
        if ops.fault is not None and ops.fault.kind != "eof":
            raise ops.fault
        return proto.verdict(Status.PASSED, passed=1)

    def _trusted_code(self, job: dict[str, Any]) -> _Trusted:
        key = (str(job["helpers"]), str(job["check"]), str(job["entry"]))
        trusted = self._trusted.get(key)
        if trusted is None:
            trusted = _Trusted(*key)
            if len(self._trusted) >= 2048:
                self._trusted.clear()
            self._trusted[key] = trusted
        return trusted

    def _predict(self, job: dict[str, Any], trusted: _Trusted) -> tuple[list[tuple[bytes, Any]], bool]:
        """The calls the check makes on a correct program (cached per task)."""
        if trusted.prediction is None:
            ops = _Ops("record")
            complete = False
            self._recording = True
            signal.setitimer(signal.ITIMER_REAL, _RECORD_BUDGET)
            try:
                ns = self._namespace(job, trusted, ops, record=True)
                check = ns[CHECK_NAME]
                entry = _Ref(ops, {"g": str(job["entry"])})
                ns[str(job["entry"])] = entry
                check(entry)
                complete = self._recording and ops.raised is None
            except StopRecording:
                pass
            except BaseException:  # noqa: BLE001 - anything else just ends the prediction
                pass
            finally:
                self._recording = False
                signal.setitimer(signal.ITIMER_REAL, 0)
            trusted.prediction = (ops.requests, complete)
            keep = referenced(ops.requests)
            trusted.request_bytes = b"".join(request_bytes(t, tree, k in keep)
                                             for k, (t, tree) in enumerate(ops.requests))
        return trusted.prediction

    def _fault_verdict(self, fault: Fault, died: tuple[int, bool, float], tail: str,
                       passed: int, total: int) -> dict[str, Any]:
        st, alive, cpu = died
        kw = dict(passed=passed, total=total, stdout_tail=tail)
        if fault.kind == "timeout":
            if fault.detail == "judge deadline":
                return proto.verdict(Status.ERROR, error_type="JudgeBudget",
                                     error="judging the answers did not end within the "
                                           "job's deadline and one second more", **kw)
            return proto.verdict(Status.TIMEOUT, error_type="Timeout",
                                 error="wall-clock time limit exceeded; the process tree was "
                                       "killed", **kw)
        if fault.kind == "budget":
            return proto.verdict(Status.ERROR, error_type="JudgeBudget", error=fault.detail,
                                 **kw)
        if fault.kind == "output":
            return proto.verdict(Status.KILLED, error_type="OutputLimit", error=fault.detail, **kw)
        if fault.kind == "too_large":
            return proto.verdict(Status.ERROR, error_type="ResultTooLarge", error=fault.detail,
                                 **kw)
        if fault.kind == "harness":
            return proto.verdict(Status.ERROR, error_type="HarnessError", error=fault.detail,
                                 **kw)
        if fault.kind == "protocol":
            return proto.verdict(Status.ERROR, error_type="ProtocolError", error=fault.detail,
                                 **kw)
        # eof: the candidate went away before the tests finished (an OOM kill counted by
        # the job's cgroup turns this into `memory` afterwards: see _memory_verdict)
        if not alive and st > 0 and os.WIFSIGNALED(st):
            sig = os.WTERMSIG(st)
            try:
                name = signal.Signals(sig).name
            except ValueError:
                name = f"signal {sig}"
            if sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu >= self._cpu_limit - 0.05):
                return proto.verdict(Status.TIMEOUT, error_type="CPUTimeLimit",
                                     error=f"CPU time limit exceeded ({name})", **kw)
            return proto.verdict(Status.KILLED, error_type=name,
                                 error=f"the candidate was killed by {name} before the tests "
                                       "finished", **kw)
        if not alive and st >= 0 and os.WIFEXITED(st):
            return proto.verdict(Status.ERROR, error_type="EarlyExit",
                                 error=f"the candidate exited with code {os.WEXITSTATUS(st)} "
                                       "before the tests finished", **kw)
        return proto.verdict(Status.ERROR, error_type="EarlyExit",
                             error="the candidate closed its result channel before the tests "
                                   "finished", **kw)


def _message(ops: _Ops) -> Any:
    """The ``assert`` message hook of the real check: the message, evaluated with the
    answers already collected (a call not made before is not made now), or a note."""

    def message(thunk: Any) -> Any:
        ops.quiet += 1
        try:
            return thunk()
        except (Exception, CandidateError, Diverged, NotRecorded):  # noqa: BLE001
            return "(message not evaluated: it asks the program something not asked before)"
        finally:
            ops.quiet -= 1

    return message


def cfg_max(cfg: dict[str, Any]) -> int:
    return int(cfg["max_result_bytes"]) + 64


def _safe_str(e: BaseException) -> str:
    try:
        return proto.clean(str(e), 500)
    except BaseException:  # noqa: BLE001
        return "<unprintable>"


def _where(e: BaseException) -> str:
    tb = e.__traceback__
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<check>":
            line = tb.tb_lineno
        tb = tb.tb_next
    msg = _safe_str(e)
    return (f"at check line {line}" if line else "") + (f": {msg}" if msg else "")
