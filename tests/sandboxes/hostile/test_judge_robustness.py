"""Class 3: no candidate data can crash, stall or restart the judge.

Every job below ends with a verdict of its own (never a worker restart, never the sandbox's
fault), in bounded time, and the worker that ran it keeps running. The last two tests fuzz
the judge with hypothesis through real sandboxes: values the candidate returns (nested,
surrogates, colliding hashes, huge ints) and raw bytes it writes in place of its replies.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandboxes import ExecResult, IOCase, Sandbox, Status, TestSuite
from sandboxes import encoding as enc
from sandboxes.worker import protocol as proto

MOD = 2**61 - 1  # ints that differ by a multiple of this share a hash
SECRET = "secret-" + secrets.token_hex(8)
IO = TestSuite(kind="io", entry_point="f", cases=(IOCase((1,), SECRET),))
CHECK = TestSuite(kind="assert", entry_point="f",
                  check=f"def check(candidate):\n    assert candidate(1) == {SECRET!r}\n")


def _raw(reply: bytes, then: str = "return 0") -> str:
    """A program whose answer is ``reply`` written straight to the judge's pipe."""
    return (f"import os\ndef f(x):\n    os.write(4, {reply!r} + b'\\n')\n"
            f"    os.write(4, {reply!r} + b'\\n')\n    {then}\n")


HOSTILE = {
    "surrogate_in_exception": "def f(x):\n    raise ValueError('\\ud800 lone')\n",
    "surrogate_in_exception_type": "class E(Exception):\n    pass\nE.__name__ = '\\udcff'\n"
                                   "def f(x):\n    raise E('x')\n",
    "surrogate_in_value": "def f(x):\n    return ['\\ud800', {'\\udfff': b'\\xff'}]\n",
    "surrogate_in_output": "import sys\nsys.stdout.write('\\ud800')\ndef f(x):\n    return 1\n",
    "deep_exception_reply": _raw(b"E" + b"[" * 200_000),
    "deep_value_reply": _raw(b"V" + b"[" * 100_000 + b"]" * 100_000),
    "deep_value": "def f(x):\n    a = []\n    for _ in range(100_000):\n        a = [a]\n"
                  "    return a\n",
    "colliding_set_reply": _raw(b'V{"s":[' + b",".join(str(5 + i * MOD).encode()
                                                     for i in range(60_000)) + b"]}"),
    "colliding_set_value": f"def f(x):\n    return {{5 + i * {MOD} for i in range(5_000)}}\n",
    "colliding_list_value": f"def f(x):\n    return [5 + i * {MOD} for i in range(60_000)]\n",
    "huge_int_reply": _raw(b'V{"i":"' + b"f" * 2_000_000 + b'"}'),
    "huge_decimal_reply": _raw(b"V" + b"9" * 1_000_000),
    "fake_setup_failure": "import os\nos.write(4, b'SOSError 6e6f\\n')\ndef f(x):\n    return 1\n",
    "fake_setup_failure_in_call": _raw(b"SOSError 6e6f"),
    "malformed_exception_reply": _raw(b"E \xff\xfe zz"),
    "unknown_tag_reply": _raw(b"Q{}"),
    "empty_reply": _raw(b""),
    "kill_parent": "import os\ndef f(x):\n    os.kill(os.getppid(), 9)\n    return 0\n",
    "kill_everything_visible": "import os\ndef f(x):\n    for pid in [-1, 0, 1] + list(range(2, 400)):\n"
                               "        try:\n            os.kill(pid, 9)\n"
                               "        except OSError:\n            pass\n    return 0\n",
}


@pytest.fixture(scope="module")
def box(sandbox_backend: str, make_sandbox_or_skip: Any) -> Iterator[Sandbox]:
    sandbox = make_sandbox_or_skip(sandbox_backend, workers=1, timeout=3.0)
    yield sandbox
    sandbox.close()


def _worker(r: ExecResult) -> Any:
    return r.metadata.get("worker_pid") or r.metadata.get("container")


