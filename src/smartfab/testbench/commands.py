"""``smartfab programs submit | batch | cancel``: the test bench from a terminal, through the
service's API (:mod:`smartfab.testbench.client`)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from smartfab.errors import ProgramError, TestBenchError
from smartfab.host.settings import DEFAULT_ALLIANCE_FILE
from smartfab.programs import commands as local_programs
from smartfab.testbench.client import URL_ENV, BenchApi

UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        help="The test bench, e.g. https://HUB/services/testbench/ (default: "
        "$SMARTFAB_TESTBENCH_URL, set in hub servers).",
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
ENDED = ("finished", "failed", "cancelled")


def parse_settings(values: list[str]) -> dict[str, Any]:
    """``NAME=VALUE`` pairs; each value is YAML (``3``, ``0.5``, ``[1, 2]``, ``text``)."""
    settings: dict[str, Any] = {}
    for item in values:
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            raise typer.BadParameter(f"{item!r} is not NAME=VALUE", param_hint="--set")
        try:
            settings[name.strip()] = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError as err:
            raise typer.BadParameter(f"{item!r}: the value is not YAML: {err}",
                                     param_hint="--set") from None  # fmt: skip
    return settings


def _describe(batch: dict[str, Any]) -> str:
    progress = batch.get("progress") or {}
    return (
        f"{batch['id']} {batch['state']}: {batch['program']} v{batch['version']} "
        f"{batch['spec']} for team {batch['team']}, {progress.get('done', 0)} of "
        f"{batch['runs']} runs" + (f" ({batch['message']})" if batch.get("message") else "")
    )


def submit_command(
    program: Annotated[str, typer.Argument(metavar="ID", help="The program id.")],
    version: Annotated[
        str | None, typer.Option(help="Version number or digest (default: the latest).")
    ] = None,
    batch: Annotated[
        str | None, typer.Option(help="The batch spec (default: the version's only one).")
    ] = None,
    team: Annotated[
        str | None, typer.Option(help="The team that runs it (default: your only one).")
    ] = None,
    settings: Annotated[
        list[str] | None,
        typer.Option("--set", help="NAME=VALUE for every run; a YAML list makes a grid axis."),
    ] = None,
    priority: Annotated[
        str, typer.Option(help="normal, or bulk for a re-verification behind members' batches.")
    ] = "normal",
    wait: Annotated[bool, typer.Option("--wait", help="Wait until the batch ends.")] = False,
    url: UrlOption = None,
    as_json: Json = False,
) -> None:
    """Submit a batch of a registered program to the hub's test bench.

    Example: smartfab programs submit bearing-fault-detector --set noise_level=[0.5,2.0]
    """
    api = BenchApi.from_environment(url)
    body = {
        "program": program,
        "version": version,
        "batch": batch,
        "team": team,
        "set": parse_settings(settings or []),
        "priority": priority,
    }
    queued = api.call("POST", "batches", body)
    if wait:
        queued = _wait(api, queued["id"])
    if as_json:
        typer.echo(json.dumps(queued, indent=1))
    else:
        typer.echo(_describe(queued))
        typer.echo(f"page: {api.url}batches/{queued['id']}")
    if wait and queued["state"] != "finished":
        raise TestBenchError(f"batch {queued['id']} {queued['state']}: {queued['message']}")


def _wait(api: BenchApi, batch_id: str) -> dict[str, Any]:
    while True:
        batch: dict[str, Any] = api.call("GET", f"batches/{batch_id}")
        if batch["state"] in ENDED:
            return batch
        time.sleep(1.0)


def batch_command(
    batch_id: Annotated[str, typer.Argument(metavar="BATCH", help="The batch id (tb-...).")],
    url: UrlOption = None,
    as_json: Json = False,
) -> None:
    """Show a test-bench batch of one of your teams: state and progress."""
    batch = BenchApi.from_environment(url).call("GET", f"batches/{batch_id}")
    typer.echo(json.dumps(batch, indent=1) if as_json else _describe(batch))


def cancel_command(
    batch_id: Annotated[str, typer.Argument(metavar="BATCH", help="The batch id (tb-...).")],
    url: UrlOption = None,
) -> None:
    """Cancel a queued or running test-bench batch of one of your teams."""
    batch = BenchApi.from_environment(url).call("POST", f"batches/{batch_id}/cancel")
    typer.echo(_describe(batch))


def register_command(
    specs: local_programs.SpecsArgument,
    team: local_programs.TeamOption,
    program_id: local_programs.IdOption = None,
    title: local_programs.TitleOption = None,
    description: local_programs.DescriptionOption = None,
    config: local_programs.ConfigOption = DEFAULT_ALLIANCE_FILE,
    state_dir: Annotated[
        Path | None,
        typer.Option(help="Register into this hub state folder directly (the operator's way)."),
    ] = None,
    url: UrlOption = None,
    as_json: Json = False,
) -> None:
    """Register a notebook and its batch specs as a new version of a team's program.

    Inside a hub server (or with --url) it registers through the test bench as you; with
    --state-dir (or outside a hub) into the hub's state folder directly. The same notebook and
    specs registered again are the same version; versions never change.

    Example: smartfab programs register notebooks/programs/bearing_fault_detector.yaml
    --team acme-machining
    """
    if state_dir is not None or not (url or os.environ.get(URL_ENV)):
        local_programs.register_command(
            specs, team, program_id, title, description, config, state_dir, as_json
        )
        return
    body = _registration(specs, team, program_id, title, description)
    done = BenchApi.from_environment(url).call("POST", "programs", body)
    if as_json:
        typer.echo(json.dumps(done, indent=1))
        return
    version = done["version"]
    state = "registered" if done["created"] else "already registered"
    typer.echo(
        f"{done['program']['id']} version {version['number']} ({version['digest']}) {state} "
        f"for team {done['program']['team']}: {', '.join(version['specs'])}"
    )


def _registration(
    specs: list[Path], team: str, program_id: str | None, title: str | None,
    description: str | None,
) -> dict[str, Any]:  # fmt: skip
    """The body of ``POST programs``: the specs and the one notebook they name, as text."""
    texts: dict[str, str] = {}
    notebooks: set[Path] = set()
    for spec in specs:
        try:
            text = spec.read_text(encoding="utf-8")
            data = yaml.safe_load(text)
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
            raise ProgramError(f"{spec}: cannot read the spec: {err}") from None
        notebook = data.get("program") if isinstance(data, dict) else None
        if not isinstance(notebook, str) or not notebook:
            raise ProgramError(f"{spec}: the spec names no program notebook ('program:')")
        if Path(notebook).name != notebook:
            raise ProgramError(
                f"{spec}: program: {notebook!r}: to register through the test bench, keep the "
                "notebook beside its specs and name it alone"
            )
        texts[spec.name] = text
        notebooks.add((spec.parent / notebook).resolve())
    if len(notebooks) != 1:
        raise ProgramError(f"the specs name {len(notebooks)} notebooks; one program has one")
    notebook = notebooks.pop()
    try:
        notebook_text = notebook.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ProgramError(f"{notebook}: cannot read the notebook: {err}") from None
    return {
        "team": team,
        "id": program_id,
        "title": title,
        "description": description,
        "notebook_name": notebook.name,
        "notebook": notebook_text,
        "specs": texts,
    }
