"""A warm process that forks one fresh IPython kernel per program test run.

Starting a kernel the usual way costs a new interpreter, the imports of ipykernel and IPython,
and then the notebook's own imports (numpy, xarray, ...): about a second of CPU before the
first cell runs, for a notebook that may compute for a few milliseconds. The fork server
imports the kernel and the scientific stack once; each kernel is a ``fork()`` of it that
initialises its own ``IPKernelApp`` (sockets, shell, history) exactly as ``ipykernel_launcher``
would, and serves one notebook. Nothing is shared between kernels after the fork: each has its
own copy of the interpreter, and is killed after its run.

What a warm kernel cannot reproduce is what the preloaded modules computed at import: from the
environment (``MPLBACKEND``, ``OMP_NUM_THREADS``, ``HOME``, ...), from the working directory
(a ``matplotlibrc``, a local module shadowing an installed one). The owner compares each run
against these rules (:func:`is_import_time_variable`, ``shadowable`` in the hello message)
and starts that run's kernel from scratch when they differ. Modules that build their
configuration or services of their own at import (distributed, fsspec) are never preloaded, nor
is the inline backend, which hooks itself into the IPython shell that exists when it is
imported. Entropy drawn at import (numpy's global generator) is drawn anew in each kernel.

Protocol: one JSON object per packet on a ``SOCK_SEQPACKET`` socket pair whose server end is
the fork server's standard input. Requests: ``fork`` (a warm kernel), ``exec`` (a program such
as a kernel of another interpreter, with its own environment and working directory) and
``signal``. The server answers ``hello`` once preloaded, ``forked`` per child, ``exited`` per
child reaped (with its exit code, negative for a signal) and ``refused`` for a bad request; a
forked kernel itself sends ``ready`` with its connection information once initialised.

Lifetime: the server exits, killing and reaping its children and removing their connection
files, when the owner's end of the socket closes or its parent dies (``PR_SET_PDEATHSIG``);
each child is killed when the server dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import importlib
import io
import json
import os
import select
import signal
import socket
import subprocess
import sys
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from smartfab.errors import RunsError

#: what every kernel imports while it starts (debugpy alone is 45 ms): imported before the stack
KERNEL_MODULES = (
    "ipykernel.kernelapp",
    "ipykernel.ipkernel",
    "ipykernel.zmqshell",
    "ipykernel.debugger",
    "IPython.core.debugger",
    "IPython.core.completerlib",
    "IPython.extensions.storemagic",
)
#: the scientific stack notebooks import; what pays off is what programs import in cell one
STACK_MODULES = (
    "numpy",
    "pandas",
    "scipy",
    "scipy.sparse",
    "scipy.fft",
    "scipy.fftpack",
    "scipy.signal",  # with scipy.stats, .optimize, .interpolate, .linalg: 0.4 s per run saved
    "scipy.stats",
    "xarray",
    "matplotlib",
    "matplotlib.pyplot",
    # xarray opens files lazily through dask: its import and first computation cost 0.3 s
    # in a new kernel (a run that sets DASK_* gets a kernel started from scratch)
    "dask",
    "dask.array",
    "dask.threaded",
    "dask.local",
    "dask.optimization",
    "xarray.namedarray.daskmanager",
    "toolz",
    "tlz.curried",
    "cloudpickle",
    "yaml",
    "jinja2",
    "importlib_metadata",
    "tblib.pickling_support",
    "multiprocessing.pool",
    "concurrent.futures.process",
    "smartfab",
    "smartfab.datasets",
    "smartfab.datasets.api",
    "smartfab.runs.record",
)
#: never preloaded: distributed and fsspec start services or read configuration files of
#: their own at import; the inline backend registers itself with the IPython shell that exists
#: when it is imported (none in the fork server)
NOT_PRELOADABLE = ("distributed", "fsspec", "matplotlib_inline")
#: the backend ipykernel selects when ``MPLBACKEND`` is unset (``IPKernelApp.init_gui_pylab``)
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"
#: variables the interpreter, the kernel or the preloaded stack read once, at start or import
IMPORT_TIME_VARIABLES = frozenset(
    {"HOME", "TZ", "TMPDIR", "TEMP", "TMP", "LANG", "LANGUAGE", "MATPLOTLIBRC", "IPYTHONDIR"}
)
IMPORT_TIME_PREFIXES = (
    "PYTHON",  # the interpreter: path, hash seed, warnings, encodings
    "LC_",
    "LD_",
    "MALLOC_",
    "OMP_",  # BLAS thread pools are sized when numpy loads
    "OPENBLAS_",
    "MKL_",
    "GOTO_",
    "BLIS_",
    "NUMEXPR_",
    "NPY_",
    "NUMPY_",
    "SCIPY_",
    "PANDAS_",
    "MPL",  # matplotlib: backend, config and cache directories
    "XDG_",
    "JUPYTER_",
    "JPY_",
    "DASK_",  # dask reads its configuration (environment and YAML files) at import
    "PYDEVD_",  # debugpy, imported by every kernel
    "DEBUGPY_",
)
#: variables ``ZMQInteractiveShell.init_environment`` overwrites in every kernel it starts
KERNEL_SET_VARIABLES = frozenset(
    {"TERM", "CLICOLOR", "FORCE_COLOR", "CLICOLOR_FORCE", "PAGER", "GIT_PAGER"}
)
MAX_MESSAGE = 1 << 20
PR_SET_PDEATHSIG = 1


def is_import_time_variable(name: str) -> bool:
    """Whether a warm kernel already used ``name`` before any run could set it."""
    return name in IMPORT_TIME_VARIABLES or name.startswith(IMPORT_TIME_PREFIXES)


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


class KernelStartError(RunsError):
    """No kernel could be started for a run (the fork server, or the kernel itself, failed)."""


# -- the fork server process ------------------------------------------------------------------


def _die_with_parent(signum: int) -> None:
    """Ask Linux to send ``signum`` to this process when its parent (thread) ends."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _import_all(names: tuple[str, ...]) -> None:
    for name in names:
        # debugpy warns on stderr at import; in a kernel that goes to IOPub, where no client
        # listens yet: here it would reach the owner's terminal, once per server
        with contextlib.suppress(ImportError), contextlib.redirect_stderr(io.StringIO()):
            importlib.import_module(name)


