r"""One training loop for every flow matching loss, with stored checkpoints: train once, load many times.

:func:`train_or_load` trains the network of a :class:`TrainConfig` on the first n rows of ``data``
with the loss of :mod:`fmlib.losses`,

.. math:: \theta \leftarrow \operatorname{Adam}\Big(\nabla_\theta \frac{1}{B d} \sum_b
    \|v_\theta(x_{t,b}, t_b) - \text{target}_b\|^2\Big),

with gradient clipping (total norm), an exponential moving average of the weights with warm-up,

.. math:: \bar\theta_0 = \theta_1, \qquad \bar\theta_k = \beta_k \bar\theta_{k-1} + (1 - \beta_k) \theta_{k+1},
    \qquad \beta_k = \min\Big(\beta, \frac{1 + k}{10 + k}\Big),

(a fixed :math:`\beta` = 0.999 leaves a short run's average dominated by its first weights), and
stores the result under ``<store>/<key>/`` where ``key`` hashes every parameter that changes the
weights (the whole config and the training data's bytes, not the device or the logging cadence).
A second call with the same config and data loads the stored model instead of training; a call
after a kill resumes from the last periodic checkpoint, bit for bit on the CPU.

Other chapters get a model trained by one chapter by calling :func:`train_or_load` with the same
:class:`TrainConfig` and the same data (same rows, same order, same float32 values): the key
matches and nothing is retrained. :meth:`TrainedModel.field` makes it an ODE field for
:func:`fmlib.ode.integrate`.

Store root: ``$FMLIB_RESULTS/checkpoints`` if ``$FMLIB_RESULTS`` is set, else
``data/results/checkpoints`` in the repository. Files are written to a temporary name and renamed
(``os.replace``), so a reader never sees half a checkpoint.

Determinism: the network is initialised from ``torch.manual_seed(seed)`` (inside
``torch.random.fork_rng``, the global state is left as it was), on the CPU, then moved to the
device; every random draw of training comes from one ``torch.Generator`` on the device seeded with
``seed + 1``, saved in the checkpoints. ``torch.set_flush_denormal(True)`` is set for training on
the CPU (denormal floats slow CPU kernels by up to 100x; it changes nothing above 1e-38).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel
from tqdm import tqdm

from fmlib._checks import as_time, check_batch, check_data, check_float, check_positive_int, resolve_device
from fmlib.losses import TargetSampler, make_loss
from fmlib.nets import make_net

__all__ = [
    "NetField",
    "TrainConfig",
    "TrainedModel",
    "WarmupEMA",
    "checkpoint_dir",
    "checkpoint_key",
    "default_store",
    "train_or_load",
]

FORMAT = 1
"""Version of the checkpoint layout; part of the key, so a change of layout never loads an old file."""

REPO_ROOT = Path(__file__).resolve().parent.parent


def default_store() -> Path:
    """``$FMLIB_RESULTS/checkpoints`` when ``$FMLIB_RESULTS`` is set, else ``data/results/checkpoints``."""
    return Path(os.environ.get("FMLIB_RESULTS", REPO_ROOT / "data" / "results")) / "checkpoints"


@dataclass(frozen=True)
class TrainConfig:
    """Everything that changes the trained weights (the checkpoint key hashes all of it).

    Attributes:
        net: a key of :data:`fmlib.nets.NETS` (``"mlp"``, ``"unet"``).
        net_options: keyword options of the net (:func:`fmlib.nets.net_options`).
        loss: a key of :data:`fmlib.losses.LOSSES` (``"cfm"``, ``"efm"``).
        loss_options: keyword options of the loss, e.g. ``{"pool_size": 256}`` for EFM.
        n: train on the first n rows of ``data`` (None: all of them).
        steps: optimiser steps.
        batch_size: B, training points per step (drawn uniformly with replacement).
        lr: Adam's learning rate.
        grad_clip: largest total gradient norm (None: no clipping).
        ema_decay: the EMA's :math:`\\beta` in [0, 1).
        ema_warmup: use :math:`\\min(\\beta, (1 + k)/(10 + k))` at update k.
        seed: initialisation and sampling seed.
    """

    net: str = "mlp"
    net_options: Mapping[str, Any] = field(default_factory=dict)
    loss: str = "cfm"
    loss_options: Mapping[str, Any] = field(default_factory=dict)
    n: int | None = None
    steps: int = 10_000
    batch_size: int = 128
    lr: float = 1e-3
    grad_clip: float | None = 1.0
    ema_decay: float = 0.999
    ema_warmup: bool = True
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The config as plain JSON values (tuples become lists), as stored and hashed."""
        return json.loads(json.dumps(dataclasses.asdict(self), sort_keys=True))


