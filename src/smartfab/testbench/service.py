"""The hub-managed service ``testbench``: programs, batches and reports, as pages and as a
versioned JSON API, below ``/services/testbench/``.

Pages: ``""`` the programs one may see; ``programs/<id>`` a program, its versions, its batches
and the submit form; ``batches/<id>`` a batch with live progress; ``batches/<id>/report/`` its
report. API (``api/v1/``, JSON, documented in the README):

* ``GET programs``, ``GET programs/<id>``, ``POST programs`` (register a version);
* ``GET batches`` (``?program=&team=&state=``), ``POST batches`` (submit),
  ``GET batches/<id>``, ``POST batches/<id>/cancel``;
* ``GET datasets``, ``POST datasets``: recordings a team imported as its own datasets;
* ``GET break-glass``, ``POST break-glass``: an alliance admin's logged, time-limited entry into
  one team's batches and reports, which the team's people see.

Every route needs the hub identity with ``access:services!service=testbench``: the browser's
hub OAuth cookie (with JupyterHub's XSRF check on anything but a page view), or an API token
(``Authorization: token ...``), which is what ``smartfab programs submit`` sends from a
member's server. Refusals are 4xx with ``{"error": ..., "problems": [{"field", "message"}]}``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import os
import re
import shutil
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from jupyterhub.services.auth import HubOAuthCallbackHandler, HubOAuthenticated
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from tornado import web

from smartfab.alliance import Alliance
from smartfab.errors import (
    ConfigFileError,
    DatasetError,
    Problem,
    ProgramError,
    RunSpecError,
    SubmissionError,
)
from smartfab.host.layout import Layout
from smartfab.host.settings import HubSettings, load_settings
from smartfab.programs.models import Program
from smartfab.programs.registry import ProgramRegistry
from smartfab.testbench import pages
from smartfab.testbench.access import BenchAccess, Person
from smartfab.testbench.bench import TestBench, require_worker
from smartfab.testbench.models import BatchState, BreakGlassRequest, QueuedBatch, SubmitRequest
from smartfab.testbench.plan import Capacity
from smartfab.testbench.queue import BatchQueue
from smartfab.testbench.submission import new_batch_id

log = logging.getLogger("smartfab.testbench")

API_VERSION = 1
BATCH_ID = r"tb-[0-9a-f]{12}"
PROGRAM_ID = r"[a-z][a-z0-9-]{1,63}"
#: files of a batch report that its page may fetch
REPORT_FILES = {"": "report.html", "report.html": "report.html", "runs.csv": "runs.csv",
                "runs.json": "runs.json"}  # fmt: skip
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".csv": "text/csv",
                 ".json": "application/json"}  # fmt: skip
MAX_BODY = 16 * 1024 * 1024


class ImportRequest(BaseModel):
    """The body of ``POST api/v1/datasets``: a recording and its import card."""

    model_config = ConfigDict(extra="forbid")

    team: str = Field(min_length=1)
    file_name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._ -]*\.[A-Za-z0-9]+$")
    content_base64: str = Field(min_length=1, description="the recording's bytes, base64")
    card: str = Field(min_length=1, description="the import card's YAML text")


class RegisterRequest(BaseModel):
    """The body of ``POST api/v1/programs``: a notebook and its batch specs, as text."""

    model_config = ConfigDict(extra="forbid")

    team: str = Field(min_length=1)
    id: str | None = None
    title: str | None = None
    description: str | None = None
    notebook_name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*\.ipynb$")
    notebook: str = Field(min_length=2, description="the notebook's JSON text")
    specs: dict[str, str] = Field(min_length=1, description="file name -> the spec's YAML text")


@dataclass
class ServiceState:
    """What the handlers share."""

    bench: TestBench
    prefix: str
    hub_home: str

    @property
    def alliance(self) -> Alliance:
        return self.bench.access.alliance


def _problems(err: ValidationError, prefix: str = "") -> list[Problem]:
    return [
        Problem(prefix + ".".join(str(p) for p in e["loc"]), str(e["msg"])) for e in err.errors()
    ]


class BenchHandler(HubOAuthenticated, web.RequestHandler):  # type: ignore[misc]
    """Base of every handler: the hub identity, refusals without internals."""

    @property
    def state(self) -> ServiceState:
        state: ServiceState = self.settings["smartfab_state"]
        return state

    @property
    def bench(self) -> TestBench:
        return self.state.bench

    @property
    def person(self) -> Person:
        return self.bench.person(self.current_user)

    def send_error(self, status_code: int = 500, **kwargs: Any) -> None:
        """A refused request (SubmissionError) answers with its own status."""
        error = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(error, SubmissionError):
            status_code = error.status
        super().send_error(status_code, **kwargs)

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, SubmissionError):
            log.info("%s %s refused: %s", self.request.method, self.request.path, value)
            return
        super().log_exception(typ, value, tb)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        error = kwargs.get("exc_info", (None, None, None))[1]
        self.set_header("Content-Type", "application/json")
        if isinstance(error, SubmissionError):
            body = {
                "error": error.args[0],
                "problems": [{"field": p.path, "message": p.message} for p in error.problems],
            }
        else:
            message = getattr(error, "log_message", None) or self._reason
            body = {"error": f"{status_code} {message}", "problems": []}
        self.finish(json.dumps(body))

    def program(self, program_id: str) -> Program:
        """A program the person may see; 404 for any other (no hint that it exists)."""
        try:
            program = self.bench.registry.get(program_id)
        except ProgramError:
            raise web.HTTPError(404, f"unknown program {program_id!r}") from None
        if not self.bench.access.may_see_program(self.person, program):
            raise web.HTTPError(404, f"unknown program {program_id!r}")
        return program

    def batch(self, batch_id: str) -> QueuedBatch:
        """A batch of the person's teams: 404 when unknown, 403 when another team's."""
        batch = self.bench.queue.get(batch_id)
        if batch is None:
            raise web.HTTPError(404, f"unknown batch {batch_id!r}")
        if not self.bench.access.may_see_batch(self.person, batch):
            raise web.HTTPError(403, f"batch {batch_id} belongs to another team")
        return batch

    def batch_json(self, batch: QueuedBatch) -> dict[str, Any]:
        prefix = self.state.prefix
        data = batch.model_dump(mode="json", exclude={"pid", "pid_started"})
        data["progress"] = self.bench.progress(batch)
        data["sealed"] = self.bench.sealed(batch)
        data["links"] = {
            "self": f"{prefix}api/v1/batches/{batch.id}",
            "page": f"{prefix}batches/{batch.id}",
            "report": f"{prefix}batches/{batch.id}/report/",
        }
        return data

    def body_json(self) -> Any:
        if "application/json" not in self.request.headers.get("Content-Type", ""):
            raise SubmissionError(400, "send the body as JSON (Content-Type: application/json)")
        if len(self.request.body) > MAX_BODY:
            raise SubmissionError(400, f"the body is larger than {MAX_BODY} bytes")
        try:
            return json.loads(self.request.body or b"null")
        except ValueError as err:
            raise SubmissionError(400, f"the body is not JSON: {err}") from None

    def imported(self, person: Person) -> list[dict[str, str]]:
        """The recordings ``person``'s teams imported."""
        rows = []
        for team in sorted(person.teams):
            for card in self.bench.cards_for(team).values():
                if card.kind.value == "imported" and team in card.teams:
                    rows.append({"id": card.id, "title": card.title, "team": team})
        return rows

    def send_json(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data, indent=1))

    def render_page(self, title: str, body: str, script: str = "") -> None:
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(
            pages.page(
                title,
                body,
                user=self.current_user["name"],
                prefix=self.state.prefix,
                hub_home=self.state.hub_home,
                xsrf=self.xsrf_token.decode("ascii"),
                script=script,
            )
        )


