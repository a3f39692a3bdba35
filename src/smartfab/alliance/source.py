"""Reading YAML configuration files with line numbers for every field path.

PyYAML silently keeps the last of two equal keys; for files that define identities (team ids,
user names) that would hide mistakes, so this loader refuses duplicate keys and remembers where
each value stands in the file, so validation errors can point to a line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from smartfab.errors import ConfigFileError, Problem


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
