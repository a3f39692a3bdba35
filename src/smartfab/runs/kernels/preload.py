"""What the kernel fork server imports once for every kernel it forks: the kernel and the stack.

Starting a kernel the usual way costs a new interpreter, the imports of ipykernel and IPython,
and then the notebook's own imports (numpy, xarray, ...). :func:`preload` imports them in the
fork server, so each kernel forked from it finds them imported. Modules that build their
configuration or services of their own at import (distributed, fsspec) are never preloaded, nor
is the inline backend, which hooks itself into the IPython shell that exists when it is
imported.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import sys

#: what every kernel imports while it starts (debugpy alone is 45 ms): imported before the stack
KERNEL_MODULES = (
    "ipykernel.kernelapp",
    "ipykernel.ipkernel",
    "ipykernel.zmqshell",
    "ipykernel.debugger",
    "IPython.core.debugger",
    "IPython.core.completerlib",
    "IPython.extensions.storemagic",
)
#: the scientific stack notebooks import; what pays off is what programs import in cell one
STACK_MODULES = (
    "numpy",
    "pandas",
    "scipy",
    "scipy.sparse",
    "scipy.fft",
    "scipy.fftpack",
    "scipy.signal",  # with scipy.stats, .optimize, .interpolate, .linalg: 0.4 s per run saved
    "scipy.stats",
    "xarray",
    "matplotlib",
    "matplotlib.pyplot",
    # xarray opens files lazily through dask: its import and first computation cost 0.3 s
    # in a new kernel (a run that sets DASK_* gets a kernel started from scratch)
    "dask",
    "dask.array",
    "dask.threaded",
    "dask.local",
    "dask.optimization",
    "xarray.namedarray.daskmanager",
    "toolz",
    "tlz.curried",
    "cloudpickle",
    "yaml",
    "jinja2",
    "importlib_metadata",
    "tblib.pickling_support",
    "multiprocessing.pool",
    "concurrent.futures.process",
    "smartfab",
    "smartfab.datasets",
    "smartfab.datasets.api",
    "smartfab.record",
)
#: never preloaded: distributed and fsspec start services or read configuration files of
#: their own at import; the inline backend registers itself with the IPython shell that exists
#: when it is imported (none in the fork server)
NOT_PRELOADABLE = ("distributed", "fsspec", "matplotlib_inline")
#: the backend ipykernel selects when ``MPLBACKEND`` is unset (``IPKernelApp.init_gui_pylab``)
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"


def _import_all(names: tuple[str, ...]) -> None:
    for name in names:
        # debugpy warns on stderr at import; in a kernel that goes to IOPub, where no client
        # listens yet: here it would reach the owner's terminal, once per server
        with contextlib.suppress(ImportError), contextlib.redirect_stderr(io.StringIO()):
            importlib.import_module(name)


def _warm_catalog() -> None:
    """Parse the curated dataset cards once (cached by file; see ``load_cards``)."""
    with contextlib.suppress(Exception):  # a broken card is reported by the run that opens it
        from smartfab.datasets.cards import load_cards
        from smartfab.datasets.catalog import default_cards_dir

        load_cards(default_cards_dir())


def preload() -> list[str]:
    """Import the kernel and the stack; return the top-level names only the stack imported.

    A module of the run's working directory named like one of these would shadow it in a
    fresh kernel (IPython puts ``''`` before site-packages), but not in a warm one.
    """
    # the kernel would set this itself before anything imports matplotlib
    if not os.environ.get("MPLBACKEND"):
        os.environ["MPLBACKEND"] = INLINE_BACKEND
    _import_all(KERNEL_MODULES)
    kernel_names = {name.split(".")[0] for name in sys.modules}
    _import_all(STACK_MODULES)
    _warm_catalog()
    leaked = sorted(
        name
        for name in sys.modules
        if any(name == bad or name.startswith(bad + ".") for bad in NOT_PRELOADABLE)
    )
    if leaked:
        sys.exit(f"smartfab kernel fork server: preloading imported {', '.join(leaked)}")
    stack_names = {name.split(".")[0] for name in sys.modules} - kernel_names
    return sorted(stack_names - set(sys.stdlib_module_names) - {"__main__"})
