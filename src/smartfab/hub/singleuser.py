"""What a single-user server forked by the fork server runs.

Kept apart from the spawner: each forked server imports its entry point's module, and this
one imports nothing the fork server has not preloaded (the spawner module would cost every
server start JupyterHub's spawner stack, about 0.2 CPU-seconds).
"""

from __future__ import annotations

from typing import Any


def run(launched: Any) -> int | None:
    """jupyterhub-singleuser's entry point, as the command ``jupyterhub-singleuser`` runs it
    (the launch has set its argv and environment)."""
    from jupyterhub.singleuser import extension, main

    from smartfab.hub.guard import TeamGuardIdentityProvider

    # the extension names its identity provider when it loads its configuration
    extension.JupyterHubIdentityProvider = TeamGuardIdentityProvider
    result: int | None = main()
    return result