# -- API ------------------------------------------------------------------------------------


def _program_json(program: Program) -> dict[str, Any]:
    data = program.model_dump(mode="json")
    data["latest"] = program.latest.model_dump(mode="json")
    return data


class ApiRootHandler(BenchHandler):
    @web.authenticated
    def get(self) -> None:
        self.send_json({"version": API_VERSION, "user": self.current_user["name"]})


class ProgramsApiHandler(BenchHandler):
    @web.authenticated
    def get(self) -> None:
        programs = self.bench.access.visible_programs(self.person, self.bench.registry.programs())
        self.send_json([_program_json(p) for p in programs])

    @web.authenticated
    def post(self) -> None:
        try:
            request = RegisterRequest.model_validate(self.body_json())
        except ValidationError as err:
            raise SubmissionError(400, "invalid registration", _problems(err)) from None
        person = self.person
        require_worker(person, request.team)
        workdir = self.bench.scratch / new_batch_id()
        workdir.mkdir(parents=True)
        try:
            (workdir / request.notebook_name).write_text(request.notebook, encoding="utf-8")
            paths = []
            for name, text in request.specs.items():
                if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*\.ya?ml$", name):
                    raise SubmissionError(
                        422, "bad spec file name", [Problem(f"specs.{name}", "use NAME.yaml")]
                    )
                (workdir / name).write_text(text, encoding="utf-8")
                paths.append(workdir / name)
            done = self.bench.registry.register(
                paths,
                team=request.team,
                registered_by=person.name,
                program_id=request.id,
                title=request.title,
                description=request.description,
            )
        except RunSpecError as err:
            problems = [
                Problem(
                    f"specs.{Path(p.source or err.source).name}{'.' + p.path if p.path else ''}",
                    p.message,
                )
                for p in err.problems
            ]
            raise SubmissionError(422, "a batch spec does not validate", problems) from None
        except ProgramError as err:
            raise SubmissionError(422, str(err), [Problem("program", str(err))]) from None
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        self.send_json(
            {
                "program": _program_json(done.program),
                "version": done.version.model_dump(mode="json"),
                "created": done.created,
            },
            status=201 if done.created else 200,
        )


