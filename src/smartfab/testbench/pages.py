"""The test bench's HTML pages: programs one may see, a program with its versions, batches and
submit form, a batch with live progress. Plain HTML; the small scripts call the JSON API."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape
from typing import Any

from smartfab.host.breakglass import BreakGlass
from smartfab.programs.models import Program
from smartfab.testbench.models import BatchState, QueuedBatch

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 64rem; color: #222; }
header { display: flex; justify-content: space-between; align-items: baseline; }
table { border-collapse: collapse; width: 100%; margin: 1rem 0; }
th, td { text-align: left; padding: .3rem .6rem; border-bottom: 1px solid #ddd; }
.sf-state-finished { color: #17631b; } .sf-state-failed { color: #a4161a; }
.sf-state-running { color: #1d4ed8; } .sf-state-cancelled { color: #666; }
form.sf-submit { border: 1px solid #ccc; border-radius: 6px; padding: 1rem; }
form.sf-submit label { display: block; margin: .5rem 0; }
textarea { width: 100%; font-family: monospace; }
.sf-problems { color: #a4161a; white-space: pre-wrap; }
progress { width: 20rem; }
"""

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="sf-xsrf" content="{xsrf}">
<meta name="sf-api" content="{prefix}api/v1/">
<title>{title} - Test bench</title>
<style>{style}</style>
</head>
<body>
<header><h1>{title}</h1><span class="sf-user">{user} &middot;
<a href="{prefix}">programs</a> &middot; <a href="{hub_home}">hub home</a></span></header>
{body}
<script>
const SF = {{
  api: document.querySelector('meta[name="sf-api"]').content,
  xsrf: document.querySelector('meta[name="sf-xsrf"]').content,
  async call(method, path, body) {{
    const reply = await fetch(SF.api + path, {{
      method, credentials: 'same-origin',
      headers: {{'Content-Type': 'application/json', 'X-XSRFToken': SF.xsrf}},
      body: body === undefined ? undefined : JSON.stringify(body),
    }});
    const data = await reply.json();
    return {{ok: reply.ok, status: reply.status, data}};
  }},
}};
</script>
{script}
</body>
</html>
"""


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def page(
    title: str, body: str, *, user: str, prefix: str, hub_home: str, xsrf: str, script: str = ""
) -> str:
    """A whole page of the test bench."""
    return _PAGE.format(
        title=escape(title),
        body=body,
        user=escape(user),
        prefix=escape(prefix),
        hub_home=escape(hub_home),
        xsrf=escape(xsrf),
        style=_STYLE,
        script=script,
    )


def batches_table(batches: Sequence[QueuedBatch], prefix: str) -> str:
    """Batches, newest first, each linking to its page."""
    if not batches:
        return '<p class="sf-empty">No batch yet.</p>'
    rows = "\n".join(
        f'<tr data-batch-id="{escape(b.id)}"><td><a href="{escape(prefix)}batches/{escape(b.id)}">'
        f"{escape(b.id)}</a></td><td>{escape(b.program)} v{b.version}</td>"
        f"<td>{escape(b.spec)}</td><td>{escape(b.team)}</td><td>{escape(b.submitted_by)}</td>"
        f'<td class="sf-state-{b.state.value}">{b.state.value}</td><td>{b.runs}</td>'
        f"<td>{_when(b.submitted_at)}</td></tr>"
        for b in batches
    )
    return (
        '<table class="sf-batches"><tr><th>batch</th><th>program</th><th>spec</th><th>team</th>'
        "<th>by</th><th>state</th><th>runs</th><th>submitted</th></tr>\n" + rows + "</table>"
    )


def programs_body(programs: Sequence[Program], latest: dict[str, QueuedBatch], prefix: str) -> str:
    """The programs a person may see, with the state of their teams' latest batch of each."""
    if not programs:
        return '<p class="sf-empty">No program is registered for your teams yet.</p>'
    rows = []
    for p in programs:
        last = latest.get(p.id)
        state = (
            f'<a class="sf-state-{last.state.value}" href="{escape(prefix)}batches/'
            f'{escape(last.id)}">{last.state.value}</a>'
            if last
            else "-"
        )
        rows.append(
            f'<tr data-program-id="{escape(p.id)}"><td><a href="{escape(prefix)}programs/'
            f'{escape(p.id)}">{escape(p.title)}</a></td><td>{escape(p.id)}</td>'
            f"<td>{escape(p.team)}</td><td>v{p.latest.number} ({p.latest.digest})</td>"
            f"<td>{state}</td></tr>"
        )
    return (
        '<table class="sf-programs"><tr><th>program</th><th>id</th><th>team</th>'
        "<th>latest version</th><th>your latest batch</th></tr>\n" + "\n".join(rows) + "</table>"
    )