def _check_config(config: TrainConfig, data: Tensor) -> int:
    """Check ``config`` against ``data`` before anything is built; return the number of training rows n."""
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
    check_data(data)
    n = data.shape[0] if config.n is None else check_positive_int(config.n, "n")
    if n > data.shape[0]:
        raise ValueError(
            f"n={n} is larger than the data ({data.shape[0]} rows); use n <= {data.shape[0]} or pass more data"
        )
    check_positive_int(config.steps, "steps")
    check_positive_int(config.batch_size, "batch_size")
    check_float(config.lr, "lr", low=0.0, low_open=True)
    if config.grad_clip is not None:
        check_float(config.grad_clip, "grad_clip", low=0.0, low_open=True)
    check_float(config.ema_decay, "ema_decay", low=0.0, high=1.0, high_open=True)
    if isinstance(config.seed, bool) or not isinstance(config.seed, int) or config.seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {config.seed!r}")
    try:
        json.dumps(config.to_dict())
    except TypeError as err:
        raise ValueError(
            f"net_options and loss_options must hold JSON values (numbers, strings, lists): {err}"
        ) from err
    return n


def _training_data(data: Tensor, n: int) -> Tensor:
    """The n training rows as a contiguous float32 CPU tensor (what is trained on and hashed)."""
    return data[:n].detach().to(device="cpu", dtype=torch.float32).contiguous()


def _data_identity(rows: Tensor) -> dict[str, Any]:
    """Shape and SHA-256 of the float32 training rows."""
    digest = hashlib.sha256(rows.numpy().tobytes()).hexdigest()
    return {"shape": list(rows.shape), "sha256": digest}


def checkpoint_key(config: TrainConfig, data: Tensor) -> str:
    """The store key of ``config`` trained on ``data``: a hash of the config, the data's bytes and :data:`FORMAT`."""
    rows = _training_data(data, _check_config(config, data))
    return _key(config, _data_identity(rows))


def _key(config: TrainConfig, identity: dict[str, Any]) -> str:
    payload = {"format": FORMAT, "config": config.to_dict(), "data": identity}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def checkpoint_dir(config: TrainConfig, data: Tensor, *, store: str | Path | None = None) -> Path:
    """Where the model of ``config`` on ``data`` is (or will be) stored."""
    return Path(store or default_store()) / checkpoint_key(config, data)


class WarmupEMA:
    r"""The EMA update of :class:`EMA`: :math:`\bar\theta \leftarrow \beta_k \bar\theta + (1 - \beta_k)\theta`.

    :math:`\beta_k = \min(\beta, (1 + k) / (10 + k))` with warm-up, else :math:`\beta`; k counts
    the updates since the first (which copies); a Python counter, so no device sync per step.
    """

    def __init__(self, decay: float, warmup: bool) -> None:
        self.decay, self.warmup, self.updates = decay, warmup, 0

    def beta(self) -> float:
        r""":math:`\beta_k` for the next update."""
        k = self.updates
        return min(self.decay, (1 + k) / (10 + k)) if self.warmup else self.decay

    def __call__(self, averaged: list[Tensor], current: list[Tensor], num_averaged: Tensor | int) -> None:
        """Update ``averaged`` in place toward ``current`` (the signature of AveragedModel's ``multi_avg_fn``)."""
        torch._foreach_lerp_(averaged, current, 1.0 - self.beta())
        self.updates += 1


