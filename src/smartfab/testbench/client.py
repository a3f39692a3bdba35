"""The test bench's JSON API from a terminal: what ``smartfab programs submit`` uses.

Inside a hub server the spawner sets ``$SMARTFAB_TESTBENCH_URL`` (the service's address through
the hub's proxy) and ``$JUPYTERHUB_API_TOKEN`` (the server's token, which may use the service);
elsewhere give ``--url`` and ``$SMARTFAB_TOKEN`` (a hub API token of one's own).
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from smartfab.errors import Problem, SubmissionError, TestBenchError

URL_ENV = "SMARTFAB_TESTBENCH_URL"
TOKEN_ENVS = ("SMARTFAB_TOKEN", "JUPYTERHUB_API_TOKEN")


@dataclass(frozen=True)
class BenchApi:
    """The service at ``url`` (ending in ``/services/testbench/``), called with ``token``."""

    url: str
    token: str

    @classmethod
    def from_environment(cls, url: str | None = None) -> BenchApi:
        """``url`` or ``$SMARTFAB_TESTBENCH_URL``; the token from the environment."""
        url = url or os.environ.get(URL_ENV)
        if not url:
            raise TestBenchError(
                f"where is the test bench? give --url or set ${URL_ENV} (hub servers have it set)"
            )
        token = next((os.environ[name] for name in TOKEN_ENVS if os.environ.get(name)), None)
        if token is None:
            raise TestBenchError(
                f"no API token: set ${TOKEN_ENVS[0]} to a hub API token of yours "
                f"(hub servers have ${TOKEN_ENVS[1]})"
            )
        return cls(url if url.endswith("/") else url + "/", token)

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """``method`` on ``api/v1/<path>``; the JSON answer, or SubmissionError for a refusal
        (with the service's problems, field by field)."""
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(
            f"{self.url}api/v1/{path}",
            data=data,
            method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=120) as reply:
                return json.loads(reply.read() or b"null")
        except urllib.error.HTTPError as err:
            raise _refusal(err) from None
        except (urllib.error.URLError, OSError) as err:
            raise TestBenchError(f"test bench at {self.url} unreachable: {err}") from err


def _refusal(err: urllib.error.HTTPError) -> SubmissionError:
    try:
        data = json.loads(err.read() or b"{}")
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    problems = [
        Problem(str(p.get("field", "")), str(p.get("message", "")))
        for p in data.get("problems") or []
        if isinstance(p, dict)
    ]
    message = str(data.get("error") or f"HTTP {err.code} {err.reason}")
    return SubmissionError(err.code, f"refused ({err.code}): {message}", problems)
