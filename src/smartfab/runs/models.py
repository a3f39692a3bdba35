"""The records of program test runs, shared by the runner, the store and the reports.

A *batch* is one spec executed over its grid; a *run* is one grid point executed once. Runs are
content-addressed: ``input_key`` hashes what goes in before execution (notebook bytes,
parameters, kernel, environment); ``run_id`` adds the checksums of the datasets the run opened,
known once it has run, named by their content fingerprints.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class RunStatus(StrEnum):
    """How a run ended."""

    passed = "passed"  # executed, and every acceptance rule holds
    failed = "failed"  # executed, but a rule does not hold or a ruled metric is missing
    error = "error"  # not executed to the end: exception, timeout, dead kernel


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DatasetUse(Frozen):
    """A dataset a run opened: its content fingerprint's digest and the sha256 of the file.

    The kernel reports it as display data (:data:`smartfab.record.DATASET_MIMETYPE`).
    """

    id: str
    parameters: dict[str, Any] = Field(default_factory=dict)
    #: the bytes of the file the run read (they differ between machines for the same content)
    sha256: str
    #: what the data is (:meth:`smartfab.datasets.fingerprint.Fingerprint.digest`); empty in
    #: records made before content fingerprints
    fingerprint: str = ""

    @property
    def identity(self) -> str:
        """What names the data in run ids: the content digest, else the file's sha256."""
        return self.fingerprint or self.sha256


class Environment(Frozen):
    """What the notebook ran with: interpreter and package versions."""

    python: str
    platform: str
    packages: dict[str, str]

    def key(self) -> str:
        """sha256 of the canonical JSON of this environment."""
        import hashlib

        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()


class RunError(Frozen):
    """Where and why a run did not finish."""

    kind: str  # "exception", "timeout", "dead-kernel", "start"
    cell_index: int | None = None  # 0-based index of the failing cell in the output notebook
    ename: str = ""
    evalue: str = ""
    traceback: list[str] = Field(default_factory=list)


class RuleResult(Frozen):
    """One acceptance rule applied to one metric."""

    metric: str
    rule: str  # as written in the spec, e.g. "< 80"
    value: Any = None
    ok: bool


class RunTask(Frozen):
    """Everything an executor needs to execute one run, and nothing else (it is pickled)."""

    batch_id: str
    index: int  # position in the expanded grid
    input_key: str
    notebook: str  # absolute path of the program notebook
    notebook_sha256: str
    kernel: str
    parameters: dict[str, Any]
    cwd: str  # working directory of the kernel
    timeout_s: float
    attempt: int = 1

    @classmethod
    def again(cls, run: RunRecord, timeout_s: float) -> RunTask:
        """The task that executes a stored run once more, with the same inputs."""
        return cls(
            batch_id=run.batch_id,
            index=run.index,
            input_key=run.input_key,
            notebook=run.notebook,
            notebook_sha256=run.notebook_sha256,
            kernel=run.kernel,
            parameters=run.parameters,
            cwd=str(Path(run.notebook).parent),
            timeout_s=timeout_s,
        )


class RunOutcome(Frozen):
    """What executing one run produced, before the store and the rules see it."""

    input_key: str
    status_ok: bool  # False: see ``error``
    error: RunError | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    datasets: list[DatasetUse] = Field(default_factory=list)
    output_notebook: str  # the executed (possibly partial) notebook, nbformat JSON
    started: datetime
    ended: datetime
    host: str
    attempts: int = 1


class RunRecord(Frozen):
    """One finished run as stored: provenance, metrics, rules, status."""

    run_id: str
    input_key: str
    batch_id: str
    index: int
    parameters: dict[str, Any]
    notebook: str
    notebook_sha256: str
    kernel: str
    environment: Environment
    datasets: list[DatasetUse]
    metrics: dict[str, Any]
    rules: list[RuleResult]
    status: RunStatus
    error: RunError | None = None
    started: datetime
    ended: datetime
    duration_s: float
    attempts: int
    host: str
    output_notebook: str  # path of the output notebook, relative to the store root


class BatchRecord(Frozen):
    """A batch: its spec (as loaded), where it came from, and when it was started."""

    batch_id: str
    name: str
    spec_path: str
    spec: dict[str, Any]
    created: datetime
    runs: int  # size of the expanded grid
