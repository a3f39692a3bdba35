"""Linux network namespaces through libc: a process that seals itself off the network.

:func:`seal_network` moves the calling process into a network namespace of its own whose only
interface is its own loopback, brought up: it and every process it starts can talk to each
other over ``127.0.0.1`` and reach nothing else, neither the host's loopback services nor any
other address. It needs ``CAP_SYS_ADMIN`` (root, before dropping privileges).
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import socket
import struct

#: ``unshare(2)`` flag: a new network namespace
CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
_IFREQ = "16sH14s"


def seal_network() -> None:
    """Enter a new network namespace with only ``lo``, up; OSError when Linux refuses."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare(CLONE_NEWNET): {os.strerror(err)}")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack(_IFREQ, b"lo", 0, b"")
        flags = struct.unpack(_IFREQ, fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack(_IFREQ, b"lo", flags | IFF_UP, b""))


def interfaces() -> list[str]:
    """Names of the network interfaces this process sees."""
    return sorted(name for _, name in socket.if_nameindex())
