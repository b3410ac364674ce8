# ruff: noqa: F821
"""SIGKILL the parent (the warm worker / runner / judge), its process group, then return."""
import os
import signal


def f():
    ppid = os.getppid()
    try:
        os.kill(ppid, signal.SIGKILL)
    except OSError:
        pass
    try:
        os.killpg(os.getpgid(ppid), signal.SIGKILL)
    except OSError:
        pass
    return "killed"
