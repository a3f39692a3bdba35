"""The ``smartfab`` command: ``smartfab <noun> <verb>``, assembled from each package's commands."""

from __future__ import annotations

import sys

import typer

from smartfab.errors import SmartfabError

app = typer.Typer(
    help="smartfab: the alliance's notebook workbench.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _add_commands() -> None:
    from smartfab.dashboards.commands import app as dashboards_app
    from smartfab.datasets.commands import app as datasets_app
    from smartfab.hub.commands import app as hub_app
    from smartfab.programs.commands import app as programs_app
    from smartfab.runs.commands import app as runs_app
    from smartfab.testbench import commands as testbench

    # the test bench's commands work on programs, through the service
    programs_app.command("register")(testbench.register_command)
    programs_app.command("submit")(testbench.submit_command)
    programs_app.command("batch")(testbench.batch_command)
    programs_app.command("cancel")(testbench.cancel_command)

    app.add_typer(hub_app, name="hub")
    app.add_typer(datasets_app, name="datasets")
    app.add_typer(runs_app, name="runs")
    app.add_typer(programs_app, name="programs")
    app.add_typer(dashboards_app, name="dashboards")


_add_commands()


def main() -> None:
    """Run the command line; smartfab errors become a message and a meaningful exit status.

    Usage errors exit 2 (typer's standard), invalid files 2, hub errors 3, provisioning 4; each
    error class has its code (:mod:`smartfab.errors`).
    """
    try:
        app()
    except SmartfabError as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(err.exit_code)


if __name__ == "__main__":
    main()
