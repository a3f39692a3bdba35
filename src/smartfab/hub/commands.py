"""``smartfab hub check | up | down | status``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from smartfab.host.settings import DEFAULT_ALLIANCE_FILE, HubSettings

app = typer.Typer(help="Run and inspect the alliance hub.", no_args_is_help=True)


#: the defaults of the settings fields: the options of ``hub up`` have none of their own
DEFAULTS: dict[str, Any] = {name: f.default for name, f in HubSettings.model_fields.items()}


@app.command("check")
def check_command(
    file: Annotated[
        Path, typer.Argument(help="The alliance file to validate.")
    ] = DEFAULT_ALLIANCE_FILE,
    state_dir: Annotated[
        Path | None,
        typer.Option(
            help="Also accept grants of apps published and programs registered in this state dir."
        ),
    ] = None,
) -> None:
    """Validate an alliance file; list every problem with file, line and field path.

    Example: smartfab hub check hub/alliance.yaml
    """
    from smartfab.hub.services import load_checked_alliance

    alliance = load_checked_alliance(file, state_dir)
    owners = len(alliance.server_owners)
    typer.echo(
        f"{file}: ok ({len(alliance.people)} people, {len(alliance.teams)} teams, "
        f"{owners} with a server of their own)"
    )


@app.command("up")
def up_command(
    config: Annotated[
        Path, typer.Option("--config", help="The alliance file.")
    ] = DEFAULT_ALLIANCE_FILE,
    state_dir: Annotated[
        Path | None,
        typer.Option(
            help="Database, secrets, passwords, team folders. Default: "
            "/var/lib/smartfab as root, else ~/.local/share/smartfab."
        ),
    ] = None,
    port: Annotated[int, typer.Option(help="Public port of the proxy.")] = DEFAULTS["port"],
    ip: Annotated[str, typer.Option(help="Address the proxy listens on.")] = DEFAULTS["ip"],
    hub_port: Annotated[int, typer.Option(help="Internal hub API port (loopback).")] = DEFAULTS[
        "hub_port"
    ],
    proxy_api_port: Annotated[int, typer.Option(help="Proxy REST API port (loopback).")] = DEFAULTS[
        "proxy_api_port"
    ],
    spawn_mode: Annotated[
        str | None,
        typer.Option(
            help="'system' (one system account per user; default as root) or "
            "'single' (no isolation; default otherwise)."
        ),
    ] = None,
    account_prefix: Annotated[
        str, typer.Option(help="Prefix of created system accounts and groups.")
    ] = DEFAULTS["account_prefix"],
    home_root: Annotated[
        Path, typer.Option(help="Where system accounts' homes are created.")
    ] = DEFAULTS["home_root"],
    idle_timeout: Annotated[
        int, typer.Option(help="Seconds of inactivity before the culler stops a server.")
    ] = DEFAULTS["idle_timeout"],
    dashboard_pool_size: Annotated[
        int,
        typer.Option(
            help="Kernels kept ready, with the notebook already executed, per dashboard app "
            "and team: that many viewers opening an app at once get it without waiting for "
            "a kernel (about 150 MB of memory each); 0 starts a kernel per page view."
        ),
    ] = DEFAULTS["dashboard_pool_size"],
    db_url: Annotated[
        str, typer.Option(help="Database URL (default: SQLite in the state dir).")
    ] = DEFAULTS["db_url"],
    max_failed_logins: Annotated[
        int, typer.Option(help="Failed logins in a row before an account is locked out.")
    ] = DEFAULTS["allowed_failed_logins"],
    lockout_seconds: Annotated[
        int, typer.Option(help="Seconds an account stays locked out after that.")
    ] = DEFAULTS["seconds_before_next_try"],
    fork_server: Annotated[
        bool,
        typer.Option(
            help="Fork servers from a process with Jupyter already imported "
            "(fast); --no-fork-server starts each as a new process."
        ),
    ] = DEFAULTS["fork_server"],
    hub_config: Annotated[
        Path | None,
        typer.Option(
            help="JupyterHub config file (default: jupyterhub_config.py beside the "
            "alliance file), e.g. hub/oidc_config.py for single sign-on."
        ),
    ] = None,
) -> None:
    """Start JupyterHub and its proxy with the alliance file.

    Ctrl-C (or SIGTERM) stops the hub and leaves the proxy and the single-user servers
    running: the same command again restarts the hub, which finds them again. `smartfab hub
    down` stops everything.

    Example: smartfab hub up --config hub/alliance.yaml --port 8000
    """
    from smartfab.host.settings import default_spawn_mode, hub_settings
    from smartfab.host.state import default_state_dir
    from smartfab.hub.launcher import hub_up
    from smartfab.hub.proxy import find_proxy

    alliance_file = config.resolve()
    settings = hub_settings(
        alliance_file=alliance_file,
        state_dir=(state_dir or default_state_dir()).resolve(),
        ip=ip,
        port=port,
        hub_port=hub_port,
        proxy_api_port=proxy_api_port,
        spawn_mode=spawn_mode or default_spawn_mode(),
        account_prefix=account_prefix,
        home_root=home_root.resolve(),
        proxy_command=find_proxy([alliance_file.parent, Path.cwd()]),
        idle_timeout=idle_timeout,
        dashboard_pool_size=dashboard_pool_size,
        db_url=db_url,
        allowed_failed_logins=max_failed_logins,
        seconds_before_next_try=lockout_seconds,
        fork_server=fork_server,
    )
    raise typer.Exit(hub_up(settings, hub_config.resolve() if hub_config else None))


@app.command("down")
def down_command(
    state_dir: Annotated[Path | None, typer.Option(help="State directory of the hub.")] = None,
) -> None:
    """Stop everything of a hub: the hub if it runs, its single-user servers and the proxy.

    Safe to repeat: what no longer runs is skipped.

    Example: smartfab hub down --state-dir /var/lib/smartfab
    """
    from smartfab.host.state import StateDir, default_state_dir
    from smartfab.hub.launcher import hub_down

    raise typer.Exit(hub_down(StateDir((state_dir or default_state_dir()).resolve())))


@app.command("status")
def status_command(
    state_dir: Annotated[Path | None, typer.Option(help="State directory of the hub.")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Report whether the hub, its proxy and which servers run (exit 3 when not running).

    Example: smartfab hub status --json
    """
    from smartfab.host.state import StateDir, default_state_dir
    from smartfab.hub.status import hub_status

    status = hub_status(StateDir((state_dir or default_state_dir()).resolve()))
    typer.echo(status.to_json() if json_output else status.render())
    if not status.running:
        raise typer.Exit(3)
