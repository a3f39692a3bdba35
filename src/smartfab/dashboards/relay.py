"""Relaying a dashboard's kernel websocket, letting only widget traffic reach the kernel.

A rendered Voila page talks to its kernel through comm messages (ipywidgets). Anything else a
browser could send on the websocket, ``execute_request`` above all, would run arbitrary code in
the kernel: it is dropped here. The relay speaks to Voila the protocol the browser chose: the
``v1.kernel.websocket.jupyter.org`` subprotocol (binary frames: offsets, channel, header, ...)
when offered, as JupyterLab's services do, else the legacy protocol (JSON text, or a binary
frame whose first buffer is the JSON message).
"""

from __future__ import annotations

import json
import struct
from typing import Any

#: message types a dashboard page may send to its kernel
ALLOWED_CLIENT_MESSAGES = frozenset(
    {"comm_open", "comm_msg", "comm_close", "comm_info_request", "kernel_info_request"}
)


#: the kernel websocket subprotocol of jupyter_server 2 and JupyterLab 4
KERNEL_PROTOCOL_V1 = "v1.kernel.websocket.jupyter.org"


def _v1_header(message: bytes) -> tuple[str, str]:
    (count,) = struct.unpack("<Q", message[:8])
    if count < 3 or len(message) < 8 * (count + 1):
        raise ValueError("truncated v1 message")
    offsets = struct.unpack(f"<{count}Q", message[8 : 8 * (count + 1)])
    channel = message[offsets[0] : offsets[1]].decode("utf-8")
    header = json.loads(message[offsets[1] : offsets[2]])
    return channel, str(header["msg_type"])


def message_header(message: str | bytes, protocol: str | None = None) -> tuple[str, str] | None:
    """``(channel, msg_type)`` of a websocket message in ``protocol`` (None: legacy); None if
    unreadable."""
    try:
        if protocol == KERNEL_PROTOCOL_V1:
            if not isinstance(message, bytes):
                return None
            return _v1_header(message)
        if isinstance(message, str):
            data: Any = json.loads(message)
        else:
            (nbufs,) = struct.unpack("!I", message[:4])
            if nbufs < 1 or len(message) < 4 * (nbufs + 1):
                return None
            offsets = struct.unpack(f"!{nbufs}I", message[4 : 4 * (nbufs + 1)])
            end = offsets[1] if nbufs > 1 else len(message)
            data = json.loads(message[offsets[0] : end])
        return str(data.get("channel", "")), str(data["header"]["msg_type"])
    except (ValueError, KeyError, TypeError, AttributeError, struct.error):
        return None


def client_message_allowed(message: str | bytes, protocol: str | None = None) -> bool:
    """Whether a message from the browser may be passed on to the kernel."""
    header = message_header(message, protocol)
    if header is None:
        return False
    channel, msg_type = header
    return channel in ("shell", "control", "") and msg_type in ALLOWED_CLIENT_MESSAGES