class EMA(AveragedModel):
    """``torch.optim.swa_utils.AveragedModel`` with the :class:`WarmupEMA` update and no host sync.

    The state (``module`` the averaged copy, ``n_averaged``) is AveragedModel's; only
    ``update_parameters`` is replaced, because torch's reads ``n_averaged`` on the host at each call
    (a device synchronisation per step on CUDA).
    """

    def __init__(self, model: nn.Module, decay: float, warmup: bool) -> None:
        self.rule = WarmupEMA(decay, warmup)
        super().__init__(model, multi_avg_fn=self.rule, use_buffers=True)
        self._cache: tuple[nn.Module, tuple[list[Tensor], list[Tensor]], tuple[list[Tensor], list[Tensor]]] | None
        self._cache = None

    def update_parameters(self, model: nn.Module) -> None:
        """Copy the weights at the first update, then apply :class:`WarmupEMA` (floating tensors; others copied)."""
        if self._cache is None or self._cache[0] is not model:  # tensor lists built once per source model
            pairs = zip(
                (*self.module.parameters(), *self.module.buffers()),
                (p.detach() for p in (*model.parameters(), *model.buffers())),
                strict=True,
            )
            floating: tuple[list[Tensor], list[Tensor]] = ([], [])
            other: tuple[list[Tensor], list[Tensor]] = ([], [])
            for averaged, current in pairs:
                group = floating if averaged.is_floating_point() else other
                group[0].append(averaged)
                group[1].append(current)
            self._cache = (model, floating, other)  # a tuple: not registered as a submodule
        _, floating, other = self._cache
        with torch.no_grad():
            if other[0]:
                torch._foreach_copy_(*other)
            if self.rule.updates == 0:
                torch._foreach_copy_(*floating)
                self.rule.updates = 1
            else:
                self.rule(*floating, self.n_averaged)
        self.n_averaged += 1

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True, assign: bool = False) -> Any:
        """Load the state and set the update counter from ``n_averaged`` (one read, at load time)."""
        result = super().load_state_dict(state, strict=strict, assign=assign)
        self.rule.updates = int(self.n_averaged)
        return result


class NetField:
    r"""A trained network as a field for :func:`fmlib.ode.integrate`.

    .. math:: v(x, t) = v_\theta(x, t), \qquad D(x, t) = x + (1 - t)\, v_\theta(x, t)

    ``posterior_mean`` is the denoiser form (:mod:`fmlib.ode`): it makes the last step of a grid
    ending at 1 the Euler step of the network. Inputs are cast to the network's dtype and device
    and results back to the input's; evaluation runs without gradients, in chunks of
    ``batch_size`` rows.

    Args:
        net: a module with ``forward(x, t)``, x (B, d), t (B,).
        batch_size: rows per forward pass (None: all at once).
    """

    def __init__(self, net: nn.Module, *, batch_size: int | None = None) -> None:
        self.net = net
        self.batch_size = None if batch_size is None else check_positive_int(batch_size, "batch_size")
        parameter = next(net.parameters())
        self.dtype, self.device = parameter.dtype, parameter.device

    def velocity(self, x: Tensor, t: float | Tensor) -> Tensor:
        """:math:`v_\\theta(x, t)`, (B, d); t a float or a (B,) tensor in [0, 1]."""
        x = check_batch(x)
        t_vec = as_time(t, x.shape[0], x).to(dtype=self.dtype, device=self.device)
        x_net = x.to(dtype=self.dtype, device=self.device)
        chunk = self.batch_size or x.shape[0]
        with torch.no_grad():
            out = torch.cat([self.net(xc, tc) for xc, tc in zip(x_net.split(chunk), t_vec.split(chunk), strict=True)])
        return out.to(dtype=x.dtype, device=x.device)

    def posterior_mean(self, x: Tensor, t: float | Tensor) -> Tensor:
        """:math:`x + (1 - t) v_\\theta(x, t)`, (B, d)."""
        gap = 1.0 - as_time(t, x.shape[0], x).unsqueeze(1)
        return x + gap * self.velocity(x, t)


