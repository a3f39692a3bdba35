"""Run kernels as the fork server launches them: warm, from a process with the stack imported.

:data:`RUN_KERNELS` is the fork server's use for program runs
(:mod:`smartfab.host.forkserver`): it preloads the kernel and the stack
(:func:`smartfab.runs.kernels.preload.preload`, whose answer, the top-level names only the
stack imported, reaches the pool in the server's hello), and each launch runs
:func:`serve_kernel`. A forked kernel initialises its own ``IPKernelApp`` (sockets, shell,
history) exactly as ``ipykernel_launcher`` would, reports how to connect, and serves one
notebook. Kernels die with the fork server, which dies with the pool's thread.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from typing import TYPE_CHECKING

from smartfab.host.forkprotocol import ForkUse, Launch, Lifetime
from smartfab.runs.kernels.preload import NOT_PRELOADABLE

if TYPE_CHECKING:
    from smartfab.host.forkprocess import Launched

#: program-run kernels as the fork server runs them
RUN_KERNELS = ForkUse(
    name="run kernels",
    preload_hook="smartfab.runs.kernels.preload:preload",
    not_preloadable=NOT_PRELOADABLE,
    entry="smartfab.runs.kernels.forked:serve_kernel",
    reports=True,
    lifetime=Lifetime.die_with_server,
)


def kernel_launch(token: str, connection_file: str, argv: list[str], args: list[str]) -> Launch:
    """The launch of a warm kernel: ``argv`` is its command line, ``args`` go to
    ``IPKernelApp.initialize``; the connection file is removed when it exits."""
    return Launch(
        token=token,
        argv=argv,
        title=" ".join([sys.executable, "-m", "ipykernel_launcher", *argv[1:]]),
        payload={"args": args},
        remove_on_exit=connection_file,
    )


def _reopen_debugger_log() -> None:
    """debugpy's log stream is the ``sys.stderr`` of its first message: make it the kernel's."""
    with contextlib.suppress(ImportError):
        # debugpy's vendored pydevd, on sys.path once debugpy is imported
        pydev_log = importlib.import_module("_pydev_bundle.pydev_log")
        pydev_log.initialize_debug_stream(reinitialize=True)


def serve_kernel(launched: Launched) -> int:
    """In a forked child: become a kernel, report how to connect, serve until shut down."""
    from ipykernel.kernelapp import IPKernelApp

    app = IPKernelApp.instance()
    app.initialize(list(launched.request.payload["args"]))  # type: ignore[no-untyped-call]
    _reopen_debugger_log()
    session = app.session
    launched.report(
        {
            "ip": app.ip,
            "transport": app.transport,
            "shell_port": app.shell_port,
            "iopub_port": app.iopub_port,
            "stdin_port": app.stdin_port,
            "hb_port": app.hb_port,
            "control_port": app.control_port,
            "key": session.key.decode("ascii"),
            "signature_scheme": session.signature_scheme,
        }
    )
    app.start()  # type: ignore[no-untyped-call]
    return 0
