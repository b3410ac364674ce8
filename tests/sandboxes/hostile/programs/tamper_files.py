# ruff: noqa: F821
"""Open the interpreter, the standard library and the harness's own sources for writing (never
writes a byte), and try to create files beside them: "pwned" if any of that was allowed."""
import json
import os
import sys


def f():
    opened = []
    paths = [os.__file__, json.__file__, sys.executable, *CTX["harness_files"]]
    for path in paths:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        except OSError:
            continue
        os.close(fd)
        opened.append(path)
    name = "cgh-" + CTX["token"]
    for path in (os.path.join(os.path.dirname(os.__file__), name), CTX["targets"]["sandbox_pkg"]):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except OSError:
            continue
        os.close(fd)
        opened.append(path)
    return "pwned" if opened else "denied"
