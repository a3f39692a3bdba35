"""Packaged JupyterHub configuration, used when no ``jupyterhub_config.py`` sits beside the
alliance file. The deployment's ``hub/jupyterhub_config.py`` is the same two lines plus site
settings."""

from smartfab.hub.config import configure_hub

configure_hub(get_config())  # type: ignore[name-defined]  # noqa: F821
