"""The parameters a program notebook declares in its cell tagged ``parameters``.

As in papermill, a program is a notebook whose first code cell tagged ``parameters`` assigns the
defaults (``seed = 1``, ``rate: float = 0.5  # Hz``). papermill only warns about a name the cell
does not define; test runs refuse it, so the cell is read here with :mod:`ast`, without executing
anything, and each parameter gets a type from its annotation or, failing that, its default.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
from nbformat.validator import NotebookValidationError

from smartfab.errors import Problem, RunSpecError

#: tag of the cell that holds the defaults (papermill's convention)
PARAMETERS_TAG = "parameters"
#: type names a parameter can have; "any" accepts every value
TYPE_NAMES = ("int", "float", "str", "bool", "list", "dict", "NoneType", "any")

_ANNOTATION_TYPES = {
    "int": "int",
    "float": "float",
    "str": "str",
    "bool": "bool",
    "list": "list",
    "List": "list",
    "tuple": "list",
    "Tuple": "list",
    "Sequence": "list",
    "dict": "dict",
    "Dict": "dict",
    "Mapping": "dict",
    "None": "NoneType",
    "NoneType": "NoneType",
    "Any": "any",
    "object": "any",
}


@dataclass(frozen=True)
class NotebookParameter:
    """One parameter assigned in the parameters cell.

    Attributes
    ----------
    name:
        The variable name.
    type_name:
        One of :data:`TYPE_NAMES`: from the annotation when there is one, else from the default.
    default:
        The literal default value, or None when the default is not a literal.
    annotation:
        The annotation as written (``"float"``), or None.
    line:
        1-based line of the assignment inside the cell.
    """

    name: str
    type_name: str
    default: Any
    annotation: str | None
    line: int


def read_parameters(path: Path) -> dict[str, NotebookParameter]:
    """The parameters declared by the notebook at ``path``, by name, in the order of the cell.

    Raises
    ------
    RunSpecError
        With the notebook as source, when the file is missing or unreadable, is not a valid
        notebook, has no code cell tagged ``parameters``, or that cell is not valid Python.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise RunSpecError(path, [Problem("", "notebook not found")]) from None
    except OSError as err:
        raise RunSpecError(path, [Problem("", f"cannot read notebook: {err}")]) from err
    return parameters_from_bytes(data, path)


def parameters_from_bytes(data: bytes, source: Path) -> dict[str, NotebookParameter]:
    """Like :func:`read_parameters`, for notebook bytes already read from ``source``.

    The caller that also hashes the notebook reads it once, so the parameters and the sha256
    describe the same content.
    """
    notebook = _parse_notebook(data, source)
    for index, cell in enumerate(notebook.cells):
        tags = cell.get("metadata", {}).get("tags", [])
        if cell.cell_type == "code" and PARAMETERS_TAG in tags:
            try:
                return parse_parameters_cell(cell.source)
            except SyntaxError as err:
                shown = f": {err.text.strip()!r}" if err.text and err.text.strip() else ""
                message = (
                    f"line {err.lineno} of the parameters cell is not valid Python "
                    f"({err.msg}){shown}"
                )
                raise RunSpecError(source, [Problem(f"cells[{index}]", message)]) from None
    message = (
        f"no code cell is tagged {PARAMETERS_TAG!r}: tag the cell that assigns the defaults "
        "(in JupyterLab: Property Inspector, Cell Tags)"
    )
    raise RunSpecError(source, [Problem("", message)])