@dataclass
class TrainedModel:
    """A trained network, as trained now or loaded from the store.

    Attributes:
        config: what it was trained with.
        key: the store key; ``path`` its directory.
        net: the network with the last weights (eval mode, on the device).
        ema: the network with the EMA weights (eval mode, on the device).
        loss_steps: (K,) int64 step numbers of the logged losses (the last step of each window).
        losses: (K,) float64 mean training loss over each logging window.
        seconds: training time, summed over resumed runs.
        loaded: True when read from the store without training.
        resumed_from: the step a killed run was resumed from, or None.
    """

    config: TrainConfig
    key: str
    path: Path
    net: nn.Module
    ema: nn.Module
    loss_steps: Tensor
    losses: Tensor
    seconds: float
    loaded: bool
    resumed_from: int | None

    def field(self, *, ema: bool = True, batch_size: int | None = None) -> NetField:
        """The EMA (default) or last network as a :class:`NetField`."""
        return NetField(self.ema if ema else self.net, batch_size=batch_size)


def _save_atomic(payload: dict[str, Any], path: Path) -> None:
    """``torch.save`` to a temporary file beside ``path``, then ``os.replace`` (readers never see half)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def _load_checked(path: Path, config: TrainConfig, identity: dict[str, Any]) -> dict[str, Any]:
    """Read a checkpoint and check it was made from ``config`` and this data."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    stored = payload.get("config")
    wanted = config.to_dict()
    if stored != wanted or payload.get("data") != identity or payload.get("format") != FORMAT:
        differing = sorted(k for k in wanted if not isinstance(stored, dict) or stored.get(k) != wanted[k])
        if payload.get("data") != identity:
            differing.append("data")
        raise ValueError(
            f"the checkpoint {path} was trained with other parameters (differing: {', '.join(differing) or 'format'}); "
            "it does not belong under this key: delete its directory, or pass another store"
        )
    return payload


