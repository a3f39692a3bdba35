"""The test bench at work: takes submissions, starts queued batches as their team's run
account, watches them to their end, and finds them again after a restart.

Everything it knows is in the queue (:mod:`smartfab.testbench.queue`) and in each batch's
folder (``<team folder>/.testbench/<batch>/``: spec, notebook, log, progress, outcome); nothing
lives only in this process. A batch process outlives the service (the fork server's children
outlive it), so a restarted service finds each running batch by its pid and start time, and a
batch whose process ended while nobody watched is finished from its outcome file, or queued
again to resume (its finished runs are in the team's store and are not executed again).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from smartfab.datasets.cards import DatasetCard
from smartfab.errors import Problem, ProgramError, SubmissionError
from smartfab.host.breakglass import TEAM_BENCH_DIR, BreakGlass, log_path
from smartfab.host.forkprotocol import Account
from smartfab.host.forkserver import ForkServer
from smartfab.host.layout import Layout
from smartfab.host.outliving import ServerRecord, ServerRegistry, process_of
from smartfab.host.provision import ensure_run_account
from smartfab.host.runas import RunAs, account_environment, ensure_account_dir, team_account
from smartfab.host.settings import SpawnMode
from smartfab.programs.registry import ProgramRegistry, Registered
from smartfab.testbench.access import BenchAccess, Person
from smartfab.testbench.batchprocess import (
    BATCH_PROCESSES,
    OUTCOME_FILE,
    PROGRESS_FILE,
    batch_launch,
    read_json,
)
from smartfab.testbench.models import (
    BatchState,
    BreakGlassRequest,
    QueuedBatch,
    SubmitRequest,
)
from smartfab.testbench.plan import Capacity, plan_starts
from smartfab.testbench.queue import BatchQueue
from smartfab.testbench.submission import new_batch_id, prepare

log = logging.getLogger("smartfab.testbench")

#: a team's batch folders, inside the team folder
BATCHES_DIR = TEAM_BENCH_DIR
#: folders owned by the run account, shared with the team's group (setgid)
TEAM_SHARED_MODE = 0o2770
#: a break-glass entry lasts this many seconds
BREAK_GLASS_S = 3600.0
#: a batch whose process ended without an outcome this often is failed, not resumed again
MAX_ATTEMPTS = 3
#: seconds between SIGTERM and SIGKILL when a running batch is cancelled
CANCEL_GRACE_S = 10.0


def require_worker(person: Person, team: str) -> None:
    """SubmissionError 403 unless ``person`` is a lead or member of ``team``."""
    if team not in person.works_in:
        teams = ", ".join(sorted(person.works_in)) or "no team"
        raise SubmissionError(403, f"you are not a lead or member of team {team!r}",
                              [Problem("team", f"you work in {teams}")])  # fmt: skip


@dataclass
class TestBench:
    """The queue, the programs, the grants and the machine, put to work."""

    __test__ = False  # not a pytest test class, whatever its name

    queue: BatchQueue
    registry: ProgramRegistry
    access: BenchAccess
    layout: Layout
    capacity: Capacity
    cards: dict[str, DatasetCard]
    _fork: ForkServer | None = None
    _fork_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _term_sent: dict[str, float] = field(default_factory=dict)

    # -- where things are ---------------------------------------------------------------------

    def batch_folder(self, batch: QueuedBatch) -> Path:
        return self.layout.team_folder(batch.team) / BATCHES_DIR / batch.id

    def store(self, team: str) -> Path:
        return self.layout.team_runs(team)

    @property
    def outliving(self) -> ServerRegistry:
        """Where batch processes are recorded beside the servers that outlive the hub."""
        return ServerRegistry(self.layout.state.servers)

    @property
    def scratch(self) -> Path:
        return self.layout.state.root / "testbench" / "scratch"

    def progress(self, batch: QueuedBatch) -> dict[str, Any]:
        """Runs done so far and counts by status, as the batch process last wrote them."""
        folder = self.batch_folder(batch)
        outcome = read_json(folder / OUTCOME_FILE)
        progress = outcome or read_json(folder / PROGRESS_FILE) or {}
        done = batch.runs if outcome and outcome.get("state") == "finished" else None
        return {
            "runs": batch.runs,
            "done": done if done is not None else int(progress.get("done", 0)),
            "executed": int(progress.get("executed", 0)),
            "reused": int(progress.get("reused", 0)),
            "counts": dict(progress.get("counts") or {}),
        }

    def report_file(self, batch: QueuedBatch) -> Path:
        """The batch's report page in the team's store (written when it finished)."""
        return self.store(batch.team) / "batches" / batch.batch_id / "report" / "report.html"

    # -- submitting ---------------------------------------------------------------------------

    def submit(self, person: Person, request: SubmitRequest) -> QueuedBatch:
        """Check and queue a batch; nothing is queued or left behind when it is refused."""
        workdir = self.scratch / new_batch_id()
        try:
            prepared = prepare(self.registry, self.access, person, request, self.cards_for, workdir)
            batch = prepared.batch.model_copy(
                update={"workers": prepared.wanted_workers or prepared.batch.runs}
            )
            folder = self.batch_folder(batch)
            self._install(workdir, folder, batch.team)
            try:
                self.queue.add(batch)
            except Exception:
                shutil.rmtree(folder, ignore_errors=True)
                raise
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        log.info(
            "%s queued %s: %s v%d %s for team %s, %d runs",
            person.name, batch.id, batch.program, batch.version, batch.spec, batch.team,
            batch.runs,
        )  # fmt: skip
        self._wake.set()
        return batch

    def _install(self, workdir: Path, folder: Path, team: str) -> None:
        """Move a checked submission into the team's batch folders, owned by its run account."""
        identity = self.run_identity(team)
        parent = folder.parent
        if not parent.is_dir():
            parent.mkdir(parents=True)
            self._share(parent, identity)
        shutil.copytree(workdir, folder)
        self._share(folder, identity)
        for path in folder.iterdir():
            self._share(path, identity, mode=0o660)

    def _share(self, path: Path, identity: RunAs, mode: int = TEAM_SHARED_MODE) -> None:
        """Give ``path`` (inside a team folder) to the team's run account and the team's group
        (the team folder's), with ``mode``."""
        if self.layout.mode is SpawnMode.system:
            team_folder = next(p for p in path.parents if p.parent == self.layout.state.teams)
            os.chown(path, identity.uid, team_folder.stat().st_gid)
        os.chmod(path, mode)

    def cards_for(self, team: str) -> dict[str, DatasetCard]:
        """The curated cards and the recordings ``team`` imported."""
        from smartfab.datasets.catalog import Catalog

        imported = Catalog(shared_dirs=[self.layout.team_datasets(team)]).cards
        return {**imported, **self.cards}

    def unregistered_library(self) -> list[str]:
        """Ids of the alliance library's programs that nobody registered yet."""
        from smartfab.programs.library import curated_programs

        registered = set(self.registry.ids())
        return sorted(set(curated_programs()) - registered)

    def register_library(self, person: Person, program_id: str, team: str) -> Registered:
        """Register a program of the alliance library as ``team``'s (a lead or member)."""
        from smartfab.programs.library import curated_programs

        specs = curated_programs().get(program_id)
        if specs is None:
            known = ", ".join(sorted(curated_programs()))
            raise SubmissionError(404, f"no program {program_id!r} in the library",
                                  [Problem("id", f"library programs: {known}")])  # fmt: skip
        require_worker(person, team)
        try:
            return self.registry.register(specs, team=team, registered_by=person.name)
        except ProgramError as err:
            raise SubmissionError(422, str(err), [Problem("id", str(err))]) from None

    def import_recording(
        self, person: Person, team: str, file_name: str, data: bytes, card_text: str
    ) -> DatasetCard:
        """A member's recording imported as a dataset of ``team`` only (see
        :func:`smartfab.datasets.imports.import_recording`); nothing is kept when refused."""
        from smartfab.datasets.imports import import_recording

        if self.access.alliance.team(team) is None:
            raise SubmissionError(404, f"unknown team {team!r}", [Problem("team", "unknown")])
        require_worker(person, team)
        workdir = self.scratch / new_batch_id()
        workdir.mkdir(parents=True)
        try:
            source = workdir / Path(file_name).name
            source.write_bytes(data)
            card = workdir / "card.yaml"
            card.write_text(card_text, encoding="utf-8")
            folder = self.layout.team_folder(team)
            owner = None
            if self.layout.mode is SpawnMode.system:
                stat = folder.stat()
                owner = (stat.st_uid, stat.st_gid)
            return import_recording(source, card, team, self.layout.team_datasets(team),
                                    owner=owner, imported_by=person.name)  # fmt: skip
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def run_identity(self, team: str) -> RunAs:
        """Ensure the team's run account (idempotent); who its batches run as."""
        home = ensure_run_account(self.layout, team)
        return team_account(self.layout, self.layout.run_user(team), home)

    def cancel(self, batch_id: str) -> QueuedBatch:
        batch = self.queue.request_cancel(batch_id)
        if batch is None:
            raise SubmissionError(404, f"unknown batch {batch_id!r}")
        self._wake.set()
        return batch

    # -- break-glass --------------------------------------------------------------------------

    def break_glass(self, person: Person, request: BreakGlassRequest) -> BreakGlass:
        """Let an operator into one team's batches and reports for :data:`BREAK_GLASS_S`,
        logged in the queue and in the team's folder, where its members and leads read it."""
        if not person.operator:
            raise SubmissionError(403, "only alliance admins use break-glass")
        if self.access.alliance.team(request.team) is None:
            raise SubmissionError(404, f"unknown team {request.team!r}",
                                  [Problem("team", f"unknown team {request.team!r}")])  # fmt: skip
        now = time.time()
        entry = BreakGlass(admin=person.name, team=request.team, reason=request.reason.strip(),
                           opened_at=now, until=now + BREAK_GLASS_S)  # fmt: skip
        self.queue.add_break_glass(entry)
        log_file = log_path(self.layout.team_folder(entry.team))
        identity = self.run_identity(entry.team)
        if not log_file.parent.is_dir():
            log_file.parent.mkdir(parents=True)
            self._share(log_file.parent, identity)
        with log_file.open("a", encoding="utf-8") as out:
            out.write(entry.model_dump_json() + "\n")
        self._share(log_file, identity, mode=0o640)
        log.warning("BREAK-GLASS: %s entered team %s's results: %s", entry.admin, entry.team,
                    entry.reason)  # fmt: skip
        return entry

    def person(self, user: dict[str, Any]) -> Person:
        """The signed-in person, with the teams of their open break-glass entries."""
        name = str(user["name"])
        entered: frozenset[str] = frozenset()
        if name in self.access.alliance.admins:
            entered = frozenset(self.queue.open_break_glass(name, time.time()))
        return Person.from_hub(user, self.access.alliance, entered)

    # -- running ------------------------------------------------------------------------------

    def sealed(self, batch: QueuedBatch) -> bool:
        """Whether ``batch`` runs sealed: a program of another team than the one running it."""
        try:
            return self.registry.get(batch.program).team != batch.team
        except ProgramError:
            return True

    async def fork_server(self) -> ForkServer:
        async with self._fork_lock:
            if self._fork is None or not self._fork.running:
                server = ForkServer(BATCH_PROCESSES)
                await server.start()
                self._fork = server
            return self._fork

    async def start(self, batch: QueuedBatch, workers: int) -> None:
        """Fork the batch's process as the team's run account."""
        identity = self.run_identity(batch.team)
        store = self.store(batch.team)
        if not store.is_dir():
            store.mkdir()
            self._share(store, identity)
        grants = {t.id: t.grants.datasets for t in self.access.alliance.teams}
        env = account_environment(identity, self.layout.dataset_environment([batch.team], grants))
        ensure_account_dir(Path(env["JUPYTER_RUNTIME_DIR"]), identity)
        folder = self.batch_folder(batch)
        for stale in (OUTCOME_FILE, PROGRESS_FILE):
            (folder / stale).unlink(missing_ok=True)
        launch = batch_launch(
            folder, store, workers, env,
            title=f"smartfab batch {batch.id} {batch.program} team {batch.team}",
        )  # fmt: skip
        if self.layout.mode is SpawnMode.system:
            launch.account = Account(
                uid=identity.uid, gid=identity.gid, groups=identity.groups, umask=0o007
            )
            # another team's program runs with no network beyond its own loopback
            launch.sealed = self.sealed(batch)
        child = await (await self.fork_server()).launch(launch)
        started = psutil.Process(child.pid).create_time()
        if not self.queue.mark_running(
            batch.id, pid=child.pid, pid_started=started, workers=workers
        ):
            os.killpg(child.pid, signal.SIGKILL)  # cancelled while it was being started
            return
        # the hub's launcher leaves it running when the hub stops; `hub down` stops it
        self.outliving.record(ServerRecord(pid=child.pid, started=started, user="testbench",
                                           server=batch.id))  # fmt: skip
        log.info(
            "started %s as %s: pid %d, %d at once", batch.id, identity.name, child.pid, workers
        )

    def _watch(self, batch: QueuedBatch) -> None:
        """A running batch: cancel it if asked; finish or requeue it once its process is gone."""
        if process_of(batch.pid, batch.pid_started) is not None:
            if batch.cancel_requested and batch.pid is not None:
                first = self._term_sent.setdefault(batch.id, time.monotonic())
                late = time.monotonic() - first > CANCEL_GRACE_S
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(batch.pid, signal.SIGKILL if late else signal.SIGTERM)
            return
        self._term_sent.pop(batch.id, None)
        if batch.pid is not None:
            self.outliving.forget(batch.pid)
        outcome = read_json(self.batch_folder(batch) / OUTCOME_FILE)
        if batch.cancel_requested:
            self.queue.mark_ended(batch.id, BatchState.cancelled, "cancelled while it ran")
        elif outcome is not None:
            state = BatchState.finished if outcome.get("state") == "finished" else BatchState.failed
            self.queue.mark_ended(batch.id, state, str(outcome.get("message", "")))
        elif batch.attempts >= MAX_ATTEMPTS:
            message = f"its process ended without an outcome {batch.attempts} times"
            self.queue.mark_ended(batch.id, BatchState.failed, message)
        else:
            self.queue.requeue(batch.id, "its process ended without an outcome: resumed")
            log.warning(
                "batch %s: process %s gone without an outcome, queued again", batch.id, batch.pid
            )
        self._wake.set()

    async def tick(self) -> None:
        """One round: watch the running batches, then start what the plan allows."""
        for batch in self.queue.in_state(BatchState.running):
            self._watch(batch)
        running = self.queue.in_state(BatchState.running)
        for start in plan_starts(self.queue.in_state(BatchState.queued), running, self.capacity):
            try:
                await self.start(start.batch, start.workers)
            except Exception as err:
                log.exception("could not start %s", start.batch.id)
                self.queue.mark_ended(start.batch.id, BatchState.failed, f"could not start: {err}")

    async def run_forever(self, interval: float = 1.0) -> None:
        """Tick now, on each submission or cancel, and every ``interval`` seconds."""
        while True:
            self._wake.clear()
            try:
                await self.tick()
            except Exception:
                log.exception("test bench round failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), interval)

    async def close(self) -> None:
        """Let go of the fork server; running batches go on."""
        if self._fork is not None:
            await self._fork.stop()
