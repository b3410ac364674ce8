# ruff: noqa: F821
"""First half of a cross-job attack (run before persist_state_reader): plant files, environment
and module state wherever a later job on the same worker might see them."""
import json
import os
import sys

NAME = "cgh-persist-" + CTX["persist_token"]


def f():
    for d in (".", "..", "/tmp", "/dev/shm", "/var/tmp", os.path.expanduser("~")):
        try:
            with open(os.path.join(d, NAME), "w") as fh:
                fh.write("x")
        except OSError:
            pass
    os.environ["CGH_PERSIST"] = NAME
    os.putenv("CGH_PERSIST", NAME)
    json.cgh_persist = NAME
    sys.cgh_persist = NAME
    return "planted"
