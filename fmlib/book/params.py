"""A chapter's parameters: read from its cell tagged ``parameters``, and overrides checked against them.

A chapter declares each parameter on one line of that cell, with a type annotation, a default and
a help comment that may end with a constraint in braces::

    n_train: int = 8  # number of training points {in [1, inf)}
    t: float = 0.5  # time on the path {in [0, 1)}
    dataset: str = "digits"  # training data {dataset}
    ts: list[float] = [0.1, 0.5]  # times to look at {in [0, 1]}
    method: str = "heun"  # ODE solver {one of: euler, heun, rk4}
    data_file: str = ""  # optional data file {file}

Constraints: an interval ``{in [a, b)}`` (brackets closed, parentheses open, ``inf`` allowed),
``{one of: ...}``, ``{dataset}`` (a name of :func:`fmlib.data.dataset_names`) and ``{file}`` (an
existing path, or empty). For a list, the constraint applies to each element. A line holds one
``=`` sign, the assignment: papermill's own parser of the cell skips a line with two (logging
"Unable to parse line" and then "Passed unknown parameter" at every run), so a help comment says
"t near 1", never "t = 1"; :func:`read_parameters` rejects a second ``=``. papermill accepts
unknown names silently, so every override is checked here before anything runs, and so are the
rules that tie several parameters together (:mod:`fmlib.book.rules`).
"""

from __future__ import annotations

import ast
import difflib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import jupytext

from fmlib._checks import check_in_interval

__all__ = ["ParameterError", "ParameterSpec", "Rule", "describe_constraint", "parse_value", "read_parameters",
           "shell_value", "type_words", "validate_overrides"]

SCALAR_TYPES = {"int": int, "float": float, "str": str, "bool": bool}
LIST_TYPES = {f"list[{name}]": name for name in SCALAR_TYPES}
_INTERVAL = re.compile(r"in\s*([\[(])\s*([^,]+?)\s*,\s*([^\])]+?)\s*([\])])")
_TYPE_WORDS = {"int": "an integer", "float": "a number", "str": "a text", "bool": "true or false"}
_LIST_WORDS = {"int": "integers", "float": "numbers", "str": "texts", "bool": "booleans"}


class ParameterError(ValueError):
    """An override that cannot be used: an unknown name, a value that does not parse, an impossible value."""


class Rule(Protocol):
    """A check over several parameters (:mod:`fmlib.book.rules`)."""

    def names(self) -> tuple[str, ...]:
        """The parameters the rule ties together."""

    def check(self, values: dict[str, Any]) -> None:
        """Raise :class:`ParameterError` (listing what is valid) when ``values`` break the rule."""

    def describe(self) -> str:
        """The rule in words, for ``--help``."""


@dataclass(frozen=True)
class ParameterSpec:
    """One line of a chapter's parameters cell."""

    name: str
    type_name: str
    default: Any
    help: str
    constraint: str

    def describe(self) -> str:
        """One line for ``--help`` and ``list``: name, type in words, default, help and allowed values."""
        allowed = describe_constraint(self.constraint)
        rule = f" ({allowed})" if allowed else ""
        return f"{self.name} ({type_words(self.type_name)}, default {shell_value(self.default)}): {self.help}{rule}"


def type_words(type_name: str) -> str:
    """A parameter's type as a reader says it: "an integer", "a list of numbers (comma-separated)"."""
    if type_name in LIST_TYPES:
        return f"a list of {_LIST_WORDS[LIST_TYPES[type_name]]} (comma-separated)"
    return _TYPE_WORDS[type_name]


def shell_value(value: Any) -> str:
    """A value as it is written after ``-p NAME`` on the shell (a list comma-separated)."""
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    if isinstance(value, bool):
        return str(value).lower()
    return str(value) if value != "" else '""'


def _number(text: str) -> str:
    return {"inf": "infinity", "-inf": "minus infinity"}.get(text.strip(), text.strip())


def describe_constraint(constraint: str) -> str:
    """A constraint in words: ``in [1, inf)`` is "at least 1", ``dataset`` names the data sets."""
    if not constraint:
        return ""
    if constraint == "dataset":
        from fmlib.data import dataset_names

        return "a data set: " + ", ".join(dataset_names())
    if constraint == "file":
        return "an existing file or directory, or empty"
    if constraint.startswith("one of:"):
        return constraint
    match = _INTERVAL.fullmatch(constraint)
    if match is None:
        return constraint
    left, low, high, right = match.groups()
    lower = {"[": f"at least {_number(low)}", "(": f"above {_number(low)}"}[left]
    upper = {"]": f"at most {_number(high)}", ")": f"below {_number(high)}"}[right]
    if high.strip() == "inf":
        return lower
    if low.strip() == "-inf":
        return upper
    return f"{lower} and {upper}"


def _parameters_cell(notebook_path: Path) -> str:
    notebook = jupytext.read(notebook_path)
    cells = [c for c in notebook.cells if c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])]
    if len(cells) != 1:
        raise ParameterError(f"{notebook_path} must have exactly one code cell tagged 'parameters', found {len(cells)}")
    return cells[0].source


