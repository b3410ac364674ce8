# ruff: noqa: F821
"""Resolve public names and query the host's configured resolver directly: "pwned" if anything answers."""
import socket


def f():
    for name in ("example.com", "pypi.org", "github.com"):
        try:
            socket.getaddrinfo(name, 443)
            return "pwned"
        except OSError:
            pass
    query = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x01\x00\x01"
    servers = []
    try:
        for line in open("/etc/resolv.conf"):
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "nameserver":
                servers.append(parts[1])
    except OSError:
        pass
    for server in servers + ["8.8.8.8", "1.1.1.1"]:
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.settimeout(0.3)
                sock.sendto(query, (server, 53))
                sock.recvfrom(512)
                return "pwned"
        except OSError:
            pass
    return "unreachable"