class LibraryRequest(BaseModel):
    """The body of ``POST api/v1/programs/library``."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, description="a program of the alliance library")
    team: str = Field(min_length=1)


class LibraryApiHandler(BenchHandler):
    """``GET``: the programs of the alliance library not registered yet; ``POST``: register
    one of them for one's team."""

    @web.authenticated
    def get(self) -> None:
        self.send_json(self.bench.unregistered_library())

    @web.authenticated
    def post(self) -> None:
        try:
            request = LibraryRequest.model_validate(self.body_json())
        except ValidationError as err:
            raise SubmissionError(400, "invalid registration", _problems(err)) from None
        done = self.bench.register_library(self.person, request.id, request.team)
        self.send_json(
            {
                "program": _program_json(done.program),
                "version": done.version.model_dump(mode="json"),
                "created": done.created,
            },
            status=201 if done.created else 200,
        )


class ProgramApiHandler(BenchHandler):
    @web.authenticated
    def get(self, program_id: str) -> None:
        self.send_json(_program_json(self.program(program_id)))


class BatchesApiHandler(BenchHandler):
    @web.authenticated
    def get(self) -> None:
        person = self.person
        team = self.get_argument("team", None)
        state = self.get_argument("state", None)
        try:
            states = [BatchState(state)] if state else None
        except ValueError:
            raise SubmissionError(
                400,
                f"unknown state {state!r}",
                [Problem("state", f"one of {', '.join(s.value for s in BatchState)}")],
            ) from None
        teams = person.teams & {team} if team else person.teams
        batches = self.bench.queue.batches(
            teams=teams, program=self.get_argument("program", None), states=states
        )
        self.send_json([self.batch_json(b) for b in batches])

    @web.authenticated
    def post(self) -> None:
        try:
            request = SubmitRequest.model_validate(self.body_json())
        except ValidationError as err:
            raise SubmissionError(400, "invalid submission", _problems(err)) from None
        batch = self.bench.submit(self.person, request)
        self.send_json(self.batch_json(batch), status=201)


class BatchApiHandler(BenchHandler):
    @web.authenticated
    def get(self, batch_id: str) -> None:
        self.send_json(self.batch_json(self.batch(batch_id)))


class CancelApiHandler(BenchHandler):
    @web.authenticated
    def post(self, batch_id: str) -> None:
        batch = self.batch(batch_id)
        if not self.bench.access.may_cancel(self.person, batch):
            raise web.HTTPError(403, "only the team's leads and members cancel its batches")
        self.send_json(self.batch_json(self.bench.cancel(batch.id)))


