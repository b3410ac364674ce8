# ruff: noqa: F821
"""Hard-link a host project file into the work dir and open the link for writing: "pwned" if it worked."""
import os


def f():
    os.link(CTX["project_file"], "linked")
    fd = os.open("linked", os.O_WRONLY | os.O_APPEND)
    os.close(fd)
    return "pwned"
