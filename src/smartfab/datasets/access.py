"""Who may use which dataset.

A public dataset is open to everyone. A restricted one (``access: [teams]`` on its card) is open
to members of those teams and of teams the alliance file grants it to (``grants.datasets``).
Inside the hub each server is told its user's teams and grants through the environment (set by
the spawner); outside the hub, the operator (root) sees everything and anyone else only public
datasets. In system-account mode the files themselves are guarded by OS groups as well.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from smartfab.datasets.cards import DatasetCard
from smartfab.errors import DatasetAccessError
from smartfab.host.names import GRANTS_ENV, TEAMS_ENV


def _split(value: str | None) -> frozenset[str]:
    return frozenset(part.strip() for part in (value or "").split(",") if part.strip())


@dataclass(frozen=True)
class AccessPolicy:
    """The current user's teams and dataset grants; ``operator`` sees every dataset."""

    teams: frozenset[str] = field(default_factory=frozenset)
    grants: frozenset[str] = field(default_factory=frozenset)
    operator: bool = False

    @classmethod
    def from_environment(cls) -> AccessPolicy:
        """Teams and grants from the hub's environment; root outside a hub server operates."""
        in_hub_server = "JUPYTERHUB_USER" in os.environ
        return cls(
            teams=_split(os.environ.get(TEAMS_ENV)),
            grants=_split(os.environ.get(GRANTS_ENV)),
            operator=os.geteuid() == 0 and not in_hub_server,
        )

    def allows(self, card: DatasetCard) -> bool:
        """Whether the dataset of ``card`` may be listed and opened."""
        if not card.restricted or self.operator:
            return True
        return bool(self.teams & set(card.teams)) or card.id in self.grants

    def check(self, card: DatasetCard) -> None:
        """Raise DatasetAccessError unless :meth:`allows`."""
        if not self.allows(card):
            raise DatasetAccessError(
                f"{card.id} is restricted to the teams {', '.join(card.teams)}; "
                "your teams are " + (", ".join(sorted(self.teams)) if self.teams else "none")
            )
