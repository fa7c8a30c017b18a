"""Validation at the package boundary: every public function checks its inputs here, once.

Each check raises a ``ValueError`` that names the argument, shows the bad value and says what was
expected; nothing deeper in the package re-checks.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

__all__ = [
    "FloatArray",
    "as_time",
    "check_batch",
    "check_choice",
    "check_chunk_size",
    "check_data",
    "check_dtype",
    "check_field",
    "check_float",
    "check_in_interval",
    "check_points",
    "check_positive_int",
    "check_same_shape",
    "check_times",
    "generator_device",
    "resolve_device",
]


FloatArray = NDArray[np.float64]
"""A float64 numpy array: the type of every array-valued statistic and time grid."""


def generator_device(generator: torch.Generator | None, default: str | torch.device = "cpu") -> torch.device:
    """The device random numbers are drawn on: the generator's, else ``default``.

    The one rule of the package: draws follow the generator (so a seed gives the same numbers
    whatever device the result goes to), and a draw without a generator happens on ``default``.
    """
    return generator.device if generator is not None else torch.device(default)


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """Return the device to compute on: ``"auto"`` (or None) means CUDA when present, else CPU."""
    if device is None or (isinstance(device, str) and device == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"device={device!r} is not a device; expected 'auto', 'cpu' or 'cuda[:k]'") from err


def check_data(data: Tensor, name: str = "data") -> Tensor:
    """Check an (n, d) floating tensor of training points with n >= 1 and d >= 1."""
    if not isinstance(data, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape (n, d), got {type(data).__name__}")
    if data.dim() != 2:
        raise ValueError(f"{name} must have shape (n, d), got shape {tuple(data.shape)}")
    if data.shape[0] == 0 or data.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {tuple(data.shape)}); expected at least one point of dimension >= 1")
    if data.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"{name} must be float32 or float64, got {data.dtype}")
    return data


def check_points(x: Tensor, like: Tensor, name: str = "x", like_name: str = "data") -> Tensor:
    """Check a (B, d) batch of query points against ``like`` (n, d): same d, dtype and device."""
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape (B, d), got {type(x).__name__}")
    if x.dim() != 2:
        raise ValueError(f"{name} must have shape (B, d), got shape {tuple(x.shape)}")
    if x.shape[1] != like.shape[1]:
        raise ValueError(
            f"{name} has dimension d={x.shape[1]} but {like_name} has d={like.shape[1]}; they must match"
        )
    if x.dtype != like.dtype:
        raise ValueError(f"{name} has dtype {x.dtype} but {like_name} has {like.dtype}; convert one of them")
    if x.device != like.device:
        raise ValueError(f"{name} is on {x.device} but {like_name} is on {like.device}; move one of them")
    return x


def as_time(t: float | Tensor, batch: int, like: Tensor, name: str = "t") -> Tensor:
    """Return ``t`` as a (B,) tensor with the dtype and device of ``like``, checked to lie in [0, 1].

    ``t`` may be a Python number, a 0-d tensor or a tensor of shape (B,).
    """
    if isinstance(t, Tensor):
        if t.dim() == 0:
            t = t.reshape(1).expand(batch)
        elif t.shape != (batch,):
            raise ValueError(f"{name} must be a float or a tensor of shape ({batch},), got shape {tuple(t.shape)}")
        t = t.to(dtype=like.dtype, device=like.device)
    elif isinstance(t, (int, float)) and not isinstance(t, bool):
        if not 0 <= t <= 1:  # checked in Python: no device round trip for the common case
            raise ValueError(f"{name} must lie in [0, 1] (0 = noise, 1 = data), got {float(t)!r}")
        return torch.full((batch,), float(t), dtype=like.dtype, device=like.device)
    else:
        raise ValueError(f"{name} must be a float or a tensor of shape ({batch},), got {type(t).__name__}")
    bad = ~((t >= 0) & (t <= 1))
    if bool(bad.any()):
        raise ValueError(f"{name} must lie in [0, 1] (0 = noise, 1 = data), got {t[bad][0].item()!r}")
    return t


def check_positive_int(value: int, name: str) -> int:
    """Check that ``value`` is an integer >= 1 (bools are refused)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def check_in_interval(
    value: object,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> FloatArray:
    """``value`` (a number or an array of any shape) as float64, checked to lie in the interval: the one interval check.

    ``low_open`` / ``high_open`` exclude the end points; a missing bound is unbounded (infinite
    values are then still refused, NaN always is). The message names ``name``, the interval and the
    first offending entry.
    """
    left = "(" if low_open or low is None else "["
    right = ")" if high_open or high is None else "]"
    interval = f"{left}{'-inf' if low is None else f'{low:g}'}, {'inf' if high is None else f'{high:g}'}{right}"
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a real number in {interval}, got {value!r}") from err
    ok = np.isfinite(array) if low is None or high is None else ~np.isnan(array)
    if low is not None:
        ok &= array > low if low_open else array >= low
    if high is not None:
        ok &= array < high if high_open else array <= high
    if not ok.all():
        raise ValueError(f"{name} must lie in {interval}, got {array[~ok].flat[0].item()!r}")
    return array


def check_float(
    value: float,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Check that ``value`` is one finite real number in the interval (:func:`check_in_interval`)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise ValueError(f"{name} must be a real number, got {value!r}")
    array = check_in_interval(value, name, low=low, high=high, low_open=low_open, high_open=high_open)
    if not np.isfinite(array):
        raise ValueError(f"{name} must be a finite real number, got {value!r}")
    return float(array)



def check_choice(value: str, choices: Iterable[str], name: str) -> str:
    """Check that ``value`` is one of ``choices``; the error lists them and suggests the closest (difflib)."""
    options = sorted(choices)
    if isinstance(value, str) and value in options:
        return value
    listed = ", ".join(repr(option) for option in options)
    close = difflib.get_close_matches(value, options, n=1) if isinstance(value, str) else []
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"{name}={value!r} is not one of {listed}{hint}")


def check_dtype(dtype: torch.dtype, name: str = "dtype") -> torch.dtype:
    """Check that ``dtype`` is torch.float32 or torch.float64."""
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"{name} must be torch.float32 or torch.float64, got {dtype!r}")
    return dtype


