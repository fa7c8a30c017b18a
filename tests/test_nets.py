"""fmlib.nets: shapes, time dependence, the registry and its errors."""

from __future__ import annotations

import math

import pytest
import torch

from fmlib.nets import NETS, SinusoidalTimeEmbedding, VelocityMLP, make_net, net_options, register_net


def test_time_embedding_formula() -> None:
    embedding = SinusoidalTimeEmbedding(8, scale=10.0, max_period=100.0)
    t = torch.tensor([0.0, 0.3])
    omega = 10.0 * 100.0 ** (-torch.arange(4, dtype=torch.float64) / 4)
    expected = torch.cat([(t.double()[:, None] * omega).sin(), (t.double()[:, None] * omega).cos()], dim=1)
    torch.testing.assert_close(embedding(t).double(), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("activation", ["silu", "selu", "tanh"])
@pytest.mark.parametrize("time_features", [0, 4])
def test_mlp_shapes_and_time_dependence(activation: str, time_features: int) -> None:
    torch.manual_seed(0)
    net = make_net("mlp", 3, width=16, depth=2, activation=activation, time_features=time_features)
    x = torch.randn(5, 3)
    out0, out1 = net(x, torch.zeros(5)), net(x, torch.full((5,), 0.7))
    assert out0.shape == (5, 3)
    assert not torch.allclose(out0, out1)  # the time reaches the output
    linear = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linear) == 3 and linear[0].in_features == 3 + 1 + time_features


@pytest.mark.parametrize(("d", "channels", "blocks"), [(64, 1, (8, 16)), (48, 3, (8,))])
def test_unet_shapes_and_time_dependence(d: int, channels: int, blocks: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    net = make_net("unet", d, channels=channels, block_channels=blocks, norm_groups=4)
    x = torch.randn(2, d)
    out0, out1 = net(x, torch.zeros(2)), net(x, torch.full((2,), 0.5))
    assert out0.shape == (2, d)
    assert not torch.allclose(out0, out1)


def test_unet_reads_rows_channel_major_and_scales_time() -> None:
    """The flat row is the (C, H, W) image of make_cifar10's layout, and t reaches diffusers as 1000 t."""
    torch.manual_seed(0)
    net = make_net("unet", 3 * 8 * 8, channels=3, block_channels=(8,), norm_groups=4)
    x, t = torch.randn(2, 192), torch.tensor([0.25, 0.5])
    expected = net.unet(x.reshape(2, 3, 8, 8), 1000.0 * t).sample.reshape(2, 192)
    torch.testing.assert_close(net(x, t), expected)
    transposed = net.unet(x.reshape(2, 8, 8, 3).permute(0, 3, 1, 2), 1000.0 * t).sample.permute(0, 2, 3, 1)
    assert not torch.allclose(net(x, t), transposed.reshape(2, 192))


@pytest.mark.parametrize(
    ("name", "d", "options", "match"),
    [
        ("mpl", 2, {}, "did you mean 'mlp'"),
        ("mlp", 2, {"widht": 3}, "takes no option widht"),
        ("mlp", 2, {"activation": "swish"}, "activation="),
        ("mlp", 2, {"time_features": 3}, "even"),
        ("mlp", 0, {}, "d must be a positive integer"),
        ("unet", 65, {"channels": 1}, "not channels"),
        ("unet", 3 * 6 * 6, {"block_channels": (8, 8, 8)}, "cannot be halved"),
        ("unet", 64, {"channels": 1, "block_channels": (12,)}, "divisible by norm_groups"),
    ],
)
def test_make_net_errors(name: str, d: int, options: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make_net(name, d, **options)


def test_registry() -> None:
    assert net_options("mlp") == {"width": 256, "depth": 3, "activation": "silu", "time_features": 32}
    with pytest.raises(ValueError, match="already registered"):
        register_net("mlp", VelocityMLP)
    register_net("_test_linear", lambda d, *, bias=True: torch.nn.Linear(d, d, bias=bias))
    try:
        assert net_options("_test_linear") == {"bias": True}
    finally:
        del NETS["_test_linear"]
    with torch.no_grad():
        assert math.isfinite(float(make_net("mlp", 2, width=4, depth=1)(torch.zeros(1, 2), torch.zeros(1)).sum()))
