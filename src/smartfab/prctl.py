"""Linux ``prctl(2)`` through libc: what a process asks the kernel about its own lifetime."""

from __future__ import annotations

import ctypes
import os

#: deliver a signal (the argument) to this process when its parent thread ends
PR_SET_PDEATHSIG = 1
#: adopt orphaned descendants (argument 1) instead of letting PID 1 adopt them
PR_SET_CHILD_SUBREAPER = 36


def prctl(option: int, arg: int) -> None:
    """Call ``prctl(option, arg, 0, 0, 0)`` for this process; OSError when Linux refuses."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, arg, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
