"""Importing a team's own machine recording as a dataset only that team may use.

A firm brings a recording (a CSV or netCDF export of a machine or controller) and an import
card (:class:`smartfab.datasets.cards.ImportCard`: variables and units, sampling rate, who
recorded it, on which machine, when and how). :func:`import_recording` reads the file, checks
every variable the card names (present, numeric, one dimension, units UDUNITS knows and that
agree with the file's own), builds an ``xarray.Dataset`` with a time coordinate in seconds, and
writes it like a curated build: the netCDF file with its sha256, segment manifest and content
fingerprint beside it, and a full :class:`~smartfab.datasets.cards.DatasetCard` (kind
``imported``, ``access: [team]``) that pins that content. In the team's dataset folder::

    <team folder>/.datasets/
        cards/<id>.yaml                      the card; its presence says the import is whole
        <id>/<version>/<id>.nc               the data, and its records:
        <id>/<version>/<id>.nc.sha256, .manifest.json, .fingerprint.json

Everything is made in a hidden staging folder inside the target and moved into place at the
end, the card last: an import that fails leaves nothing behind. The catalog reads the cards of
every folder in ``$SMARTFAB_SHARED_DATA`` (see :class:`smartfab.datasets.catalog.Catalog`), so
the team's servers and run kernels open the dataset with ``smartfab.datasets.open(id)``.
"""

from __future__ import annotations

import getpass
import os
import re
import shutil
import tempfile
from collections.abc import Collection
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from smartfab.datasets.cards import CARD_SUFFIX, DatasetCard, ImportCard, Kind, load_import_card
from smartfab.datasets.catalog import IMPORTED_CARDS_DIR as CARDS_DIR
from smartfab.datasets.checksums import sha256_of
from smartfab.datasets.content import (
    fingerprint_file,
    write_fingerprint_record,
    write_sha256_record,
)
from smartfab.datasets.imports.folder import (
    ImportTarget,
    check_id_free,
    commit,
    curated_ids,
    import_lock,
    import_target,
    set_permissions,
)
from smartfab.datasets.imports.reading import FORMATS, read_recording, recording_format
from smartfab.datasets.manifest import build_manifest, save_manifest

if TYPE_CHECKING:
    import xarray as xr

__all__ = [
    "CARDS_DIR",
    "FORMATS",
    "ImportTarget",
    "check_id_free",
    "import_recording",
    "import_target",
    "read_recording",
    "recording_format",
]


def import_recording(
    source: Path,
    card: Path,
    team: str,
    target: Path,
    *,
    replace: bool = False,
    curated: Collection[str] | None = None,
    owner: tuple[int, int] | None = None,
    imported_by: str | None = None,
) -> DatasetCard:
    """Import the recording ``source`` described by the import card ``card`` for ``team`` into
    the team's dataset folder ``target``; return the dataset card written there.

    Parameters
    ----------
    source:
        A CSV (``.csv``, ``.txt``) or netCDF (``.nc``, ``.nc4``, ``.netcdf``, ``.h5``) file.
    card:
        The import card (YAML, see :class:`smartfab.datasets.cards.ImportCard`).
    team:
        The team the dataset is restricted to (``access: [team]``).
    target:
        The team's dataset folder (``<team folder>/.datasets``, see :func:`import_target`).
    replace:
        Replace an earlier import of the same id by the team (otherwise refused).
    curated:
        Ids the import may not take (default: the curated cards, see ``default_cards_dir``).
    owner:
        ``(uid, gid)`` to give everything written (an operator importing as root).
    imported_by:
        Who imports (default: ``$JUPYTERHUB_USER``, else the login name).

    Raises
    ------
    ConfigFileError
        The card is invalid: each problem names the card, line, field and value.
    DatasetError
        The file is missing or unreadable, of an unknown format, lacks a column or variable the
        card names, holds values that are not numbers, disagrees with the card's units or
        sampling rate, or the id is taken. Nothing is written.

    See Also
    --------
    import_target, smartfab.datasets.catalog.Catalog.open
    """
    source, card, target = Path(source), Path(card), Path(target)
    kind = recording_format(source)
    spec = load_import_card(card)
    taken = curated_ids() if curated is None else curated
    check_id_free(spec.id, target, taken, replace, card)
    ds = read_recording(source, spec, card, kind)
    received = _file_entry(source)
    target.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".import-", dir=target))
    try:
        built = _stage(ds, spec, team, staging, received, imported_by)
        set_permissions(staging, owner)
        with import_lock(target):
            check_id_free(spec.id, target, taken, replace, card)
            commit(staging, target, spec.id, owner)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return built


def _stage(
    ds: xr.Dataset,
    spec: ImportCard,
    team: str,
    staging: Path,
    received: dict[str, Any],
    imported_by: str | None,
) -> DatasetCard:
    """Write the netCDF file, its records and the card into ``staging``: ``<id>/<version>/``
    and ``<id>.yaml``."""
    from smartfab.datasets.catalog import NETCDF_ENGINE, write_netcdf

    path = staging / spec.id / spec.version / f"{spec.id}.nc"
    write_netcdf(ds, path)
    manifest = build_manifest(path)
    content = fingerprint_file(path, NETCDF_ENGINE)
    save_manifest(manifest, path)
    write_fingerprint_record(path, manifest.sha256, content)
    write_sha256_record(path, manifest.sha256)
    card = _dataset_card(spec, team, received, content, imported_by)
    text = yaml.safe_dump(card.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
    (staging / f"{spec.id}{CARD_SUFFIX}").write_text(text, encoding="utf-8")
    return card


def _dataset_card(
    spec: ImportCard,
    team: str,
    received: dict[str, Any],
    content: Any,
    imported_by: str | None,
) -> DatasetCard:
    """The full card of the imported dataset: restricted to ``team``, pinned by ``content``."""
    info = spec.recording
    who = imported_by or os.environ.get("JUPYTERHUB_USER") or getpass.getuser()
    citation = spec.citation or (
        f"{info.recorded_by}: {spec.title}, recorded on {info.machine} "
        f"({info.recorded_at.isoformat()}); imported for team {team}."
    )
    return DatasetCard.model_validate(
        {
            "id": spec.id,
            "version": spec.version,
            "title": spec.title,
            "summary": spec.description,
            "kind": Kind.imported,
            "license": spec.license,
            "citation": citation,
            "provenance": {
                "parameters": {
                    "team": team,
                    "time_column": spec.time.column if spec.time else None,
                },
                "recording": {
                    **info.model_dump(),
                    "file": received,
                    "imported_by": who,
                    "imported_at": datetime.now(UTC).replace(microsecond=0),
                },
            },
            "variables": {
                name: {"units": v.units, "long_name": v.long_name, "description": v.description}
                for name, v in spec.variables.items()
            },
            "sampling": [{"variables": list(spec.variables), "rate_hz": spec.sampling_rate_hz}],
            "ground_truth": spec.ground_truth,
            "tasks": spec.tasks,
            "caveats": spec.caveats,
            "fingerprint": content,
            "access": [team],
        }
    )


def _file_entry(source: Path) -> dict[str, Any]:
    """The recording as received: its name (made safe for a card), size and sha256."""
    name = re.sub(r"[^A-Za-z0-9@._-]", "_", source.name)
    return {"name": name, "size": source.stat().st_size, "sha256": sha256_of(source)}
