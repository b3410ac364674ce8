# ruff: noqa: F821
"""sys.exit(0) at import time: a clean exit status is not a pass."""
import sys

print("all tests passed")
sys.exit(0)


def f():
    return None
