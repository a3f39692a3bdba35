"""jupyter_client's view of a kernel process whose parent is the kernel fork server.

:class:`ServerChildProvisioner` stands where jupyter_client's local provisioner would hold a
``Popen``: it polls, waits for and signals a :class:`~smartfab.host.forkserver.ServerChild`
through the :class:`~smartfab.host.forkserver.ForkServer` that started it.
"""

from __future__ import annotations

import os
import signal
from typing import Any

from jupyter_client.provisioning.local_provisioner import LocalProvisioner

from smartfab.errors import ForkServerError, KernelStartError
from smartfab.host.forkprotocol import Exec
from smartfab.host.forkserver import ForkServer, ServerChild


class ServerChildProvisioner(LocalProvisioner):
    """jupyter_client's view of a kernel process whose parent is the fork server.

    Used as is for a forked kernel; for a kernel started from its kernelspec, jupyter_client's
    local provisioner prepares the connection file and command, and the fork server runs it.
    """

    server: ForkServer | None = None
    child: ServerChild | None = None

    @property
    def has_process(self) -> bool:
        return self.child is not None

    async def poll(self) -> int | None:
        return 0 if self.child is None else self.child.returncode

    async def wait(self) -> int | None:
        if self.child is None:
            return 0
        code = await self.child.wait()
        self.child = None
        return code

    async def send_signal(self, signum: int) -> None:
        if self.child is not None and self.server is not None:
            await self.server.send_signal(self.child.pid, signum)

    async def kill(self, restart: bool = False) -> None:
        await self.send_signal(signal.SIGKILL)

    async def terminate(self, restart: bool = False) -> None:
        await self.send_signal(signal.SIGTERM)

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> Any:
        km = self.parent
        assert self.server is not None and km is not None
        cwd = str(kwargs.get("cwd") or os.getcwd())
        request = Exec(
            token=self.kernel_id,
            argv=cmd,
            env=kwargs["env"],
            cwd=cwd,
            remove_on_exit=km.connection_file,
        )
        try:
            self.child = await self.server.execute(request)
        except ForkServerError as err:
            raise KernelStartError(str(err)) from err
        self.pid = self.pgid = self.child.pid
        self.cwd = cwd
        return self.connection_info
