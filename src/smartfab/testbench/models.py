"""What the test bench records of a submitted batch, and what a submission asks for."""

from __future__ import annotations

from enum import IntEnum, StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class BatchState(StrEnum):
    """Where a submitted batch is."""

    queued = "queued"
    running = "running"
    finished = "finished"  # every run executed (each passed, failed or ended in error)
    failed = "failed"  # the batch could not run to its end (its message says why)
    cancelled = "cancelled"

    @property
    def ended(self) -> bool:
        return self in (BatchState.finished, BatchState.failed, BatchState.cancelled)


class Priority(IntEnum):
    """Queued batches of a lower value start first."""

    normal = 0  # a member's batch
    bulk = 1  # a bulk re-verification, behind every member's batch

    @classmethod
    def named(cls, name: str) -> Priority:
        return cls[name]


class SubmitRequest(BaseModel):
    """The body of ``POST api/v1/batches`` (and what ``smartfab programs submit`` sends)."""

    model_config = ConfigDict(extra="forbid")

    program: str = Field(min_length=1, description="the program id")
    version: str | None = Field(
        default=None, description="version number, digest (prefix) or 'latest' (default)"
    )
    batch: str | None = Field(
        default=None, description="the batch spec's name (default: the version's only spec)"
    )
    team: str | None = Field(
        default=None, description="the team that runs it (default: your only eligible team)"
    )
    set: dict[str, Any] = Field(
        default_factory=dict,
        description="parameter -> value for every run; a list makes it a grid axis",
    )
    priority: str = Field(default="normal", pattern=r"^(normal|bulk)$")


class QueuedBatch(BaseModel):
    """One submitted batch as the queue holds it (and as the API shows it)."""

    model_config = ConfigDict(extra="forbid")

    id: str
    program: str
    version: int
    digest: str
    spec: str
    team: str
    submitted_by: str
    submitted_at: float
    priority: int = Priority.normal
    state: BatchState = BatchState.queued
    runs: int = Field(ge=1, description="runs in the batch's grid")
    workers: int = Field(default=1, ge=1, description="runs at once, when it started")
    batch_id: str = Field(description="the batch's id in the team's run store")
    parameters: dict[str, Any] = Field(default_factory=dict, description="what --set changed")
    started_at: float | None = None
    ended_at: float | None = None
    pid: int | None = None
    pid_started: float | None = None
    attempts: int = 0
    cancel_requested: bool = False
    message: str = ""


class BreakGlassRequest(BaseModel):
    """The body of ``POST api/v1/break-glass``."""

    model_config = ConfigDict(extra="forbid")

    team: str = Field(min_length=1)
    reason: str = Field(min_length=10, max_length=2000, description="why, for the team to read")
