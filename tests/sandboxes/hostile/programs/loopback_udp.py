# ruff: noqa: F821
"""Send a datagram to a UDP server on the host's 127.0.0.1; its reply is the expected value."""
import socket


def f():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.5)
        sock.sendto(b"ping", ("127.0.0.1", CTX["udp_port"]))
        data, _ = sock.recvfrom(4096)
        return data.decode()
