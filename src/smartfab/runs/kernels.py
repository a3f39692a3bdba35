"""Fresh kernels for program test runs, started ahead of need: one kernel per run, then killed.

A :class:`KernelPool` keeps ``size`` kernels started and connected (``kernel_info`` answered,
IOPub subscribed) before any run asks for one. They are forked from a fork server
(:mod:`smartfab.runs.forkkernel`) that has imported the kernel and the scientific stack, so a
kernel costs a fork and an ``IPKernelApp`` initialisation, not a new interpreter and its
imports. Since a kernel starts before its run is known, the run's working directory and
environment are applied when it is acquired, by a silent execution that leaves no trace in
the notebook, the execution count or the In/Out history.

A run gets a kernel started from its kernelspec instead (still a child of the fork server, so
it dies with it) when a warm fork would not behave like that kernelspec: another interpreter or
language, a variable the preloaded modules read at import, a ``matplotlibrc`` or a module that
would shadow a preloaded one in the run's directory.

This module holds the process-wide pool (:func:`shared_pool`, :func:`close_shared_pool`) and
gathers the public names of the modules the pool is made of:

- :mod:`smartfab.runs.kernel_pool`: :class:`KernelPool` and the :class:`PooledKernel` it lends,
  with its thread-safety rules;
- :mod:`smartfab.runs.warm_kernel_rules`: when a warm kernel can stand in (:func:`forkable`,
  :func:`environment_changes`, :func:`kernel_environment`);
- :mod:`smartfab.runs.kernel_provisioner`: jupyter_client's view of a fork server's child;
- :mod:`smartfab.runs.kernel_channels`: waiting on a kernel client's replies.
"""

from __future__ import annotations

import atexit
import os
import threading

from smartfab.errors import KernelStartError
from smartfab.runs.kernel_fork_protocol import describe_exit as describe_exit
from smartfab.runs.kernel_fork_server import KernelForkServer as KernelForkServer
from smartfab.runs.kernel_fork_server import ServerChild as ServerChild
from smartfab.runs.kernel_pool import (
    DEFAULT_KERNEL,
    KernelPool,
    PooledKernel,
    default_pool_size,
)
from smartfab.runs.kernel_pool import HISTORY_IN_MEMORY as HISTORY_IN_MEMORY
from smartfab.runs.kernel_pool import KERNEL_LOG_LEVEL as KERNEL_LOG_LEVEL
from smartfab.runs.kernel_pool import POOL_SIZE_ENV as POOL_SIZE_ENV
from smartfab.runs.kernel_preload import INLINE_BACKEND as INLINE_BACKEND
from smartfab.runs.kernel_provisioner import ServerChildProvisioner as ServerChildProvisioner
from smartfab.runs.warm_kernel_rules import KERNEL_SET_VARIABLES as KERNEL_SET_VARIABLES
from smartfab.runs.warm_kernel_rules import environment_changes as environment_changes
from smartfab.runs.warm_kernel_rules import forkable as forkable
from smartfab.runs.warm_kernel_rules import is_import_time_variable as is_import_time_variable
from smartfab.runs.warm_kernel_rules import kernel_environment as kernel_environment

# beyond __all__, the names importable from here before the split still are: ``import x as x``
# marks them re-exported
__all__ = [
    "DEFAULT_KERNEL",
    "KernelPool",
    "KernelStartError",
    "PooledKernel",
    "close_shared_pool",
    "default_pool_size",
    "shared_pool",
]

# -- the process-wide pool --------------------------------------------------------------------

_shared: KernelPool | None = None
_shared_lock = threading.Lock()


def shared_pool(size: int | None = None) -> KernelPool:
    """The process-wide pool, created (and started) on first use.

    ``size`` (default :func:`default_pool_size` for a new pool) resizes it.
    """
    global _shared
    with _shared_lock:
        if _shared is None or _shared.closed:
            _shared = KernelPool(size)
            _shared.start()
        elif size is not None and size != _shared.size:
            _shared.resize(size)
        return _shared


def close_shared_pool() -> None:
    """Close the process-wide pool, if any: its kernels and fork server are gone on return."""
    global _shared
    with _shared_lock:
        pool, _shared = _shared, None
    if pool is not None:
        pool.close()


def _forget_shared_pool() -> None:
    """In a child forked from the owner: its copy of the pool is abandoned (see ``kernel_pool``)."""
    global _shared
    _shared = None


os.register_at_fork(after_in_child=_forget_shared_pool)
atexit.register(close_shared_pool)
