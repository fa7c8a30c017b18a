"""Tests of fmlib.osdnet (OSDNet in our rendering, span basis, numerical rank) and of fmlib.theory's Gronwall bound.

References are independent: numpy's ``matrix_rank``, explicit projectors from a QR of the data,
linear ODEs whose Euler solutions are known in closed form. Mutation tests inject the bugs the
issue names (a wrong sign of a(t), a basis that is not orthonormal, a student error ignored in
the bound) and show that the checks catch them.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fmlib.closed_form import ClosedFormField
from fmlib.data import make_dataset
from fmlib.ode import integrate, time_grid
from fmlib.osdnet import OSDNet, check_basis, numerical_rank, sketched_span, span_basis, span_svd
from fmlib.theory import ACTIVATION_LIPSCHITZ, gronwall_endpoint_bound, mlp_lipschitz_bound


def subspace_data(n: int = 40, d: int = 12, k: int = 3, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return make_dataset("subspace", n, d=d, k=k, generator=generator, device="cpu", dtype=torch.float64)


def projector(y: torch.Tensor) -> torch.Tensor:
    """Projector onto the span of the rows of y, from a QR of y^T (independent of the SVD)."""
    q, r = torch.linalg.qr(y.T)
    keep = r.diagonal().abs() > 1e-9 * r.diagonal().abs().max()
    q = q[:, keep]
    return q @ q.T


# --- numerical rank and basis ---------------------------------------------------------------------

@pytest.mark.parametrize("k", [1, 3, 5])
def test_numerical_rank_matches_numpy(k):
    y = subspace_data(k=k)
    assert numerical_rank(y).rank == k == np.linalg.matrix_rank(y.numpy())
    centred = y - y.mean(0)
    assert numerical_rank(y, centre=True).rank == np.linalg.matrix_rank(centred.numpy())


def test_digits_rank_after_centring_is_below_64():
    digits = make_dataset("digits", 1797, device="cpu", dtype=torch.float64)
    report = numerical_rank(digits, centre=True)
    assert report.rank == np.linalg.matrix_rank((digits - digits.mean(0)).numpy()) < 64
    assert report.centred and report.singular_values.shape == (64,)


@pytest.mark.parametrize("rtol, check", [
    (torch.finfo(torch.float64).eps, "rank <= centred rank + 1"),  # numpy's convention without its max(n, d)
    (1e-20, "centred rank < 64"),  # a tolerance far below the round-off of the SVD
])
def test_digits_rank_checks_fail_with_a_tolerance_below_round_off(rtol, check):
    """Chapter 5 asserts, on the digits, centred rank < 64 and rank <= centred rank + 1 (centring removes at most one
    dimension). With the default tolerance both hold; a tolerance below the SVD's round-off counts round-off as
    rank and breaks the named one."""
    digits = make_dataset("digits", 1797, device="cpu", dtype=torch.float64)

    def holds(rank: int, centred: int) -> dict[str, bool]:
        return {"centred rank < 64": centred < 64, "rank <= centred rank + 1": rank <= centred + 1}

    assert all(holds(numerical_rank(digits).rank, numerical_rank(digits, centre=True).rank).values())
    mutated = holds(numerical_rank(digits, rtol=rtol).rank, numerical_rank(digits, centre=True, rtol=rtol).rank)
    assert not mutated[check]


def test_span_basis_is_orthonormal_and_spans_the_data():
    y = subspace_data()
    u = span_basis(y)
    assert u.shape == (12, 3)
    assert torch.allclose(u.T @ u, torch.eye(3, dtype=u.dtype), atol=1e-12)
    assert torch.allclose(u @ u.T, projector(y), atol=1e-10)
    assert span_basis(y, 2).shape == (12, 2)


def test_span_basis_refuses_bad_k():
    y = subspace_data()
    with pytest.raises(ValueError, match="exceeds the dimension"):
        span_basis(y, 13)
    with pytest.raises(ValueError, match="larger than the numerical rank 3"):
        span_basis(y, 4)


def test_check_basis_refuses_bad_bases():
    u = span_basis(subspace_data())
    with pytest.raises(ValueError, match="k > d"):
        check_basis(torch.randn(3, 5))
    with pytest.raises(ValueError, match="rank-deficient"):
        check_basis(torch.cat([u, u[:, :1]], dim=1))
    with pytest.raises(ValueError, match="not orthonormal"):
        check_basis(1.1 * u)  # mutation: right span, wrong length
    sheared = u.clone()
    sheared[:, 1] += 0.1 * u[:, 0]
    with pytest.raises(ValueError, match="not orthonormal"):
        check_basis(sheared)  # mutation: right span, not orthogonal
    with pytest.raises(ValueError, match="not orthonormal"):
        OSDNet(1.1 * u)


# --- OSDNet ----------------------------------------------------------------------------------------

def test_osdnet_parts_are_the_in_span_net_and_the_diagonal_off_span_term():
    torch.manual_seed(0)
    u = span_basis(subspace_data()).float()
    net = OSDNet(u, coefficients="coordinate", knots=5)
    with torch.no_grad():
        net.b.copy_(torch.randn_like(net.b))
    x, t = torch.randn(7, 12), torch.rand(7) * 0.9
    v = net(x, t)
    p = torch.eye(12) - u @ u.T
    expected_in = net.inner(x @ u, t) @ u.T
    expected_off = (p @ (net.off_span_rate(t) * x).T).T
    assert torch.allclose(v, expected_in + expected_off, atol=1e-5)
    assert torch.allclose(u.T @ (v - expected_in).T, torch.zeros(3, 7), atol=1e-5)


def test_osdnet_coefficient_is_piecewise_linear_on_its_knots():
    net = OSDNet(span_basis(subspace_data()), knots=3)
    with torch.no_grad():
        net.b.copy_(torch.tensor([[0.0, -2.0, 4.0]]))
    t = torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0])
    assert torch.allclose(net.coefficient(t)[:, 0], torch.tensor([0.0, -1.0, -2.0, 1.0, 4.0]))
    assert torch.allclose(net.off_span_rate(t[:4])[:, 0], torch.tensor([0.0, -1.0, -2.0, 1.0]) / (1 - t[:4]))


def test_osdnet_accepts_a_list_basis_and_refuses_bad_options():
    u = span_basis(subspace_data())
    assert torch.equal(OSDNet(u.tolist()).basis, OSDNet(u).basis)
    with pytest.raises(ValueError, match="coefficients"):
        OSDNet(u, coefficients="diagonal")
    with pytest.raises(ValueError, match="knots"):
        OSDNet(u, knots=1)


@pytest.mark.parametrize("sign, decays", [(-1.0, True), (1.0, False)])
def test_optimal_coefficient_reproduces_the_off_span_law_and_a_wrong_sign_does_not(sign, decays):
    """With b = -1, OSDNet's off-span velocity is u*'s; the mutation b = +1 (a(t) with the wrong sign) is caught."""
    y = subspace_data()
    u = span_basis(y)
    net = OSDNet(u).double()
    with torch.no_grad():
        net.b.fill_(sign)
    x, t = torch.randn(9, 12, dtype=torch.float64), 0.6
    p = torch.eye(12, dtype=torch.float64) - u @ u.T
    optimal_off = ClosedFormField(y).velocity(x, t) @ p
    same = torch.allclose(net(x, torch.full((9,), t, dtype=torch.float64)) @ p, optimal_off, atol=1e-5)
    assert same is decays

    class Field:
        def velocity(self, x, t):
            return net(x, torch.full((x.shape[0],), t, dtype=x.dtype))

        def posterior_mean(self, x, t):
            return x + (1 - t) * self.velocity(x, t)

    x0 = torch.randn(16, 12, dtype=torch.float64)
    with torch.no_grad():
        end = integrate(Field(), x0, time_grid(50), method="euler").x
    off_ratio = float(((end @ p).norm(dim=1) / (x0 @ p).norm(dim=1)).max())
    assert (off_ratio < 1e-6) is decays  # the float32 basis buffer: round-off 1e-7


# --- Lipschitz constants and the Gronwall bound ----------------------------------------------------

@pytest.mark.parametrize("name", sorted(ACTIVATION_LIPSCHITZ))
def test_activation_lipschitz_constants_are_tight_upper_bounds(name):
    u = torch.linspace(-20, 20, 400_001, dtype=torch.float64, requires_grad=True)
    act = {"relu": torch.relu, "tanh": torch.tanh, "silu": torch.nn.functional.silu,
           "gelu": torch.nn.functional.gelu, "selu": torch.selu}[name]
    (slope,) = torch.autograd.grad(act(u).sum(), u)
    largest = float(slope.abs().max())
    assert largest <= ACTIVATION_LIPSCHITZ[name] < largest + 0.01


def test_mlp_lipschitz_bound_exceeds_the_jacobian_and_is_exact_for_one_layer():
    torch.manual_seed(0)
    w = torch.randn(5, 4)
    assert math.isclose(mlp_lipschitz_bound([w], 1.1), float(torch.linalg.matrix_norm(w, 2)), rel_tol=1e-6)
    net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.SiLU(), torch.nn.Linear(16, 16), torch.nn.SiLU(),
                              torch.nn.Linear(16, 4))
    bound = mlp_lipschitz_bound([m.weight for m in net if isinstance(m, torch.nn.Linear)], ACTIVATION_LIPSCHITZ["silu"])
    jac = torch.vmap(torch.func.jacrev(net))(3 * torch.randn(256, 4)).detach()
    assert float(torch.linalg.matrix_norm(jac, 2).max()) <= bound
    with pytest.raises(ValueError, match="at least one"):
        mlp_lipschitz_bound([], 1.0)


def euler_pair(lam: float, offset: float, steps: int):
    """Teacher v = lam x, student v = lam x + offset (1-D): Euler endpoints and the student's error."""
    ts = np.linspace(0.0, 1.0, steps + 1)
    x = y = 1.0
    for k in range(steps):
        h = ts[k + 1] - ts[k]
        x, y = x + h * lam * x, y + h * (lam * y + offset)
    return ts, abs(x - y), np.full(steps + 1, abs(offset))