class DatasetsApiHandler(BenchHandler):
    """``POST``: import a recording as a dataset of one's team; ``GET``: the datasets one's
    teams imported."""

    @web.authenticated
    def get(self) -> None:
        self.send_json(self.imported(self.person))

    @web.authenticated
    def post(self) -> None:
        try:
            request = ImportRequest.model_validate(self.body_json())
            data = base64.b64decode(request.content_base64, validate=True)
        except ValidationError as err:
            raise SubmissionError(400, "invalid import", _problems(err)) from None
        except binascii.Error as err:
            problem = Problem("content_base64", f"not base64: {err}")
            raise SubmissionError(400, "invalid import", [problem]) from None
        try:
            card = self.bench.import_recording(
                self.person, request.team, request.file_name, data, request.card
            )
        except ConfigFileError as err:
            problems = [Problem(f"card.{p.path}", f"line {p.line}: {p.message}" if p.line
                                else p.message) for p in err.problems]  # fmt: skip
            raise SubmissionError(422, "the import card does not validate", problems) from None
        except DatasetError as err:
            raise SubmissionError(422, str(err), [Problem("file", str(err))]) from None
        self.send_json({"id": card.id, "title": card.title, "team": request.team}, status=201)


class BreakGlassApiHandler(BenchHandler):
    """``POST``: an alliance admin enters one team's results (logged, for one hour); ``GET``:
    the entries into one's teams (and an admin's own)."""

    @web.authenticated
    def get(self) -> None:
        person = self.person
        entries = [
            e for e in self.bench.queue.break_glass()
            if e.team in person.teams or e.admin == person.name
        ]  # fmt: skip
        self.send_json([e.model_dump() for e in entries])

    @web.authenticated
    def post(self) -> None:
        try:
            request = BreakGlassRequest.model_validate(self.body_json())
        except ValidationError as err:
            raise SubmissionError(400, "invalid break-glass", _problems(err)) from None
        self.send_json(self.bench.break_glass(self.person, request).model_dump(), status=201)


# -- pages ----------------------------------------------------------------------------------


class ProgramsPageHandler(BenchHandler):
    @web.authenticated
    def get(self) -> None:
        person = self.person
        programs = self.bench.access.visible_programs(person, self.bench.registry.programs())
        latest: dict[str, QueuedBatch] = {}
        for batch in self.bench.queue.batches(teams=person.teams):
            latest.setdefault(batch.program, batch)
        body = pages.programs_body(programs, latest, self.state.prefix)
        glass = [
            e for e in self.bench.queue.break_glass()
            if e.team in person.teams or e.admin == person.name
        ]  # fmt: skip
        teams = [t.id for t in self.state.alliance.teams] if person.operator else []
        entered = self.bench.queue.batches(teams=person.entered) if person.entered else []
        if person.works_in:
            body += pages.library_body(self.bench.unregistered_library(), sorted(person.works_in))
        body += pages.imports_body(sorted(person.works_in), self.imported(person))
        body += pages.break_glass_body(glass, teams, entered, self.state.prefix)
        script = pages.LIBRARY_SCRIPT + pages.IMPORT_SCRIPT
        script += pages.BREAK_GLASS_SCRIPT if teams else ""
        self.render_page("Programs", body, script)


class ProgramPageHandler(BenchHandler):
    @web.authenticated
    def get(self, program_id: str) -> None:
        person = self.person
        program = self.program(program_id)
        batches = self.bench.queue.batches(teams=person.teams, program=program.id)
        teams = self.bench.access.submit_teams(person, program)
        body = pages.program_body(program, teams, batches, self.state.prefix)
        self.render_page(program.title, body, pages.PROGRAM_SCRIPT)


class BatchPageHandler(BenchHandler):
    @web.authenticated
    def get(self, batch_id: str) -> None:
        batch = self.batch(batch_id)
        may_cancel = self.bench.access.may_cancel(self.person, batch)
        body = pages.batch_body(batch, self.bench.progress(batch), may_cancel)
        self.render_page(f"Batch {batch.id}", body, pages.BATCH_SCRIPT)


