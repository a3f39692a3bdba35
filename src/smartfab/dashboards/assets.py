"""Voila's front-end files, served by the ``dashboards`` service itself from the installed files.

A dashboard page loads about 120 scripts and style sheets: Voila's bundle and chunks, the
JupyterLab extensions of the widgets (ipywidgets, bqplot, ...) and the template's CSS. They are
the same for every team and every viewer, so the service reads them from the same folders Voila
would (the same Python environment) instead of asking a team's Voila for each one: a Voila busy
starting kernels for other viewers then delays no page, and no asset costs a second hop.

Files whose URL names their version (``?v=<hash>``, or a content hash in the file name such as
``remoteEntry.<hash>.js``) are sent as immutable: a returning viewer's browser uses them without
asking again. The others (Voila's own chunks) keep ``Etag``/``Last-Modified`` revalidation.
"""

from __future__ import annotations

import re
from typing import Any

from jupyterhub.services.auth import HubOAuthenticated
from tornado import web
from voila.paths import collect_static_paths  # type: ignore[import-untyped]
from voila.static_file_handler import MultiStaticFileHandler  # type: ignore[import-untyped]
from voila.utils import get_voila_labextensions_path  # type: ignore[import-untyped]

from smartfab.dashboards.template import TEMPLATE, template_root_dirs

IMMUTABLE = "public, max-age=31536000, immutable"
#: an asset whose file name carries its content hash (labextensions' ``remoteEntry.<hash>.js``)
HASHED_NAME = re.compile(r"\.[0-9a-f]{16,}\.(?:js|css)$")


def versioned(path: str, query_arguments: dict[str, Any]) -> bool:
    """Whether the URL of an asset names its content's version (it never changes)."""
    return "v" in query_arguments or HASHED_NAME.search(path) is not None


class _AssetMixin(HubOAuthenticated):  # type: ignore[misc]
    """The hub identity for every file; immutable caching of versioned ones."""

    @web.authenticated
    async def get(self, path: str, include_body: bool = True) -> None:
        await super().get(path, include_body)

    def set_extra_headers(self, path: str) -> None:
        if versioned(path, self.request.query_arguments):
            self.set_header("Cache-Control", IMMUTABLE)

    def get_cache_time(self, path: str, modified: Any, mime_type: str) -> int:
        # Cache-Control comes from set_extra_headers alone
        return 0

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(f"{status_code} {self._reason}\n")


class AssetHandler(_AssetMixin, MultiStaticFileHandler):  # type: ignore[misc]
    """One file from the first of the handler's folders that has it."""


def asset_handlers(prefix: str) -> list[tuple[str, type[web.RequestHandler], dict[str, Any]]]:
    """Routes below ``prefix`` (a regular expression) for Voila's static files."""
    # the static folders of the page template and of the templates it extends, as Voila
    # itself looks them up
    template_static = {
        "paths": collect_static_paths(
            ["voila", "nbconvert"], TEMPLATE, root_dirs=template_root_dirs()
        )
    }
    return [
        # Voila's bundle and its chunks
        (prefix + r"voila/static/(.*)", AssetHandler, template_static),
        # the page template's style bundle and fonts
        (prefix + rf"voila/templates/{TEMPLATE}/static/(.*)", AssetHandler, template_static),
        # the JupyterLab extensions the page loads (widgets, bqplot, ...)
        (
            prefix + r"voila/labextensions/(.*)",
            AssetHandler,
            {"paths": get_voila_labextensions_path()},
        ),
    ]