def _warm_catalog() -> None:
    """Parse the curated dataset cards once (cached by file; see ``load_cards``)."""
    with contextlib.suppress(Exception):  # a broken card is reported by the run that opens it
        from smartfab.datasets.cards import load_cards
        from smartfab.datasets.catalog import default_cards_dir

        load_cards(default_cards_dir())


def preload() -> list[str]:
    """Import the kernel and the stack; return the top-level names only the stack imported.

    A module of the run's working directory named like one of these would shadow it in a
    fresh kernel (IPython puts ``''`` before site-packages), but not in a warm one.
    """
    # the kernel would set this itself before anything imports matplotlib
    if not os.environ.get("MPLBACKEND"):
        os.environ["MPLBACKEND"] = INLINE_BACKEND
    _import_all(KERNEL_MODULES)
    kernel_names = {name.split(".")[0] for name in sys.modules}
    _import_all(STACK_MODULES)
    _warm_catalog()
    leaked = sorted(
        name
        for name in sys.modules
        if any(name == bad or name.startswith(bad + ".") for bad in NOT_PRELOADABLE)
    )
    if leaked:
        sys.exit(f"smartfab kernel fork server: preloading imported {', '.join(leaked)}")
    stack_names = {name.split(".")[0] for name in sys.modules} - kernel_names
    return sorted(stack_names - set(sys.stdlib_module_names) - {"__main__"})


@dataclass
class _Server:
    """State of the serving loop: the control socket and the children not yet reaped."""

    control: socket.socket
    wake: tuple[int, int]  # the self-pipe signals are written to
    children: dict[int, str] = field(default_factory=dict)  # pid -> connection file

    def send(self, message: dict[str, Any]) -> None:
        with contextlib.suppress(OSError):  # the owner is gone: the loop sees EOF next
            self.control.send(json.dumps(message).encode())

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            connection_file = self.children.pop(pid, "")
            if connection_file:
                Path(connection_file).unlink(missing_ok=True)
            self.send({"op": "exited", "pid": pid, "code": os.waitstatus_to_exitcode(status)})

    def handle(self, data: bytes) -> None:
        try:
            request = _REQUEST.validate_json(data)
        except ValidationError as err:
            self.send({"op": "refused", "token": None, "error": str(err)})
            return
        if isinstance(request, SendSignal):
            if request.pid in self.children:
                _signal_group(request.pid, request.signum)
            return
        try:
            pid = os.fork()
        except OSError as err:
            self.send({"op": "refused", "token": request.token, "error": f"fork: {err}"})
            return
        if pid == 0:
            if isinstance(request, ForkKernel):
                _run_kernel(request, self.control, self.wake)
            _run_program(request, self.control, self.wake)
        self.children[pid] = request.connection_file
        self.send({"op": "forked", "token": request.token, "pid": pid})

    def stop_children(self) -> None:
        for pid in self.children:
            _signal_group(pid, signal.SIGKILL)
        for pid, connection_file in self.children.items():
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
            if connection_file:
                Path(connection_file).unlink(missing_ok=True)
        self.children.clear()


