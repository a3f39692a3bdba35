"""Ports on the loopback interface, where every service of a deployment listens."""

from __future__ import annotations

import socket


def free_loopback_port() -> int:
    """A currently free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