def _build(config: TrainConfig, rows: Tensor, device: torch.device) -> tuple[nn.Module, TargetSampler]:
    """The seeded network (on ``device``) and the loss on ``rows`` (already on ``device``), built before training."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        net = make_net(config.net, rows.shape[1], **dict(config.net_options))
    loss = make_loss(config.loss, rows, **dict(config.loss_options))
    return net.to(device), loss


def train_or_load(
    config: TrainConfig,
    data: Tensor,
    *,
    store: str | Path | None = None,
    device: str | torch.device | None = "auto",
    checkpoint_every: int = 1000,
    log_every: int = 100,
    progress: bool = True,
) -> TrainedModel:
    """Train ``config`` on the first n rows of ``data``, or load it from the store if it was trained before.

    Args:
        config: the :class:`TrainConfig`.
        data: (N, d) points; the first ``config.n`` rows (all when None) are the training set.
        store: root of the checkpoints (default :func:`default_store`).
        device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``...
        checkpoint_every: steps between periodic checkpoints (a killed run resumes from the last).
        log_every: steps per logged mean loss (the only host read of the loss).
        progress: show a tqdm bar.

    Returns:
        a :class:`TrainedModel`.

    Raises:
        ValueError: before training: unknown net or loss, bad options (e.g. pool_size < 1), n larger
            than the data, bad steps/batch/lr/clip/decay/seed, or a stored checkpoint under this
            key that was made from other parameters.
    """
    n = _check_config(config, data)
    checkpoint_every = check_positive_int(checkpoint_every, "checkpoint_every")
    log_every = check_positive_int(log_every, "log_every")
    device = resolve_device(device)
    rows = _training_data(data, n)
    identity = _data_identity(rows)
    key = _key(config, identity)
    directory = Path(store or default_store()) / key
    on_device = rows.to(device)  # one copy on the device, shared by the loss and the loop
    net, loss = _build(config, on_device, device)
    ema = EMA(net, config.ema_decay, config.ema_warmup)
    final, partial = directory / "model.pt", directory / "partial.pt"
    if final.exists():
        payload = _load_checked(final, config, identity)
        return _trained(config, key, directory, net, ema, payload, loaded=True, resumed_from=None)
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)
    generator = torch.Generator(device).manual_seed(config.seed + 1)
    state = {"step": 0, "loss_steps": [], "losses": [], "seconds": 0.0, "loss_sum": 0.0}
    resumed_from = None
    if partial.exists():
        payload = _load_checked(partial, config, identity)
        net.load_state_dict(payload["net"])
        ema.load_state_dict(payload["ema"])
        optimizer.load_state_dict(payload["optimizer"])
        generator.set_state(payload["generator"])
        state = payload["state"]
        resumed_from = state["step"]
    header = {"format": FORMAT, "config": config.to_dict(), "data": identity}
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(header, indent=2, sort_keys=True))

    def save(path: Path, step: int, loss_sum: Tensor, started: float) -> None:
        state.update(step=step, loss_sum=float(loss_sum), seconds=state["seconds"] + time.perf_counter() - started)
        payload = {**header, "net": net.state_dict(), "ema": ema.state_dict(), "state": state}
        if path == partial:
            payload |= {"optimizer": optimizer.state_dict(), "generator": generator.get_state()}
        _save_atomic(payload, path)

    if device.type == "cpu":
        torch.set_flush_denormal(True)
    net.train()
    _loop(
        config,
        net,
        ema,
        loss,
        optimizer,
        generator,
        on_device,
        state,
        save,
        checkpoint_every,
        log_every,
        partial,
        progress,
    )
    save(final, config.steps, torch.zeros(()), time.perf_counter())
    partial.unlink(missing_ok=True)
    payload = {"state": state, "net": net.state_dict(), "ema": ema.state_dict()}
    return _trained(config, key, directory, net, ema, payload, loaded=False, resumed_from=resumed_from)


def _loop(
    config: TrainConfig,
    net: nn.Module,
    ema: EMA,
    loss: TargetSampler,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    rows: Tensor,
    state: dict[str, Any],
    save: Any,
    checkpoint_every: int,
    log_every: int,
    partial: Path,
    progress: bool,
) -> None:
    """The training steps from ``state["step"]`` to ``config.steps``; no host read except every ``log_every``."""
    n, device = rows.shape[0], rows.device
    parameters = list(net.parameters())
    loss_sum = torch.full((), state["loss_sum"], device=device)
    started = time.perf_counter()
    bar = tqdm(
        total=config.steps,
        initial=state["step"],
        desc=f"train {config.net}/{config.loss}",
        disable=not progress,
        mininterval=1.0,
    )
    for step in range(state["step"] + 1, config.steps + 1):
        index = torch.randint(n, (config.batch_size,), generator=generator, device=device)
        batch = loss.sample_rows(index, generator)
        value = (net(batch.x_t, batch.t) - batch.target).square().mean()
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        if config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(parameters, config.grad_clip, foreach=True)
        optimizer.step()
        ema.update_parameters(net)
        loss_sum += value.detach()
        if step % log_every == 0 or step == config.steps:
            window = (step - 1) % log_every + 1
            state["loss_steps"].append(step)
            state["losses"].append(float(loss_sum) / window)
            loss_sum.zero_()
            bar.update(step - bar.n)
            bar.set_postfix(loss=f"{state['losses'][-1]:.4g}", refresh=False)
        if step % checkpoint_every == 0 and step < config.steps:
            save(partial, step, loss_sum, started)
            started = time.perf_counter()
    state["seconds"] += time.perf_counter() - started
    bar.close()


def _trained(
    config: TrainConfig,
    key: str,
    directory: Path,
    net: nn.Module,
    ema: EMA,
    payload: dict[str, Any],
    *,
    loaded: bool,
    resumed_from: int | None,
) -> TrainedModel:
    """A :class:`TrainedModel` from a final checkpoint's payload (networks in eval mode)."""
    try:
        net.load_state_dict(payload["net"])
        ema.load_state_dict(payload["ema"])
    except RuntimeError as err:
        raise ValueError(
            f"the checkpoint in {directory} does not fit the network {config.net!r} built from this config "
            f"({err}); delete that directory to retrain"
        ) from err
    state = payload["state"]
    return TrainedModel(
        config=config,
        key=key,
        path=directory,
        net=net.eval(),
        ema=ema.module.eval(),
        loss_steps=torch.tensor(state["loss_steps"], dtype=torch.long),
        losses=torch.tensor(state["losses"], dtype=torch.float64),
        seconds=float(state["seconds"]),
        loaded=loaded,
        resumed_from=resumed_from,
    )
