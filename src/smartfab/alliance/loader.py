"""Loading and validating the alliance file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from smartfab.alliance.checks import GrantReferences, check_alliance
from smartfab.alliance.models import PERSON_NAME_MAX, TEAM_ID_MAX, Alliance
from smartfab.errors import AllianceError, ConfigFileError
from smartfab.yamlfile import YamlDocument, load_yaml_document, problem_at, schema_problems

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


def parse_alliance(doc: YamlDocument, references: Sequence[GrantReferences] = ()) -> Alliance:
    """Validate parsed YAML as an alliance, its grants against ``references``.

    Every problem is found in one pass: field problems, rules that relate fields to each other
    (unknown members, duplicate ids, partners) and grants of unknown ids, even where other
    fields of the same entry are invalid.

    Raises
    ------
    AllianceError
        Listing every problem with its field path and line, in the order of the file.
    """
    alliance, problems = schema_problems(doc, Alliance, _describe)
    findings = check_alliance(doc.data, references)
    problems += [problem_at(doc, loc, message) for loc, message in findings]
    if problems or alliance is None:
        ordered = sorted(problems, key=lambda p: (p.line is not None, p.line or 0))
        raise AllianceError(doc.source, ordered)
    return alliance


def load_alliance(path: Path | str, references: Sequence[GrantReferences] = ()) -> Alliance:
    """Read, parse and validate the alliance file at ``path`` (its grants against
    ``references``: the ids that exist, see :func:`smartfab.hub.services.grant_references`).

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
    return parse_alliance(doc, references)