def _signal_group(pid: int, signum: int) -> None:
    """Signal a child's process group (it leads one), or the child itself before ``setsid``."""
    try:
        os.killpg(pid, signum)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def _reset_child_signals(wake: tuple[int, int]) -> None:
    signal.set_wakeup_fd(-1)
    for fd in wake:
        os.close(fd)
    for signum in (signal.SIGCHLD, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _reseed() -> None:
    """Draw anew the entropy a new interpreter draws at import and a fork copies.

    Python's ``random`` reseeds itself after a fork; numpy's global generator does not, and
    multiprocessing keeps its authentication key.
    """
    numpy_random = sys.modules.get("numpy.random")
    if numpy_random is not None:
        numpy_random.seed()
    if "multiprocessing" in sys.modules:
        import multiprocessing

        multiprocessing.current_process().authkey = os.urandom(32)


def _reopen_debugger_log() -> None:
    """debugpy's log stream is the ``sys.stderr`` of its first message: make it the kernel's."""
    with contextlib.suppress(ImportError):
        # debugpy's vendored pydevd, on sys.path once debugpy is imported
        pydev_log = importlib.import_module("_pydev_bundle.pydev_log")
        pydev_log.initialize_debug_stream(reinitialize=True)


def _run_kernel(request: ForkKernel, control: socket.socket, wake: tuple[int, int]) -> NoReturn:
    """In a forked child: become a kernel, report how to connect, serve; never returns."""
    code = 1
    try:
        server = os.getppid()
        _reset_child_signals(wake)
        _die_with_parent(signal.SIGKILL)
        if os.getppid() != server:
            os._exit(1)
        os.setsid()  # like jupyter_client: interrupts reach the kernel's whole process group
        _reseed()
        sys.argv = list(request.argv)
        from setproctitle import setproctitle

        setproctitle(" ".join([sys.executable, "-m", "ipykernel_launcher", *request.argv[1:]]))
        from ipykernel.kernelapp import IPKernelApp

        app = IPKernelApp.instance()
        app.initialize(request.args)  # type: ignore[no-untyped-call]
        _reopen_debugger_log()
        session = app.session
        connection = {
            "ip": app.ip,
            "transport": app.transport,
            "shell_port": app.shell_port,
            "iopub_port": app.iopub_port,
            "stdin_port": app.stdin_port,
            "hb_port": app.hb_port,
            "control_port": app.control_port,
            "key": session.key.decode("ascii"),
            "signature_scheme": session.signature_scheme,
        }
        control.send(
            json.dumps(
                {
                    "op": "ready",
                    "token": request.token,
                    "pid": os.getpid(),
                    "connection": connection,
                }
            ).encode()
        )
        control.close()
        app.start()  # type: ignore[no-untyped-call]
        code = 0
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else 1
    except BaseException:  # the child must never fall back into the server loop
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _run_program(request: ExecProgram, control: socket.socket, wake: tuple[int, int]) -> NoReturn:
    """In a forked child: execute the program with its own environment; never returns."""
    try:
        server = os.getppid()
        control.close()
        _reset_child_signals(wake)
        _die_with_parent(signal.SIGKILL)
        if os.getppid() != server:
            os._exit(1)
        os.setsid()
        os.chdir(request.cwd)
        os.execvpe(request.argv[0], request.argv, request.env)
    except BaseException as err:
        with contextlib.suppress(Exception):
            print(f"smartfab: cannot start {request.argv[0]}: {err}", file=sys.stderr, flush=True)
    os._exit(127)


def serve(control: socket.socket) -> None:
    """Preload, then fork and reap children for the owner until it goes away."""
    from setproctitle import setproctitle

    setproctitle("smartfab kernel fork server")
    # like ipykernel_launcher: the directory it starts in is not importable; IPython puts ''
    # back in each kernel, where it means the run's working directory
    if sys.path and sys.path[0] in ("", os.getcwd()):
        del sys.path[0]
    os.chdir("/")  # each kernel moves to its run's directory; the server pins none
    shadowable = preload()
    # preloaded objects never change: keep them out of the children's collections (and pages)
    gc.collect()
    gc.freeze()
    wake_read, wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_write)
    for signum in (signal.SIGCHLD, signal.SIGTERM):
        signal.signal(signum, lambda signum, frame: None)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    server = _Server(control, (wake_read, wake_write))
    server.send({"op": "hello", "pid": os.getpid(), "shadowable": shadowable})
    try:
        while True:
            ready, _, _ = select.select([control.fileno(), wake_read], [], [])
            if wake_read in ready:
                signals = os.read(wake_read, 4096)
                server.reap()
                if signal.SIGTERM in signals:
                    return
            if control.fileno() in ready:
                try:
                    data = control.recv(MAX_MESSAGE)
                except ConnectionResetError:
                    data = b""
                if not data:
                    return  # the owner is gone
                server.handle(data)
    finally:
        server.stop_children()


