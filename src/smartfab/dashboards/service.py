"""The hub-managed service ``dashboards``: an authenticating reverse proxy in front of the
Voila processes of the teams (one per team, see :mod:`smartfab.dashboards.backends`).

Routes under the service prefix (``/services/dashboards/``):

* ``""`` the gallery of the dashboards granted to the person's teams;
* ``<id>/`` a dashboard, rendered by the Voila of a team of the person's that it is granted to
  (403 when not granted);
* ``voila/(static|templates|labextensions)/...`` Voila's assets, read from the installed files
  (:mod:`smartfab.dashboards.assets`); ``voila/api/themes/...`` its themes (from a Voila);
* ``api/kernels/<kernel>`` (GET), ``api/kernels/<kernel>/channels`` and ``voila/query/<kernel>``:
  model and websockets of kernels rendered for the same person (sent to that kernel's Voila);
  ``voila/api/shutdown/<kernel>`` ends such a kernel;
* ``oauth_callback`` completes the hub's OAuth.

Everything else (Voila's tree, contents, files, the kernels REST API, ...) is refused with 404:
it is never forwarded. Every route needs the hub identity with
``access:services!service=dashboards``.

The hub starts the service (see :mod:`smartfab.dashboards.hubservice`) with JupyterHub's service
environment and ``$SMARTFAB_HUB_SETTINGS``, the deployment's settings file, which the service
reads like the hub does: alliance file, state directory, spawn mode, accounts, pool size.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import sys
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from jupyterhub.services.auth import HubOAuthCallbackHandler, HubOAuthenticated
from tornado import web, websocket
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest, HTTPResponse

from smartfab.dashboards.access import DashboardAccess
from smartfab.dashboards.assets import IMMUTABLE, asset_handlers, versioned
from smartfab.dashboards.backends import TeamVoilas
from smartfab.dashboards.gallery import render_gallery
from smartfab.dashboards.registry import DashboardCatalog
from smartfab.dashboards.relay import KERNEL_PROTOCOL_V1, client_message_allowed
from smartfab.dashboards.voila import VoilaProcess
from smartfab.errors import DashboardError
from smartfab.host.layout import Layout
from smartfab.host.settings import HubSettings, load_settings

log = logging.getLogger("smartfab.dashboards")

KERNEL_ID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
KERNEL_IN_PAGE = re.compile(r'"kernelId"\s*:\s*"(' + KERNEL_ID + ')"')
MAX_UPSTREAM_FETCHES = 200
#: response headers of Voila passed on to the browser (never its cookies)
PASSED_HEADERS = ("Content-Type", "Cache-Control", "Etag", "Last-Modified", "Expires")


@dataclass(frozen=True)
class KernelOwner:
    """Who a rendered kernel was started for, and by which team's Voila."""

    user: str
    team: str


@dataclass
class ServiceState:
    """What the handlers share: catalog, grants, the teams' Voilas, who owns which kernel."""

    catalog: DashboardCatalog
    access: DashboardAccess
    backends: TeamVoilas
    prefix: str
    hub_home: str
    kernel_owners: dict[str, KernelOwner] = field(default_factory=dict)

    def kernel_voila(self, kernel_id: str, user: dict[str, Any] | None) -> VoilaProcess:
        """The Voila of a kernel rendered for ``user``; 403 for anyone else's kernel."""
        owner = self.kernel_owners.get(kernel_id)
        if not user or owner is None or owner.user != user["name"]:
            raise web.HTTPError(403, "not a kernel of your dashboards")
        voila = self.backends.running(owner.team)
        if voila is None:
            raise web.HTTPError(502, "dashboards backend unavailable")
        return voila


def upstream_headers(voila: VoilaProcess) -> dict[str, str]:
    return {"Authorization": f"token {voila.token}"}


class DashboardsHandler(HubOAuthenticated, web.RequestHandler):  # type: ignore[misc]
    """Base of every page handler: hub identity, refusals without internals."""

    @property
    def state(self) -> ServiceState:
        state: ServiceState = self.settings["smartfab_state"]
        return state

    def groups(self) -> list[str]:
        user: dict[str, Any] = self.current_user
        return list(user.get("groups") or [])

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(f"{status_code} {self._reason}\n")

    async def fetch_upstream(
        self, voila: VoilaProcess, path: str, method: str = "GET"
    ) -> HTTPResponse:
        """Ask ``voila`` for ``path`` (below the prefix) with the service's private token."""
        request = HTTPRequest(
            voila.url + path,
            method=method,
            headers=upstream_headers(voila),
            body=b"" if method == "POST" else None,
            request_timeout=180,
            follow_redirects=False,
        )
        try:
            return await AsyncHTTPClient().fetch(request, raise_error=False)
        except OSError as err:
            log.error("voila unreachable for %s: %s", path, err)
            raise web.HTTPError(502, "dashboards backend unavailable") from err

    def send(self, reply: HTTPResponse, immutable: bool = False) -> None:
        """Copy Voila's status, body and safe headers (never cookies, never redirects);
        ``immutable``: the URL names its content's version, so browsers keep it without asking
        again (otherwise each of a page's ~120 assets is revalidated through the proxies)."""
        if reply.code == 599:
            raise web.HTTPError(502, "dashboards backend unavailable")
        if 300 <= reply.code < 400 and reply.code != 304:
            raise web.HTTPError(404)
        self.set_status(reply.code)
        for name in PASSED_HEADERS:
            if name in reply.headers:
                self.set_header(name, reply.headers[name])
        if immutable and reply.code == 200:
            self.set_header("Cache-Control", IMMUTABLE)
        self.finish(reply.body)

    async def forward(self, voila: VoilaProcess, path: str, method: str = "GET") -> None:
        self.send(await self.fetch_upstream(voila, path, method))


