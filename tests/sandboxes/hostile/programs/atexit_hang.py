# ruff: noqa: F821
"""Register an atexit handler (and a finaliser) that hangs forever after the entry point returns."""
import atexit
import time

atexit.register(time.sleep, 3600)


class _Hang:
    def __del__(self):
        time.sleep(3600)


_keep = _Hang()


def f():
    return "returned"
