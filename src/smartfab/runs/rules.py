"""Acceptance rules: what a metric of a run must satisfy, written as short text in a spec.

Accepted forms: ``< 80``, ``<= 0.5``, ``> 3``, ``>= 0.9`` (ordering, numbers only),
``== 'ok'`` or ``== ok``, ``!= 0`` (equality, numbers, strings or booleans),
``between 1 and 2`` (inclusive) and ``in [a, b, 3]``.

A rule never raises on a metric value: a missing value (None), or a value that is not a number
for an ordering rule, simply does not satisfy it.
"""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import dataclass
from typing import Any

#: what parse errors list, so the user sees every accepted form
ACCEPTED_FORMS = (
    "'< 80', '<= 0.5', '> 3', '>= 0.9', \"== 'ok'\", '== ok', '!= 0', "
    "'between 1 and 2' (inclusive), 'in [a, b, 3]'"
)
ORDERING = ("<", "<=", ">", ">=")
EQUALITY = ("==", "!=")

Scalar = int | float | str | bool

_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_QUOTED = re.compile(r"'((?:[^'\\]|\\.)*)'|\"((?:[^\"\\]|\\.)*)\"")
_BARE = re.compile(r"[^\s,\[\]'\"]+")
_OPERATOR = re.compile(r"([<>=!]+)\s*(.*)", re.DOTALL)
_BETWEEN = re.compile(r"between\s+(\S+)\s+and\s+(\S+)", re.IGNORECASE)
_IN = re.compile(r"in\s*\[(.*)\]", re.IGNORECASE | re.DOTALL)
_ESCAPE = re.compile(r"\\(.)")


@dataclass(frozen=True)
class Rule:
    """A parsed acceptance rule.

    Attributes
    ----------
    op:
        One of ``<``, ``<=``, ``>``, ``>=``, ``==``, ``!=``, ``between``, ``in``.
    operands:
        The value(s) the metric is compared with: one, two for ``between``, the list for ``in``.
    """

    op: str
    operands: tuple[Scalar, ...]

    def check(self, value: Any) -> bool:
        """Whether ``value`` satisfies the rule; False for None, never an exception."""
        if value is None:
            return False
        if self.op in ORDERING or self.op == "between":
            if not _is_number(value):
                return False
            low = self.operands[0]
            if self.op == "between":
                return bool(low <= value <= self.operands[1])
            return bool(
                {
                    "<": value < low,
                    "<=": value <= low,
                    ">": value > low,
                    ">=": value >= low,
                }[self.op]
            )
        if self.op == "==":
            return _equal(value, self.operands[0])
        if self.op == "!=":
            return not _equal(value, self.operands[0])
        return any(_equal(value, operand) for operand in self.operands)

    def __str__(self) -> str:
        shown = [_show(operand) for operand in self.operands]
        if self.op == "between":
            return f"between {shown[0]} and {shown[1]}"
        if self.op == "in":
            return f"in [{', '.join(shown)}]"
        return f"{self.op} {shown[0]}"


def parse_rule(text: str) -> Rule:
    """Parse an acceptance rule as written in a spec.

    Raises
    ------
    ValueError
        Saying what is wrong with ``text`` and listing the accepted forms.
    """
    if not isinstance(text, str):
        raise _invalid(text, "a rule is text")
    stripped = text.strip()
    if not stripped:
        raise _invalid(text, "the rule is empty")
    match = _OPERATOR.fullmatch(stripped)
    if match:
        op, rest = match.groups()
        if op not in ORDERING + EQUALITY:
            raise _invalid(text, f"unknown comparison {op!r}")
        operand = _scalar(text, rest.strip())
        if op in ORDERING and not _is_number(operand):
            raise _invalid(text, f"{op!r} compares with a number, not {_show(operand)}")
        return Rule(op, (operand,))
    match = _BETWEEN.fullmatch(stripped)
    if match:
        low, high = (_scalar(text, part) for part in match.groups())
        if not (_is_number(low) and _is_number(high)):
            raise _invalid(text, "'between' takes two numbers")
        if float(low) > float(high):
            raise _invalid(text, f"the lower bound {_show(low)} is above {_show(high)}")
        return Rule("between", (low, high))
    match = _IN.fullmatch(stripped)
    if match:
        return Rule("in", _items(text, match.group(1)))
    if stripped.lower().startswith(("between", "in ", "in[")):
        raise _invalid(text, "incomplete rule")
    raise _invalid(text, "unknown comparison")


def _invalid(text: Any, reason: str) -> ValueError:
    return ValueError(f"invalid rule {text!r}: {reason}; accepted forms: {ACCEPTED_FORMS}")


def _scalar(text: str, token: str) -> Scalar:
    """One operand: a number, a quoted string, true/false, or a bare word (a string)."""
    if not token:
        raise _invalid(text, "a value is missing after the comparison")
    if _NUMBER.fullmatch(token):
        if re.fullmatch(r"[+-]?\d+", token):
            return int(token)
        number = float(token)
        if not math.isfinite(number):
            raise _invalid(text, f"the number {token} is too large")
        return number
    quoted = _QUOTED.fullmatch(token)
    if quoted:
        body = quoted.group(1) if quoted.group(1) is not None else quoted.group(2)
        return _ESCAPE.sub(r"\1", body)
    if token.lower() in ("true", "false"):
        return token.lower() == "true"
    if _BARE.fullmatch(token):
        return token
    raise _invalid(text, f"cannot read the value {token!r} (quote strings that hold spaces)")


def _items(text: str, inner: str) -> tuple[Scalar, ...]:
    """The comma-separated values of an ``in [...]`` list; quoted values may hold commas."""
    rest = inner.strip()
    if not rest:
        raise _invalid(text, "the list is empty")
    items: list[Scalar] = []
    while True:
        quoted = _QUOTED.match(rest)
        if quoted:
            token, rest = quoted.group(0), rest[quoted.end() :].strip()
            if rest and not rest.startswith(","):
                raise _invalid(text, f"expected a comma before {rest!r}")
        else:
            token, comma, after = rest.partition(",")
            token, rest = token.strip(), (comma + after).strip()
        items.append(_scalar(text, token))
        if not rest:
            return tuple(items)
        rest = rest[1:].strip()  # the comma
        if not rest:
            raise _invalid(text, "a value is missing after the last comma")


def _is_number(value: Any) -> bool:
    """A real number that is not a bool (numpy scalars included)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _equal(value: Any, operand: Scalar) -> bool:
    """Equality that keeps booleans apart from numbers and numbers apart from strings."""
    if isinstance(operand, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(operand, bool) and value == operand
    if _is_number(operand):
        return _is_number(value) and bool(value == operand)
    return isinstance(value, str) and value == operand


def _show(value: Scalar) -> str:
    """The normalized text of an operand; parsing it gives the operand back."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace("'", "\\'")
        return f"'{escaped}'"
    return repr(value)