class ReportHandler(BenchHandler):
    """The report files of a finished batch, from the team's store."""

    @web.authenticated
    def get(self, batch_id: str, name: str) -> None:
        batch = self.batch(batch_id)
        if name not in REPORT_FILES:
            raise web.HTTPError(404)
        path = self.bench.report_file(batch).with_name(REPORT_FILES[name])
        if batch.state is not BatchState.finished or not path.is_file():
            raise web.HTTPError(404, "this batch has no report (yet)")
        types = {
            ".html": "text/html; charset=utf-8",
            ".csv": "text/csv",
            ".json": "application/json",
        }
        self.set_header("Content-Type", types[path.suffix])
        self.finish(path.read_bytes())


class RefusedHandler(BenchHandler):
    def prepare(self) -> None:
        raise web.HTTPError(404)


def make_app(state: ServiceState) -> web.Application:
    """The tornado application of the service, below ``state.prefix``."""
    p = re.escape(state.prefix)
    api = p + "api/v1/"
    return web.Application(
        [
            (p, ProgramsPageHandler),
            (p + "oauth_callback", HubOAuthCallbackHandler),
            (p + rf"programs/({PROGRAM_ID})", ProgramPageHandler),
            (p + rf"batches/({BATCH_ID})", BatchPageHandler),
            (p + rf"batches/({BATCH_ID})/report/([a-z.]*)", ReportHandler),
            (api, ApiRootHandler),
            (api + "programs", ProgramsApiHandler),
            (api + "programs/library", LibraryApiHandler),
            (api + rf"programs/({PROGRAM_ID})", ProgramApiHandler),
            (api + "batches", BatchesApiHandler),
            (api + rf"batches/({BATCH_ID})", BatchApiHandler),
            (api + rf"batches/({BATCH_ID})/cancel", CancelApiHandler),
            (api + "break-glass", BreakGlassApiHandler),
            (api + "datasets", DatasetsApiHandler),
            (p + r".*", RefusedHandler),
        ],
        smartfab_state=state,
        cookie_secret=os.urandom(32),
    )


def open_bench(settings: HubSettings) -> TestBench:
    """The test bench of the deployment with ``settings``: its queue (created or upgraded),
    the program registry, the alliance's grants, the dataset cards."""
    from smartfab.alliance import load_alliance
    from smartfab.datasets.cards import load_cards
    from smartfab.datasets.catalog import default_cards_dir

    layout = Layout.from_settings(settings)
    return TestBench(
        queue=BatchQueue.open(settings.testbench_database_url),
        registry=ProgramRegistry(layout.state.programs),
        access=BenchAccess(load_alliance(settings.alliance_file)),
        layout=layout,
        capacity=Capacity(per_team=settings.testbench_team_runs, total=settings.testbench_runs),
        cards=load_cards(default_cards_dir()),
    )


def main() -> None:
    """Started by the hub with its service environment and ``$SMARTFAB_HUB_SETTINGS``."""
    if len(sys.argv) > 1:
        sys.exit(
            "usage: python -m smartfab.testbench.service (started by the hub: it reads the "
            "settings file named by $SMARTFAB_HUB_SETTINGS and takes no options)"
        )
    logging.basicConfig(level=logging.INFO, format="[%(levelname)1.1s %(name)s] %(message)s")
    settings = load_settings()
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/testbench/")
    service_url = urlparse(os.environ["JUPYTERHUB_SERVICE_URL"])
    hub_prefix = os.environ.get("JUPYTERHUB_BASE_URL", "/") + "hub/"
    state = ServiceState(open_bench(settings), prefix, hub_prefix + "home")
    asyncio.run(_serve(state, service_url.hostname or "127.0.0.1", service_url.port or 80))


async def _serve(state: ServiceState, host: str, port: int) -> None:
    """Serve and run batches until the hub stops the service; running batches go on."""
    server = make_app(state).listen(port, address=host, max_body_size=MAX_BODY)
    log.info("test bench at http://%s:%s%s", host, port, state.prefix)
    worker = asyncio.create_task(state.bench.run_forever())
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await stopping.wait()
    server.stop()
    worker.cancel()
    await state.bench.close()


if __name__ == "__main__":
    main()
