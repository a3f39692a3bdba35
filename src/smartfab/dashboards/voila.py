"""One private Voila process behind the ``dashboards`` service.

Voila listens on 127.0.0.1 only, on a port and with a random token known to the service alone;
browsers never reach it directly. Kernel pools are filled at start (``preheat_kernel``) so the
first render of a dashboard comes from a warm kernel. In system mode it runs, with its kernels,
as an unprivileged account (:class:`RunAs`) and with an environment built from scratch: nothing
of the service's own environment (its hub API token above all) reaches a kernel.
"""

from __future__ import annotations

import functools
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from smartfab.dashboards.template import TEMPLATE, with_template_path
from smartfab.errors import DashboardError
from smartfab.host.loopback import free_loopback_port
from smartfab.host.privileges import become
from smartfab.host.runas import RunAs
from smartfab.prctl import PR_SET_PDEATHSIG, prctl

#: JupyterLab extensions installed beside Voila that a dashboard page never needs
UNUSED_EXTENSIONS = (
    "@jupyter/collaboration-extension",
    "@jupyter/docprovider-extension",
    "@voila-dashboards/jupyterlab-preview",
)
#: files Voila and its kernels create stay private to their account
VOILA_UMASK = 0o077


def _start_child(identity: RunAs | None, cwd: Path) -> None:
    # own process group, so that Voila and its kernels stop together
    os.setsid()
    if identity is not None:
        become(identity.uid, identity.gid, identity.groups, VOILA_UMASK, str(cwd))
    # after the change of credentials, which clears it: Voila must not outlive the service,
    # even when the service is killed with SIGKILL
    prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class VoilaProcess:
    """One ``voila`` serving ``serve_dir`` under ``base_url`` on a private loopback port.

    Parameters
    ----------
    serve_dir:
        Folder with one notebook per dashboard.
    base_url:
        URL prefix Voila writes into its pages, the service's own prefix, so asset and kernel
        URLs in a rendered page point back at the service.
    pool_size:
        Executed kernels kept ready per notebook.
    identity:
        Account to run as (None: the service's own).
    env:
        The whole environment of Voila and its kernels (None: the service's).
    runtime_dir:
        Where Voila keeps its kernels' connection files (writable by ``identity``).
    """

    serve_dir: Path
    base_url: str
    pool_size: int
    cull_idle_seconds: int = 900
    port: int = field(default_factory=free_loopback_port)
    token: str = field(default_factory=lambda: secrets.token_hex(24))
    identity: RunAs | None = None
    env: dict[str, str] | None = None
    runtime_dir: Path = field(default_factory=lambda: Path(tempfile.gettempdir()))
    proc: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.base_url}"

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "voila", str(self.serve_dir),
            "--no-browser",
            "--Voila.ip=127.0.0.1",
            f"--port={self.port}",
            f"--base_url={self.base_url}",
            f"--token={self.token}",
            "--preheat_kernel=True",
            f"--pool_size={self.pool_size}",
            # kernels start a few at a time: many viewers at once do not starve each other
            "--VoilaConfiguration.multi_kernel_manager_class="
            "smartfab.dashboards.kernels.PacedKernelManager",
            "--strip_sources=True",
            # Voila's lab page without requests to other hosts
            f"--template={TEMPLATE}",
            # connection files in the account's own runtime dir, not in a shared /var/tmp
            f"--Voila.connection_dir_root={self.runtime_dir}",
            "--show_tracebacks=False",
            # JupyterLab's collaboration and preview plugins do nothing in a dashboard but load
            f"--VoilaConfiguration.extension_denylist={list(UNUSED_EXTENSIONS)!r}",
            f"--MappingKernelManager.cull_idle_timeout={self.cull_idle_seconds}",
            "--MappingKernelManager.cull_interval=60",
        ]  # fmt: skip

    def start(self, timeout: float = 60) -> None:
        """Start Voila and wait until it accepts connections."""
        self.proc = subprocess.Popen(
            self.command(),
            cwd=self.serve_dir,
            env=with_template_path(os.environ if self.env is None else self.env),
            stdin=subprocess.DEVNULL,
            preexec_fn=functools.partial(_start_child, self.identity, self.serve_dir),
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise DashboardError(f"voila exited with status {self.proc.returncode} at start")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise DashboardError(f"voila did not listen on 127.0.0.1:{self.port} within {timeout} s")

    def stop(self, timeout: float = 15) -> None:
        """Stop Voila and its kernels (its own process group)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
