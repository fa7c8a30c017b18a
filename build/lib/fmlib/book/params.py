"""A chapter's parameters: read from its cell tagged ``parameters``, and overrides checked against them.

A chapter declares each parameter on one line of that cell, with a type annotation, a default and
a help comment that may end with a constraint in braces::

    n_train: int = 8  # number of training points {in [1, inf)}
    t: float = 0.5  # time on the path {in [0, 1)}
    dataset: str = "digits"  # training data {dataset}
    ts: list[float] = [0.1, 0.5]  # times to look at {in [0, 1]}
    method: str = "heun"  # ODE solver {one of: euler, heun, rk4}
    data_file: str = ""  # optional data file {file}

Constraints: an interval ``{in [a, b)}`` (brackets closed, parentheses open, ``inf`` allowed; no
``=`` sign, which papermill's own parser of the cell rejects), ``{one of: ...}``,
``{dataset}`` (a name of :func:`fmlib.data.dataset_names`) and ``{file}`` (an existing path, or
empty). For a list, the constraint applies to each element. papermill accepts unknown names
silently, so every override is checked here before anything runs.
"""

from __future__ import annotations

import ast
import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jupytext

__all__ = ["ParameterError", "ParameterSpec", "parse_value", "read_parameters", "validate_overrides"]

SCALAR_TYPES = {"int": int, "float": float, "str": str, "bool": bool}
LIST_TYPES = {f"list[{name}]": name for name in SCALAR_TYPES}
_INTERVAL = re.compile(r"in\s*([\[(])\s*([^,]+?)\s*,\s*([^\])]+?)\s*([\])])")


class ParameterError(ValueError):
    """An override that cannot be used: an unknown name, a value that does not parse, an impossible value."""


@dataclass(frozen=True)
class ParameterSpec:
    """One line of a chapter's parameters cell."""

    name: str
    type_name: str
    default: Any
    help: str
    constraint: str

    def describe(self) -> str:
        """One line for ``--help``: name, type, default, help and constraint."""
        rule = f" {{{self.constraint}}}" if self.constraint else ""
        return f"{self.name}: {self.type_name} = {self.default!r}  {self.help}{rule}"


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
    example = {"int": "8", "float": "0.5", "str": "digits", "bool": "true"}[scalar]
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
        shape = f"{example},{example}" if spec.type_name in LIST_TYPES else example
        raise ParameterError(
            f"parameter {spec.name}: {value!r} is not a {spec.type_name} ({err}); write it like -p {spec.name} {shape}"
        ) from None


def _check_interval(spec: ParameterSpec, value: float) -> None:
    match = _INTERVAL.fullmatch(spec.constraint)
    if match is None:
        raise ParameterError(f"parameter {spec.name}: cannot read its constraint {{{spec.constraint}}}")
    left, low, high, right = match.groups()
    low_ok = value >= float(low) if left == "[" else value > float(low)
    high_ok = value <= float(high) if right == "]" else value < float(high)
    if not (low_ok and high_ok):
        interval = spec.constraint[2:].strip()
        raise ParameterError(f"parameter {spec.name}: {value!r} is impossible; it must lie in {interval}")


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
            raise ParameterError(f"parameter {spec.name}: {value!r} is not one of {', '.join(choices)}")
    else:
        _check_interval(spec, value)


def validate_overrides(specs: dict[str, ParameterSpec], overrides: dict[str, Any]) -> dict[str, Any]:
    """Return the full parameter set (defaults updated by the overrides), every value checked.

    Raises:
        ParameterError: an unknown name (with the known names and the closest one), a value that
        does not parse as the parameter's type, or one its constraint forbids.
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
    return values
