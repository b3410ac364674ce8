# ruff: noqa: F821
"""Look for a host environment secret in os.environ and in /proc/*/environ of every visible process."""
import os


def f():
    name = CTX["env_name"]
    if name in os.environ:
        return os.environ[name]
    key = (name + "=").encode()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as fh:
                data = fh.read()
        except OSError:
            continue
        for item in data.split(b"\0"):
            if item.startswith(key):
                return item[len(key):].decode()
    return None
