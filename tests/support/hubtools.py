"""Running a real hub and talking to it like a browser: used by the tests and the benchmark."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

ROOT = Path(__file__).resolve().parents[2]
DEMO_ALLIANCE = ROOT / "hub" / "alliance.yaml"
ARTIFACTS = ROOT / "tests" / "artifacts"
SMARTFAB = str(Path(sys.executable).with_name("smartfab"))

XSRF_FIELD = re.compile(r'name="_xsrf"\s+value="([^"]+)"')


class LoginRefusedError(AssertionError):
    """The hub refused a login."""


@dataclass
class HubClient:
    """A person's browser-like session with the hub: cookies, ``_xsrf`` and an API token."""

    url: str
    session: requests.Session = field(default_factory=requests.Session)
    user: str | None = None
    token: str | None = None

    def login(self, user: str, password: str) -> requests.Response:
        """Log in through the form (``_xsrf`` included); raise LoginRefusedError when refused."""
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
            raise LoginRefusedError(f"login of {user!r} refused with HTTP {reply.status_code}")
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
            if not server:
                raise RuntimeError(f"server of {owner} is not starting (spawn failed?)")
            time.sleep(0.25)
        raise TimeoutError(f"server of {owner} not ready after {timeout} s")

    def stop_server(self, owner: str | None = None) -> requests.Response:
        return self.api("DELETE", f"users/{owner or self.user}/server")


def start_kernel(base_url: str, owner: str, token: str) -> str:
    """Start a python3 kernel in ``owner``'s server; return its id."""
    reply = requests.post(
        f"{base_url}user/{owner}/api/kernels",
        headers={"Authorization": f"token {token}"},
        json={"name": "python3"},
        timeout=60,
    )
    reply.raise_for_status()
    return str(reply.json()["id"])


async def execute_in_kernel(
    base_url: str, owner: str, token: str, kernel_id: str, code: str, timeout: float = 60
) -> dict[str, Any]:
    """Execute ``code`` in a running kernel of ``owner``'s server; return stdout and any error.

    Speaks the Jupyter messaging protocol over the server's websocket, like a notebook does.
    """
    headers = {"Authorization": f"token {token}"}
    ws_url = f"{base_url}user/{owner}/api/kernels/{kernel_id}/channels".replace("http", "ws", 1)
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
    return result


async def run_in_kernel(
    base_url: str, owner: str, token: str, code: str, timeout: float = 60
) -> dict[str, Any]:
    """Execute ``code`` in a new kernel of ``owner``'s server (shut down after); return stdout
    and any error."""
    kernel_id = start_kernel(base_url, owner, token)
    try:
        return await execute_in_kernel(base_url, owner, token, kernel_id, code, timeout)
    finally:
        requests.delete(
            f"{base_url}user/{owner}/api/kernels/{kernel_id}",
            headers={"Authorization": f"token {token}"},
            timeout=30,
        )


def free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports (all sockets stay open until all are chosen)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
        return ports


@dataclass
class RunningHub:
    """A ``smartfab hub up`` process on loopback ports, with its own state directory."""

    alliance: Path
    state_dir: Path
    home_root: Path
    prefix: str
    spawn_mode: str
    extra_args: list[str] = field(default_factory=list)
    #: an alliance library of fixture apps instead of the one installed with smartfab
    library: Path | None = None
    #: the ``smartfab`` command, the folder it runs in and its environment (default: ours)
    program: str = SMARTFAB
    cwd: Path = ROOT
    env: dict[str, str] | None = None
    #: public, hub API and proxy API ports: chosen at the first start, kept by restarts (a
    #: restarted hub reuses the proxy still listening on them)
    ports: list[int] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    starts: int = 0

    @property
    def port(self) -> int:
        return self.ports[0] if self.ports else 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def command(self) -> list[str]:
        if not self.ports:
            self.ports = free_ports(3)
        port, hub_port, api_port = self.ports
        return [
            self.program, "hub", "up",
            "--config", str(self.alliance),
            "--state-dir", str(self.state_dir),
            "--home-root", str(self.home_root),
            "--account-prefix", self.prefix,
            "--spawn-mode", self.spawn_mode,
            "--port", str(port),
            "--hub-port", str(hub_port),
            "--proxy-api-port", str(api_port),
            *self.extra_args,
        ]  # fmt: skip

    def start(self, timeout: float = 90) -> None:
        self.starts += 1
        self.log_path = self.state_dir.parent / f"hub-{self.state_dir.name}-{self.starts}.log"
        log = self.log_path.open("wb")
        env = dict(os.environ if self.env is None else self.env)
        if self.library is not None:
            # the one smartfab name in this module: the rest drives the hub from outside
            from smartfab.resources import LIBRARY_ENV

            env[LIBRARY_ENV] = str(self.library)
        self.proc = subprocess.Popen(
            self.command(), stdout=log, stderr=subprocess.STDOUT, cwd=self.cwd, env=env
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"smartfab hub up exited {self.proc.returncode}:\n{self.log()}")
            if "is up at" in self.log():
                with contextlib.suppress(requests.RequestException):
                    if requests.get(f"{self.url}hub/api/", timeout=2).status_code == 200:
                        return
            time.sleep(0.2)
        raise TimeoutError(f"hub not up after {timeout} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def stop(
        self, timeout: float = 120, signum: int = signal.SIGTERM, keep_servers: bool = False
    ) -> int:
        """Signal the launcher as an operator would (SIGTERM, or SIGINT for Ctrl-C); wait.

        The launcher leaves the proxy and the servers running; unless ``keep_servers`` (a
        restart), ``smartfab hub down`` then stops them too. Returns the launcher's status.
        """
        assert self.proc is not None
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signum)
                try:
                    self.proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
                    raise
        finally:
            if not keep_servers:
                self.down()
        return self.proc.returncode

    def down(self) -> subprocess.CompletedProcess[str] | None:
        """``smartfab hub down`` on the state directory (if there is one); it must succeed."""
        if not self.state_dir.is_dir():
            return None
        env = dict(os.environ if self.env is None else self.env)
        done = subprocess.run(
            [self.program, "hub", "down", "--state-dir", str(self.state_dir)],
            capture_output=True, text=True, cwd=self.cwd, env=env, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, f"smartfab hub down failed:\n{done.stdout}{done.stderr}"
        return done

    def password(self, user: str) -> str:
        return (self.state_dir / "initial-passwords" / user).read_text().strip()

    def client(self, user: str, token: bool = True) -> HubClient:
        """A logged-in session of ``user`` (with an API token unless ``token`` is False)."""
        client = HubClient(self.url)
        client.login(user, self.password(user))
        if token:
            client.new_token()
        return client
