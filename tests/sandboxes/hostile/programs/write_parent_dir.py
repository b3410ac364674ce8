# ruff: noqa: F821
"""Walk up out of the work dir (relative ``..`` and absolute parents) and create files there."""
import os


def f():
    wrote = []
    name = os.path.basename(CTX["targets"]["tmp"]) + "-up"
    here = os.getcwd()
    candidates = [os.path.join("..", name), os.path.join("..", "..", name)]
    candidates.append(os.path.join(os.path.dirname(here), name))
    for path in candidates:
        try:
            with open(path, "w") as fh:
                fh.write("pwned")
            wrote.append(os.path.abspath(path))
        except OSError:
            pass
    return wrote