@pytest.mark.parametrize("lam", [0.0, 0.5, 2.0])
def test_gronwall_bound_holds_and_is_tight_for_an_expanding_linear_field(lam):
    ts, distance, eps = euler_pair(lam, 0.3, 200)
    bound = float(gronwall_endpoint_bound(ts, eps, lam))
    assert distance <= bound * (1 + 1e-12)
    assert bound <= distance * (1 + 2 * lam / 200 + 1e-12)  # (1 + hL)^m vs e^{hLm}: tight as h -> 0
    exact_integral = 0.3 * (math.expm1(lam) / lam if lam else 1.0)
    assert math.isclose(bound, exact_integral, rel_tol=2 * lam / 200 + 1e-12)


def test_gronwall_bound_fails_when_the_student_error_is_ignored():
    """Mutation: eps = 0 (the student's error left out) gives a 'bound' the distance exceeds."""
    ts, distance, eps = euler_pair(1.0, 0.3, 100)
    assert distance > float(gronwall_endpoint_bound(ts, np.zeros_like(eps), 1.0))
    assert distance > float(gronwall_endpoint_bound(ts, eps, 0.0)), "L = 0 must not be enough for an expanding field"


def test_gronwall_bound_per_trajectory_and_bad_input():
    ts = np.linspace(0, 1, 5)
    eps = np.stack([np.ones(5), 2 * np.ones(5)], axis=1)
    bound = gronwall_endpoint_bound(ts, eps, 0.0)
    assert bound.shape == (2,) and np.allclose(bound, [1.0, 2.0])
    with pytest.raises(ValueError, match="increasing"):
        gronwall_endpoint_bound(ts[::-1], eps, 1.0)
    with pytest.raises(ValueError, match="shape"):
        gronwall_endpoint_bound(ts, eps[:3], 1.0)
    with pytest.raises(ValueError, match="non-negative"):
        gronwall_endpoint_bound(ts, -eps, 1.0)
    with pytest.raises(ValueError, match="lipschitz"):
        gronwall_endpoint_bound(ts, eps, -1.0)