class GalleryHandler(DashboardsHandler):
    @web.authenticated
    def get(self) -> None:
        state = self.state
        visible = state.access.visible(state.catalog.all(), self.groups())
        self.finish(
            render_gallery(
                visible,
                state.prefix,
                self.current_user["name"],
                state.access.alliance.alliance.name,
                state.hub_home,
            )
        )


class RenderHandler(DashboardsHandler):
    @web.authenticated
    async def get(self, dashboard_id: str) -> None:
        state = self.state
        dashboard = state.catalog.get(dashboard_id)
        if dashboard is None or not dashboard.available:
            raise web.HTTPError(404)
        team = state.backends.team_for(dashboard, state.access.teams_for(self.groups()))
        if team is None:
            raise web.HTTPError(403, "this dashboard is not granted to your teams")
        try:
            voila = await state.backends.voila_for(team)
        except (DashboardError, OSError) as err:
            log.error("no voila for team %s: %s", team, err)
            raise web.HTTPError(502, "dashboards backend unavailable") from err
        name = state.backends.served_name(team, dashboard)
        reply = await self.fetch_upstream(voila, f"voila/render/{name}")
        # the page names its kernel; only this person may open that kernel's websocket
        match = KERNEL_IN_PAGE.search((reply.body or b"").decode("utf-8", "replace"))
        if match:
            state.kernel_owners[match.group(1)] = KernelOwner(self.current_user["name"], team)
        self.send(reply)


class ThemeHandler(DashboardsHandler):
    """Voila's themes (their CSS names the labextension folders of the Voila that serves it)."""

    @web.authenticated
    async def get(self, path: str) -> None:
        query = f"?{self.request.query}" if self.request.query else ""
        try:
            voila = self.state.backends.any_running()
        except DashboardError as err:
            raise web.HTTPError(502, "dashboards backend unavailable") from err
        reply = await self.fetch_upstream(voila, f"voila/{path}{query}")
        self.send(reply, immutable=versioned(path, self.request.query_arguments))


class ShutdownHandler(DashboardsHandler):
    async def post(self, kernel_id: str) -> None:
        voila = self.state.kernel_voila(kernel_id, self.current_user)
        await self.forward(voila, f"voila/api/shutdown/{kernel_id}", method="POST")
        self.state.kernel_owners.pop(kernel_id, None)


class KernelModelHandler(DashboardsHandler):
    """The model of one kernel of the person's own dashboard (the page asks for it)."""

    async def get(self, kernel_id: str) -> None:
        voila = self.state.kernel_voila(kernel_id, self.current_user)
        await self.forward(voila, f"api/kernels/{kernel_id}")


class RefusedHandler(DashboardsHandler):
    """Every other path below the prefix: never forwarded."""

    def prepare(self) -> None:
        raise web.HTTPError(404)


class KernelRelayHandler(HubOAuthenticated, websocket.WebSocketHandler):  # type: ignore[misc]
    """Relay one kernel websocket of the person's own rendered dashboard to Voila."""

    filter_client = True
    upstream_path = "api/kernels/{kernel_id}/channels"

    @property
    def state(self) -> ServiceState:
        state: ServiceState = self.settings["smartfab_state"]
        return state

    async def get(self, kernel_id: str, *args: Any, **kwargs: Any) -> None:
        self.voila = self.state.kernel_voila(kernel_id, self.current_user)
        await super().get(kernel_id, *args, **kwargs)

    def check_origin(self, origin: str) -> bool:
        return urlparse(origin).netloc == self.request.headers.get("Host")

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        # the browser's kernel protocol, spoken to Voila as well: frames pass unchanged
        return KERNEL_PROTOCOL_V1 if KERNEL_PROTOCOL_V1 in subprotocols else None

    async def open(self, kernel_id: str, *args: Any, **kwargs: Any) -> None:
        self.dropped = 0
        # kernel messages are small and answer each other: Nagle's algorithm would hold each
        # one back until the previous is acknowledged (40 ms with delayed ACKs)
        self.set_nodelay(True)
        path = self.upstream_path.format(kernel_id=kernel_id)
        query = f"?{self.request.query}" if self.request.query else ""
        url = self.voila.url.replace("http", "ws", 1) + path + query
        request = HTTPRequest(url, headers=upstream_headers(self.voila), connect_timeout=30)
        try:
            protocol = self.selected_subprotocol
            self.upstream: websocket.WebSocketClientConnection = await websocket.websocket_connect(
                request,
                on_message_callback=self.from_upstream,
                subprotocols=[protocol] if protocol else None,
            )
        except (OSError, HTTPClientError, websocket.WebSocketError) as err:
            log.warning("kernel %s unreachable: %s", kernel_id, err)
            self.close(1011, "kernel unavailable")
            return
        if self.upstream.protocol is not None:
            self.upstream.protocol.set_nodelay(True)

    def from_upstream(self, message: str | bytes | None) -> None:
        if message is None:
            self.close()
            return
        with contextlib.suppress(websocket.WebSocketClosedError):
            self.write_message(message, binary=isinstance(message, bytes))

    def on_message(self, message: str | bytes) -> None:
        if self.filter_client and not client_message_allowed(message, self.selected_subprotocol):
            self.dropped += 1
            log.warning("dropped a message to a kernel from %s", self.current_user["name"])
            return
        upstream = getattr(self, "upstream", None)
        if upstream is not None:
            upstream.write_message(message, binary=isinstance(message, bytes))

    def on_close(self) -> None:
        upstream = getattr(self, "upstream", None)
        if upstream is not None:
            upstream.close()


