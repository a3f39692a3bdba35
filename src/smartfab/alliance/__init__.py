"""The alliance file: who belongs to which team, with which role, and what each team may use."""

from __future__ import annotations

from smartfab.alliance.checks import GrantReferences
from smartfab.alliance.loader import load_alliance
from smartfab.alliance.models import Alliance, Person, Team, TeamKind, TeamRole

__all__ = ["Alliance", "GrantReferences", "Person", "Team", "TeamKind", "TeamRole", "load_alliance"]
