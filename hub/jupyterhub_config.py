"""JupyterHub configuration of the smartfab alliance hub.

Started by ``smartfab hub up``, which validates ``alliance.yaml``, prepares the state directory
and points JupyterHub here. Everything is set by :func:`smartfab.hub.config.configure_hub`;
add site-specific settings below it (see ``postgresql.md`` and ``oidc_config.py`` beside this file).
"""

from smartfab.hub.config import configure_hub

c = get_config()  # noqa: F821  (provided by JupyterHub)
configure_hub(c)
