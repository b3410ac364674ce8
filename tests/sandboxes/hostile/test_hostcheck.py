"""The host checks themselves must be able to fail: an unsandboxed leak is caught."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import tempfile

from .hostcheck import HostGuard, HostView


def test_guard_catches_a_marked_daemon_a_stray_file_and_a_temp_entry() -> None:
    token = secrets.token_hex(6)
    private = tempfile.mkdtemp(prefix="cgh-selftest-")
    stray = f"/tmp/cgh-{token}"
    watched = os.path.join(os.path.dirname(private), f"cgh-{token}-watched")
    with open(watched, "w") as fh:
        fh.write("original")
    guard = HostGuard(HostView(temp_dirs=[private]), markers=[token], forbidden_paths=[stray],
                      watched_files=[watched])
    # An "escaped" daemon named like a hostile run, in its own session (as if reparented).
    code = ("import ctypes, time; ctypes.CDLL(None).prctl(15, ctypes.c_char_p(b'cgh"
            + token + "'), 0, 0, 0); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    try:
        with open(stray, "w") as fh:
            fh.write("pwned")
        os.mkdir(os.path.join(private, "left-behind"))
        with open(watched, "a") as fh:
            fh.write("tampered")
        problems = "\n".join(guard.problems())
        assert "leaked process" in problems and f"pid={proc.pid}" in problems
        assert f"file created outside the sandbox: {stray}" in problems
        assert "left-behind" in problems
        assert "host file modified" in problems
    finally:
        guard.cleanup()
        proc.wait(10)
        os.rmdir(os.path.join(private, "left-behind"))
        os.rmdir(private)
        os.unlink(watched)
    assert proc.returncode == -9, "cleanup() kills the marked process"
    assert not os.path.exists(stray), "cleanup() removes the stray file"