# --- the registry and training ---------------------------------------------------------------------

def test_make_osdnet_needs_a_basis_of_the_data_dimension():
    from fmlib.nets import make_net

    u = span_basis(subspace_data())
    assert isinstance(make_net("osdnet", 12, basis=u.tolist()), OSDNet)
    with pytest.raises(ValueError, match="needs the option basis"):
        make_net("osdnet", 12)
    with pytest.raises(ValueError, match="d=12 rows but the data have d=13"):
        make_net("osdnet", 13, basis=u.tolist())


def test_training_moves_the_coefficient_toward_minus_one(tmp_path):
    from fmlib.train import TrainConfig, train_or_load

    y = subspace_data(n=32, d=6, k=2).float()
    config = TrainConfig(net="osdnet", net_options={"basis": span_basis(y).tolist(), "width": 8, "knots": 5},
                         steps=300, batch_size=64, lr=1e-2)
    model = train_or_load(config, y, store=tmp_path, device="cpu", progress=False)
    b = model.ema.coefficient(torch.linspace(0, 0.75, 4))
    assert float((b + 1).abs().max()) < 0.25, b
    again = train_or_load(config, y, store=tmp_path, device="cpu", progress=False)
    assert again.loaded and torch.equal(again.ema.b, model.ema.b)


