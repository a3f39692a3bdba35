"""The ``smartfab`` command: ``smartfab <noun> <verb>``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from smartfab.errors import SmartfabError

app = typer.Typer(
    help="smartfab: the alliance's notebook workbench.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
hub_app = typer.Typer(help="Run and inspect the alliance hub.", no_args_is_help=True)
app.add_typer(hub_app, name="hub")


def _add_datasets() -> None:
    from smartfab.datasets.commands import app as datasets_app

    app.add_typer(datasets_app, name="datasets")


def _add_runs() -> None:
    from smartfab.runs.commands import app as runs_app

    app.add_typer(runs_app, name="runs")


def _add_dashboards() -> None:
    from smartfab.dashboards.commands import app as dashboards_app

    app.add_typer(dashboards_app, name="dashboards")


_add_datasets()
_add_runs()
_add_dashboards()

DEFAULT_ALLIANCE = Path("hub/alliance.yaml")


@hub_app.command("check")
def hub_check(
    file: Annotated[Path, typer.Argument(help="The alliance file to validate.")] = DEFAULT_ALLIANCE,
    state_dir: Annotated[
        Path | None,
        typer.Option(help="Also accept dashboard grants of apps published in this state dir."),
    ] = None,
) -> None:
    """Validate an alliance file; list every problem with file, line and field path.

    Example: smartfab hub check hub/alliance.yaml
    """
    from smartfab.alliance import load_alliance
    from smartfab.dashboards.checks import check_known_grants

    alliance = load_alliance(file)
    check_known_grants(file, state_dir)
    owners = len(alliance.server_owners)
    typer.echo(
        f"{file}: ok ({len(alliance.people)} people, {len(alliance.teams)} teams, "
        f"{owners} with a server of their own)"
    )


@hub_app.command("up")
def hub_up(
    config: Annotated[Path, typer.Option("--config", help="The alliance file.")] = DEFAULT_ALLIANCE,
    state_dir: Annotated[
        Path | None,
        typer.Option(
            help="Database, secrets, passwords, team folders. Default: "
            "/var/lib/smartfab as root, else ~/.local/share/smartfab."
        ),
    ] = None,
    port: Annotated[int, typer.Option(help="Public port of the proxy.")] = 8000,
    ip: Annotated[str, typer.Option(help="Address the proxy listens on.")] = "127.0.0.1",
    hub_port: Annotated[int, typer.Option(help="Internal hub API port (loopback).")] = 8081,
    proxy_api_port: Annotated[int, typer.Option(help="Proxy REST API port (loopback).")] = 8001,
    spawn_mode: Annotated[
        str | None,
        typer.Option(
            help="'system' (one system account per user; default as root) or "
            "'single' (no isolation; default otherwise)."
        ),
    ] = None,
    account_prefix: Annotated[
        str, typer.Option(help="Prefix of created system accounts and groups.")
    ] = "sf-",
    home_root: Annotated[
        Path, typer.Option(help="Where system accounts' homes are created.")
    ] = Path("/home"),
    idle_timeout: Annotated[
        int, typer.Option(help="Seconds of inactivity before the culler stops a server.")
    ] = 3600,
    dashboard_pool_size: Annotated[
        int,
        typer.Option(
            help="Kernels kept ready, with the notebook already executed, per dashboard app "
            "and team: that many viewers opening an app at once get it without waiting for "
            "a kernel (about 150 MB of memory each); 0 starts a kernel per page view."
        ),
    ] = 2,
    db_url: Annotated[
        str, typer.Option(help="Database URL (default: SQLite in the state dir).")
    ] = "",
    max_failed_logins: Annotated[
        int, typer.Option(help="Failed logins in a row before an account is locked out.")
    ] = 5,
    lockout_seconds: Annotated[
        int, typer.Option(help="Seconds an account stays locked out after that.")
    ] = 300,
    fork_server: Annotated[
        bool,
        typer.Option(
            help="Fork servers from a process with Jupyter already imported "
            "(fast); --no-fork-server starts each as a new process."
        ),
    ] = True,
    hub_config: Annotated[
        Path | None,
        typer.Option(
            help="JupyterHub config file (default: jupyterhub_config.py beside the "
            "alliance file), e.g. hub/oidc_config.py for single sign-on."
        ),
    ] = None,
) -> None:
    """Start JupyterHub and its proxy with the alliance file; Ctrl-C stops everything.

    Example: smartfab hub up --config hub/alliance.yaml --port 8000
    """
    from smartfab.hub.launcher import default_state_dir
    from smartfab.hub.launcher import hub_up as run_hub
    from smartfab.hub.proxy import find_proxy
    from smartfab.hub.settings import default_spawn_mode, hub_settings

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
    raise typer.Exit(run_hub(settings, hub_config.resolve() if hub_config else None))


@hub_app.command("status")
def hub_status(
    state_dir: Annotated[Path | None, typer.Option(help="State directory of the hub.")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Report whether the hub, its proxy and which servers run (exit 3 when not running).

    Example: smartfab hub status --json
    """
    from smartfab.hub.launcher import default_state_dir
    from smartfab.hub.state import StateDir
    from smartfab.hub.status import hub_status as inspect

    status = inspect(StateDir((state_dir or default_state_dir()).resolve()))
    typer.echo(status.to_json() if json_output else status.render())
    if not status.running:
        raise typer.Exit(3)


def main() -> None:
    """Run the command line; smartfab errors become a message and a meaningful exit status.

    Usage errors exit 2 (typer's standard), invalid files 2, hub errors 3, provisioning 4.
    """
    try:
        app()
    except SmartfabError as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(err.exit_code)


if __name__ == "__main__":
    main()
