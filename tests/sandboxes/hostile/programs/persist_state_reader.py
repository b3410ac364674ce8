# ruff: noqa: F821
"""Second half of a cross-job attack: look for what an earlier job planted (files in the work
dir, /tmp, /dev/shm and HOME, environment, module state): "pwned" if anything survived."""
import json
import os
import sys

NAME = "cgh-persist-" + CTX["persist_token"]


def f():
    found = []
    for d in (".", "..", "/tmp", "/dev/shm", "/var/tmp", os.path.expanduser("~")):
        try:
            if os.path.exists(os.path.join(d, NAME)):
                found.append(d)
        except OSError:
            pass
    if os.environ.get("CGH_PERSIST") == NAME:
        found.append("environ")
    if getattr(json, "cgh_persist", None) == NAME or getattr(sys, "cgh_persist", None) == NAME:
        found.append("modules")
    return "pwned" if found else "clean"