def top_projector(y: torch.Tensor, k: int) -> torch.Tensor:
    """Projector onto the leading k right singular vectors of y, from numpy's SVD (the sketch's reference)."""
    v = torch.from_numpy(np.linalg.svd(y.double().numpy(), full_matrices=False)[2][:k].T.copy())
    return v @ v.T


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("k", [8, None])
def test_the_chapter_s_basis_is_a_certified_sketch_equal_to_the_svd(dtype, k):
    """n = 512, d = 256, k = 8 (chapter 5's default): the sketch, with numpy's projector and rank."""
    y = subspace_data(n=512, d=256, k=8).to(dtype)
    svd = span_svd(y, k)
    assert svd.sketched and svd.rank == 8 == np.linalg.matrix_rank(y.numpy())
    u = span_basis(y, k)
    assert u.shape == (256, 8) and u.dtype == torch.float64
    assert torch.allclose(u.T @ u, torch.eye(8, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(u @ u.T, top_projector(y, 8), atol=1e-6 if dtype == torch.float32 else 1e-11)
    report = numerical_rank(y, centre=True)
    assert report.rank == np.linalg.matrix_rank((y - y.mean(0)).numpy())


def test_the_sketch_refuses_data_of_higher_rank():
    """Mutation guard: a sketch of full-rank data kept without its certificate would return a wrong top-2 basis."""
    y = make_dataset("gaussian", 512, d=256, generator=torch.Generator().manual_seed(1), device="cpu",
                     dtype=torch.float64)
    assert sketched_span(y, 16, rtol=1e-8) is None
    assert not span_svd(y, 2).sketched and span_svd(y).rank == 256
    assert torch.allclose(span_basis(y, 2) @ span_basis(y, 2).T, top_projector(y, 2), atol=1e-10)


def test_the_sketch_keeps_the_leading_vectors_of_data_of_rank_above_k():
    """Rank 12 < width 16: certified, and the leading 5 vectors are the SVD's, not any 5 of the span."""
    y = subspace_data(n=300, d=200, k=12, seed=3) * torch.linspace(3.0, 0.2, 200, dtype=torch.float64)
    assert span_svd(y, 5).sketched and numerical_rank(y).rank == 12
    assert torch.allclose(span_basis(y, 5) @ span_basis(y, 5).T, top_projector(y, 5), atol=1e-9)


def test_the_sketch_refuses_k_above_the_rank_and_counts_float32_round_off_as_zero():
    y = subspace_data(n=512, d=256, k=8).float()
    with pytest.raises(ValueError, match="larger than the numerical rank 8"):
        span_basis(y, 9)
    assert numerical_rank(y, rtol=1e-14).rank == 256  # a float64 tolerance: the residual fails it, all rank
    assert numerical_rank(y.double(), rtol=1e-5).rank == 8  # the Gram matrix at a loose tolerance


def test_float32_round_off_does_not_count_as_rank():
    """Mutation guard: a float64 tolerance on float32 data would see a full-rank basis (no off-span part at all)."""
    y = subspace_data(n=32, d=6, k=2).float()
    assert numerical_rank(y).rank == 2 and span_basis(y).shape == (6, 2)
    assert numerical_rank(y, rtol=1e-14).rank == 6


@pytest.mark.parametrize("n, d, k", [(40, 12, 3), (8, 30, 5), (64, 64, 64)])
def test_float32_basis_from_the_gram_matrix_matches_the_svd(n, d, k):
    y = subspace_data(n=n, d=d, k=k)
    u32 = span_basis(y.float())
    assert u32.shape == (d, min(n, k)) and not span_svd(y.float()).sketched
    assert torch.allclose(u32.T @ u32, torch.eye(u32.shape[1], dtype=u32.dtype), atol=1e-12)
    assert torch.allclose(u32 @ u32.T, top_projector(y.float(), min(n, k)), atol=1e-6)
