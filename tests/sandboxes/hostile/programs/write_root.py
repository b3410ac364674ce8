# ruff: noqa: F821
"""Create files in /root and in the host user's home (where ~/.bashrc or ~/.ssh live)."""


def f():
    wrote = []
    for key in ("root", "home"):
        try:
            with open(CTX["targets"][key], "w") as fh:
                fh.write("pwned")
            wrote.append(key)
        except OSError:
            pass
    return wrote
