"""Where the curated resources installed with smartfab are: the alliance library and the cards.

The wheel carries both as package data (``[tool.hatch.build.targets.wheel.force-include]`` in
``pyproject.toml``): the checkout's ``notebooks/`` folder as ``smartfab/library`` and its
``datasets/`` folder as ``smartfab/datasets/_catalog``. Only when smartfab is imported from a
source tree that lacks them (an editable install, ``PYTHONPATH=src``) do the checkout's own
folders stand in. Nothing here depends on where an alliance file or the current directory is:
an alliance file may live anywhere. Each location is looked up when asked, never at import time.

This is a core module: it imports nothing of smartfab but :mod:`smartfab.errors`.
"""

from __future__ import annotations

import os
from pathlib import Path

from smartfab.errors import ResourceError

#: environment variable naming another alliance library (a folder laid out like ``notebooks/``)
LIBRARY_ENV = "SMARTFAB_LIBRARY_DIR"
#: environment variable naming another folder of dataset cards
CARDS_ENV = "SMARTFAB_CARDS_DIR"

#: inside the installed package
PACKAGED_LIBRARY = Path("library")
PACKAGED_CARDS = Path("datasets") / "_catalog"
#: inside a source checkout
CHECKOUT_LIBRARY = Path("notebooks")
CHECKOUT_CARDS = Path("datasets")


def package_dir() -> Path:
    """The folder of the imported ``smartfab`` package."""
    return Path(__file__).resolve().parent


def source_checkout() -> Path | None:
    """The source checkout smartfab is imported from (``<checkout>/src/smartfab``), else None.

    None for an installed wheel: its package sits in ``site-packages``, not below ``src``.
    """
    package = package_dir()
    root = package.parents[1]
    if package.parent.name == "src" and (root / "pyproject.toml").is_file():
        return root
    return None


def library_dir() -> Path:
    """The alliance library: the curated notebooks installed with smartfab.

    A folder laid out like the checkout's ``notebooks/``: ``tutorials/``, ``analyses/``,
    ``apps/`` (with the registry of curated Voila apps, ``apps/dashboards.yaml``) and
    ``programs/`` (with their batch specs).

    Returns
    -------
    Path
        ``$SMARTFAB_LIBRARY_DIR`` when set, else ``smartfab/library`` in the installed package,
        else ``notebooks/`` of the source checkout smartfab is imported from.

    Raises
    ------
    ResourceError
        ``$SMARTFAB_LIBRARY_DIR`` is not a folder, or the package has no library and is not
        imported from a checkout (a damaged installation).

    See Also
    --------
    cards_dir : the curated dataset cards, found the same way.
    """
    return _locate("alliance library", LIBRARY_ENV, PACKAGED_LIBRARY, CHECKOUT_LIBRARY)


def cards_dir() -> Path:
    """The folder of the curated dataset cards (and shipped samples) installed with smartfab.

    Returns
    -------
    Path
        ``$SMARTFAB_CARDS_DIR`` when set, else ``smartfab/datasets/_catalog`` in the installed
        package, else ``datasets/`` of the source checkout smartfab is imported from.

    Raises
    ------
    ResourceError
        ``$SMARTFAB_CARDS_DIR`` is not a folder, or the package has no cards and is not
        imported from a checkout (a damaged installation).

    See Also
    --------
    library_dir : the curated notebooks, found the same way.
    """
    return _locate("dataset cards", CARDS_ENV, PACKAGED_CARDS, CHECKOUT_CARDS)


def _locate(what: str, env: str, packaged: Path, in_checkout: Path) -> Path:
    """``$env``, else ``packaged`` below the package, else ``in_checkout`` below the checkout."""
    value = os.environ.get(env)
    if value:
        chosen = Path(value)
        if not chosen.is_dir():
            raise ResourceError(f"{env}={value!r}: not a folder (it names the {what} to use)")
        return chosen
    installed = package_dir() / packaged
    if installed.is_dir():
        return installed
    checkout = source_checkout()
    if checkout is not None and (checkout / in_checkout).is_dir():
        return checkout / in_checkout
    raise ResourceError(
        f"no {what} installed with smartfab ({installed} is not a folder): reinstall "
        f"smartfab, or set {env} to a folder of your own"
    )
