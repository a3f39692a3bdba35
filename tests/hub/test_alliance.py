"""The alliance file: the demo file, every kind of malformed file, and ``smartfab hub check``."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from smartfab.alliance import Alliance, TeamKind, TeamRole, load_alliance
from smartfab.errors import AllianceError
from tests.support.hubtools import DEMO_ALLIANCE

SMARTFAB = str(Path(sys.executable).with_name("smartfab"))
#: the line a malformed case expects in the error carries this comment
MARK = "# <-"

HEAD = """\
alliance:
  name: Test alliance
people:
  - name: ana
  - name: bob
"""

ACME = """\
teams:
  - id: acme
    kind: firm
    title: Acme
    members:
      ana: lead
      bob: member
"""


def _marked_line(text: str) -> int:
    """1-based number of the only line carrying MARK."""
    hits = [n for n, line in enumerate(text.splitlines(), 1) if MARK in line]
    assert len(hits) == 1, "a case must mark exactly one line"
    return hits[0]


@pytest.fixture
def sf_write(tmp_path: Path) -> Callable[[str], Path]:
    """Write YAML text (dedented) to a fresh alliance file in tmp_path and return its path."""

    def write(text: str) -> Path:
        path = tmp_path / "alliance.yaml"
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


def _error(path: Path) -> str:
    with pytest.raises(AllianceError) as info:
        load_alliance(path)
    assert info.value.source == str(path)
    return str(info.value)


# ------------------------------------------------------------------------------- the demo file


@pytest.fixture(scope="module")
def sf_demo() -> Alliance:
    """The demo alliance file of the repository, loaded once."""
    return load_alliance(DEMO_ALLIANCE)


def test_demo_counts(sf_demo: Alliance) -> None:
    """The demo file has 2 firms, 2 universities, 1 project and 9 people."""
    kinds = [team.kind for team in sf_demo.teams]
    assert kinds.count(TeamKind.firm) == 2
    assert kinds.count(TeamKind.university) == 2
    assert kinds.count(TeamKind.project) == 1
    assert len(sf_demo.teams) == 5
    assert len(sf_demo.people) == 9
    assert sf_demo.alliance.name == "Smart Manufacturing Alliance (demo)"


def test_demo_admin_and_viewers(sf_demo: Alliance) -> None:
    """olga is the only admin; carl and wim are viewers without a server of their own."""
    assert sf_demo.admins == ["olga"]
    for viewer in ("carl", "wim"):
        roles = {t.members[viewer] for t in sf_demo.teams_of(viewer)}
        assert roles == {TeamRole.viewer}
        assert not sf_demo.has_own_server(viewer)
    others = {p.name for p in sf_demo.people} - {"carl", "wim"}
    assert all(sf_demo.has_own_server(name) for name in others)
    assert sf_demo.server_owners == sorted(others)
    assert not sf_demo.has_own_server("nobody")


def test_demo_project_partners(sf_demo: Alliance) -> None:
    """The project's partners are declared firm or university teams."""
    (project,) = [t for t in sf_demo.teams if t.kind is TeamKind.project]
    assert project.partners == ["acme-machining", "tu-wear-lab"]
    for partner in project.partners:
        team = sf_demo.team(partner)
        assert team is not None
        assert team.kind in (TeamKind.firm, TeamKind.university)


# -------------------------------------------------------------------------- malformed files

PERSON_25 = "a" * 25
TEAM_21 = "t" * 21