def program_body(
    program: Program, teams: Sequence[str], batches: Sequence[QueuedBatch], prefix: str
) -> str:
    """A program: description, versions, the submit form (for teams one may run it for) and
    the batches of one's teams."""
    versions = "\n".join(
        f"<tr><td>{v.number}</td><td>{v.digest}</td><td>{escape(', '.join(v.specs))}</td>"
        f"<td>{escape(v.registered_by)}</td><td>{v.registered_at:%Y-%m-%d %H:%M UTC}</td></tr>"
        for v in reversed(program.versions)
    )
    parts = [
        f"<p>{escape(program.description)}</p>",
        f"<p>Owned by team <b>{escape(program.team)}</b>.</p>",
        "<h2>Versions</h2>",
        '<table class="sf-versions"><tr><th>version</th><th>digest</th><th>batch specs</th>'
        f"<th>by</th><th>registered</th></tr>\n{versions}</table>",
    ]
    if teams:
        version_options = "".join(
            f'<option value="{v.number}">{v.number} ({v.digest})</option>'
            for v in reversed(program.versions)
        )
        spec_options = "".join(
            f'<option value="{escape(s)}">{escape(s)}</option>' for s in program.latest.specs
        )
        team_options = "".join(f'<option value="{escape(t)}">{escape(t)}</option>' for t in teams)
        parts.append(
            f'<h2>Submit a batch</h2><form class="sf-submit" data-program="{escape(program.id)}">'
            f'<label>version <select name="version">{version_options}</select></label>'
            f'<label>batch spec <select name="batch">{spec_options}</select></label>'
            f'<label>team <select name="team">{team_options}</select></label>'
            "<label>values to set, one <code>name = value</code> a line (a JSON value such as "
            '<code>0.5</code>, <code>"ball"</code> or <code>[1, 2]</code>, else text; a list '
            'makes a grid axis)<textarea name="set" rows="4">'
            "</textarea></label>"
            '<button type="submit">Submit</button><div class="sf-problems"></div></form>'
        )
    parts.append("<h2>Batches of your teams</h2>")
    parts.append(batches_table(batches, prefix))
    return "\n".join(parts)


PROGRAM_SCRIPT = """<script>
const form = document.querySelector('form.sf-submit');
if (form) form.addEventListener('submit', async (event) => {
  event.preventDefault();
  const problems = form.querySelector('.sf-problems');
  problems.textContent = '';
  const set = {};
  for (const line of form.set.value.split('\\n')) {
    if (!line.trim()) continue;
    const at = line.indexOf('=');
    if (at < 1) { problems.textContent = 'not name = value: ' + line; return; }
    const text = line.slice(at + 1).trim();
    let value = text;
    try { value = JSON.parse(text); } catch (e) { value = text; }
    set[line.slice(0, at).trim()] = value;
  }
  const body = {program: form.dataset.program, version: form.version.value,
                batch: form.batch.value, team: form.team.value, set};
  const reply = await SF.call('POST', 'batches', body);
  if (reply.ok) { window.location = reply.data.links.page; return; }
  const lines = [reply.data.error || ('error ' + reply.status)];
  for (const p of reply.data.problems || []) lines.push(p.field + ': ' + p.message);
  problems.textContent = lines.join('\\n');
});
</script>"""


