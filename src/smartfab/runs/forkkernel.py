"""A warm process that forks one fresh IPython kernel per program test run.

Starting a kernel the usual way costs a new interpreter, the imports of ipykernel and IPython,
and then the notebook's own imports (numpy, xarray, ...): about a second of CPU before the
first cell runs, for a notebook that may compute for a few milliseconds. The fork server
imports the kernel and the scientific stack once; each kernel is a ``fork()`` of it that
initialises its own ``IPKernelApp`` (sockets, shell, history) exactly as ``ipykernel_launcher``
would, and serves one notebook. Nothing is shared between kernels after the fork: each has its
own copy of the interpreter, and is killed after its run.

What a warm kernel cannot reproduce is what the preloaded modules computed at import: from the
environment (``MPLBACKEND``, ``OMP_NUM_THREADS``, ``HOME``, ...), from the working directory
(a ``matplotlibrc``, a local module shadowing an installed one). The owner compares each run
against these rules (:func:`is_import_time_variable`, ``shadowable`` in the hello message)
and starts that run's kernel from scratch when they differ. Modules that build their
configuration or services of their own at import (distributed, fsspec) are never preloaded, nor
is the inline backend, which hooks itself into the IPython shell that exists when it is
imported. Entropy drawn at import (numpy's global generator) is drawn anew in each kernel.

The fork server is made of one module per job; this module gathers their public names:

- :mod:`smartfab.runs.kernel_preload`: what the fork server imports (:func:`preload`);
- :mod:`smartfab.runs.kernel_fork_protocol`: the messages on the control socket (requests
  ``fork``, ``exec``, ``signal``; answers ``hello``, ``forked``, ``exited``, ``refused`` and a
  kernel's ``ready``);
- :mod:`smartfab.runs.kernel_fork_process`: the fork server's own process (:func:`serve`,
  :func:`main`), its children, and its lifetime;
- :mod:`smartfab.runs.kernel_fork_server`: the owner's handle, :class:`KernelForkServer`;
- :mod:`smartfab.runs.warm_kernel_rules`: the rules deciding when a warm kernel can stand in.

:class:`KernelStartError` is defined in :mod:`smartfab.errors`.
"""

from __future__ import annotations

from smartfab.errors import KernelStartError
from smartfab.prctl import PR_SET_PDEATHSIG
from smartfab.runs.kernel_fork_process import main, serve
from smartfab.runs.kernel_fork_protocol import (
    MAX_MESSAGE,
    ExecProgram,
    ForkKernel,
    Request,
    SendSignal,
    describe_exit,
)
from smartfab.runs.kernel_fork_server import KernelForkServer, ServerChild
from smartfab.runs.kernel_preload import (
    INLINE_BACKEND,
    KERNEL_MODULES,
    NOT_PRELOADABLE,
    STACK_MODULES,
    preload,
)
from smartfab.runs.warm_kernel_rules import (
    IMPORT_TIME_PREFIXES,
    IMPORT_TIME_VARIABLES,
    KERNEL_SET_VARIABLES,
    is_import_time_variable,
)

# every public name this module defined before the split, importable from here as before
__all__ = [
    "IMPORT_TIME_PREFIXES",
    "IMPORT_TIME_VARIABLES",
    "INLINE_BACKEND",
    "KERNEL_MODULES",
    "KERNEL_SET_VARIABLES",
    "MAX_MESSAGE",
    "NOT_PRELOADABLE",
    "PR_SET_PDEATHSIG",
    "STACK_MODULES",
    "ExecProgram",
    "ForkKernel",
    "KernelForkServer",
    "KernelStartError",
    "Request",
    "SendSignal",
    "ServerChild",
    "describe_exit",
    "is_import_time_variable",
    "main",
    "preload",
    "serve",
]