def main() -> None:
    """Entry point of the fork server: the control socket is standard input."""
    if len(sys.argv) != 2:
        sys.exit("usage: smartfab kernel fork server OWNER_PID (started by KernelForkServer)")
    _die_with_parent(signal.SIGTERM)
    if os.getppid() != int(sys.argv[1]):
        sys.exit(0)  # the owner died before we could bind our lifetime to it
    control = socket.socket(fileno=os.dup(0))
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    serve(control)


# -- the owner's side -------------------------------------------------------------------------


@dataclass(eq=False)
class ServerChild:
    """A process the fork server started for us; ``exited`` resolves to its exit code."""

    pid: int
    exited: asyncio.Future[int]

    @property
    def returncode(self) -> int | None:
        return self.exited.result() if self.exited.done() else None

    async def wait(self) -> int:
        return await asyncio.shield(self.exited)


@dataclass(eq=False)
class _Pending:
    forked: asyncio.Future[int]
    ready: asyncio.Future[dict[str, Any]]


class KernelForkServer:
    """Handle on a kernel fork server, used from one asyncio event loop.

    Start it from a thread that lives as long as the server: Linux ties ``PR_SET_PDEATHSIG``
    to the thread that forked.
    """

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = dict(env)
        self.shadowable: frozenset[str] = frozenset()
        self.pid: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._reader: asyncio.Task[None] | None = None
        self._hello: asyncio.Future[dict[str, Any]] | None = None
        self._pending: dict[str, _Pending] = {}
        self._token_of: dict[int, str] = {}
        self._children: dict[int, ServerChild] = {}
        self._eof = False

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None and not self._eof

    @property
    def children(self) -> list[ServerChild]:
        """Children not yet reaped."""
        return list(self._children.values())

    async def start(self, timeout: float) -> None:
        """Start the process and wait until it has preloaded."""
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        code = "from smartfab.runs.forkkernel import main; main()"
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-c", code, str(os.getpid())],
                stdin=theirs.fileno(),
                env=self.env,
                start_new_session=True,  # a Ctrl-C in the owner's terminal is the owner's
            )
        finally:
            theirs.close()
        ours.setblocking(False)
        self._sock = ours
        self._hello = loop.create_future()
        self._reader = loop.create_task(self._read())
        try:
            hello = await asyncio.wait_for(asyncio.shield(self._hello), timeout)
        except BaseException as err:
            await self.stop()
            if isinstance(err, TimeoutError):
                raise KernelStartError(
                    f"the kernel fork server did not preload in {timeout:g} s"
                ) from None
            raise
        self.pid = int(hello["pid"])
        self.shadowable = frozenset(hello["shadowable"])

    async def fork_kernel(
        self, token: str, connection_file: str, argv: list[str], args: list[str], timeout: float
    ) -> tuple[ServerChild, dict[str, Any]]:
        """Fork a kernel; return it and its connection information once it listens."""
        pending = self._expect(token)
        request = ForkKernel(
            op="fork", token=token, connection_file=connection_file, argv=argv, args=args
        )
        try:
            await self._send(request)
            pid = await asyncio.wait_for(asyncio.shield(pending.forked), timeout)
            child = self._children[pid]
            try:
                connection = await asyncio.wait_for(asyncio.shield(pending.ready), timeout)
            except BaseException:
                await self.send_signal(pid, signal.SIGKILL)
                raise
            return child, connection
        except TimeoutError:
            raise KernelStartError(f"no kernel was ready in {timeout:g} s") from None
        finally:
            self._forget(token)

    async def spawn(
        self, argv: list[str], env: Mapping[str, str], cwd: str, connection_file: str, token: str
    ) -> ServerChild:
        """Start a program as a child of the server (it dies with the server)."""
        pending = self._expect(token)
        request = ExecProgram(
            op="exec",
            token=token,
            argv=argv,
            env=dict(env),
            cwd=cwd,
            connection_file=connection_file,
        )
        try:
            await self._send(request)
            pid = await asyncio.wait_for(asyncio.shield(pending.forked), 30)
            return self._children[pid]
        finally:
            self._forget(token)

    async def send_signal(self, pid: int, signum: int) -> None:
        """Signal a child (and its process group) unless it has been reaped already."""
        if pid in self._children and not self._eof:
            with contextlib.suppress(OSError):
                await self._send(SendSignal(op="signal", pid=pid, signum=signum))

    async def stop(self, timeout: float = 10.0) -> None:
        """Close the lifeline; wait for the server to kill and reap its children and exit."""
        if self._sock is not None and not self._eof:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_WR)
        if self._reader is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self._reader), timeout)
            self._reader.cancel()
        if self._proc is not None:
            proc = self._proc
            try:
                await asyncio.to_thread(proc.wait, timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                await asyncio.to_thread(proc.wait)
        if self._sock is not None:
            self._sock.close()
        self._on_eof()

    def abandon(self) -> None:
        """In a copy of the owner made by ``fork()``: let go of the lifeline, touch nothing else."""
        self._eof = True
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()

    # -- internals

    def _expect(self, token: str) -> _Pending:
        if not self.running:
            raise KernelStartError("the kernel fork server is not running")
        loop = asyncio.get_running_loop()
        pending = _Pending(loop.create_future(), loop.create_future())
        self._pending[token] = pending
        return pending

    def _forget(self, token: str) -> None:
        pending = self._pending.pop(token, None)
        if pending is not None:
            for future in (pending.forked, pending.ready):
                if future.done() and not future.cancelled():
                    future.exception()  # retrieved: never reported as unhandled
                future.cancel()

    async def _send(self, request: BaseModel) -> None:
        assert self._sock is not None
        await asyncio.get_running_loop().sock_sendall(
            self._sock, request.model_dump_json().encode()
        )

    async def _read(self) -> None:
        assert self._sock is not None
        loop = asyncio.get_running_loop()
        try:
            while True:
                data = await loop.sock_recv(self._sock, MAX_MESSAGE)
                if not data:
                    return
                self._dispatch(json.loads(data))
        except OSError:
            return
        finally:
            self._on_eof()

    def _dispatch(self, message: dict[str, Any]) -> None:
        op = message.get("op")
        if op == "hello" and self._hello is not None and not self._hello.done():
            self._hello.set_result(message)
        elif op == "forked":
            pid = int(message["pid"])
            child = ServerChild(pid, asyncio.get_running_loop().create_future())
            self._children[pid] = child
            self._token_of[pid] = message["token"]
            pending = self._pending.get(message["token"])
            if pending is not None and not pending.forked.done():
                pending.forked.set_result(pid)
        elif op == "ready":
            pending = self._pending.get(message["token"])
            if pending is not None and not pending.ready.done():
                pending.ready.set_result(message["connection"])
        elif op == "exited":
            pid, code = int(message["pid"]), int(message["code"])
            self._exited(pid, code)
        elif op == "refused":
            token = message.get("token")
            for key, pending in self._pending.items():
                if (token is None or key == token) and not pending.forked.done():
                    pending.forked.set_exception(
                        KernelStartError(f"the kernel fork server refused: {message['error']}")
                    )

    def _exited(self, pid: int, code: int) -> None:
        child = self._children.pop(pid, None)
        if child is not None and not child.exited.done():
            child.exited.set_result(code)
        pending = self._pending.get(self._token_of.pop(pid, ""))
        if pending is not None and not pending.ready.done():
            pending.ready.set_exception(
                KernelStartError(f"the kernel {describe_exit(code)} while starting")
            )

    def _on_eof(self) -> None:
        """The server is gone: so are its children (they die with it)."""
        if self._eof:
            return
        self._eof = True
        if self._hello is not None and not self._hello.done():
            self._hello.set_exception(KernelStartError("the kernel fork server exited"))
        for pid in list(self._children):
            self._exited(pid, -signal.SIGKILL)
        for pending in self._pending.values():
            for future in (pending.forked, pending.ready):
                if not future.done():
                    future.set_exception(KernelStartError("the kernel fork server exited"))
