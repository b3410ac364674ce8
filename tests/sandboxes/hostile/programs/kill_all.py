# ruff: noqa: F821
"""kill(-1, SIGKILL): every process this user may signal (run beside a victim job)."""
import os
import signal


def f():
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.kill(-1, signal.SIGKILL)
    return "survived"
