"""The programs of the alliance library: the curated notebooks with their batch specs."""

from __future__ import annotations

from pathlib import Path

import yaml

from smartfab.programs.registry import program_id_of
from smartfab.resources import library_dir


def curated_programs(library: Path | None = None) -> dict[str, list[Path]]:
    """Program id -> its batch specs, for every spec in the library's ``programs/`` folder
    (the id comes from the notebook a spec names, as :func:`program_id_of` makes it)."""
    folder = (library or library_dir()) / "programs"
    programs: dict[str, list[Path]] = {}
    for spec in sorted(folder.glob("*.yaml")):
        try:
            data = yaml.safe_load(spec.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            continue  # a broken spec is reported when it is registered or run
        notebook = data.get("program") if isinstance(data, dict) else None
        if isinstance(notebook, str) and notebook:
            programs.setdefault(program_id_of(Path(notebook)), []).append(spec)
    return programs
