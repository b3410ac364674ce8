# ruff: noqa: F821
"""os._exit(0) at import time, skipping every handler: exit status 0 is not a pass."""
import os

os._exit(0)


def f():
    return None
