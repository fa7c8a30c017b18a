"""Validation at the package boundary: every public function checks its inputs here, once.

Each check raises a ``ValueError`` that names the argument, shows the bad value and says what was
expected; nothing deeper in the package re-checks.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["as_time", "check_data", "check_points", "resolve_device"]


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
        t = torch.full((batch,), float(t), dtype=like.dtype, device=like.device)
    else:
        raise ValueError(f"{name} must be a float or a tensor of shape ({batch},), got {type(t).__name__}")
    bad = ~((t >= 0) & (t <= 1))
    if bool(bad.any()):
        raise ValueError(f"{name} must lie in [0, 1] (0 = noise, 1 = data), got {t[bad][0].item()!r}")
    return t
