# ruff: noqa: F821
"""Start threads until refused (capped at 3,000): "pwned" if none of the limits stopped it."""
import threading
import time


def f():
    made = 0
    for _ in range(3000):
        try:
            threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
        except (RuntimeError, MemoryError):
            break
        made += 1
    return "pwned" if made >= 3000 else made
