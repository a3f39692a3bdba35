"""Provenance of program test runs: what a run executed with, and the hashes that name it.

A run is content-addressed in two steps. :func:`input_key` hashes what is known before
execution (the notebook's bytes, the parameters, the kernel and the environment); :func:`run_id`
adds the datasets the run opened, named by their content fingerprints (what the data is, the
same on every machine; the sha256 of the files read is recorded beside), known once it has run.
Every hash is a sha256 over :func:`~smartfab.canonicaljson.canonical_json`, so the same inputs
give the same key on every machine and in every process.
"""

from __future__ import annotations

import functools
import hashlib
import platform
import re
import socket
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

from smartfab.canonicaljson import canonical_json
from smartfab.datasets.checksums import sha256_of
from smartfab.runs.models import DatasetUse, Environment

#: bump when the layout of the hashed documents changes: old keys then stop matching
#: (2: datasets are named by their content fingerprint, not by the bytes of their files)
KEY_VERSION = 2


@functools.cache
def environment() -> Environment:
    """The interpreter, the platform and every installed distribution with its version.

    Computed once per process (the installed packages do not change under a running process
    that matters to us) and shared by every run it starts.

    See Also
    --------
    smartfab.runs.models.Environment.key
    """
    packages: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if not name:
            continue  # a broken install without metadata: nothing to pin
        # the first one found wins, as for imports (earlier entries of sys.path shadow later)
        packages.setdefault(_normalize(name), dist.version)
    return Environment(
        python=platform.python_version(),
        platform=platform.platform(),
        packages=dict(sorted(packages.items())),
    )


def _normalize(name: str) -> str:
    """A distribution name as PEP 503 compares them: ``Jupyter_Client`` -> ``jupyter-client``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def input_key(
    notebook_sha256: str, parameters: dict[str, Any], kernel: str, environment_key: str
) -> str:
    """sha256 (hex) of everything a run depends on before it executes.

    Parameters
    ----------
    notebook_sha256:
        sha256 of the program notebook's bytes.
    parameters:
        The parameters injected for this grid point.
    kernel:
        The kernel name the notebook runs in.
    environment_key:
        :meth:`Environment.key` of the executing environment.
    """
    document = {
        "version": KEY_VERSION,
        "notebook": notebook_sha256,
        "parameters": parameters,
        "kernel": kernel,
        "environment": environment_key,
    }
    return _sha256_text(canonical_json(document))


def run_id(input_key: str, datasets: Iterable[DatasetUse]) -> str:
    """sha256 (hex) of a run: its :func:`input_key` and the datasets it opened.

    Datasets count by their content (:attr:`DatasetUse.identity`): the same data read from a
    file written elsewhere, with other bytes, gives the same id. They are sorted and
    de-duplicated, so the order in which a notebook opened them, or opening one twice, does not
    change the id.
    """
    uses = sorted({(d.id, canonical_json(d.parameters), d.identity) for d in datasets})
    document = {"version": KEY_VERSION, "input": input_key, "datasets": [list(u) for u in uses]}
    return _sha256_text(canonical_json(document))


def sha256_file(path: Path | str) -> str:
    """Hex sha256 of the file at ``path`` (the same digest the dataset catalog uses)."""
    return sha256_of(path)


def host() -> str:
    """The name of the machine executing this process."""
    return socket.gethostname()
