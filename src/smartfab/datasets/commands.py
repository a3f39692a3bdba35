"""``smartfab datasets list | info ID | build ID | verify [ID] | pin ID | import FILE``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
import yaml

if TYPE_CHECKING:
    from smartfab.datasets.cards import DatasetCard
    from smartfab.datasets.catalog import Catalog

app = typer.Typer(help="The curated machine datasets.", no_args_is_help=True)

DataDir = Annotated[
    Path | None,
    typer.Option(help="Where builds are cached (default $SMARTFAB_DATA_DIR or ~/.cache)."),
]
CardsDir = Annotated[
    Path | None, typer.Option(help="Folder of dataset cards (default: the curated ones).")
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _catalog(data_dir: Path | None, cards_dir: Path | None) -> Catalog:
    # imported here: xarray and friends are not needed for `smartfab --help` or hub commands
    from smartfab.datasets.catalog import Catalog, default_cards_dir, default_data_dir

    return Catalog(
        cards_dir=cards_dir or default_cards_dir(), data_dir=data_dir or default_data_dir()
    )


def _parse_params(values: list[str]) -> dict[str, Any]:
    """``name=value`` pairs; values are read as YAML scalars (numbers, booleans, strings)."""
    params: dict[str, Any] = {}
    for item in values:
        name, sep, raw = item.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"{item!r}: use NAME=VALUE", param_hint="--param")
        params[name.strip()] = yaml.safe_load(raw)
    return params


def _summary(card: DatasetCard) -> dict[str, Any]:
    return {
        "id": card.id,
        "version": card.version,
        "kind": card.kind.value,
        "title": card.title,
        "license": card.license,
        "access": card.access,
    }


@app.command("list")
def list_command(
    data_dir: DataDir = None, cards_dir: CardsDir = None, json_output: Json = False
) -> None:
    """List the datasets you may use.

    Example: smartfab datasets list --json
    """
    cards = _catalog(data_dir, cards_dir).available()
    if json_output:
        typer.echo(json.dumps([_summary(c) for c in cards], indent=2))
        return
    width = max((len(c.id) for c in cards), default=2)
    for card in cards:
        scope = "public" if not card.restricted else "teams: " + ", ".join(card.teams)
        typer.echo(f"{card.id:<{width}}  {card.kind.value:<9}  {card.title}  [{scope}]")


@app.command("info")
def info_command(
    dataset_id: Annotated[str, typer.Argument(help="Dataset id.")],
    data_dir: DataDir = None,
    cards_dir: CardsDir = None,
    json_output: Json = False,
) -> None:
    """Show a dataset's card: provenance, variables and units, ground truth, tasks, files.

    Example: smartfab datasets info bearing-run-to-failure
    """
    card = _catalog(data_dir, cards_dir).info(dataset_id)
    data = card.model_dump(mode="json")
    if json_output:
        typer.echo(json.dumps(data, indent=2))
        return
    if card.fingerprint is not None:  # its digest and one line per variable, not every hash
        data["fingerprint"] = {
            "digest": card.fingerprint.digest(),
            "variables": {
                name: f"{v.dtype} ({', '.join(v.dims)}) {'x'.join(map(str, v.shape)) or 'scalar'}"
                + (f" [{v.units}]" if v.units else "")
                for name, v in card.fingerprint.variables.items()
            },
        }
    typer.echo(yaml.safe_dump(data, sort_keys=False))


@app.command("build")
def build_command(
    dataset_id: Annotated[str, typer.Argument(help="Dataset id.")],
    source: Annotated[
        Path | None, typer.Option(help="Local copy of the upstream data (external datasets).")
    ] = None,
    param: Annotated[
        list[str] | None, typer.Option(help="Generator parameter NAME=VALUE (repeatable).")
    ] = None,
    force: Annotated[bool, typer.Option(help="Build again even if cached.")] = False,
    data_dir: DataDir = None,
    cards_dir: CardsDir = None,
) -> None:
    """Build a dataset into the data directory (a progress bar shows builds over a second).

    Example: smartfab datasets build cwru-bearing --source /data/cwru
    """
    catalog = _catalog(data_dir, cards_dir)
    path = catalog.build(
        dataset_id, source=source, force=force, progress=True, **_parse_params(param or [])
    )
    typer.echo(str(path))


@app.command("verify")
def verify_command(
    dataset_id: Annotated[str | None, typer.Argument(help="Dataset id (default: all).")] = None,
    data_dir: DataDir = None,
    cards_dir: CardsDir = None,
    json_output: Json = False,
) -> None:
    """Check the sha256 of every built or shipped file; exit 1 when one does not match.

    Example: smartfab datasets verify
    """
    results = _catalog(data_dir, cards_dir).verify([dataset_id] if dataset_id else None)
    if json_output:
        typer.echo(json.dumps([r.__dict__ for r in results], indent=2))
    else:
        for r in results:
            detail = f" (expected {r.expected}, got {r.actual})" if r.status == "mismatch" else ""
            typer.echo(f"{r.status:<9} {r.dataset}  {r.path}{detail}")
    if any(r.status == "mismatch" for r in results):
        raise typer.Exit(1)


@app.command("pin")
def pin_command(
    dataset_id: Annotated[str, typer.Argument(help="Dataset id.")],
    write: Annotated[bool, typer.Option(help="Rewrite the card's identity blocks.")] = False,
    source: Annotated[
        Path | None, typer.Option(help="Local copy of the upstream data (external datasets).")
    ] = None,
    data_dir: DataDir = None,
    cards_dir: CardsDir = None,
) -> None:
    """Curate: build the card's dataset afresh and pin its content fingerprint in the card
    (shipped samples: also the size and sha256 of their files).

    Without --write the blocks are printed. Example: smartfab datasets pin spindle-thermal --write
    """
    from smartfab.datasets.pinning import pin_card

    catalog = _catalog(data_dir, cards_dir)
    blocks = pin_card(catalog, dataset_id, source=source, write=write)
    if write:
        typer.echo(f"{catalog.cards_dir / f'{dataset_id}.yaml'}: pinned {', '.join(blocks)}")
    else:
        typer.echo(yaml.safe_dump(blocks, sort_keys=False, default_flow_style=None), nl=False)


@app.command("import")
def import_command(
    source: Annotated[Path, typer.Argument(help="The recording: a CSV or netCDF export.")],
    team: Annotated[str, typer.Option(help="The team the dataset is restricted to.")],
    card: Annotated[Path, typer.Option(help="The import card (YAML): variables, units, ...")],
    state_dir: Annotated[
        Path | None,
        typer.Option(help="The hub's state directory (operator; default: the default one)."),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(help="The alliance file that declares the team (default hub/alliance.yaml)."),
    ] = None,
    replace: Annotated[
        bool, typer.Option(help="Replace the team's earlier import of the same id.")
    ] = False,
    json_output: Json = False,
) -> None:
    """Import a machine recording as a dataset only your team may use.

    Inside your server it goes to ~/teams/TEAM/.datasets; the operator (root on the hub
    machine) writes into the team folder of the hub's state directory. The team then opens it
    with smartfab.datasets.open(ID).

    Example: smartfab datasets import spindle-run-7.csv --team acme-machining --card run7.yaml
    """
    from smartfab.datasets.imports import CARDS_DIR, import_recording, import_target

    where = import_target(team, state_dir=state_dir, alliance_file=config)
    done = import_recording(source, card, team, where.folder, replace=replace, owner=where.owner)
    path = where.folder / CARDS_DIR / f"{done.id}.yaml"
    if json_output:
        typer.echo(json.dumps({**_summary(done), "card": str(path)}, indent=2))
        return
    typer.echo(f"{done.id}: imported for team {team} ({path})")
