# ruff: noqa: F821
"""Ignore every catchable signal (TERM, INT, HUP, ALRM, XCPU, USR1/2), then spin."""
import signal

for _name in ("SIGTERM", "SIGINT", "SIGHUP", "SIGALRM", "SIGXCPU", "SIGUSR1", "SIGUSR2", "SIGQUIT"):
    try:
        signal.signal(getattr(signal, _name), signal.SIG_IGN)
    except (OSError, ValueError, AttributeError):
        pass
signal.alarm(0)


def f():
    while True:
        pass
