"""The team's dataset folder an import writes into: where it is, who owns what, which ids are
taken, and moving a staged import into place."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

from smartfab.atomicfile import fsync_folder
from smartfab.datasets.cards import CARD_SUFFIX, load_cards
from smartfab.datasets.catalog import IMPORTED_CARDS_DIR as CARDS_DIR
from smartfab.datasets.catalog import default_cards_dir
from smartfab.errors import DatasetError
from smartfab.host.layout import TEAM_DATASETS_DIR, TEAM_LINKS_DIR
from smartfab.host.names import TEAMS_ENV
from smartfab.host.state import StateDir

#: imported files: read by the team, written by nobody in place
FILE_MODE = 0o640
#: folders: the team's, like the team folder (any member may import again with --replace)
DIR_MODE = 0o2770
_LOCK_FILE = ".import.lock"


@dataclass(frozen=True)
class ImportTarget:
    """Where an import goes: the team's dataset folder, and who must own what is written there
    (None: the importing user, as inside a member's server)."""

    folder: Path
    owner: tuple[int, int] | None = None


def import_target(
    team: str,
    *,
    state_dir: Path | None = None,
    alliance_file: Path | None = None,
) -> ImportTarget:
    """The dataset folder of ``team`` an import from here writes into.

    Inside a member's server (``$SMARTFAB_TEAMS`` is set): ``~/teams/<team>/.datasets``, for a
    team of the member only. Elsewhere (the operator on the hub machine): the team folder in
    ``state_dir`` (default: the default state dir) of a team of ``alliance_file``; as root, the
    files are given to the team folder's owner and group.

    Raises
    ------
    DatasetError
        The team is not the member's, not in the alliance file, or has no team folder yet.
    """
    teams_env = os.environ.get(TEAMS_ENV)
    if teams_env is not None:
        mine = [t.strip() for t in teams_env.split(",") if t.strip()]
        if team not in mine:
            raise DatasetError(
                f"--team: {team!r} is not one of your teams ({', '.join(mine) or 'none'}, "
                f"from ${TEAMS_ENV})"
            )
        folder = Path.home() / TEAM_LINKS_DIR / team
        return ImportTarget(_team_datasets(folder, team))
    from smartfab.alliance import load_alliance
    from smartfab.host.settings import DEFAULT_ALLIANCE_FILE
    from smartfab.host.state import default_state_dir

    config = alliance_file or DEFAULT_ALLIANCE_FILE
    alliance = load_alliance(config)
    if alliance.team(team) is None:
        known = ", ".join(t.id for t in alliance.teams) or "none"
        raise DatasetError(f"--team: unknown team {team!r} in {config}; teams: {known}")
    folder = StateDir(state_dir or default_state_dir()).team_folder(team)
    datasets = _team_datasets(folder, team)
    if os.geteuid() != 0:
        return ImportTarget(datasets)
    info = folder.stat()
    return ImportTarget(datasets, (info.st_uid, info.st_gid))


def check_id_free(
    dataset_id: str, target: Path, curated: Collection[str], replace: bool, card: Path
) -> None:
    """Refuse an id taken by a curated dataset, or by an earlier import of the team (unless
    ``replace``)."""
    if dataset_id == CARDS_DIR:
        raise DatasetError(f"{card}: id: {dataset_id!r} is reserved; choose another id")
    if dataset_id in curated:
        raise DatasetError(
            f"{card}: id: {dataset_id!r} is a curated dataset of the alliance; choose another id"
        )
    existing = target / CARDS_DIR / f"{dataset_id}{CARD_SUFFIX}"
    if not replace and (existing.exists() or (target / dataset_id).exists()):
        raise DatasetError(
            f"{card}: id: the team already has an imported dataset {dataset_id!r} ({existing}); "
            "choose another id, or replace it with --replace"
        )


def set_permissions(staging: Path, owner: tuple[int, int] | None) -> None:
    """Give what was staged the team's modes (and ``owner``, when root imports)."""
    for root, dirs, files in os.walk(staging):
        for name in dirs:
            _own(Path(root) / name, DIR_MODE, owner)
        for name in files:
            _own(Path(root) / name, FILE_MODE, owner)


def _own(path: Path, mode: int, owner: tuple[int, int] | None) -> None:
    if owner is not None:
        os.chown(path, *owner)
    os.chmod(path, mode)  # after chown, which clears the setgid bit


@contextlib.contextmanager
def import_lock(target: Path) -> Iterator[None]:
    """One import at a time moves files into ``target``."""
    fd = os.open(target / _LOCK_FILE, os.O_RDONLY | os.O_CREAT, FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def commit(staging: Path, target: Path, dataset_id: str, owner: tuple[int, int] | None) -> None:
    """Move the staged dataset folder, then its card, into ``target``; an earlier import of the
    same id is moved aside first and put back if the move fails."""
    cards = target / CARDS_DIR
    if not cards.is_dir():
        cards.mkdir()
        _own(cards, DIR_MODE, owner)
    folder = target / dataset_id
    aside = staging / ".replaced"
    moved_aside = False
    moved_in = False
    try:
        if folder.exists():
            folder.rename(aside)
            moved_aside = True
        (staging / dataset_id).rename(folder)
        moved_in = True
        card = f"{dataset_id}{CARD_SUFFIX}"
        (staging / card).replace(cards / card)
    except OSError as err:
        if moved_in:
            folder.rename(staging / dataset_id)
        if moved_aside:
            aside.rename(folder)
        raise DatasetError(f"{target}: cannot import {dataset_id} there: {err}") from None
    fsync_folder(target)
    fsync_folder(cards)


def _team_datasets(folder: Path, team: str) -> Path:
    """The ``.datasets`` folder of the team folder ``folder``; DatasetError if there is none."""
    if not folder.is_dir():
        raise DatasetError(
            f"{folder}: team {team!r} has no team folder here; the hub makes it when it starts "
            "(smartfab hub up)"
        )
    return folder / TEAM_DATASETS_DIR


def curated_ids() -> set[str]:
    """Ids of the curated datasets (the installed cards)."""
    return set(load_cards(default_cards_dir()))
