"""A minimal Yjs client for jupyter-collaboration rooms, to prove live co-editing in tests."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from pycrdt import (
    Doc,
    Text,
    YMessageType,
    create_sync_message,
    create_update_message,
    handle_sync_message,
)
from tornado.httpclient import HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect


class RoomClient:
    """One collaborator connected to the room of a text file on a Jupyter server."""

    def __init__(self, conn: WebSocketClientConnection) -> None:
        self.conn = conn
        self.doc = Doc()
        self.text = self.doc.get("source", type=Text)
        self._reader: asyncio.Task[None] | None = None

    @classmethod
    async def join(cls, server_url: str, token: str, session: dict[str, Any]) -> RoomClient:
        """Connect to the room described by a ``PUT /api/collaboration/session`` reply."""
        room = f"{session['format']}:{session['type']}:{session['fileId']}"
        url = server_url.replace("http", "ws", 1) + f"api/collaboration/room/{room}"
        request = HTTPRequest(
            f"{url}?sessionId={session['sessionId']}",
            headers={"Authorization": f"token {token}"},
            connect_timeout=30,
        )
        client = cls(await websocket_connect(request))
        client.doc.observe(client._send_update)
        await client.conn.write_message(create_sync_message(client.doc), binary=True)
        client._reader = asyncio.create_task(client._read())
        return client

    def _send_update(self, event: Any) -> None:
        self.conn.write_message(create_update_message(event.update), binary=True)

    async def _read(self) -> None:
        while True:
            message = await self.conn.read_message()
            if message is None:
                return
            if isinstance(message, bytes) and message and message[0] == YMessageType.SYNC:
                reply = handle_sync_message(message[1:], self.doc)
                if reply is not None:
                    await self.conn.write_message(reply, binary=True)

    async def wait_for_text(self, expected: str, timeout: float = 30) -> str:
        """Wait until the shared text contains ``expected``; return the text."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            current = str(self.text)
            if expected in current:
                return current
            await asyncio.sleep(0.05)
        raise TimeoutError(f"{expected!r} never arrived; text is {str(self.text)!r}")

    def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        self.conn.close()