MALFORMED: dict[str, tuple[str, str, list[str]]] = {
    # case: (file text with the offending line marked, field path, expected fragments)
    "unknown-member": (
        HEAD + ACME + f"      zoe: member  {MARK}\n",
        "teams[0].members.zoe",
        ["unknown user 'zoe'", "'acme'"],
    ),
    "duplicate-team-id": (
        HEAD + ACME + f"  - id: acme  {MARK}\n    kind: firm\n    title: Acme again\n",
        "teams[1].id",
        ["duplicate team id 'acme'", "teams[0]"],
    ),
    "duplicate-person": (
        HEAD + f"  - name: ana  {MARK}\n",
        "people[2].name",
        ["duplicate person name 'ana'", "people[0]"],
    ),
    "duplicate-member-key": (
        HEAD + ACME + f"      ana: viewer  {MARK}\n",
        "teams[0].members.ana",
        ["duplicate key 'ana'", "first defined on line 11"],
    ),
    "duplicate-people-key": (
        HEAD + f"people:  {MARK}\n  - name: cleo\n",
        "people",
        ["duplicate key 'people'", "first defined on line 3"],
    ),
    "bad-role": (
        HEAD + ACME + f"      cleo: boss  {MARK}\n",
        "teams[0].members.cleo",
        ["bad role 'boss'", "lead, member or viewer"],
    ),
    "admin-as-team-role": (
        HEAD + ACME.replace("bob: member", f"bob: admin  {MARK}"),
        "teams[0].members.bob",
        ["bad role 'admin'", "people[].admin"],
    ),
    "person-name-space": (
        HEAD + f"  - name: Bob Smith  {MARK}\n",
        "people[2].name",
        ["bad characters in name 'Bob Smith'"],
    ),
    "person-name-underscore": (
        HEAD + f"  - name: bob_smith  {MARK}\n",
        "people[2].name",
        ["bad characters in name 'bob_smith'"],
    ),
    "person-name-uppercase": (
        HEAD + f"  - name: Bob  {MARK}\n",
        "people[2].name",
        ["bad characters in name 'Bob'"],
    ),
    "team-id-bad-characters": (
        HEAD + ACME.replace("id: acme", f"id: Acme_1  {MARK}"),
        "teams[0].id",
        ["bad characters in name 'Acme_1'", "at most 20"],
    ),
    "member-name-uppercase": (
        HEAD + ACME + f"      Bob: member  {MARK}\n",
        "teams[0].members.Bob",
        ["bad characters in member name 'Bob'"],
    ),
    "member-name-underscore": (
        HEAD + ACME + f"      bob_smith: viewer  {MARK}\n",
        "teams[0].members.bob_smith",
        ["bad characters in member name 'bob_smith'"],
    ),
    "person-name-too-long": (
        HEAD + f"  - name: {PERSON_25}  {MARK}\n",
        "people[2].name",
        [repr(PERSON_25), "at most 24"],
    ),
    "team-id-too-long": (
        HEAD + ACME.replace("id: acme", f"id: {TEAM_21}  {MARK}"),
        "teams[0].id",
        [repr(TEAM_21), "at most 20"],
    ),
    "person-name-reserved": (
        HEAD + f"  - name: team-lead  {MARK}\n",
        "people[2].name",
        ["'team-lead'", "'team-'", "reserved"],
    ),
    "person-name-dashboards-reserved": (
        HEAD + f"  - name: dash-acme  {MARK}\n",
        "people[2].name",
        ["'dash-acme'", "'dash-'", "reserved", "dashboards"],
    ),
    "person-name-run-accounts-reserved": (
        HEAD + f"  - name: run-acme  {MARK}\n",
        "people[2].name",
        ["'run-acme'", "'run-'", "reserved", "test-bench"],
    ),
    "team-id-viewers-suffix": (
        HEAD + ACME.replace("id: acme", f"id: acme-viewers  {MARK}"),
        "teams[0].id",
        ["'acme-viewers'", "'-viewers'", "reserved"],
    ),
    "unknown-field": (
        HEAD + ACME.replace("members:", f"memebrs:  {MARK}"),
        "teams[0].memebrs",
        ["unknown field"],
    ),
    "missing-title": (
        HEAD + ACME.replace("id: acme", f"id: acme  {MARK}").replace("    title: Acme\n", ""),
        "teams[0].title",
        ["required field is missing"],
    ),
    "missing-kind": (
        HEAD + ACME.replace("id: acme", f"id: acme  {MARK}").replace("    kind: firm\n", ""),
        "teams[0].kind",
        ["required field is missing"],
    ),
    "bad-kind": (
        HEAD + ACME.replace("kind: firm", f"kind: universe  {MARK}"),
        "teams[0].kind",
        ["'universe'", "'firm', 'university' or 'project'"],
    ),
    "partners-on-firm": (
        HEAD + ACME + f"    partners: [acme]  {MARK}\n",
        "teams[0].partners",
        ["only project teams have partners", "'acme' is a firm"],
    ),
    "unknown-partner": (
        HEAD
        + ACME
        + "  - id: joint\n    kind: project\n    title: Joint\n"
        + f"    partners: [acme, nope]  {MARK}\n",
        "teams[1].partners[1]",
        ["unknown partner team 'nope'"],
    ),
    "partner-is-project": (
        HEAD
        + ACME
        + "  - id: joint\n    kind: project\n    title: Joint\n    partners: [acme]\n"
        + "  - id: big\n    kind: project\n    title: Big\n"
        + f"    partners:\n      - acme\n      - joint  {MARK}\n",
        "teams[2].partners[1]",
        ["partner 'joint' is itself a project"],
    ),
    "bad-email": (
        HEAD + f"  - name: cleo\n    email: not-an-email  {MARK}\n",
        "people[2].email",
        ["'not-an-email'"],
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_file(case: str, sf_write: Callable[[str], Path]) -> None:
    """Each malformed case names the file, the line, the field path and the offending value."""
    text, field, fragments = MALFORMED[case]
    path = sf_write(text)
    message = _error(path)
    line = _marked_line(text)
    assert f"{path}:{line}: {field}: " in message, message
    for fragment in fragments:
        assert fragment in message, message


def test_invalid_yaml_reports_line(sf_write: Callable[[str], Path]) -> None:
    """A YAML syntax error is reported with the file and the line of the error."""
    text = HEAD + f"   extra: [  {MARK}\n"
    path = sf_write(text)
    message = _error(path)
    assert f"{path}:{_marked_line(text)}: invalid YAML" in message, message


def test_empty_file(sf_write: Callable[[str], Path]) -> None:
    """An empty (or comment-only) file is refused, naming the file."""
    path = sf_write("# nothing here\n")
    assert f"{path}: file is empty" in _error(path)


def test_top_level_not_mapping(sf_write: Callable[[str], Path]) -> None:
    """A file whose top level is a list is refused."""
    path = sf_write("- ana\n- bob\n")
    assert f"{path}:1: the file must hold a mapping, not a list" in _error(path)


def test_missing_file(tmp_path: Path) -> None:
    """A missing file is an AllianceError naming the file, not an OSError."""
    path = tmp_path / "absent.yaml"
    assert f"{path}: file not found" in _error(path)


def test_several_problems_in_one_error(sf_write: Callable[[str], Path]) -> None:
    """Field problems and the cross-field problems they leave are listed in one error, in the
    order of the file, counted in its first line."""
    text = HEAD + ACME.replace("kind: firm", "kind: universe") + "      cleo: boss\n"
    text = text.replace("  - name: bob\n", "  - name: Bob\n    agee: 3\n")
    path = sf_write(text)
    message = _error(path)
    head, *lines = message.splitlines()
    assert head == f"{path}: 6 problems found"
    expected = [
        "people[1].name: bad characters in name 'Bob'",
        "people[1].agee: unknown field",
        "teams[0].kind: Input should be",
        "teams[0].members.bob: unknown user 'bob'",  # the person is 'Bob', which is invalid
        "teams[0].members.cleo: bad role 'boss'",
        "teams[0].members.cleo: unknown user 'cleo'",
    ]
    assert len(lines) == len(expected)
    for line, fragment in zip(lines, expected, strict=True):
        assert f": {fragment}" in line, message


#: five problems of three kinds: a field, two rules between fields, two grants of unknown ids
FIVE_PROBLEMS = (
    HEAD
    + """teams:
  - id: acme
    kind: firm
    title: Acme
    members:
      ana: boss
      zoe: member
    grants:
      datasets: [milling-tool-wear, milling-tool-waer]
      dashboards: [tool-life, spc-chrat]
  - id: acme
    kind: university
    title: Twin
"""
)


def test_every_problem_of_every_kind_at_once(sf_write: Callable[[str], Path]) -> None:
    """A field problem does not hide the rules between fields, nor unknown grants."""
    from smartfab.hub.services import grant_references

    path = sf_write(FIVE_PROBLEMS)
    with pytest.raises(AllianceError) as info:
        load_alliance(path, grant_references())
    head, *lines = str(info.value).splitlines()
    assert head == f"{path}: 5 problems found"
    expected = [
        (11, "teams[0].members.ana: bad role 'boss'"),
        (12, "teams[0].members.zoe: unknown user 'zoe' in team 'acme'"),
        (14, "teams[0].grants.datasets[1]: unknown dataset 'milling-tool-waer'; known: "),
        (15, "teams[0].grants.dashboards[1]: unknown dashboard 'spc-chrat'; known: "),
        (16, "teams[1].id: duplicate team id 'acme' (first at teams[0])"),
    ]
    for line, (number, fragment) in zip(lines, expected, strict=True):
        assert f"{path}:{number}: {fragment}" in line, info.value
    assert "milling-tool-wear" in lines[2] and "tool-life" in lines[3]  # the known ids listed


def test_grants_are_checked_only_against_the_references_given(
    sf_write: Callable[[str], Path],
) -> None:
    """Without references (a program reading the file for its teams) grants are not looked up;
    with them, a grant of an id that exists passes."""
    from smartfab.alliance import GrantReferences

    path = sf_write(HEAD + ACME + "    grants:\n      dashboards: [mine]\n")
    assert load_alliance(path).team("acme") is not None
    known = GrantReferences(kind="dashboards", noun="dashboard", known=frozenset({"mine"}))
    assert load_alliance(path, [known]).team("acme") is not None
    unknown = GrantReferences(kind="dashboards", noun="dashboard", known=frozenset())
    with pytest.raises(AllianceError, match="unknown dashboard 'mine'; none is registered"):
        load_alliance(path, [unknown])


def test_several_cross_field_problems(sf_write: Callable[[str], Path]) -> None:
    """Every cross-field problem is listed too: unknown member, duplicate team, bad partner."""
    text = (
        HEAD
        + ACME
        + "      zoe: member\n"
        + "  - id: acme\n    kind: firm\n    title: Twin\n"
        + "  - id: joint\n    kind: project\n    title: Joint\n    partners: [ghost]\n"
    )
    path = sf_write(text)
    message = _error(path)
    assert message.splitlines()[0] == f"{path}: 3 problems found"
    for fragment in ("teams[1].id: duplicate", "teams[0].members.zoe:", "teams[2].partners[0]:"):
        assert fragment in message, message


# ------------------------------------------------------------------------------------- the CLI


def _check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SMARTFAB, "hub", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_check_demo_ok() -> None:
    """`smartfab hub check` on the demo file exits 0 and prints an 'ok' summary."""
    result = _check(DEMO_ALLIANCE)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        f"{DEMO_ALLIANCE}: ok (9 people, 5 teams, 7 with a server of their own)"
    )


def test_cli_check_lists_every_problem_in_one_run(sf_write: Callable[[str], Path]) -> None:
    """`smartfab hub check` shows all five problems of a file at once, exit 2."""
    path = sf_write(FIVE_PROBLEMS)
    result = _check(path)
    assert result.returncode == 2
    assert result.stderr.splitlines()[0] == f"error: {path}: 5 problems found", result.stderr
    for fragment in (
        "bad role 'boss'",
        "unknown user 'zoe'",
        "unknown dataset 'milling-tool-waer'",
    ):
        assert fragment in result.stderr
    assert "unknown dashboard 'spc-chrat'" in result.stderr and "duplicate team id" in result.stderr


def test_cli_check_bad_file(sf_write: Callable[[str], Path]) -> None:
    """A bad file exits 2 and lists its problems on stderr, nothing on stdout."""
    path = sf_write(HEAD + ACME + "      zoe: member\n      cleo: viewer\n")
    result = _check(path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert f"error: {path}: 2 problems found" in result.stderr
    assert "teams[0].members.zoe" in result.stderr
    assert "teams[0].members.cleo" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_check_missing_file(tmp_path: Path) -> None:
    """A missing file exits 2 with the file named on stderr."""
    path = tmp_path / "absent.yaml"
    result = _check(path)
    assert result.returncode == 2
    assert f"{path}: file not found" in result.stderr
    assert "Traceback" not in result.stderr