def _parse_notebook(data: bytes, source: Path) -> Any:
    """The notebook in ``data`` as an nbformat v4 node; RunSpecError when it is not one."""

    def invalid(reason: str) -> RunSpecError:
        return RunSpecError(source, [Problem("", f"not a valid notebook: {reason}")])

    try:
        raw = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise invalid("not UTF-8 text") from None
    except json.JSONDecodeError as err:
        raise invalid(f"not JSON ({err.msg} at line {err.lineno})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("nbformat"), int):
        raise invalid("no 'nbformat' version")
    try:
        notebook = nbformat.reads(data.decode("utf-8"), as_version=4)  # type: ignore[no-untyped-call]
        nbformat.validate(notebook)
    except (nbformat.ValidationError, NotebookValidationError) as err:
        raise invalid(str(err.message).splitlines()[0]) from None
    except (ValueError, TypeError, KeyError, AttributeError) as err:
        # nbformat's converters fail with whatever the malformed JSON happens to trigger
        raise invalid(str(err) or type(err).__name__) from None
    return notebook


def parse_parameters_cell(code: str) -> dict[str, NotebookParameter]:
    """The parameters assigned at the top level of a parameters cell's ``code``.

    Plain (``x = 1``), annotated (``x: float = 1``, ``x: int``) and tuple assignments
    (``a, b = 1, 2``) count; other statements are ignored, as are IPython magics and shell
    lines (``%matplotlib inline``). A later assignment of a name replaces an earlier one.

    Raises
    ------
    SyntaxError
        When the cell is not valid Python; ``lineno`` is the line inside the cell.
    """
    tree = ast.parse(_blank_magics(code))
    found: dict[str, NotebookParameter] = {}
    for statement in tree.body:
        for parameter in _parameters_of(statement):
            found.pop(parameter.name, None)
            found[parameter.name] = parameter
    return found


def _blank_magics(code: str) -> str:
    """``code`` with magic and shell lines emptied, keeping every line number."""
    lines = code.split("\n")
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in lines)


def _parameters_of(statement: ast.stmt) -> list[NotebookParameter]:
    if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
        annotation = statement.annotation
        return [_parameter(statement.target.id, statement.value, annotation, statement.lineno)]
    if not isinstance(statement, ast.Assign):
        return []
    found = []
    for target in statement.targets:
        if isinstance(target, ast.Name):
            found.append(_parameter(target.id, statement.value, None, statement.lineno))
        elif isinstance(target, ast.Tuple | ast.List):
            values: list[ast.expr | None] = [None] * len(target.elts)
            if isinstance(statement.value, ast.Tuple | ast.List) and len(
                statement.value.elts
            ) == len(target.elts):
                values = list(statement.value.elts)
            for element, value in zip(target.elts, values, strict=True):
                if isinstance(element, ast.Name):
                    found.append(_parameter(element.id, value, None, statement.lineno))
    return found


def _parameter(
    name: str, value: ast.expr | None, annotation: ast.expr | None, line: int
) -> NotebookParameter:
    default: Any = None
    type_name = "any"
    if value is not None:
        try:
            default = ast.literal_eval(value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            default = None
        else:
            type_name = _type_of_value(default)
    if annotation is not None:
        type_name = _type_of_annotation(annotation)
    written = ast.unparse(annotation) if annotation is not None else None
    return NotebookParameter(name, type_name, default, written, line)


def _type_of_value(value: Any) -> str:
    if value is None:
        return "NoneType"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float | str | dict):
        return type(value).__name__
    if isinstance(value, list | tuple):
        return "list"
    return "any"


def _type_of_annotation(node: ast.expr) -> str:
    """The type name an annotation stands for; "any" for unions and types we do not check."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        try:  # a string annotation: x: "float" = 1
            node = ast.parse(node.value, mode="eval").body
        except SyntaxError:
            return "any"
    if isinstance(node, ast.Constant) and node.value is None:
        return "NoneType"
    if isinstance(node, ast.Subscript):
        node = node.value
    if isinstance(node, ast.Name):
        return _ANNOTATION_TYPES.get(node.id, "any")
    if isinstance(node, ast.Attribute):  # typing.List, t.Any
        return _ANNOTATION_TYPES.get(node.attr, "any")
    return "any"


def accepts(parameter: NotebookParameter, value: Any) -> bool:
    """Whether ``value`` (as read from YAML) suits ``parameter``'s type.

    An int suits a float, a bool suits neither an int nor a float, and None suits only "any"
    and "NoneType". A parameter whose default is None says nothing about the type of the values
    it takes, so "NoneType" accepts every value.
    """
    kind = parameter.type_name
    if kind in ("any", "NoneType"):
        return True
    if value is None or (isinstance(value, bool) and kind != "bool"):
        return False
    expected: dict[str, type | tuple[type, ...]] = {
        "int": int,
        "float": (int, float),
        "str": str,
        "bool": bool,
        "list": list,
        "dict": dict,
    }
    return isinstance(value, expected[kind])
