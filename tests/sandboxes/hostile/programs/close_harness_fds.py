# ruff: noqa: F821
"""Close (and re-open onto /dev/null) every descriptor, the harness's channels included, then return."""
import os


def f():
    os.closerange(0, 65536)
    for _ in range(3):
        try:
            os.open("/dev/null", os.O_RDWR)
        except OSError:
            pass
    return "closed"