def batch_body(batch: QueuedBatch, progress: dict[str, Any], may_cancel: bool) -> str:
    """A batch: what it runs, for whom, its live progress, cancel and report."""
    settings = json.dumps(batch.parameters, sort_keys=True) if batch.parameters else "-"
    hidden = "" if batch.state is BatchState.finished else " hidden"
    cancel = (
        '<button class="sf-cancel" type="button">Cancel</button>'
        if may_cancel and not batch.state.ended
        else ""
    )
    return f"""
<table class="sf-batch" data-batch-id="{escape(batch.id)}">
<tr><th>program</th><td>{escape(batch.program)} v{batch.version} ({batch.digest})</td></tr>
<tr><th>batch spec</th><td>{escape(batch.spec)}</td></tr>
<tr><th>team</th><td>{escape(batch.team)}</td></tr>
<tr><th>submitted</th><td>by {escape(batch.submitted_by)}, {_when(batch.submitted_at)}</td></tr>
<tr><th>values set</th><td><code>{escape(settings)}</code></td></tr>
<tr><th>store batch</th><td><code>{escape(batch.batch_id)}</code></td></tr>
<tr><th>state</th><td class="sf-state sf-state-{batch.state.value}">{batch.state.value}</td></tr>
<tr><th>progress</th><td><progress max="{batch.runs}" value="{progress["done"]}"></progress>
<span class="sf-done">{progress["done"]}</span> of {batch.runs} runs
(<span class="sf-counts">{escape(_counts(progress))}</span>)</td></tr>
<tr><th>message</th><td class="sf-message">{escape(batch.message) or "-"}</td></tr>
</table>
<p>{cancel} <a class="sf-report" href="{escape(batch.id)}/report/"{hidden}>report</a></p>
"""


def _counts(progress: dict[str, Any]) -> str:
    counts = progress.get("counts") or {}
    return ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "none yet"


BATCH_SCRIPT = """<script>
const table = document.querySelector('table.sf-batch');
const id = table.dataset.batchId;
const cancel = document.querySelector('button.sf-cancel');
if (cancel) cancel.addEventListener('click', async () => {
  cancel.disabled = true;
  await SF.call('POST', 'batches/' + id + '/cancel');
});
async function refresh() {
  const reply = await SF.call('GET', 'batches/' + id);
  if (!reply.ok) return;
  const b = reply.data;
  const state = table.querySelector('.sf-state');
  state.textContent = b.state;
  state.className = 'sf-state sf-state-' + b.state;
  table.querySelector('progress').value = b.progress.done;
  table.querySelector('.sf-done').textContent = b.progress.done;
  const counts = Object.entries(b.progress.counts).sort()
    .map(([s, n]) => n + ' ' + s).join(', ');
  table.querySelector('.sf-counts').textContent = counts || 'none yet';
  table.querySelector('.sf-message').textContent = b.message || '-';
  if (['finished', 'failed', 'cancelled'].includes(b.state)) {
    document.querySelector('a.sf-report').hidden = b.state !== 'finished';
    if (cancel) cancel.hidden = true;
    return;
  }
  setTimeout(refresh, 1000);
}
refresh();
</script>"""


def break_glass_body(
    entries: Sequence[BreakGlass],
    teams: Sequence[str],
    entered: Sequence[QueuedBatch],
    prefix: str,
) -> str:
    """Break-glass entries into one's teams (everyone sees those into their own teams); for an
    admin (``teams`` given) the form to enter a team's results and the batches entered."""
    parts = []
    if teams:
        options = "".join(f'<option value="{escape(t)}">{escape(t)}</option>' for t in teams)
        parts.append(
            "<h2>Break-glass</h2><p>As an alliance admin you see no team's results. To enter one "
            "team's batches and reports for an hour, give the reason: the team's people read it."
            f'</p><form class="sf-break-glass"><label>team <select name="team">{options}'
            '</select></label> <label>reason <input name="reason" size="60"></label> '
            '<button type="submit">Enter</button><div class="sf-problems"></div></form>'
        )
        if entered:
            parts.append("<h3>Batches entered</h3>" + batches_table(entered, prefix))
    if entries:
        rows = "\n".join(
            f'<tr class="sf-glass-entry"><td>{escape(e.admin)}</td><td>{escape(e.team)}</td>'
            f"<td>{escape(e.reason)}</td><td>{_when(e.opened_at)}</td><td>{_when(e.until)}</td>"
            "</tr>"
            for e in entries
        )
        parts.append(
            "<h2>Break-glass log</h2><p>Admins who entered your teams' results.</p>"
            '<table class="sf-glass"><tr><th>admin</th><th>team</th><th>reason</th>'
            f"<th>entered</th><th>until</th></tr>\n{rows}</table>"
        )
    return "\n".join(parts)


