"""The messages between a kernel fork server and its owner.

One JSON object per packet on a ``SOCK_SEQPACKET`` socket pair whose server end is the fork
server's standard input. Requests, validated by the server with :func:`parse_request`: ``fork``
(:class:`ForkKernel`, a warm kernel), ``exec`` (:class:`ExecProgram`, a program such as a
kernel of another interpreter, with its own environment and working directory) and ``signal``
(:class:`SendSignal`). The server answers ``hello`` once preloaded, ``forked`` per child,
``exited`` per child reaped (with its exit code, negative for a signal: :func:`describe_exit`)
and ``refused`` for a bad request; a forked kernel itself sends ``ready`` with its connection
information once initialised.
"""

from __future__ import annotations

import contextlib
import signal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

#: the largest packet either side reads
MAX_MESSAGE = 1 << 20


def describe_exit(code: int) -> str:
    """``killed by SIGKILL`` or ``exited with status 1`` for an exit code as ``Popen`` has it."""
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
        return f"killed by signal {-code}"
    return f"exited with status {code}"


class ForkKernel(BaseModel):
    """Fork a warm kernel; ``argv`` is what it shows as its command line."""

    model_config = ConfigDict(extra="forbid")

    op: Literal["fork"]
    token: str = Field(min_length=1)
    connection_file: str = Field(min_length=1)
    argv: list[str] = Field(min_length=1)
    args: list[str]  # given to IPKernelApp.initialize


class ExecProgram(BaseModel):
    """Fork and execute a program (a kernel that cannot be forked warm)."""

    model_config = ConfigDict(extra="forbid")

    op: Literal["exec"]
    token: str = Field(min_length=1)
    argv: list[str] = Field(min_length=1)
    env: dict[str, str]
    cwd: str
    connection_file: str = ""  # removed when the program exits


class SendSignal(BaseModel):
    """Signal a child of the server, and its process group."""

    model_config = ConfigDict(extra="forbid")

    op: Literal["signal"]
    pid: int = Field(gt=0)
    signum: int = Field(gt=0, lt=65)


Request = Annotated[ForkKernel | ExecProgram | SendSignal, Field(discriminator="op")]
_REQUEST: TypeAdapter[ForkKernel | ExecProgram | SendSignal] = TypeAdapter(Request)


def parse_request(data: bytes) -> ForkKernel | ExecProgram | SendSignal:
    """The request in a packet; raises pydantic's ``ValidationError`` for a bad one."""
    return _REQUEST.validate_json(data)
