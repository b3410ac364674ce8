# ruff: noqa: F821
"""SIGKILL every pid visible in /proc except ourselves (run beside a victim job)."""
import os
import signal


def f():
    me = os.getpid()
    for pid in os.listdir("/proc"):
        if pid.isdigit() and int(pid) != me:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except OSError:
                pass
    return "survived"
