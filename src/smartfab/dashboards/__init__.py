"""Publishing Voila apps through the hub: registry, grants, the ``dashboards`` service.

Firm viewers have no server of their own; they reach the apps granted to their teams through
the hub-managed service ``dashboards`` (see :mod:`smartfab.dashboards.service`).
"""

from __future__ import annotations

from smartfab.dashboards.registry import Dashboard, DashboardCatalog

__all__ = ["Dashboard", "DashboardCatalog"]
