"""fmlib.gradients: vmap per-sample gradients against the loop and against the analytic gradient of a
linear model; the streamed covariance trace against a brute-force one; mutation 'a gradient that
ignores one sample'; bad input."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

import fmlib.gradients as gradients
from fmlib.gradients import flow_matching_loss, gradient_variance, per_sample_gradients, per_sample_gradients_loop


class TinyField(nn.Module):
    """v(x, t) = MLP([x, t]); float64."""

    def __init__(self, d: int = 2, width: int = 8) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(d + 1, width), nn.Tanh(), nn.Linear(width, d)).double()

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        return self.net(torch.cat([x, t[:, None]], dim=1))


class LinearField(nn.Module):
    """v(x, t) = W x + b (t ignored)."""

    def __init__(self, w: Tensor, b: Tensor) -> None:
        super().__init__()
        self.w, self.b = nn.Parameter(w.clone()), nn.Parameter(b.clone())

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        return x @ self.w.T + self.b


def _batch(size: int, d: int = 2, seed: int = 0) -> tuple[Tensor, Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(size, d, generator=g, dtype=torch.float64),
        torch.rand(size, generator=g, dtype=torch.float64),
        torch.randn(size, d, generator=g, dtype=torch.float64),
    )


def _brute_force_trace(model: nn.Module, batch: tuple[Tensor, ...]) -> float:
    grads = per_sample_gradients_loop(model, flow_matching_loss, *batch)
    flat = torch.cat([g.reshape(g.shape[0], -1) for g in grads.values()], dim=1)
    return float(torch.cov(flat.T).trace())


def test_vmap_matches_the_loop() -> None:
    model, batch = TinyField(), _batch(7)
    fast = per_sample_gradients(model, flow_matching_loss, *batch, chunk_size=3)
    slow = per_sample_gradients_loop(model, flow_matching_loss, *batch)
    assert fast.keys() == slow.keys()
    for name in fast:
        assert fast[name].shape == (7, *dict(model.named_parameters())[name].shape)
        torch.testing.assert_close(fast[name], slow[name])


def test_linear_model_gradient_is_analytic() -> None:
    x, t, y = _batch(5, d=3)
    w, b = torch.randn(3, 3, dtype=torch.float64), torch.randn(3, dtype=torch.float64)
    grads = per_sample_gradients(LinearField(w, b), flow_matching_loss, x, t, y)
    residual = x @ w.T + b - y  # d/dW ||W x + b - y||^2 = 2 r x^T, d/db = 2 r
    torch.testing.assert_close(grads["w"], 2 * residual[:, :, None] * x[:, None, :])
    torch.testing.assert_close(grads["b"], 2 * residual)


@pytest.mark.parametrize("chunk_size", [1, 3, 7, 100])
def test_trace_matches_brute_force(chunk_size: int) -> None:
    model, batch = TinyField(), _batch(7)
    result = gradient_variance(model, flow_matching_loss, *batch, chunk_size=chunk_size)
    assert result.trace == pytest.approx(_brute_force_trace(model, batch), rel=1e-10)
    assert result.batch == 7 and result.parameters == sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        assert result.loss == pytest.approx(float(flow_matching_loss(model, *batch).mean()), rel=1e-12)
    loop = gradient_variance(model, flow_matching_loss, *batch, chunk_size=chunk_size, vectorised=False)
    assert loop.trace == pytest.approx(result.trace, rel=1e-10)


def test_consistent_field_has_zero_variance_and_a_perturbed_one_does_not() -> None:
    x, t, _ = _batch(50, d=3)
    w, b = torch.randn(3, 3, dtype=torch.float64), torch.randn(3, dtype=torch.float64)
    target = x @ w.T + b
    exact = gradient_variance(LinearField(w, b), flow_matching_loss, x, t, target, chunk_size=16)
    assert exact.trace == 0.0 and exact.loss == 0.0
    perturbed = gradient_variance(LinearField(w + 0.01, b), flow_matching_loss, x, t, target, chunk_size=16)
    assert perturbed.trace > 1e-6


def test_trace_is_not_fooled_by_a_large_mean() -> None:
    """All gradients equal to a large constant plus a tiny spread: the streamed trace keeps the spread."""
    x = torch.ones(6, 1, dtype=torch.float64)
    target = 1e4 + 1e-3 * torch.arange(6, dtype=torch.float64)[:, None]
    model = LinearField(torch.zeros(1, 1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64))
    result = gradient_variance(model, flow_matching_loss, x, torch.zeros(6, dtype=torch.float64), target, chunk_size=2)
    spread = 2e-3 * torch.arange(6, dtype=torch.float64)  # g_w = g_b = -2 (target) per sample
    assert result.trace == pytest.approx(2 * float(spread.var()), rel=1e-6)


@pytest.mark.parametrize("mutation", ["zero", "drop"])
def test_mutation_gradient_ignoring_one_sample_is_caught(monkeypatch, mutation: str) -> None:
    model, batch = TinyField(), _batch(7)
    reference = _brute_force_trace(model, batch)
    original = gradients.per_sample_gradients

    def ignores_last(model, loss, *part, chunk_size=None):
        grads = original(model, loss, *part, chunk_size=chunk_size)
        if mutation == "zero":
            return {k: torch.cat([g[:-1], torch.zeros_like(g[-1:])]) for k, g in grads.items()}
        return {k: g[:-1] for k, g in grads.items()}

    monkeypatch.setattr(gradients, "per_sample_gradients", ignores_last)
    result = gradients.gradient_variance(model, flow_matching_loss, *batch, chunk_size=100)
    assert result.trace != pytest.approx(reference, rel=1e-3)


def test_bad_input() -> None:
    model, (x, t, y) = TinyField(), _batch(4)
    with pytest.raises(ValueError, match="at least 2 samples"):
        gradient_variance(model, flow_matching_loss, x[:1], t[:1], y[:1])
    with pytest.raises(ValueError, match="share their first dimension"):
        gradient_variance(model, flow_matching_loss, x, t[:3], y)
    with pytest.raises(ValueError, match="chunk_size"):
        gradient_variance(model, flow_matching_loss, x, t, y, chunk_size=0)
    frozen = TinyField().requires_grad_(False)
    with pytest.raises(ValueError, match="requires_grad"):
        per_sample_gradients(frozen, flow_matching_loss, x, t, y)
