# ruff: noqa: F821
"""Talk to the Docker / containerd control sockets (root on the host if reachable): "pwned" on any answer."""
import socket


def f():
    for path in ("/var/run/docker.sock", "/run/docker.sock", "/run/containerd/containerd.sock"):
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(0.5)
                sock.connect(path)
                sock.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
                if sock.recv(64):
                    return "pwned"
        except OSError:
            pass
    return "denied"
