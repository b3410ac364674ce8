# ruff: noqa: F821
"""Connect to a TCP server the test opened on the host's 127.0.0.1; the server sends the expected value."""
import socket


def f():
    with socket.create_connection(("127.0.0.1", CTX["tcp_port"]), timeout=0.5) as sock:
        return sock.recv(4096).decode()
