"""The rules deciding when a warm kernel can stand in for one started from its kernelspec.

A warm kernel is forked from the fork server, which imported the kernel and the stack before
any run was known. It behaves like a kernel started for the run unless the run depends on what
the fork server could not know: another interpreter or language (:func:`forkable`), a variable
the interpreter, the kernel or the preloaded modules read at start or import
(:func:`is_import_time_variable`), a ``matplotlibrc`` or a module that would shadow a preloaded
one in the run's directory. :func:`cold_start_reason` applies them all; the rest of the run's
environment is applied to a warm kernel when it is acquired (:func:`environment_changes`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path
from string import Template
from typing import Any

from smartfab.runs.kernels.preload import INLINE_BACKEND

#: variables the interpreter, the kernel or the preloaded stack read once, at start or import
IMPORT_TIME_VARIABLES = frozenset(
    {"HOME", "TZ", "TMPDIR", "TEMP", "TMP", "LANG", "LANGUAGE", "MATPLOTLIBRC", "IPYTHONDIR"}
)
IMPORT_TIME_PREFIXES = (
    "PYTHON",  # the interpreter: path, hash seed, warnings, encodings
    "LC_",
    "LD_",
    "MALLOC_",
    "OMP_",  # BLAS thread pools are sized when numpy loads
    "OPENBLAS_",
    "MKL_",
    "GOTO_",
    "BLIS_",
    "NUMEXPR_",
    "NPY_",
    "NUMPY_",
    "SCIPY_",
    "PANDAS_",
    "MPL",  # matplotlib: backend, config and cache directories
    "XDG_",
    "JUPYTER_",
    "JPY_",
    "DASK_",  # dask reads its configuration (environment and YAML files) at import
    "PYDEVD_",  # debugpy, imported by every kernel
    "DEBUGPY_",
)
#: variables ``ZMQInteractiveShell.init_environment`` overwrites in every kernel it starts
KERNEL_SET_VARIABLES = frozenset(
    {"TERM", "CLICOLOR", "FORCE_COLOR", "CLICOLOR_FORCE", "PAGER", "GIT_PAGER"}
)


def is_import_time_variable(name: str) -> bool:
    """Whether a warm kernel already used ``name`` before any run could set it."""
    return name in IMPORT_TIME_VARIABLES or name.startswith(IMPORT_TIME_PREFIXES)


def kernel_environment(
    spec_env: Mapping[str, str], run_env: Mapping[str, str] | None
) -> dict[str, str]:
    """The environment jupyter_client would give a kernel of this kernelspec started now.

    This process's environment, then the run's variables, then the kernelspec's (with
    ``$VAR`` substituted), without ``PYTHONEXECUTABLE``, with ``JPY_PARENT_PID``.
    """
    env = {**os.environ, **(run_env or {})}
    env.update({k: Template(v).safe_substitute(env) for k, v in spec_env.items()})
    env.pop("PYTHONEXECUTABLE", None)
    env["JPY_PARENT_PID"] = str(os.getpid())
    return env


def as_kernel_sees_it(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` after ipykernel's own start: it picks the inline backend when none is set."""
    seen = dict(env)
    if not seen.get("MPLBACKEND"):
        seen["MPLBACKEND"] = INLINE_BACKEND
    return seen


def environment_changes(
    base: Mapping[str, str], target: Mapping[str, str]
) -> tuple[dict[str, str], list[str]]:
    """Variables to set and to remove to turn ``base`` into ``target`` inside a kernel."""
    assign = {k: v for k, v in target.items() if base.get(k) != v and k not in KERNEL_SET_VARIABLES}
    remove = sorted(k for k in base if k not in target and k not in KERNEL_SET_VARIABLES)
    return assign, remove


def _same_interpreter(executable: str) -> bool:
    """Whether a kernelspec's ``argv[0]`` starts this very interpreter (and virtualenv)."""
    import sys

    if executable in ("python", "python3", f"python3.{sys.version_info.minor}"):
        return True  # jupyter_client runs these as sys.executable
    path, ours = Path(executable), Path(sys.executable)
    return (
        path.is_absolute()
        and path.parent.resolve() == ours.parent.resolve()
        and path.resolve() == ours.resolve()
    )


def forkable(spec: Any) -> bool:
    """Whether a warm fork runs exactly what this kernelspec would start."""
    argv = list(spec.argv)
    return (
        (spec.language or "").lower() == "python"
        and len(argv) == 5
        and argv[1] == "-m"
        and argv[2] in ("ipykernel_launcher", "ipykernel")
        and argv[3:] == ["-f", "{connection_file}"]
        and _same_interpreter(argv[0])
    )


def _shadowing(cwd: Path, names: frozenset[str]) -> list[str]:
    """Preloaded top-level modules a file or package of ``cwd`` would shadow in a new kernel."""
    found = set()
    with contextlib.suppress(OSError), os.scandir(cwd) as entries:
        for entry in entries:
            stem = (
                entry.name.split(".", 1)[0] if entry.name.endswith((".py", ".so")) else entry.name
            )
            if stem in names and (entry.name != stem or entry.is_dir()):
                found.add(stem)
    return sorted(found)


def cold_start_reason(
    spec_forkable: bool,
    server_env: Mapping[str, str],
    shadowable: frozenset[str],
    cwd: Path,
    target: Mapping[str, str],
) -> str | None:
    """Why a warm fork would not behave like a kernel started for this run, or None.

    ``spec_forkable`` is :func:`forkable` of the run's kernelspec; ``server_env`` and
    ``shadowable`` are the fork server's environment and the top-level modules only its stack
    imported; ``target`` is the run's :func:`kernel_environment`.
    """
    if not spec_forkable:
        return "it is not this interpreter's IPython kernel"
    assign, remove = environment_changes(server_env, as_kernel_sees_it(target))
    early = sorted(name for name in (*assign, *remove) if is_import_time_variable(name))
    if early:
        return f"it sets {', '.join(early)}, read when the kernel starts"
    if (cwd / "matplotlibrc").exists():
        return "its directory holds a matplotlibrc"
    shadowed = _shadowing(cwd, shadowable)
    if shadowed:
        return f"its directory holds modules named like {', '.join(shadowed)}"
    return None
