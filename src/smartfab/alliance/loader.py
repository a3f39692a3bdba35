"""Loading and validating the alliance file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from smartfab.alliance.checks import check_alliance
from smartfab.alliance.models import PERSON_NAME_MAX, TEAM_ID_MAX, Alliance
from smartfab.alliance.source import YamlDocument, format_path, load_yaml_document
from smartfab.errors import AllianceError, ConfigFileError, Problem

_NAME_HINT = "use lowercase letters, digits and single hyphens, starting with a letter"


def _describe(error: Any) -> str:
    """Turn one pydantic error into a sentence that names the bad value."""
    kind = error["type"]
    value = error.get("input")
    loc = _error_loc(error)
    if kind == "string_pattern_mismatch" and loc and loc[-1] in ("name", "id"):
        limit = PERSON_NAME_MAX if loc[-1] == "name" else TEAM_ID_MAX
        return f"bad characters in name {value!r}: {_NAME_HINT} (at most {limit} characters)"
    if kind == "string_pattern_mismatch" and len(loc) >= 2 and loc[-2] == "members":
        return f"bad characters in member name {value!r}: {_NAME_HINT}"
    if kind == "enum" and len(loc) >= 2 and loc[-2] == "members":
        hint = " ('admin' is set per person: people[].admin: true)" if value == "admin" else ""
        return f"bad role {value!r}: use lead, member or viewer{hint}"
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "required field is missing"
    shown = f" (got {value!r})" if not isinstance(value, dict | list) else ""
    return f"{error['msg']}{shown}"


def _problem(doc: YamlDocument, loc: tuple[str | int, ...], message: str) -> Problem:
    return Problem(format_path(loc), message, doc.line_of(loc))


def _error_loc(error: Any) -> tuple[str | int, ...]:
    loc = tuple(error["loc"])
    # dict keys that fail their own validation are reported as "<key>:[key]" by pydantic
    return tuple(part for part in loc if part != "[key]")


def parse_alliance(doc: YamlDocument) -> Alliance:
    """Validate parsed YAML as an alliance.

    Raises
    ------
    AllianceError
        Listing every problem with its field path and line.
    """
    if not isinstance(doc.data, dict):
        raise AllianceError(doc.source, [Problem("", "the file must hold a mapping at top level")])
    try:
        alliance = Alliance.model_validate(doc.data)
    except ValidationError as err:
        problems = [_problem(doc, _error_loc(e), _describe(e)) for e in err.errors()]
        raise AllianceError(doc.source, problems) from None
    findings = check_alliance(alliance)
    if findings:
        raise AllianceError(doc.source, [_problem(doc, loc, msg) for loc, msg in findings])
    return alliance


def load_alliance(path: Path | str) -> Alliance:
    """Read, parse and validate the alliance file at ``path``.

    Raises
    ------
    AllianceError
        When the file is missing, is not YAML, or breaks any rule; the message lists every
        problem as ``FILE:LINE: FIELD.PATH: what is wrong``.
    """
    try:
        doc = load_yaml_document(Path(path))
    except ConfigFileError as err:
        raise AllianceError(err.source, err.problems) from None
    return parse_alliance(doc)
