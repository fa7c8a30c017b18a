r"""Velocity networks :math:`v_\theta(x, t)`: an MLP with a sinusoidal time embedding, and a U-Net for images.

Every network here maps a flat batch ``x`` (B, d) and times ``t`` (B,) in [0, 1] to a velocity
(B, d), so one training loop (:mod:`fmlib.train`) and one ODE adapter serve all of them. Build them
by name with :func:`make_net` from the registry :data:`NETS`; another module adds its own with
:func:`register_net`.

- ``"mlp"`` (:class:`VelocityMLP`): input :math:`[x, t, \phi(t)]` with :math:`\phi` the sinusoidal
  features of :class:`SinusoidalTimeEmbedding`, ``depth`` hidden layers of ``width`` units. For 2-D
  toys and flattened 8 x 8 digits (d = 64). Bertrand et al.'s toy network is width 64, 2 hidden
  layers, SELU (``shared/notes/bertrand_2506.03719.md``).
- ``"unet"`` (:class:`VelocityUNet`): ``diffusers``' ``UNet2DModel`` (a maintained implementation of
  the DDPM U-Net: residual blocks with GroupNorm and SiLU, sinusoidal time embedding, optional
  self-attention) on images stored flat channel-major, (C, H, W) with H = W, like a CIFAR-10 row of
  :func:`fmlib.data.make_cifar10` or a digit of :func:`fmlib.data.make_digits` (C = 1, 8 x 8).

Why ``diffusers`` rather than a hand-written U-Net (measured on one core of this machine, torch
2.13 CPU): the wheel and its dependencies take about 100 MB and install in about 10 s; importing
``UNet2DModel`` takes about 4.5 s (done lazily, only when a U-Net is built); a training step costs
the same per parameter as a hand-written U-Net of the same blocks (0.19 s for 651k parameters at
8 x 8, batch 128, against 0.11 s for a 365k-parameter hand-written one; 0.72 s against 0.38 s at
32 x 32 x 3, batch 32). Nothing about it is too heavy, and it is maintained and GPU-tuned.
``torchcfm``'s U-Net was the other candidate; its package pulls in pytorch-lightning and a CUDA build
of a newer torch, which the pinned CPU install cannot take.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from fmlib._checks import check_choice, check_float, check_positive_int

__all__ = [
    "ACTIVATIONS",
    "NETS",
    "SinusoidalTimeEmbedding",
    "VelocityMLP",
    "VelocityUNet",
    "make_net",
    "net_options",
    "register_net",
]

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "silu": nn.SiLU,
    "selu": nn.SELU,
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
}
"""Activations of :class:`VelocityMLP` by name."""


class SinusoidalTimeEmbedding(nn.Module):
    r"""Sinusoidal features of the time, as in the Transformer and DDPM position embeddings.

    .. math::

        \phi(t) = \big[\sin(s t \omega_k), \cos(s t \omega_k)\big]_{k = 0}^{K - 1}, \qquad
        \omega_k = P^{-k / K}, \qquad K = \text{features} / 2

    with :math:`s` = ``scale`` (1000: t in [0, 1] is spread like DDPM's integer steps) and
    :math:`P` = ``max_period``, so the angular frequencies run from :math:`s` down to :math:`s P^{-(K-1)/K}`.

    Args:
        features: number of output features, even, >= 2.
        scale: s > 0, multiplies t.
        max_period: P > 1.
    """

    frequencies: Tensor

    def __init__(self, features: int, *, scale: float = 1000.0, max_period: float = 10_000.0) -> None:
        super().__init__()
        features = check_positive_int(features, "time_features")
        if features % 2:
            raise ValueError(f"time_features must be even (sin and cos pairs), got {features}")
        scale = check_float(scale, "scale", low=0.0, low_open=True)
        max_period = check_float(max_period, "max_period", low=1.0, low_open=True)
        half = features // 2
        omega = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float64) / half)
        self.register_buffer("frequencies", (scale * omega).to(torch.float32), persistent=False)
        self.features = features

    def forward(self, t: Tensor) -> Tensor:
        """Features of ``t`` (B,), shape (B, features), in the dtype of the module's buffers."""
        angle = t.to(self.frequencies.dtype).unsqueeze(1) * self.frequencies
        return torch.cat([angle.sin(), angle.cos()], dim=1)


class VelocityMLP(nn.Module):
    r"""A fully connected velocity network on :math:`[x, t, \phi(t)]`.

    .. math::

        h_0 = [x, t, \phi(t)] \in \mathbb{R}^{d + 1 + F}, \qquad
        h_{l} = a(W_l h_{l-1} + b_l),\ l = 1..L, \qquad v_\theta(x, t) = W_{L+1} h_L + b_{L+1}

    Args:
        d: data dimension.
        width: units per hidden layer.
        depth: L, number of hidden layers (>= 1).
        activation: a key of :data:`ACTIVATIONS`.
        time_features: F, sinusoidal features of t (even; 0 keeps only the raw t).
    """

    def __init__(
        self, d: int, *, width: int = 256, depth: int = 3, activation: str = "silu", time_features: int = 32
    ) -> None:
        super().__init__()
        d = check_positive_int(d, "d")
        width = check_positive_int(width, "width")
        depth = check_positive_int(depth, "depth")
        make_activation = ACTIVATIONS[check_choice(activation, ACTIVATIONS, "activation")]
        if isinstance(time_features, bool) or not isinstance(time_features, int) or time_features < 0:
            raise ValueError(f"time_features must be a non-negative even integer, got {time_features!r}")
        self.embedding = SinusoidalTimeEmbedding(time_features) if time_features else None
        layers: list[nn.Module] = []
        fan_in = d + 1 + time_features
        for _ in range(depth):
            layers += [nn.Linear(fan_in, width), make_activation()]
            fan_in = width
        layers.append(nn.Linear(fan_in, d))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        """The velocity at ``x`` (B, d) and times ``t`` (B,), shape (B, d)."""
        t = t.to(x.dtype).unsqueeze(1)
        features = [x, t] if self.embedding is None else [x, t, self.embedding(t.squeeze(1)).to(x.dtype)]
        return self.layers(torch.cat(features, dim=1))


class VelocityUNet(nn.Module):
    r"""``diffusers``' ``UNet2DModel`` as a velocity field on flat images.

    .. math::

        v_\theta(x, t) = \operatorname{flat}\big(\mathrm{UNet}(\operatorname{unflat}(x),\ s\, t)\big),
        \qquad x \in \mathbb{R}^{C H W}

    ``unflat`` reads a row channel-major as (C, H, W) with H = W = sqrt(d / C); the time is passed
    scaled by s = ``time_scale`` (1000) to the U-Net's sinusoidal embedding, which expects DDPM's
    step numbers.

    Args:
        d: C * H * W.
        channels: C (1 for digits, 3 for CIFAR-10).
        block_channels: channels of each resolution level; the image side must be divisible by
            2^(levels - 1), and every entry by ``norm_groups``.
        layers_per_block: residual blocks per level on the way down (one more on the way up).
        attention: self-attention at the lowest resolution and in the middle block.
        norm_groups: GroupNorm groups.
        time_scale: s > 0.
    """

    def __init__(
        self,
        d: int,
        *,
        channels: int = 3,
        block_channels: Sequence[int] = (32, 64, 64),
        layers_per_block: int = 1,
        attention: bool = False,
        norm_groups: int = 8,
        time_scale: float = 1000.0,
    ) -> None:
        super().__init__()
        d = check_positive_int(d, "d")
        channels = check_positive_int(channels, "channels")
        side = math.isqrt(d // channels)
        if side * side * channels != d:
            raise ValueError(
                f"d={d} is not channels * side^2 for channels={channels}; a flat image of C x H x H "
                "pixels is expected (e.g. d=64, channels=1 for digits; d=3072, channels=3 for CIFAR-10)"
            )
        blocks = tuple(check_positive_int(c, "block_channels entry") for c in block_channels)
        if not blocks:
            raise ValueError("block_channels must list at least one level, e.g. (32, 64)")
        if side % 2 ** (len(blocks) - 1):
            raise ValueError(
                f"an image of side {side} cannot be halved {len(blocks) - 1} times; "
                f"use at most {int(math.log2(side & -side)) + 1} entries in block_channels"
            )
        norm_groups = check_positive_int(norm_groups, "norm_groups")
        if any(c % norm_groups for c in blocks):
            raise ValueError(f"every block_channels entry must be divisible by norm_groups={norm_groups}, got {blocks}")
        layers_per_block = check_positive_int(layers_per_block, "layers_per_block")
        self.time_scale = check_float(time_scale, "time_scale", low=0.0, low_open=True)
        from diffusers import UNet2DModel  # deferred: importing diffusers takes about 4.5 s

        down = ["DownBlock2D"] * len(blocks)
        up = ["UpBlock2D"] * len(blocks)
        if attention:
            down[-1], up[0] = "AttnDownBlock2D", "AttnUpBlock2D"
        self.shape = (channels, side, side)
        self.unet = UNet2DModel(
            sample_size=side,
            in_channels=channels,
            out_channels=channels,
            block_out_channels=blocks,
            layers_per_block=layers_per_block,
            down_block_types=tuple(down),
            up_block_types=tuple(up),
            norm_num_groups=norm_groups,
            add_attention=bool(attention),
        )

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        """The velocity at ``x`` (B, C H W) and times ``t`` (B,), shape (B, C H W)."""
        image = x.reshape(x.shape[0], *self.shape)
        return self.unet(image, t.to(x.dtype) * self.time_scale).sample.reshape(x.shape[0], -1)


NETS: dict[str, Callable[..., nn.Module]] = {"mlp": VelocityMLP, "unet": VelocityUNet}
"""Network factories by name: ``factory(d, **options)`` returns a module with ``forward(x, t)``."""


def register_net(name: str, factory: Callable[..., nn.Module]) -> None:
    """Add ``factory(d, **options)`` to :data:`NETS` under ``name`` (a new name only)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    if name in NETS:
        raise ValueError(f"a net named {name!r} is already registered; choose another name")
    NETS[name] = factory


def net_options(name: str) -> dict[str, object]:
    """The keyword options of net ``name`` and their defaults (what :func:`make_net` accepts besides d)."""
    factory = NETS[check_choice(name, NETS, "net")]
    parameters = list(inspect.signature(factory).parameters.values())[1:]
    return {p.name: p.default for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY}


def make_net(name: str, d: int, **options: object) -> nn.Module:
    """Build the velocity network ``name`` (a key of :data:`NETS`) for dimension ``d``.

    Args:
        name: ``"mlp"``, ``"unet"`` or a name added with :func:`register_net`.
        d: data dimension (flat).
        **options: the factory's keyword options (:func:`net_options` lists them with defaults).

    Returns:
        an ``nn.Module`` with ``forward(x, t)``: x (B, d), t (B,) in [0, 1], result (B, d).

    Raises:
        ValueError: unknown ``name`` (with the closest match), an option the net does not take,
            or an option value it refuses.
    """
    accepted = net_options(name)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"net {name!r} takes no option {', '.join(unknown)}; it accepts {', '.join(accepted)}")
    return NETS[name](d, **options)
