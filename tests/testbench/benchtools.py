"""A light program under test for the test bench, and a client of the service's API."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import requests

from tests.support.hubtools import HubClient

PREFIX = "services/testbench/"

#: what each run records: its value, who ran it, what it could reach
PROGRAM = """\
import os, socket, time
import smartfab

time.sleep(sleep)
if dataset:
    import smartfab.datasets as sd
    sd.open(dataset)
smartfab.record("score", x * 10)
smartfab.record("uid", os.getuid())
smartfab.record("reads_probe_path", bool(probe_path) and os.access(probe_path, os.R_OK))
reaches = False
if probe_port:
    try:
        socket.create_connection(("127.0.0.1", probe_port), timeout=3).close()
        reaches = True
    except OSError:
        pass
smartfab.record("reaches_probe_port", reaches)
"""


def write_probe_program(folder: Path) -> Path:
    """The notebook ``bench_probe.ipynb`` and its spec; returns the spec."""
    folder.mkdir(parents=True, exist_ok=True)
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Bench probe\n\nRecords who ran it and what it reached."),
        nbformat.v4.new_code_cell(
            'x: int = 1\nsleep: float = 0.0\ndataset: str = ""\nprobe_path: str = ""\n'
            "probe_port: int = 0",
            metadata={"tags": ["parameters"]},
        ),
        nbformat.v4.new_code_cell(PROGRAM),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}  # fmt: skip
    nbformat.write(nb, folder / "bench_probe.ipynb")
    spec = folder / "bench_probe.yaml"
    spec.write_text(
        json.dumps(
            {
                "name": "bench-probe",
                "program": "bench_probe.ipynb",
                "grid": {"x": [1, 2, 3]},
                "metrics": ["score", "uid", "reads_probe_path", "reaches_probe_port"],
                "acceptance": {"score": ">= 10"},
                "timeout": 120,
            }
        )
    )
    return spec


@dataclass
class BenchClient:
    """One person on the test bench: the API with their hub token, pages with their cookie."""

    hub_url: str
    client: HubClient

    @property
    def base(self) -> str:
        return f"{self.hub_url}{PREFIX}"

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """The API with the person's hub token; without one (viewers may not make tokens),
        with the service's login cookie and its ``_xsrf`` token, as the pages call it."""
        url = f"{self.base}api/v1/{path}"
        if self.client.token:
            auth = {"Authorization": f"token {self.client.token}"}
            headers = {**auth, **kwargs.pop("headers", {})}
            return requests.request(method, url, headers=headers, timeout=60, **kwargs)
        session = self.client.session
        if session.cookies.get("_xsrf", path=f"/{PREFIX}") is None:
            self.page("")  # the hub's OAuth, once
        xsrf = {"X-XSRFToken": session.cookies.get("_xsrf", path=f"/{PREFIX}") or ""}
        headers = {**xsrf, **kwargs.pop("headers", {})}
        return session.request(method, url, headers=headers, timeout=60, **kwargs)

    def page(self, path: str) -> requests.Response:
        return self.client.session.get(f"{self.base}{path}", timeout=60)

    def submit(self, **body: Any) -> requests.Response:
        return self.api("POST", "batches", json=body)

    def batch(self, batch_id: str) -> dict[str, Any]:
        reply = self.api("GET", f"batches/{batch_id}")
        assert reply.status_code == 200, reply.text
        return dict(reply.json())

    def wait(self, batch_id: str, states: tuple[str, ...] = ("finished", "failed", "cancelled"),
             timeout: float = 240) -> dict[str, Any]:  # fmt: skip
        """Poll until the batch is in one of ``states``; return it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            batch = self.batch(batch_id)
            if batch["state"] in states:
                return batch
            time.sleep(0.3)
        raise TimeoutError(f"batch {batch_id} not {states} after {timeout} s: {batch}")