BREAK_GLASS_SCRIPT = """<script>
const glass = document.querySelector('form.sf-break-glass');
glass.addEventListener('submit', async (event) => {
  event.preventDefault();
  const reply = await SF.call('POST', 'break-glass',
                              {team: glass.team.value, reason: glass.reason.value});
  if (reply.ok) { window.location.reload(); return; }
  const lines = [reply.data.error];
  for (const p of reply.data.problems || []) lines.push(p.field + ': ' + p.message);
  glass.querySelector('.sf-problems').textContent = lines.join('\\n');
});
</script>"""


def imports_body(teams: Sequence[str], imported: Sequence[dict[str, str]]) -> str:
    """The recordings one's teams imported, and (for leads and members) the import form."""
    parts = ["<h2>Your teams' own recordings</h2>"]
    if imported:
        rows = "".join(
            f'<tr class="sf-imported"><td>{escape(d["id"])}</td><td>{escape(d["title"])}</td>'
            f"<td>{escape(d['team'])}</td></tr>"
            for d in imported
        )
        parts.append(
            '<table class="sf-imports"><tr><th>dataset</th><th>title</th><th>team</th></tr>'
            f"{rows}</table>"
        )
    else:
        parts.append("<p>None yet.</p>")
    if teams:
        options = "".join(f'<option value="{escape(t)}">{escape(t)}</option>' for t in teams)
        parts.append(
            '<form class="sf-import"><p>Import a recording (CSV or netCDF from a machine or '
            "controller) as a dataset only your team may open; the card names its variables, "
            "units, sampling rate and provenance.</p>"
            f'<label>team <select name="team">{options}</select></label> '
            '<label>recording <input type="file" name="recording"></label> '
            '<label>card <input type="file" name="card"></label> '
            '<button type="submit">Import</button><div class="sf-problems"></div></form>'
        )
    return "\n".join(parts)


IMPORT_SCRIPT = """<script>
const importing = document.querySelector('form.sf-import');
if (importing) importing.addEventListener('submit', async (event) => {
  event.preventDefault();
  const problems = importing.querySelector('.sf-problems');
  const recording = importing.recording.files[0], card = importing.card.files[0];
  if (!recording || !card) { problems.textContent = 'choose a recording and its card'; return; }
  const bytes = new Uint8Array(await recording.arrayBuffer());
  let binary = '';
  for (let i = 0; i < bytes.length; i += 0x8000)
    binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  const reply = await SF.call('POST', 'datasets', {team: importing.team.value,
    file_name: recording.name, content_base64: btoa(binary), card: await card.text()});
  if (reply.ok) { window.location.reload(); return; }
  const lines = [reply.data.error];
  for (const p of reply.data.problems || []) lines.push(p.field + ': ' + p.message);
  problems.textContent = lines.join('\\n');
});
</script>"""


def library_body(programs: Sequence[str], teams: Sequence[str]) -> str:
    """The alliance library's programs nobody registered yet, each with a register button."""
    if not programs:
        return ""
    options = "".join(f'<option value="{escape(t)}">{escape(t)}</option>' for t in teams)
    rows = "".join(
        f'<tr data-library-id="{escape(p)}"><td>{escape(p)}</td><td><select name="team">'
        f'{options}</select> <button class="sf-register" type="button">Register</button>'
        "</td></tr>"
        for p in programs
    )
    return (
        "<h2>The alliance library</h2><p>Programs of the library nobody has registered yet: "
        "register one for your team to test it here.</p>"
        f'<table class="sf-library">{rows}</table><div class="sf-library-problems '
        'sf-problems"></div>'
    )


LIBRARY_SCRIPT = """<script>
for (const button of document.querySelectorAll('button.sf-register')) {
  button.addEventListener('click', async () => {
    const row = button.closest('tr');
    const reply = await SF.call('POST', 'programs/library',
      {id: row.dataset.libraryId, team: row.querySelector('select').value});
    if (reply.ok) { window.location = 'programs/' + reply.data.program.id; return; }
    document.querySelector('.sf-library-problems').textContent = reply.data.error;
  });
}
</script>"""
