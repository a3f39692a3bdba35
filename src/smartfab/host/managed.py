"""The JupyterHub definition of a managed smartfab service: what every service of the alliance
gets from the hub that starts it."""

from __future__ import annotations

import sys
from typing import Any

from smartfab.host.loopback import free_loopback_port
from smartfab.host.settings import SETTINGS_ENV, HubSettings
from smartfab.resources import LIBRARY_ENV, library_dir


def managed_service(name: str, module: str, settings: HubSettings) -> dict[str, Any]:
    """Service ``name`` running ``python -m module`` on a free loopback port, behind the hub's
    OAuth without an "authorize access" page (the service is the alliance's own; access to it
    comes from roles rendered from the alliance file).

    It finds the deployment's settings through ``$SMARTFAB_HUB_SETTINGS`` and the alliance
    library the hub uses through ``$SMARTFAB_LIBRARY_DIR`` (JupyterHub gives a service none of
    the hub's environment); its Jupyter and IPython files stay in ``<state>/<name>``, apart
    from any person's.
    """
    private = settings.state_dir / name
    return {
        "name": name,
        "url": f"http://127.0.0.1:{free_loopback_port()}",
        "command": [sys.executable, "-m", module],
        "oauth_no_confirm": True,
        "display": True,
        "environment": {
            SETTINGS_ENV: str(settings.settings_file),
            LIBRARY_ENV: str(library_dir()),
            "JUPYTER_CONFIG_DIR": str(private / "jupyter-config"),
            "JUPYTER_RUNTIME_DIR": str(private / "jupyter-runtime"),
            "IPYTHONDIR": str(private / "ipython"),
            "HOME": str(private),
        },
    }
