"""A small HTTP client for a running hub, used by the tests and the benchmark."""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import requests
from tornado.websocket import websocket_connect

XSRF_FIELD = re.compile(r'name="_xsrf"\s+value="([^"]+)"')


class LoginFailed(AssertionError):
    """The hub refused a login."""


@dataclass
class HubClient:
    """A person's browser-like session with the hub: cookies, ``_xsrf`` and an API token."""

    url: str
    session: requests.Session = field(default_factory=requests.Session)
    user: str | None = None
    token: str | None = None

    def login(self, user: str, password: str) -> requests.Response:
        """Log in through the form (``_xsrf`` included); raise LoginFailed when refused."""
        page = self.session.get(f"{self.url}hub/login")
        page.raise_for_status()
        match = XSRF_FIELD.search(page.text)
        assert match, "login page has no _xsrf field"
        reply = self.session.post(
            f"{self.url}hub/login?next=",
            data={"username": user, "password": password, "_xsrf": match.group(1)},
            allow_redirects=False,
        )
        if reply.status_code != 302:
            raise LoginFailed(f"login of {user!r} refused with HTTP {reply.status_code}")
        self.user = user
        return reply

    def xsrf_headers(self) -> dict[str, str]:
        token = self.session.cookies.get("_xsrf", path="/hub/") or ""
        return {"X-XSRFToken": token}

    def new_token(self) -> str:
        """Create an API token for the logged-in user with the cookie session."""
        reply = self.session.post(
            f"{self.url}hub/api/users/{self.user}/tokens",
            json={"note": "smartfab tests", "expires_in": 3600},
            headers=self.xsrf_headers(),
        )
        reply.raise_for_status()
        self.token = reply.json()["token"]
        return self.token

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Call the hub REST API (``path`` after ``/hub/api/``) with the user's token, or with
        the login cookie and ``_xsrf`` header when the user has no token."""
        auth = {"Authorization": f"token {self.token}"} if self.token else self.xsrf_headers()
        headers = {**auth, **kwargs.pop("headers", {})}
        return self.session.request(method, f"{self.url}hub/api/{path}", headers=headers, **kwargs)

    def server_api(self, method: str, owner: str, path: str, **kwargs: Any) -> requests.Response:
        """Call a single-user server's API (``/user/<owner>/api/<path>``) with the token."""
        assert self.token, "call new_token() first"
        headers = {"Authorization": f"token {self.token}", **kwargs.pop("headers", {})}
        return requests.request(
            method, f"{self.url}user/{owner}/api/{path}", headers=headers, timeout=30, **kwargs
        )

    def start_server(self, owner: str | None = None) -> requests.Response:
        return self.api("POST", f"users/{owner or self.user}/server")

    def wait_for_server(self, owner: str | None = None, timeout: float = 120) -> dict[str, Any]:
        """Wait until ``owner``'s default server is ready; return its model."""
        owner = owner or self.user
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            model = self.api("GET", f"users/{owner}").json()
            server = (model.get("servers") or {}).get("")
            if server and server.get("ready"):
                return dict(server)
            time.sleep(0.25)
        raise TimeoutError(f"server of {owner} not ready after {timeout} s")

    def stop_server(self, owner: str | None = None) -> requests.Response:
        return self.api("DELETE", f"users/{owner or self.user}/server")


async def run_in_kernel(
    base_url: str, owner: str, token: str, code: str, timeout: float = 60
) -> dict[str, Any]:
    """Execute ``code`` in a new kernel of ``owner``'s server; return stdout and any error.

    Speaks the Jupyter messaging protocol over the server's websocket, like a notebook does.
    """
    headers = {"Authorization": f"token {token}"}
    api = f"{base_url}user/{owner}/api/kernels"
    kernel = requests.post(api, headers=headers, json={"name": "python3"}, timeout=60)
    kernel.raise_for_status()
    kernel_id = kernel.json()["id"]
    ws_url = api.replace("http", "ws", 1) + f"/{kernel_id}/channels"
    from tornado.httpclient import HTTPRequest

    conn = await websocket_connect(HTTPRequest(ws_url, headers=headers, connect_timeout=30))
    msg_id = uuid.uuid4().hex
    conn.write_message(
        json.dumps(
            {
                "header": {
                    "msg_id": msg_id,
                    "username": owner,
                    "session": uuid.uuid4().hex,
                    "msg_type": "execute_request",
                    "version": "5.3",
                },
                "parent_header": {},
                "metadata": {},
                "content": {"code": code, "silent": False, "store_history": False},
                "channel": "shell",
            }
        )
    )
    result: dict[str, Any] = {"stdout": "", "error": None}
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            raw = await conn.read_message()
            if raw is None:
                break
            msg = json.loads(raw)
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = msg["header"]["msg_type"]
            if kind == "stream":
                result["stdout"] += msg["content"]["text"]
            elif kind == "error":
                result["error"] = msg["content"]["ename"]
                result["evalue"] = msg["content"]["evalue"]
            elif kind == "status" and msg["content"]["execution_state"] == "idle":
                break
        else:
            raise TimeoutError("kernel did not finish in time")
    finally:
        conn.close()
        requests.delete(f"{api}/{kernel_id}", headers=headers, timeout=30)
    return result
