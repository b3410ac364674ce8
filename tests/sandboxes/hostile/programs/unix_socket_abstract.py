# ruff: noqa: F821
"""Connect to an abstract-namespace Unix socket the test opened (scoped by the network namespace)."""
import socket


def f():
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        sock.connect("\0" + CTX["abstract_name"])
        return sock.recv(4096).decode()
