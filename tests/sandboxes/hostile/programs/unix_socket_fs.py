# ruff: noqa: F821
"""Connect to a filesystem Unix socket the test opened in a world-accessible host dir (network
namespaces do not cover these); the server sends the expected value."""
import socket


def f():
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        sock.connect(CTX["unix_path"])
        return sock.recv(4096).decode()
