"""The one exception hierarchy of smartfab.

Every error a user can cause derives from :class:`SmartfabError`. Messages are written for the
person who has to fix the problem: they name the file, the field and the offending value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


class SmartfabError(Exception):
    """Base class of every error raised by smartfab on purpose."""

    #: process exit status used by the command line for this kind of error
    exit_code: int = 1


@dataclass(frozen=True)
class Problem:
    """One problem found in a configuration file.

    Attributes
    ----------
    path:
        Dotted field path inside the file, e.g. ``teams[1].members.zoe``.
    message:
        What is wrong, in words a user can act on.
    line:
        1-based line number in the file, when known.
    """

    path: str
    message: str
    line: int | None = None
    #: the file, when problems of several files are reported together
    source: str | None = None

    def render(self, source: str) -> str:
        source = self.source or source
        where = f"{source}:{self.line}" if self.line else source
        field = f" {self.path}:" if self.path else ""
        return f"{where}:{field} {self.message}"


class ResourceError(SmartfabError):
    """A curated resource installed with smartfab (the alliance library, the dataset cards)
    cannot be found: a damaged installation, or an environment variable naming no folder."""


class ConfigFileError(SmartfabError):
    """A configuration file (alliance file, later cards and specs) is invalid.

    Carries every problem found, so a user can fix them all in one pass.
    """

    exit_code = 2

    def __init__(self, source: Path | str, problems: Sequence[Problem]) -> None:
        self.source = str(source)
        self.problems = list(problems)
        lines = [p.render(self.source) for p in self.problems]
        count = len(lines)
        head = f"{self.source}: {count} problem{'s' if count != 1 else ''} found"
        super().__init__("\n".join([head, *("  " + line for line in lines)]))


class AllianceError(ConfigFileError):
    """The alliance file is invalid."""


class HubError(SmartfabError):
    """The hub cannot be started, stopped or inspected as asked."""

    exit_code = 3


class ProvisioningError(SmartfabError):
    """A system account, group or folder could not be put in the required state."""

    exit_code = 4


class ForkServerError(SmartfabError):
    """A fork server could not start, or could not start a process as asked."""


class DatasetError(SmartfabError):
    """A dataset cannot be listed, built, opened or verified as asked."""

    exit_code = 5


class UnknownDatasetError(DatasetError):
    """No card has the requested dataset id."""

    def __init__(self, dataset_id: str, known: Sequence[str]) -> None:
        self.dataset_id = dataset_id
        hint = f"; known: {', '.join(sorted(known))}" if known else ""
        super().__init__(f"unknown dataset {dataset_id!r}{hint}")


class ChecksumError(DatasetError):
    """A file's content is not what was curated: it is never silently replaced."""

    def __init__(
        self, path: Path | str, expected: str, actual: str, where: str | None = None
    ) -> None:
        self.path = str(path)
        self.expected = expected
        self.actual = actual
        self.where = where
        place = f"{self.path} ({where})" if where else self.path
        super().__init__(
            f"{place}: sha256 mismatch: expected {expected}, got {actual}. The file was "
            "changed or corrupted; it was not used. Remove it and build or fetch it again."
        )


class ContentMismatchError(DatasetError):
    """A build's content differs from the fingerprint its card pins (see
    :mod:`smartfab.datasets.fingerprint`): each difference names the variable, the statistic
    and both values."""

    #: differences listed in the message; the rest are counted
    SHOWN = 12

    def __init__(
        self, dataset_id: str, path: Path | str, differences: Sequence[str], outcome: str
    ) -> None:
        self.dataset_id = dataset_id
        self.path = str(path)
        self.differences = list(differences)
        count = len(self.differences)
        lines = [
            f"{dataset_id}: {self.path}: the content differs from the fingerprint pinned in its "
            f"card ({count} difference{'s' if count != 1 else ''}); {outcome}",
            *("  " + line for line in self.differences[: self.SHOWN]),
        ]
        if count > self.SHOWN:
            lines.append(f"  ... and {count - self.SHOWN} more")
        super().__init__("\n".join(lines))


class DatasetAccessError(DatasetError):
    """The dataset is restricted to teams the current user is not in."""

    exit_code = 6


class ParameterError(DatasetError):
    """Parameters given to a generator or loader are invalid."""

    exit_code = 2


class RunsError(SmartfabError):
    """A batch of program test runs cannot be started, stored or reported as asked."""

    exit_code = 7


class RunSpecError(ConfigFileError):
    """A batch spec is invalid: each problem names the file, line, field and value."""


class RunStoreError(RunsError):
    """The run store is unwritable, damaged or does not hold what was asked for."""


class KernelStartError(RunsError):
    """No kernel could be started for a run (the fork server, or the kernel itself, failed)."""


class ProgramError(SmartfabError):
    """A program cannot be registered, found or shown as asked."""

    exit_code = 9


class DashboardError(SmartfabError):
    """A dashboard cannot be published, listed or served as asked."""

    exit_code = 8


class TestBenchError(SmartfabError):
    """The test bench cannot take, queue or run a batch as asked."""

    __test__ = False  # not a pytest test class, whatever its name
    exit_code = 10


class SubmissionError(TestBenchError):
    """A request to the test bench is refused; ``status`` is its HTTP status (400 malformed,
    403 not allowed, 404 unknown, 422 invalid) and ``problems`` say what is wrong, field by
    field."""

    def __init__(self, status: int, message: str, problems: list[Problem] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.problems = problems or []

    def __str__(self) -> str:
        lines = [self.args[0], *(f"  {p.path}: {p.message}" for p in self.problems)]
        return "\n".join(lines)
