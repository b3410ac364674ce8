# ruff: noqa: F821
"""Create files in /var/tmp and /dev/shm (host-persistent scratch places)."""


def f():
    wrote = []
    for key in ("vartmp", "shm"):
        try:
            with open(CTX["targets"][key], "w") as fh:
                fh.write("pwned")
            wrote.append(key)
        except OSError:
            pass
    return wrote