def check_batch(x: Tensor, name: str = "x") -> Tensor:
    """Check a (B, d) floating tensor (float32 or float64) with B >= 1 and d >= 1."""
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape (B, d), got {type(x).__name__}")
    if x.dim() != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} must have shape (B, d) with B >= 1 and d >= 1, got shape {tuple(x.shape)}")
    if x.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"{name} must be float32 or float64, got {x.dtype}")
    return x


def check_same_shape(x: Tensor, like: Tensor, name: str, like_name: str) -> Tensor:
    """Check that ``x`` has the shape, dtype and device of ``like`` (both already checked tensors)."""
    if x.shape != like.shape:
        raise ValueError(f"{name} has shape {tuple(x.shape)} but {like_name} has {tuple(like.shape)}; they must match")
    return check_points(x, like, name, like_name)


def check_field(field: object, name: str = "field") -> Callable[[Tensor, float | Tensor], Tensor]:
    """Return the velocity function of ``field``: its ``velocity`` method, or ``field`` itself if callable."""
    velocity = getattr(field, "velocity", None)
    if callable(velocity):
        return velocity
    if callable(field):
        return field
    raise ValueError(f"{name} must have a velocity(x, t) method or be a callable v(x, t), got {type(field).__name__}")


def check_times(
    ts: Tensor | Sequence[float],
    name: str = "ts",
    *,
    include_start: bool = True,
    include_end: bool = True,
    min_points: int = 1,
    increasing: bool = True,
) -> Tensor:
    """Return ``ts`` as a 1-D float64 CPU tensor of times, checked: the one validator of times.

    Times lie in [0, 1] (0 = noise, 1 = data); ``include_start`` / ``include_end`` say whether 0 and
    1 are allowed, ``min_points`` how many times are needed, ``increasing`` whether they must
    increase strictly. A solver's grid is ``check_times(ts, min_points=2)``; a grid of a Monte-Carlo
    estimate that divides by 1 - t uses ``include_end=False``.
    """
    interval = f"{'[' if include_start else '('}0, 1{']' if include_end else ')'}"
    try:
        if isinstance(ts, Tensor):
            grid = ts.detach().to(device="cpu", dtype=torch.float64)
        else:
            grid = torch.from_numpy(np.array(ts, dtype=np.float64))  # a copy: any strides, any sequence
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"{name} must be a 1-D tensor or sequence of times in {interval}, got {ts!r}") from err
    if grid.dim() == 0:
        grid = grid.reshape(1)
    if grid.dim() != 1 or grid.shape[0] < min_points:
        raise ValueError(f"{name} must be 1-D with at least {min_points} time(s) in {interval}, "
                         f"got shape {tuple(grid.shape)}")
    inside = (grid >= 0 if include_start else grid > 0) & (grid <= 1 if include_end else grid < 1)
    if not bool(inside.all()):
        k = int((~inside).nonzero()[0])
        raise ValueError(f"{name} must lie in {interval} (0 = noise, 1 = data), got {name}[{k}]={grid[k].item()!r}")
    not_increasing = grid[1:] <= grid[:-1]
    if increasing and bool(not_increasing.any()):
        k = int(not_increasing.nonzero()[0]) + 1
        raise ValueError(
            f"{name} must be strictly increasing, got {name}[{k}]={grid[k].item()!r} "
            f"after {name}[{k - 1}]={grid[k - 1].item()!r}"
        )
    return grid


def check_chunk_size(chunk_size: int | None) -> int | None:
    if chunk_size is None:
        return None
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer or None, got {chunk_size!r}")
    return chunk_size
