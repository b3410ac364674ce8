# ruff: noqa: F821
"""unshare(CLONE_NEWUSER) via ctypes (the door to fake root and every other namespace): "pwned" if it works."""
import ctypes
import os

CLONE_NEWUSER = 0x10000000


def f():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWUSER) == 0:
        return "pwned"
    if hasattr(os, "unshare"):
        try:
            os.unshare(CLONE_NEWUSER)
            return "pwned"
        except OSError:
            pass
    return "denied"
