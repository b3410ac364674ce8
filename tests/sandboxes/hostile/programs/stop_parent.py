# ruff: noqa: F821
"""SIGSTOP the parent and its group, then hang: the harness must still time out and recover."""
import os
import signal
import time


def f():
    ppid = os.getppid()
    for sig_target in (lambda: os.kill(ppid, signal.SIGSTOP), lambda: os.killpg(os.getpgid(ppid), signal.SIGSTOP)):
        try:
            sig_target()
        except OSError:
            pass
    time.sleep(3600)
