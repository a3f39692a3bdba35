"""Loading and validating the alliance file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from smartfab.alliance.checks import check_alliance
from smartfab.alliance.models import PERSON_NAME_MAX, TEAM_ID_MAX, Alliance
from smartfab.errors import AllianceError, ConfigFileError
from smartfab.yamlfile import YamlDocument, load_yaml_document, problem_at, validate_document

_NAME_HINT = "use lowercase letters, digits and single hyphens, starting with a letter"


def _describe(error: dict[str, Any], loc: tuple[str | int, ...]) -> str | None:
    """Alliance-specific wording for names and roles; None for the generic sentence."""
    kind = error["type"]
    value = error.get("input")
    if kind == "string_pattern_mismatch" and loc and loc[-1] in ("name", "id"):
        limit = PERSON_NAME_MAX if loc[-1] == "name" else TEAM_ID_MAX
        return f"bad characters in name {value!r}: {_NAME_HINT} (at most {limit} characters)"
    if kind == "string_pattern_mismatch" and len(loc) >= 2 and loc[-2] == "members":
        return f"bad characters in member name {value!r}: {_NAME_HINT}"
    if kind == "enum" and len(loc) >= 2 and loc[-2] == "members":
        hint = " ('admin' is set per person: people[].admin: true)" if value == "admin" else ""
        return f"bad role {value!r}: use lead, member or viewer{hint}"
    return None


def parse_alliance(doc: YamlDocument) -> Alliance:
    """Validate parsed YAML as an alliance.

    Field problems are reported first; rules that relate fields to each other (unknown members,
    duplicate ids, partners) are checked once every field is valid.

    Raises
    ------
    AllianceError
        Listing every problem with its field path and line.
    """
    alliance = validate_document(doc, Alliance, AllianceError, _describe)
    findings = check_alliance(alliance)
    if findings:
        raise AllianceError(doc.source, [problem_at(doc, loc, msg) for loc, msg in findings])
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
