"""Checks of the alliance file against the dashboards that exist."""

from __future__ import annotations

from pathlib import Path

from smartfab.errors import AllianceError, Problem
from smartfab.yamlfile import load_yaml_document, problem_at


def check_dashboard_grants(alliance_file: Path, known_ids: set[str]) -> None:
    """Every ``teams[].grants.dashboards`` id of ``alliance_file`` must be a known dashboard.

    Raises
    ------
    AllianceError
        Naming file, line and field path of every unknown id.
    """
    from smartfab.alliance import load_alliance

    alliance = load_alliance(alliance_file)
    doc = load_yaml_document(alliance_file)
    problems: list[Problem] = []
    hint = f"; known: {', '.join(sorted(known_ids))}" if known_ids else "; none is registered"
    for index, team in enumerate(alliance.teams):
        for pos, dashboard_id in enumerate(team.grants.dashboards):
            if dashboard_id not in known_ids:
                problems.append(
                    problem_at(
                        doc,
                        ("teams", index, "grants", "dashboards", pos),
                        f"unknown dashboard {dashboard_id!r}{hint}",
                    )
                )
    if problems:
        raise AllianceError(alliance_file, problems)


def check_known_grants(alliance_file: Path, state_dir: Path | None = None) -> None:
    """Check grants against the curated apps installed with smartfab (and the apps published in
    ``state_dir``), wherever ``alliance_file`` is."""
    from smartfab.dashboards.registry import DashboardCatalog, curated_registry, load_registry

    ids = {d.id for d in load_registry(curated_registry())}
    if state_dir is not None:
        ids |= {d.id for d in DashboardCatalog.for_hub(state_dir).published()}
    check_dashboard_grants(alliance_file, ids)