class QueryRelayHandler(KernelRelayHandler):
    """Voila's request-info socket of a pre-heated kernel (server to browser only)."""

    upstream_path = "voila/query/{kernel_id}"

    def on_message(self, message: str | bytes) -> None:
        return None


def make_app(state: ServiceState) -> web.Application:
    """The tornado application of the service, below ``state.prefix``."""
    # pages of concurrent viewers, their themes and kernel models: more than the default of 10
    AsyncHTTPClient.configure(None, max_clients=MAX_UPSTREAM_FETCHES)
    p = re.escape(state.prefix)
    return web.Application(
        [
            (p, GalleryHandler),
            (p + "oauth_callback", HubOAuthCallbackHandler),
            *asset_handlers(p),
            (p + r"voila/(api/themes/.*)", ThemeHandler),
            (p + rf"voila/api/shutdown/({KERNEL_ID})", ShutdownHandler),
            (p + rf"voila/query/({KERNEL_ID})", QueryRelayHandler),
            (p + rf"api/kernels/({KERNEL_ID})/channels", KernelRelayHandler),
            (p + rf"api/kernels/({KERNEL_ID})", KernelModelHandler),
            (p + r"(?!voila/|api/)([a-z0-9][a-z0-9._-]*)/?", RenderHandler),
            (p + r".*", RefusedHandler),
        ],
        smartfab_state=state,
        cookie_secret=os.urandom(32),
    )


def service_state(settings: HubSettings, prefix: str, hub_prefix: str) -> ServiceState:
    """The service of the deployment with ``settings`` below ``prefix``, before any Voila starts.

    Curated apps are those of the alliance library (:func:`smartfab.resources.library_dir`),
    published ones those in the state directory.
    """
    from smartfab.alliance import load_alliance

    catalog = DashboardCatalog.for_hub(settings.state_dir)
    catalog.ensure()
    access = DashboardAccess(load_alliance(settings.alliance_file))
    backends = TeamVoilas(
        catalog,
        access,
        Layout.from_settings(settings),
        base_url=prefix,
        pool_size=settings.dashboard_pool_size,
    )
    return ServiceState(
        catalog=catalog,
        access=access,
        backends=backends,
        prefix=prefix,
        hub_home=hub_prefix + "home",
    )


def main() -> None:
    """Started by the hub with its service environment (``JUPYTERHUB_SERVICE_URL`` ...) and the
    deployment's settings file (``$SMARTFAB_HUB_SETTINGS``)."""
    if len(sys.argv) > 1:
        sys.exit(
            "usage: python -m smartfab.dashboards.service (started by the hub: it reads the "
            "settings file named by $SMARTFAB_HUB_SETTINGS and takes no options)"
        )
    logging.basicConfig(level=logging.INFO, format="[%(levelname)1.1s %(name)s] %(message)s")
    settings = load_settings()
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/dashboards/")
    service_url = urlparse(os.environ["JUPYTERHUB_SERVICE_URL"])
    hub_prefix = os.environ.get("JUPYTERHUB_BASE_URL", "/") + "hub/"
    state = service_state(settings, prefix, hub_prefix)
    try:
        state.backends.start_all()
        asyncio.run(_serve(state, service_url.hostname or "127.0.0.1", service_url.port or 80))
    finally:
        state.backends.stop_all()


async def _serve(state: ServiceState, host: str, port: int) -> None:
    """Serve until the hub stops the service (SIGTERM, or SIGINT)."""
    server = make_app(state).listen(port, address=host)
    teams = ", ".join(f"{team} {v.url}" for team, v in state.backends.voilas.items())
    log.info("dashboards at http://%s:%s%s, voila of %s", host, port, state.prefix, teams or "-")
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await stopping.wait()
    server.stop()


if __name__ == "__main__":
    main()
