"""The process-wide pool of warm kernels: one per process, started on first use.

The engine (:mod:`smartfab.runs.engine`), :func:`smartfab.runs.execute.execute_notebook` and
the executors take their kernels from it; it is closed at exit, and a process forked from its
owner starts a pool of its own.
"""

from __future__ import annotations

import atexit
import os
import threading

from smartfab.runs.kernels.pool import KernelPool

_shared: KernelPool | None = None
_shared_lock = threading.Lock()


def shared_pool(size: int | None = None) -> KernelPool:
    """The process-wide pool, created (and started) on first use.

    ``size`` (default :func:`~smartfab.runs.kernels.pool.default_pool_size` for a new pool)
    resizes it.
    """
    global _shared
    with _shared_lock:
        if _shared is None or _shared.closed:
            _shared = KernelPool(size)
            _shared.start()
        elif size is not None and size != _shared.size:
            _shared.resize(size)
        return _shared


def warm_shared_pool(size: int | None = None) -> None:
    """Start the process-wide pool in the background, while this process imports and reads the
    rest (:func:`shared_pool` then finds it starting or started)."""
    threading.Thread(target=shared_pool, args=(size,), name="smartfab-warm", daemon=True).start()


def close_shared_pool() -> None:
    """Close the process-wide pool, if any: its kernels and fork server are gone on return."""
    global _shared
    with _shared_lock:
        pool, _shared = _shared, None
    if pool is not None:
        pool.close()


def _forget_shared_pool() -> None:
    """In a child forked from the owner: its copy of the pool is abandoned (see ``pool``)."""
    global _shared
    _shared = None


os.register_at_fork(after_in_child=_forget_shared_pool)
atexit.register(close_shared_pool)
