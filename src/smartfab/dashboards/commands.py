"""``smartfab dashboards list | publish NOTEBOOK --team TEAM``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from smartfab.dashboards.registry import DashboardCatalog
from smartfab.errors import DashboardError
from smartfab.host.settings import DEFAULT_ALLIANCE_FILE

app = typer.Typer(help="Voila apps published through the hub.", no_args_is_help=True)

Config = Annotated[Path, typer.Option("--config", help="The alliance file.")]
StateDirOption = Annotated[
    Path | None,
    typer.Option(help="State directory of the hub (default as for 'smartfab hub up')."),
]


def _catalog(state_dir: Path | None) -> DashboardCatalog:
    from smartfab.host.state import default_state_dir

    return DashboardCatalog.for_hub((state_dir or default_state_dir()).resolve())


@app.command("list")
def list_command(
    config: Config = DEFAULT_ALLIANCE_FILE,
    state_dir: StateDirOption = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """List curated and published dashboards and the teams that may open them.

    Example: smartfab dashboards list --json
    """
    from smartfab.alliance import load_alliance

    alliance = load_alliance(config)
    rows = []
    for dashboard in _catalog(state_dir).all():
        granted = {t.id for t in alliance.teams if dashboard.id in t.grants.dashboards}
        row = dashboard.to_json()
        row["teams"] = sorted(granted | set(dashboard.teams))
        rows.append(row)
    if json_output:
        typer.echo(json.dumps(rows, indent=2))
        return
    width = max((len(r["id"]) for r in rows), default=2)
    for row in rows:
        state = "" if row["available"] else "  (notebook missing)"
        teams = ", ".join(row["teams"]) or "no team"
        typer.echo(f"{row['id']:<{width}}  {row['origin']:<9}  {row['title']}  [{teams}]{state}")


@app.command("publish")
def publish_command(
    notebook: Annotated[Path, typer.Argument(help="The notebook to publish as a Voila app.")],
    team: Annotated[list[str], typer.Option("--team", help="Team that may open it (repeat).")],
    dashboard_id: Annotated[
        str | None, typer.Option("--id", help="URL id (default: from the file name).")
    ] = None,
    title: Annotated[str | None, typer.Option(help="Title in the gallery.")] = None,
    description: Annotated[str, typer.Option(help="One line for the gallery.")] = "",
    config: Config = DEFAULT_ALLIANCE_FILE,
    state_dir: StateDirOption = None,
) -> None:
    """Publish a notebook for teams; the running hub's gallery shows it without a restart.

    Example: smartfab dashboards publish notebooks/apps/spc_chart.ipynb --team voltronic
    """
    from smartfab.alliance import load_alliance

    alliance = load_alliance(config)
    known = {t.id for t in alliance.teams}
    for team_id in team:
        if team_id not in known:
            raise DashboardError(
                f"unknown team {team_id!r} (not in {config}); known: {', '.join(sorted(known))}"
            )
    stem = notebook.stem.lower().replace("_", "-").replace(" ", "-")
    dashboard = _catalog(state_dir).publish(
        notebook,
        team,
        dashboard_id or stem,
        title or notebook.stem.replace("_", " ").capitalize(),
        description,
    )
    typer.echo(f"published {dashboard.id!r} for {', '.join(dashboard.teams)}")
