"""``smartfab programs register | list | show``: the program registry of a hub's state folder."""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from smartfab.errors import ProgramError
from smartfab.host.settings import DEFAULT_ALLIANCE_FILE

app = typer.Typer(
    help="Programs under test: notebooks with batch specs, by team.", no_args_is_help=True
)

StateOption = Annotated[
    Path | None,
    typer.Option(
        help="The hub's state folder (default: /var/lib/smartfab as root, else "
        "~/.local/share/smartfab); the registry is its programs/ folder."
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
#: the options of ``register``, shared with the test bench's way of registering
SpecsArgument = Annotated[list[Path], typer.Argument(help="Batch specs of one notebook (YAML).")]
TeamOption = Annotated[str, typer.Option(help="The team that owns the program.")]
IdOption = Annotated[
    str | None, typer.Option("--id", help="Program id (default: from the notebook's file name).")
]
TitleOption = Annotated[str | None, typer.Option(help="Default: the notebook's first heading.")]
DescriptionOption = Annotated[
    str | None, typer.Option(help="Default: the paragraph under that heading.")
]
ConfigOption = Annotated[
    Path, typer.Option("--config", help="The alliance file that declares the team.")
]


def _registry(state_dir: Path | None) -> Any:
    from smartfab.host.state import StateDir, default_state_dir
    from smartfab.programs.registry import ProgramRegistry

    return ProgramRegistry(StateDir(state_dir or default_state_dir()).programs)


def _version_row(version: Any) -> dict[str, Any]:
    return version.model_dump(mode="json")  # type: ignore[no-any-return]


def register_command(
    specs: SpecsArgument,
    team: TeamOption,
    program_id: IdOption = None,
    title: TitleOption = None,
    description: DescriptionOption = None,
    config: ConfigOption = DEFAULT_ALLIANCE_FILE,
    state_dir: StateOption = None,
    as_json: Json = False,
) -> None:
    """Register a notebook and its batch specs as a new version of a team's program, in the
    hub's state folder (the operator's way; members register through the test bench, see
    :func:`smartfab.testbench.commands.register_command`, which the command line uses).

    The same notebook and specs registered again are the same version; versions never change.

    Example: smartfab programs register notebooks/programs/bearing_fault_detector.yaml
    --team acme-machining
    """
    from smartfab.alliance import load_alliance

    alliance = load_alliance(config)
    if alliance.team(team) is None:
        known = ", ".join(t.id for t in alliance.teams)
        raise ProgramError(f"--team: unknown team {team!r} in {config}; teams: {known}")
    done = _registry(state_dir).register(
        specs,
        team=team,
        registered_by=getpass.getuser(),
        program_id=program_id,
        title=title,
        description=description,
    )
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "program": done.program.id,
                    "created": done.created,
                    "version": _version_row(done.version),
                },
                indent=1,
            )
        )
        return
    version = done.version
    state = "registered" if done.created else "already registered"
    typer.echo(
        f"{done.program.id} version {version.number} ({version.digest}) {state} for team "
        f"{done.program.team}: {', '.join(version.specs)}"
    )


@app.command("list")
def list_command(state_dir: StateOption = None, as_json: Json = False) -> None:
    """List the registered programs: id, team, latest version, title."""
    programs = _registry(state_dir).programs()
    if as_json:
        rows = [
            {
                "id": p.id,
                "title": p.title,
                "team": p.team,
                "versions": len(p.versions),
                "latest": _version_row(p.latest),
            }
            for p in programs
        ]
        typer.echo(json.dumps(rows, indent=1))
        return
    if not programs:
        typer.echo("no program is registered")
        return
    for p in programs:
        latest = p.latest
        typer.echo(f"{p.id}  team {p.team}  v{latest.number} ({latest.digest})  {p.title}")


@app.command("show")
def show_command(
    program_id: Annotated[str, typer.Argument(metavar="ID", help="The program id.")],
    state_dir: StateOption = None,
    as_json: Json = False,
) -> None:
    """Show a program: its title, team, description and every version with its specs."""
    program = _registry(state_dir).get(program_id)
    if as_json:
        typer.echo(json.dumps(program.model_dump(mode="json"), indent=1))
        return
    typer.echo(f"{program.id}: {program.title}")
    typer.echo(f"team: {program.team}")
    if program.description:
        typer.echo(f"description: {program.description}")
    for version in program.versions:
        when = version.registered_at.strftime("%Y-%m-%d %H:%M UTC")
        typer.echo(
            f"version {version.number} ({version.digest}), {when} by {version.registered_by}: "
            f"notebook {version.notebook_sha256[:12]}, specs {', '.join(version.specs)}"
        )
