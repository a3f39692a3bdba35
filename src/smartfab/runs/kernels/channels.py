"""Waiting on a kernel client's channels: the next matching message, a reply, a connection.

Deadlines are times of the running event loop (``loop.time()``), so that a sequence of waits
shares one budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
from collections.abc import Callable
from typing import Any

from smartfab.errors import KernelStartError


async def next_message(
    channel: Any, deadline: float, match: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The next message on ``channel`` that ``match``es, before ``deadline`` (loop time)."""
    loop = asyncio.get_running_loop()
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise TimeoutError
        try:
            msg: dict[str, Any] = await channel.get_msg(timeout=remaining)
        except queue.Empty:
            raise TimeoutError from None
        if match(msg):
            return msg


async def reply_to(channel: Any, msg_id: str, deadline: float) -> dict[str, Any]:
    """The reply to request ``msg_id``."""
    return await next_message(
        channel, deadline, lambda m: m["parent_header"].get("msg_id") == msg_id
    )


async def wait_connected(client: Any, timeout: float) -> None:
    """Wait until the kernel answers ``kernel_info`` and our IOPub subscription is live.

    Any IOPub message proves the subscription live (ipykernel greets each new subscriber; older
    kernels at least publish the status of the request), so no output of the first cell can be
    lost to a subscription still on its way. jupyter_client's ``wait_for_ready`` makes sure of
    the same by polling IOPub until it stays quiet for 0.2 s.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        while True:
            await reply_to(client.shell_channel, client.kernel_info(), deadline)
            soon = min(deadline, loop.time() + 0.1)
            with contextlib.suppress(TimeoutError):
                await next_message(client.iopub_channel, soon, lambda _: True)
                return
            if loop.time() >= deadline:
                raise TimeoutError
    except TimeoutError:
        raise KernelStartError(f"the kernel did not answer in {timeout:g} s") from None
