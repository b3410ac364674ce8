# ruff: noqa: F821
"""Classic daemonisation: fork, setsid, fork again, close fds, chdir /; the grandchild sleeps."""
import os
import signal
import time


def f():
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
            os.chdir("/")
            os.closerange(0, 1024)
            time.sleep(60)
        os._exit(0)
    os.wait()
    return "daemonised"
