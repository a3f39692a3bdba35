"""Reading and validating YAML files (alliance file, dataset cards) with a line for every field.

PyYAML silently keeps the last of two equal keys; for files that define identities (team ids,
user names) that would hide mistakes, so this loader refuses duplicate keys and remembers where
each value stands in the file, so validation errors can point to a line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from smartfab.errors import ConfigFileError, Problem

M = TypeVar("M", bound=BaseModel)
#: a file-specific wording for a pydantic error at a location, or None for the generic one
Describe = Callable[[dict[str, Any], tuple[str | int, ...]], str | None]


@dataclass
class YamlDocument:
    """Plain data parsed from a YAML file plus a map from field path to 1-based line."""

    source: str
    data: Any
    lines: dict[tuple[str | int, ...], int] = field(default_factory=dict)

    def line_of(self, path: tuple[str | int, ...]) -> int | None:
        """Line of the deepest known prefix of ``path`` (the field or its nearest parent)."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return None


def format_path(path: tuple[str | int, ...]) -> str:
    """Render ``("teams", 1, "members", "zoe")`` as ``teams[1].members.zoe``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _construct(
    node: yaml.Node,
    path: tuple[str | int, ...],
    lines: dict[tuple[str | int, ...], int],
    problems: list[Problem],
) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        first_seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = yaml.safe_load(yaml.serialize(key_node))
            if not isinstance(key, str | int | float | bool) and key is not None:
                problems.append(
                    Problem(
                        format_path(path),
                        "mapping keys must be plain scalars",
                        key_node.start_mark.line + 1,
                    )
                )
                continue
            key_line = key_node.start_mark.line + 1
            if key in first_seen:
                problems.append(
                    Problem(
                        format_path((*path, str(key))),
                        f"duplicate key {key!r} (first defined on line {first_seen[key]})",
                        key_line,
                    )
                )
                continue
            first_seen[key] = key_line
            child = (*path, str(key))
            result[key] = _construct(value_node, child, lines, problems)
            lines[child] = key_line
        return result
    if isinstance(node, yaml.SequenceNode):
        return [
            _construct(item, (*path, index), lines, problems)
            for index, item in enumerate(node.value)
        ]
    return yaml.safe_load(yaml.serialize(node))


def load_yaml_document(path: Path) -> YamlDocument:
    """Parse ``path`` into a :class:`YamlDocument`.

    Raises
    ------
    ConfigFileError
        When the file cannot be read, is not valid YAML, or repeats a key.
    """
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigFileError(source, [Problem("", "file not found")]) from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigFileError(source, [Problem("", f"cannot read file: {err}")]) from err
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        reason = getattr(err, "problem", None) or str(err)
        raise ConfigFileError(source, [Problem("", f"invalid YAML: {reason}", line)]) from err
    if node is None:
        raise ConfigFileError(source, [Problem("", "file is empty")])
    lines: dict[tuple[str | int, ...], int] = {}
    problems: list[Problem] = []
    data = _construct(node, (), lines, problems)
    if problems:
        raise ConfigFileError(source, problems)
    return YamlDocument(source=source, data=data, lines=lines)


def error_location(error: dict[str, Any]) -> tuple[str | int, ...]:
    """Field path of a pydantic error (dict keys that fail validation carry a '[key]' part)."""
    return tuple(part for part in error["loc"] if part != "[key]")


def describe_error(error: dict[str, Any]) -> str:
    """A generic sentence for a pydantic error that names the offending value."""
    kind = error["type"]
    value = error.get("input")
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "required field is missing"
    shown = f" (got {value!r})" if not isinstance(value, dict | list) else ""
    return f"{error['msg']}{shown}"


def problem_at(doc: YamlDocument, loc: tuple[str | int, ...], message: str) -> Problem:
    """A problem at field path ``loc`` of ``doc``, with its line."""
    return Problem(format_path(loc), message, doc.line_of(loc))


def schema_problems(
    doc: YamlDocument, model: type[M], describe: Describe | None = None
) -> tuple[M | None, list[Problem]]:
    """Validate ``doc`` as ``model``: the model, or None and every problem with path and line."""
    if not isinstance(doc.data, dict):
        found = type(doc.data).__name__
        return None, [Problem("", f"the file must hold a mapping, not a {found}", 1)]
    try:
        return model.model_validate(doc.data), []
    except ValidationError as err:
        problems = []
        for item in err.errors():
            entry: dict[str, Any] = dict(item)
            loc = error_location(entry)
            message = (describe(entry, loc) if describe else None) or describe_error(entry)
            problems.append(problem_at(doc, loc, message))
        return None, problems


def validate_document(
    doc: YamlDocument,
    model: type[M],
    error: type[ConfigFileError] = ConfigFileError,
    describe: Describe | None = None,
) -> M:
    """Validate ``doc`` as ``model``; raise ``error`` listing every problem with path and line."""
    result, problems = schema_problems(doc, model, describe)
    if result is None:
        raise error(doc.source, problems)
    return result
