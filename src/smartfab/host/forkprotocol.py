"""What a fork server is for, and the messages between it and its owner.

A fork server (:mod:`smartfab.host.forkserver`) serves one :class:`ForkUse`: the modules it
imports once, what it must never import, the entry point each launched process runs, and
whether launched processes die with the server or outlive it.

The owner and the server exchange one JSON object per packet on a ``SOCK_SEQPACKET`` socket
pair whose server end is the server's standard input. Requests, validated by the server with
:func:`parse_request`:

- ``launch`` (:class:`Launch`): fork a warm process that runs the use's entry point, optionally
  as another account, with its own environment and working directory;
- ``exec`` (:class:`Exec`): fork and execute a program (one that cannot start warm);
- ``signal`` (:class:`SendSignal`): signal a child and its process group.

The server answers ``hello`` once preloaded (its pid and what the use's preload hook
returned), ``forked`` per child, ``exited`` per child reaped (its exit code, negative for a
signal: :func:`describe_exit`) and ``refused`` for a request it cannot carry out. A launched
process of a use with ``reports`` sends one ``report`` of its own (a kernel: how to connect).
"""

from __future__ import annotations

import contextlib
import signal
import uuid
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

#: the largest packet either side reads
MAX_MESSAGE = 1 << 20

#: ``module:function``
ENTRY_PATTERN = r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$"


def describe_exit(code: int) -> str:
    """``killed by SIGKILL`` or ``exited with status 1`` for an exit code as ``Popen`` has it."""
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
        return f"killed by signal {-code}"
    return f"exited with status {code}"


class Lifetime(StrEnum):
    """What becomes of launched processes when the fork server ends."""

    #: each child is killed when the server exits or dies; the server dies with the thread
    #: that started it (run kernels: nothing may outlive the batch that needs them)
    die_with_server = "die_with_server"
    #: children keep running; the server ends when its owner closes the socket (single-user
    #: servers outlive a hub restart)
    outlive_server = "outlive_server"


class ForkUse(BaseModel):
    """What one fork server is for: what it preloads, what each launch runs, how long for."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, description="What is launched, for logs and errors.")
    preload: tuple[str, ...] = Field(
        default=(), description="Modules imported once, before any fork (missing ones skipped)."
    )
    preload_hook: str | None = Field(
        default=None,
        pattern=ENTRY_PATTERN,
        description="``module:function`` called once after ``preload``; what it returns "
        "(JSON) reaches the owner in the server's ``hello``.",
    )
    not_preloadable: tuple[str, ...] = Field(
        default=(),
        description="Top-level packages that compute defaults from the environment or the "
        "account at import: each launched process must import them itself. The server "
        "refuses to start when preloading imported one.",
    )
    entry: str = Field(
        pattern=ENTRY_PATTERN,
        description="``module:function`` each launched process runs with its "
        ":class:`~smartfab.host.forkprocess.Launched`; its return value, or the code of "
        "the ``SystemExit`` it raises, is the exit status.",
    )
    reports: bool = Field(
        default=False,
        description="Launched processes send one report to the owner (else their copy of "
        "the control socket is closed before the entry point runs).",
    )
    lifetime: Lifetime = Lifetime.die_with_server


class Account(BaseModel):
    """Whom a launched process becomes: ids, supplementary groups and umask."""

    model_config = ConfigDict(extra="forbid")

    uid: int = Field(ge=0)
    gid: int = Field(ge=0)
    groups: list[int] = Field(default_factory=list)
    umask: int = Field(ge=0, le=0o777)


def new_token() -> str:
    """A token that matches a request with its answers."""
    return uuid.uuid4().hex


class Launch(BaseModel):
    """Fork a warm process that runs the use's entry point."""

    model_config = ConfigDict(extra="forbid")

    op: Literal["launch"] = "launch"
    token: str = Field(default_factory=new_token, min_length=1)
    argv: list[str] = Field(min_length=1, description="``sys.argv`` of the launched process.")
    title: str = Field(default="", description="Its command line in ps (default: argv).")
    env: dict[str, str] | None = Field(
        default=None, description="The whole environment; None keeps the server's."
    )
    cwd: str | None = None
    account: Account | None = Field(default=None, description="None: the server's own.")
    payload: dict[str, Any] = Field(
        default_factory=dict, description="What the use's entry point needs besides argv."
    )
    remove_on_exit: str = Field(default="", description="A file removed when the child exits.")
    sealed: bool = Field(
        default=False,
        description="In a network namespace of its own with only its own loopback (needs the "
        "server to run as root): the process and its children reach no other address.",
    )


class Exec(BaseModel):
    """Fork and execute a program with its own environment and working directory."""

    model_config = ConfigDict(extra="forbid")

    op: Literal["exec"] = "exec"
    token: str = Field(default_factory=new_token, min_length=1)
    argv: list[str] = Field(min_length=1)
    env: dict[str, str]
    cwd: str
    remove_on_exit: str = ""


class SendSignal(BaseModel):
    """Signal a child of the server, and its process group."""

    model_config = ConfigDict(extra="forbid")

    op: Literal["signal"] = "signal"
    pid: int = Field(gt=0)
    signum: int = Field(gt=0, lt=65)


Request = Annotated[Launch | Exec | SendSignal, Field(discriminator="op")]
_REQUEST: TypeAdapter[Launch | Exec | SendSignal] = TypeAdapter(Request)


def parse_request(data: bytes) -> Launch | Exec | SendSignal:
    """The request in a packet; raises pydantic's ``ValidationError`` for a bad one."""
    return _REQUEST.validate_json(data)
