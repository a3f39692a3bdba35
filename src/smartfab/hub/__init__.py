"""The alliance hub: JupyterHub's configuration, spawner and authenticators, the services it
manages (:mod:`smartfab.hub.services`), its launcher and its commands.

The machine underneath (settings, state directory, accounts, fork server) is
:mod:`smartfab.host`.
"""

from __future__ import annotations
