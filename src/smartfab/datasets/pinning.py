"""Curating a card's identity: ``smartfab datasets pin``.

A build is pinned by its content fingerprint (:mod:`smartfab.datasets.fingerprint`), computed
from a fresh build; shipped samples are files and are pinned by their bytes as well. The card is
rewritten in place: only its top-level ``files:`` and ``fingerprint:`` blocks change, so the
curator's comments and layout elsewhere stay as they were.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import yaml

from smartfab.atomicfile import write_atomic
from smartfab.datasets.cards import CARD_SUFFIX, Kind
from smartfab.datasets.catalog import NETCDF_ENGINE, Catalog
from smartfab.datasets.checksums import sha256_of
from smartfab.datasets.content import fingerprint_file

#: the card's top-level blocks that pinning writes
IDENTITY_BLOCKS = ("files", "fingerprint")


def identity_blocks(
    catalog: Catalog, dataset_id: str, source: Path | None = None
) -> dict[str, Any]:
    """The ``files`` (samples) and ``fingerprint`` blocks for ``dataset_id``'s card.

    Builds are made afresh in a temporary folder, without the card's old fingerprint (which a
    changed generator may no longer match); the data directory is left untouched.
    """
    card = catalog.info(dataset_id)
    blocks: dict[str, Any] = {}
    if card.kind is Kind.sample:
        path = catalog.sample_path(card.files[0])
        entry = {"name": path.name, "size": path.stat().st_size, "sha256": sha256_of(path)}
        blocks["files"] = [entry]
        content = fingerprint_file(path, NETCDF_ENGINE)
    else:
        with tempfile.TemporaryDirectory(prefix="smartfab-pin-") as folder:
            fresh = Catalog(
                cards_dir=catalog.cards_dir,
                data_dir=Path(folder),
                access=catalog.access,
                registry=catalog.registry,
                shared_dirs=[],
            )
            fresh.cards[dataset_id] = card.model_copy(update={"fingerprint": None})
            built = fresh.build(dataset_id, source=source, force=True, progress=True)
            content = fingerprint_file(built, NETCDF_ENGINE)
    blocks["fingerprint"] = content.model_dump(mode="json")
    return blocks


def pin_card(
    catalog: Catalog, dataset_id: str, source: Path | None = None, write: bool = False
) -> dict[str, Any]:
    """Compute :func:`identity_blocks`; with ``write``, replace them in the card file."""
    blocks = identity_blocks(catalog, dataset_id, source)
    if write:
        card_path = catalog.cards_dir / f"{dataset_id}{CARD_SUFFIX}"
        text = replace_blocks(card_path.read_text(), blocks)
        write_atomic(card_path, text.encode())
    return blocks


def replace_blocks(text: str, blocks: dict[str, Any]) -> str:
    """``text`` (a card) without its identity blocks, then ``blocks`` appended in YAML."""
    lines = text.splitlines(keepends=True)
    kept: list[str] = []
    skipping = False
    for line in lines:
        top_level = line[:1] not in (" ", "-", "\n", "#", "")
        if top_level:
            skipping = line.split(":", 1)[0] in IDENTITY_BLOCKS
        if not skipping:
            kept.append(line)
    body = "".join(kept).rstrip("\n") + "\n"
    if not blocks:
        return body
    return body + yaml.safe_dump(blocks, sort_keys=False, default_flow_style=None, width=100)
