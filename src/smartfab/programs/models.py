"""What the registry records of a program and of each of its versions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

#: program ids name folders, grants and URLs
PROGRAM_ID_PATTERN = r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$"
ProgramId = Annotated[
    str, StringConstraints(pattern=PROGRAM_ID_PATTERN, min_length=2, max_length=64)
]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProgramVersion(_Record):
    """One immutable version: the notebook's and every spec's sha256.

    ``digest`` (12 hex digits) names the version; it is computed from the hashes alone, so the
    same notebook and specs registered twice are the same version.
    """

    number: int = Field(ge=1, description="1 for the first version registered, then 2, ...")
    digest: str = Field(pattern=r"^[0-9a-f]{12}$")
    notebook_sha256: Sha256
    specs: dict[str, Sha256] = Field(min_length=1, description="batch name -> spec sha256")
    registered_at: datetime
    registered_by: str = Field(min_length=1)


class Program(_Record):
    """A parameterized notebook with its batch specs, owned by a team, with its versions."""

    id: ProgramId
    title: str = Field(min_length=1, max_length=200)
    description: str = ""
    team: str = Field(min_length=1)
    versions: list[ProgramVersion] = Field(min_length=1)

    @property
    def latest(self) -> ProgramVersion:
        """The version registered last."""
        return self.versions[-1]

    def version(self, ref: str | None) -> ProgramVersion | None:
        """The version named ``ref``: its number (``3``), its digest or a prefix of it (at
        least 4 digits), ``latest`` or None for the latest."""
        if ref is None or ref == "latest":
            return self.latest
        if ref.isdigit() and len(ref) < 4:
            return next((v for v in self.versions if v.number == int(ref)), None)
        found = [v for v in self.versions if len(ref) >= 4 and v.digest.startswith(ref)]
        return found[0] if len(found) == 1 else None
