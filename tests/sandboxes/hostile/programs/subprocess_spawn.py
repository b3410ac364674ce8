# ruff: noqa: F821
"""Spawn long-lived subprocesses (a new session, a shell writing to the host /tmp, a sleep)."""
import subprocess
import sys


def f():
    spawned = 0
    commands = [
        [sys.executable, "-c", "import time; time.sleep(60)", CTX["comm"]],
        ["/bin/sh", "-c", f"echo pwned > {CTX['targets']['tmp_sh']}; sleep {CTX['sleep_arg']}"],
        ["sleep", CTX["sleep_arg"]],
    ]
    for cmd in commands:
        try:
            subprocess.Popen(cmd, start_new_session=True)
            spawned += 1
        except OSError:
            pass
    return spawned
