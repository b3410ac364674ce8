# ruff: noqa: F821
"""Fill the scratch dir with 1 MiB files (capped at 3 GiB): "pwned" if nothing bounds the scratch space."""


def f():
    chunk = b"\1" * (1 << 20)
    for i in range(3072):
        with open(f"fill{i}.bin", "wb") as fh:
            fh.write(chunk)
    return "pwned"
