"""One way to run a stock ``voila`` on loopback (:func:`start_plain_voila`), for the app tests
and for the cold baseline of ``bench/dashboards.py``."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from smartfab.dashboards.voila import free_loopback_port

VOILA = str(Path(sys.executable).with_name("voila"))


@dataclass
class PlainVoila:
    """A stock ``voila`` process and the URL it answers on (no trailing slash)."""

    proc: subprocess.Popen[bytes]
    url: str
    log: Path

    def app_url(self, name: str) -> str:
        """The render URL of ``name``.ipynb when Voila serves a folder."""
        return f"{self.url}/voila/render/{name}.ipynb"

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM (Voila shuts its kernels down), then SIGKILL after ``timeout`` seconds."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_plain_voila(
    target: Path,
    env: dict[str, str],
    log: Path,
    port: int | None = None,
    timeout: float = 60,
) -> PlainVoila:
    """``voila TARGET`` (a notebook or a folder) on 127.0.0.1, without preheat; returns once it
    listens. Its output is appended to ``log``, quoted in the error when it exits early."""
    port = port or free_loopback_port()
    folder = target if target.is_dir() else target.parent
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [VOILA, str(target), "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1",
             f"--Voila.root_dir={folder}", "--Voila.port_retries=0"],
            cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    server = PlainVoila(proc, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"voila exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return server
        except OSError:
            time.sleep(0.1)
    server.stop()
    raise TimeoutError(f"voila not listening within {timeout} s:\n{log.read_text()}")
