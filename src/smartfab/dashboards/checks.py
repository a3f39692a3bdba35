"""What the alliance file's dashboard grants may name: the dashboards that exist."""

from __future__ import annotations

from pathlib import Path

from smartfab.alliance.checks import GrantReferences


def dashboard_references(state_dir: Path | None = None) -> GrantReferences:
    """``grants.dashboards`` may name the curated apps installed with smartfab and the apps
    published in ``state_dir``, wherever the alliance file is."""
    from smartfab.dashboards.registry import DashboardCatalog, curated_registry, load_registry

    ids = {d.id for d in load_registry(curated_registry())}
    if state_dir is not None:
        ids |= {d.id for d in DashboardCatalog.for_hub(state_dir).published()}
    return GrantReferences(kind="dashboards", noun="dashboard", known=frozenset(ids))
