# ruff: noqa: F821
"""Fork a child into its own process group (out of reach of a killpg), ignoring SIGTERM; it sleeps."""
import os
import signal
import time


def f():
    pid = os.fork()
    if pid == 0:
        os.setpgid(0, 0)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        time.sleep(60)
        os._exit(0)
    return "spawned"
