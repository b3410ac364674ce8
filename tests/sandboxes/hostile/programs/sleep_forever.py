# ruff: noqa: F821
"""Sleep far past the timeout (no CPU used, so only a wall-clock limit stops it)."""
import time


def f():
    time.sleep(3600)
    return None