def _contained(box: Sandbox, r: ExecResult, before: Any, where: str) -> None:
    assert r.status is not Status.PASSED, f"{where}: {r}"
    assert r.error_type not in ("HarnessError", "WorkerDied", "WorkerUnresponsive",
                                "JudgeError", "SandboxSetupError"), f"{where}: {r}"
    assert r.metadata.get("attempts") == 1, f"{where}: the job was retried: {r}"
    assert _worker(r) == before, f"{where}: the worker was replaced"
    r.to_dict()  # every string in the verdict encodes


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_candidate_data_cannot_break_the_judge(box: Sandbox, name: str) -> None:
    before = _worker(box.run("def f(x):\n    return 1\n", IO))
    for suite in (IO, CHECK):
        t0 = time.monotonic()
        r = box.run(HOSTILE[name], suite, timeout=3.0)
        assert time.monotonic() - t0 < 3.0 + 5.0, f"{name}: {time.monotonic() - t0:.1f} s"
        _contained(box, r, before, name)
    ok = box.run(f"def f(x):\n    return {SECRET!r}\n", CHECK)
    assert ok.ok and _worker(ok) == before, ok


def test_a_lone_surrogate_message_comes_back_readable(box: Sandbox) -> None:
    r = box.run(HOSTILE["surrogate_in_exception"], IO)
    assert r.status is Status.ERROR and r.error_type == "ValueError", r
    assert "lone" in r.error and r.error.encode("utf-8")


def test_a_forged_setup_failure_is_the_candidates_error(box: Sandbox) -> None:
    """Only the sandbox's own set-up (before any candidate code runs) can report a set-up
    failure; the same line from the candidate is a protocol error of its job."""
    r = box.run(HOSTILE["fake_setup_failure"], IO)
    assert r.status is Status.ERROR and r.error_type == "ProtocolError", r


VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(),
              st.integers(min_value=0, max_value=20).map(lambda i: 5 + i * MOD),
              st.integers(min_value=4000, max_value=20000).map(lambda b: 3 ** b),
              st.text(alphabet=st.characters(), max_size=8),
              st.sampled_from(["\ud800", "\udfff x", "\x00", "\U0010ffff"])),
    lambda inner: st.lists(inner, max_size=5) | st.tuples(inner, inner)
    | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    | st.frozensets(st.integers() | st.integers(0, 30).map(lambda i: 7 + i * MOD), max_size=40),
    max_leaves=30,
)


def _src(v: Any) -> str:
    """Python source for a generated value (``repr`` refuses ints over 4300 digits)."""
    t = type(v)
    if t is int:
        return hex(v)
    if t is float:
        return f"float({repr(v)!r})"
    if t is list:
        return "[" + ", ".join(map(_src, v)) + "]"
    if t is tuple:
        return "(" + "".join(_src(x) + ", " for x in v) + ")"
    if t is dict:
        return "{" + ", ".join(f"{_src(k)}: {_src(x)}" for k, x in v.items()) + "}"
    if t is frozenset:
        return "frozenset([" + ", ".join(map(_src, v)) + "])"
    return repr(v)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=VALUES, kind=st.sampled_from(["return", "raise"]))
def test_fuzz_values_the_candidate_returns(box: Sandbox, value: Any, kind: str) -> None:
    before = _worker(box.run("def f(x):\n    return 1\n", IO))
    body = f"return {_src(value)}" if kind == "return" else f"raise ValueError({_src(value)})"
    r = box.run(f"def f(x):\n    {body}\n", CHECK, timeout=3.0)
    _contained(box, r, before, body[:200])


REPLIES = st.one_of(
    st.binary(max_size=200).filter(lambda b: b"\n" not in b),
    st.builds(lambda tag, body: tag + body, st.sampled_from([b"V", b"E", b"U", b"H", b"S", b"Y",
                                                             b"R", b"D"]),
              st.binary(max_size=200).filter(lambda b: b"\n" not in b)),
    st.builds(lambda v: b"V" + enc.encode(v).encode("utf-8", "surrogatepass"),
              st.recursive(st.integers() | st.text(max_size=5),
                           lambda i: st.lists(i, max_size=4), max_leaves=10)),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(reply=REPLIES)
def test_fuzz_raw_replies(box: Sandbox, reply: bytes) -> None:
    before = _worker(box.run("def f(x):\n    return 1\n", IO))
    for suite in (IO, CHECK):
        r = box.run(_raw(reply), suite, timeout=3.0)
        _contained(box, r, before, repr(reply)[:200])


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=400))
def test_fuzz_the_exception_parser(payload: bytes) -> None:
    """The judge's parser of exception replies never raises, whatever the bytes."""
    etype, msg = proto.parse_exception(payload)
    assert isinstance(etype, str) and isinstance(msg, str)
    msg.encode("utf-8")
