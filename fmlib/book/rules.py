"""Rules that tie a chapter's parameters together, checked before anything runs.

A parameter's own constraint (``{in [0, 1)}``, ``{dataset}``, ...) sees one value. Some mistakes
only show in a combination: ``-p dataset digits`` in a chapter that draws 2-D data (digits are
64-D), ``-p n 5000`` with the 1797 digits, ``-p t_min 0.9 -p t_max 0.5``. Without a rule, such a
run starts and fails inside the notebook. The runner, the sweeps and ``show`` check the rules of
:data:`RULES` after the single values (:func:`fmlib.book.params.validate_overrides`), and the
message lists what is valid.

How a chapter author declares rules: add the chapter's notebook name to :data:`RULES` with a
tuple of the named checks below; each names the parameters it ties (a parameter may be
list-valued: the rule then holds for each element)::

    RULES["04_my_chapter"] = (
        DatasetDimension("dataset", 2),      # the data set must take d = 2 (a number, or a parameter name)
        DatasetSize("dataset", "n_train"),   # n_train must not exceed the data set's points
        Ordered("t_min", "t_max"),           # t_min < t_max (strict=False allows equality)
    )

``python -m fmlib run NAME --help`` lists a chapter's rules; ``tests/test_run.py`` checks that
every rule names parameters of its chapter and that the defaults obey it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fmlib.book.params import ParameterError, Rule, read_parameters, validate_overrides

__all__ = ["RULES", "DatasetDimension", "DatasetSize", "Ordered", "check_parameters", "rules_for"]


def _each(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _datasets() -> dict[str, Any]:
    from fmlib.data import DATASETS

    return DATASETS


@dataclass(frozen=True)
class DatasetDimension:
    """The data set named by parameter ``dataset`` takes dimension ``d`` (a number, or a parameter's name)."""

    dataset: str
    d: int | str

    def names(self) -> tuple[str, ...]:
        return (self.dataset, *((self.d,) if isinstance(self.d, str) else ()))

    def describe(self) -> str:
        if isinstance(self.d, str):
            return f"the data set `{self.dataset}` must take the dimension `{self.d}`"
        fitting = [n for n, entry in sorted(_datasets().items()) if _takes(entry, self.d)]
        return (f"the data set `{self.dataset}` must take the dimension {self.d}, fixed by the chapter "
                f"({', '.join(fitting)})")

    def check(self, values: dict[str, Any]) -> None:
        datasets = _datasets()
        for d in _each(values[self.d] if isinstance(self.d, str) else self.d):
            for name in _each(values[self.dataset]):
                try:
                    datasets[name].options_for_d(name, int(d))
                except ValueError as err:
                    fitting = [n for n, entry in sorted(datasets.items()) if _takes(entry, int(d))]
                    take = f"; use -p {self.dataset} {fitting[0]}" if fitting else ""
                    keep = (f"; or keep {name} with -p {self.d} {datasets[name].dimension}"
                            if isinstance(self.d, str) and datasets[name].dimension is not None else "")
                    raise ParameterError(
                        f"parameters {self.dataset} and d: {err}. Data sets that take d = {d}: "
                        f"{', '.join(fitting) or 'none'}{take}{keep}"
                    ) from None


def _takes(entry: Any, d: int) -> bool:
    try:
        entry.options_for_d(entry.name, d)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class DatasetSize:
    """Parameter ``n`` (points drawn) does not exceed the points of the data set named by ``dataset``."""

    dataset: str
    n: str

    def names(self) -> tuple[str, ...]:
        return (self.dataset, self.n)

    def describe(self) -> str:
        return f"{self.n} must not exceed the number of points of the data set {self.dataset}"

    def check(self, values: dict[str, Any]) -> None:
        datasets = _datasets()
        for name in _each(values[self.dataset]):
            largest = datasets[name].largest_n
            for n in _each(values[self.n]):
                if largest is not None and int(n) > largest:
                    raise ParameterError(
                        f"parameters {self.dataset} and {self.n}: {name!r} has {largest} points, fewer than "
                        f"{self.n} = {n}; use -p {self.n} {largest} or less, or a data set that draws as many "
                        f"points as asked ({', '.join(k for k, e in sorted(datasets.items()) if e.largest_n is None)})"
                    )


@dataclass(frozen=True)
class Ordered:
    """Parameter ``low`` lies below parameter ``high`` (``strict=False``: or equals it)."""

    low: str
    high: str
    strict: bool = True

    def names(self) -> tuple[str, ...]:
        return (self.low, self.high)

    def describe(self) -> str:
        return f"{self.low} {'<' if self.strict else '<='} {self.high}"

    def check(self, values: dict[str, Any]) -> None:
        for low in _each(values[self.low]):
            for high in _each(values[self.high]):
                self._check_pair(low, high)

    def _check_pair(self, low: Any, high: Any) -> None:
        if low < high or (low == high and not self.strict):
            return
        relation = "below" if self.strict else "at most"
        fix = f"; swap them: -p {self.low} {high} -p {self.high} {low}" if low != high else ""
        raise ParameterError(
            f"parameters {self.low} and {self.high}: {self.low} = {low} must be {relation} {self.high} = {high}{fix}"
        )


RULES: dict[str, tuple[Rule, ...]] = {
    "01_closed_form": (DatasetDimension("dataset", 2),),
    "02_concentration": (Ordered("t_min", "t_max"), Ordered("delta_min", "delta_max", strict=False)),
    "05_subspace": (Ordered("k", "d", strict=False), Ordered("k", "mlp_dims", strict=False)),
    "cosine_point": (DatasetDimension("family", "d"), DatasetSize("family", "n"), Ordered("s_min", "s_max")),
}
"""The rules of each notebook (by its file name without ``.md``); chapters without rules are absent."""


def rules_for(stem: str) -> tuple[Rule, ...]:
    """The rules of notebook ``stem`` (``01_closed_form``), or none."""
    return RULES.get(stem, ())


def check_parameters(notebook_path: Path, overrides: dict[str, Any]) -> dict[str, Any]:
    """The full, checked parameter set of a notebook: every value and every rule of :data:`RULES`."""
    return validate_overrides(read_parameters(notebook_path), overrides, rules_for(notebook_path.stem))
