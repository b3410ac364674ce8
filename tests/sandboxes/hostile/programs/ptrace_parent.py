# ruff: noqa: F821
"""PTRACE_ATTACH to the parent (the worker/judge) and every other visible process: "pwned" on success."""
import ctypes
import os


def f():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
    targets = [os.getppid()] + [int(p) for p in os.listdir("/proc") if p.isdigit()]
    for pid in targets:
        if pid == os.getpid():
            continue
        if libc.ptrace(16, pid, None, None) == 0:  # PTRACE_ATTACH
            libc.ptrace(17, pid, None, None)  # PTRACE_DETACH
            return "pwned"
    return "denied"