def read_parameters(notebook_path: str | Path) -> dict[str, ParameterSpec]:
    """Parse the ``parameters`` cell of a jupytext notebook into specs, in the order they appear."""
    notebook_path = Path(notebook_path)
    source = _parameters_cell(notebook_path)
    lines = source.splitlines()
    specs: dict[str, ParameterSpec] = {}
    for node in ast.parse(source).body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None):
            raise ParameterError(
                f"{notebook_path}: line {node.lineno} of the parameters cell is not 'name: type = value  # help'"
            )
        type_name = ast.unparse(node.annotation)
        if type_name not in SCALAR_TYPES and type_name not in LIST_TYPES:
            raise ParameterError(f"{notebook_path}: parameter {node.target.id} has unsupported type {type_name}")
        line = lines[node.lineno - 1]
        tail = line[node.value.end_col_offset :]
        comment = tail.split("#", 1)[1].strip() if "#" in tail else ""
        if line.count("=") > 1:
            raise ParameterError(
                f"{notebook_path}: line {node.lineno} of the parameters cell has more than one '=' ({line.strip()!r}); "
                "papermill skips such a line. Keep '=' for the assignment: write 't near 1', not 't = 1', in the help"
            )
        match = re.search(r"\{([^{}]*)\}\s*$", comment)
        constraint = match.group(1).strip() if match else ""
        help_text = comment[: match.start()].strip() if match else comment
        specs[node.target.id] = ParameterSpec(
            node.target.id, type_name, ast.literal_eval(node.value), help_text, constraint
        )
    return specs


def _parse_scalar(text: str, type_name: str) -> Any:
    text = text.strip()
    if type_name == "bool":
        lowered = text.lower()
        if lowered in {"true", "1", "yes"}:
            return True
        if lowered in {"false", "0", "no"}:
            return False
        raise ValueError("expected true or false")
    if type_name == "int":
        value = float(text) if re.fullmatch(r"\d+(\.0*)?[eE]\+?\d+", text) else int(text)
        if isinstance(value, float) and not value.is_integer():
            raise ValueError("expected an integer")
        return int(value)
    return SCALAR_TYPES[type_name](text)


def parse_value(spec: ParameterSpec, value: Any) -> Any:
    """Convert an override (a string from the shell, or a Python value) to the parameter's type.

    Lists are written comma-separated on the shell: ``-p ts 0.1,0.5,0.9``.
    """
    scalar = LIST_TYPES.get(spec.type_name, spec.type_name)
    try:
        if spec.type_name in LIST_TYPES:
            items = value.split(",") if isinstance(value, str) else list(value)
            return [_parse_scalar(str(item), scalar) for item in items if str(item).strip()]
        if isinstance(value, bool) and scalar != "bool":
            raise ValueError("a boolean is not a number")
        if not isinstance(value, str) and scalar == "float" and isinstance(value, (int, float)):
            return float(value)
        if not isinstance(value, str) and scalar == "int" and isinstance(value, int):
            return value
        return _parse_scalar(str(value), scalar)
    except ValueError as err:
        raise ParameterError(
            f"parameter {spec.name}: {value!r} is not {type_words(spec.type_name)} ({err}); "
            f"write it like its default: -p {spec.name} {shell_value(spec.default)}"
        ) from None


def _check_interval(spec: ParameterSpec, value: float) -> None:
    match = _INTERVAL.fullmatch(spec.constraint)
    if match is None:
        raise ParameterError(f"parameter {spec.name}: cannot read its constraint {{{spec.constraint}}}")
    left, low, high, right = match.groups()
    bounds = {"low": float(low), "high": float(high)}
    try:  # the one interval check of the numerics; infinite ends mean unbounded
        check_in_interval(value, spec.name, **{k: v if math.isfinite(v) else None for k, v in bounds.items()},
                          low_open=left == "(", high_open=right == ")")
    except ValueError:
        raise ParameterError(
            f"parameter {spec.name}: {value!r} is impossible; it must be {describe_constraint(spec.constraint)} "
            f"(interval {spec.constraint[2:].strip()}), like its default: -p {spec.name} {shell_value(spec.default)}"
        ) from None


def _check_constraint(spec: ParameterSpec, value: Any) -> None:
    rule = spec.constraint
    if not rule:
        return
    if rule == "dataset":
        from fmlib.data import dataset_names

        names = dataset_names()
        if value not in names:
            close = difflib.get_close_matches(str(value), names, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ParameterError(f"parameter {spec.name}: unknown data set {value!r}; known: {', '.join(names)}.{hint}")
    elif rule == "file":
        if value and not Path(value).exists():
            raise ParameterError(
                f"parameter {spec.name}: data file {value!r} does not exist; "
                "put the file there (see data/README.md) or pass another path"
            )
    elif rule.startswith("one of:"):
        choices = [c.strip() for c in rule.split(":", 1)[1].split(",")]
        if str(value) not in choices:
            raise ParameterError(f"parameter {spec.name}: {value!r} is not one of {', '.join(choices)}; "
                                 f"for example -p {spec.name} {choices[0]}")
    else:
        _check_interval(spec, value)


def validate_overrides(
    specs: dict[str, ParameterSpec], overrides: dict[str, Any], rules: Sequence[Rule] = ()
) -> dict[str, Any]:
    """Return the full parameter set (defaults updated by the overrides), every value checked.

    ``rules`` tie several parameters together (a data set and a dimension, a smallest and a largest
    time: :mod:`fmlib.book.rules`); each is checked after every value passed its own constraint.

    Raises:
        ParameterError: an unknown name (with the known names and the closest one), a value that
        does not parse as the parameter's type, one its constraint forbids, or a combination a rule
        forbids (the message lists what is valid).
    """
    values = {name: spec.default for name, spec in specs.items()}
    for name, raw in overrides.items():
        if name not in specs:
            close = difflib.get_close_matches(name, list(specs), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ParameterError(f"unknown parameter {name!r}.{hint} Parameters: {', '.join(specs)}")
        values[name] = parse_value(specs[name], raw)
    for name, value in values.items():
        for item in value if isinstance(value, list) else [value]:
            _check_constraint(specs[name], item)
    for rule in rules:
        rule.check(values)
    return values
