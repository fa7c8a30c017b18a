"""SmoothedField, PatchField and LinearField against brute-force float64 references; identities; mutations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fmlib.closed_form import ClosedFormField
from fmlib.local_fields import LinearField, PatchField, SmoothedField
from fmlib.neighbours import copy_fraction
from fmlib.ode import integrate, time_grid
from tests.problems import brute_force_posterior_mean, relative_error

TOLERANCE = {torch.float64: 1e-9, torch.float32: 2e-3}


def brute_force_patch_mean(x, t, data, shape, patch, equivariant):
    """The patch denoiser from explicitly sliced patches: every pixel against the listed training patches; float64."""
    channels, height, width = shape
    r = patch // 2
    pad = torch.nn.functional.pad
    xs = pad(x.double().reshape(-1, channels, height, width), (r, r, r, r))
    ys = pad(data.double().reshape(-1, channels, height, width), (r, r, r, r))
    positions = [(i, j) for i in range(height) for j in range(width)]
    keys = {q: ys[:, :, q[0] : q[0] + patch, q[1] : q[1] + patch] for q in positions}  # (n, C, P, P) each
    centres = {q: ys[:, :, q[0] + r, q[1] + r] for q in positions}  # (n, C) each
    out = torch.empty(x.shape[0], channels, height, width, dtype=torch.float64)
    for i, j in positions:
        sources = positions if equivariant else [(i, j)]
        key = torch.cat([keys[q] for q in sources])  # (n |Q|, C, P, P)
        centre = torch.cat([centres[q] for q in sources])
        for b in range(x.shape[0]):
            query = xs[b, :, i : i + patch, j : j + patch]
            logits = -((query - t * key) ** 2).sum(dim=(1, 2, 3)) / (2 * (1 - t) ** 2)
            out[b, :, i, j] = torch.softmax(logits, dim=0) @ centre
    return out.reshape(x.shape[0], -1)


def brute_force_linear_mean(x, t, data):
    """mu + t Sigma (t^2 Sigma + (1 - t)^2 I)^(-1) (x - t mu) by a linear solve; float64, t < 1."""
    data, x = data.double(), x.double()
    mu = data.mean(dim=0)
    sigma = torch.cov(data.T, correction=0).reshape(data.shape[1], data.shape[1])
    system = t**2 * sigma + (1 - t) ** 2 * torch.eye(data.shape[1], dtype=torch.float64)
    return mu + (t * sigma @ torch.linalg.solve(system, (x - t * mu).T)).T


def images(n, shape, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, int(np.prod(shape)), generator=g, dtype=dtype)


# ---------------------------------------------------------------- PatchField


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("equivariant", [True, False])
@pytest.mark.parametrize("shape, patch", [((1, 4, 5), 3), ((2, 3, 3), 1), ((1, 5, 4), 5), ((2, 3, 4), 7)])
@pytest.mark.parametrize("t", [0.0, 0.5, 0.97])
def test_patch_field_matches_brute_force(dtype, equivariant, shape, patch, t):
    data, x = images(5, shape), images(3, shape, seed=1)
    x = t * data[[0, 2, 4]] + (1 - t) * x
    field = PatchField(data.to(dtype), shape, patch, equivariant=equivariant, chunk_size=2)  # 2 does not divide 5
    mean = field.posterior_mean(x.to(dtype), t)
    assert mean.dtype == dtype and mean.shape == x.shape
    assert relative_error(mean, brute_force_patch_mean(x, t, data, shape, patch, equivariant)) <= TOLERANCE[dtype]


def test_patch_field_default_chunks_query_blocks_and_cache(monkeypatch):
    """Several query blocks, the default chunking, cached or streamed patches: the brute-force answer."""
    shape = (1, 4, 4)
    data, x = images(7, shape), images(6, shape, seed=2)
    reference = brute_force_patch_mean(x, 0.6, data, shape, 3, True)
    monkeypatch.setattr("fmlib.local_fields.QUERY_ROWS", 40)  # 96 query patches: blocks of 40, 40, 16
    monkeypatch.setattr("fmlib.local_fields.CHUNK_ELEMENTS", 3000)  # a few images per chunk
    for equivariant in (True, False):
        cached = PatchField(data, shape, 3, equivariant=equivariant)
        expected = reference if equivariant else brute_force_patch_mean(x, 0.6, data, shape, 3, False)
        assert relative_error(cached.posterior_mean(x, 0.6), expected) <= 1e-9
        assert cached._cache is not None
        monkeypatch.setattr("fmlib.local_fields.CACHE_ELEMENTS", 0)  # patches cut chunk by chunk
        streamed = PatchField(data, shape, 3, equivariant=equivariant)
        assert relative_error(streamed.posterior_mean(x, 0.6), expected) <= 1e-9
        assert streamed._cache is None
        monkeypatch.undo()
        monkeypatch.setattr("fmlib.local_fields.QUERY_ROWS", 40)
        monkeypatch.setattr("fmlib.local_fields.CHUNK_ELEMENTS", 3000)


def test_patch_field_per_row_times_and_t_one():
    shape = (1, 3, 4)
    data, x = images(4, shape), images(3, shape, seed=3)
    field = PatchField(data, shape, 3)
    t = torch.tensor([0.2, 1.0, 0.7], dtype=torch.float64)
    mean = field.posterior_mean(x, t)
    for row in (0, 2):
        expected = brute_force_patch_mean(x[row : row + 1], float(t[row]), data, shape, 3, True)
        assert relative_error(mean[row : row + 1], expected) <= 1e-9
    # t = 1: each pixel takes the centre of its nearest training patch (the limit of t -> 1)
    near_one = brute_force_patch_mean(x[1:2], 1 - 1e-7, data, shape, 3, True)
    assert relative_error(mean[1:2], near_one) <= 1e-6
    assert torch.equal(field.posterior_mean(x[1:2], 1.0), mean[1:2])


@pytest.mark.parametrize("t", [0.0, 0.4, 0.95, 1.0])
@pytest.mark.parametrize("shape", [(1, 5, 5), (3, 4, 6), (1, 8, 8)])
def test_whole_image_local_patch_is_the_exact_closed_form(shape, t):
    """P = 2 max(H, W) - 1 at the same position: every distance is ||x - t y_i||^2, the exact closed form."""
    data, x = images(9, shape), images(4, shape, seed=4)
    field = PatchField(data, shape, 2 * max(shape[1:]) - 1, equivariant=False, chunk_size=4)
    assert relative_error(field.posterior_mean(x, t), ClosedFormField(data).posterior_mean(x, t)) <= 1e-9


def test_whole_image_patch_memorises_and_small_patch_does_not():
    """Mutation: the patch of the whole image is the exact closed form again, and copies; a 3 x 3 patch does not."""
    shape = (1, 8, 8)
    g = torch.Generator().manual_seed(0)
    data = torch.randn(12, 64, generator=g, dtype=torch.float64)
    x0 = torch.randn(16, 64, generator=g, dtype=torch.float64)
    ts = time_grid(30, spacing="quadratic")
    whole = integrate(PatchField(data, shape, 15, equivariant=False), x0, ts).x
    local = integrate(PatchField(data, shape, 3), x0, ts).x
    assert copy_fraction(whole, data) == 1.0
    assert copy_fraction(local, data) <= 0.25


def test_patch_field_is_translation_equivariant_in_the_interior():
    """Shifting a query that is zero near the boundary shifts the denoised image (equivariant=True only)."""
    shape = (1, 9, 9)
    data = images(6, shape)
    x = torch.zeros(1, 1, 9, 9, dtype=torch.float64)
    x[0, 0, 3:5, 2:5] = torch.tensor([[1.0, -2.0, 0.5], [0.3, 1.2, -0.7]], dtype=torch.float64)
    shifted = torch.roll(x, shifts=(2, 1), dims=(2, 3))
    for equivariant, expected in ((True, True), (False, False)):
        field = PatchField(data, shape, 3, equivariant=equivariant)
        a = field.posterior_mean(x.reshape(1, -1), 0.5).reshape(1, 1, 9, 9)
        b = field.posterior_mean(shifted.reshape(1, -1), 0.5).reshape(1, 1, 9, 9)
        interior = (slice(None), slice(None), slice(3, 8), slice(3, 8))  # pixels whose patches stay inside
        same = torch.allclose(torch.roll(a, shifts=(2, 1), dims=(2, 3))[interior], b[interior], atol=1e-12)
        assert same is expected


def test_patch_mutation_off_centre_value_is_caught():
    """Mutation: taking the pixel next to the centre as the value breaks the brute-force check."""

    class OffCentre(PatchField):
        def _chunks(self, images_per_chunk):
            for keys, key_sq, values in super()._chunks(images_per_chunk):
                yield keys, key_sq, torch.cat([keys[..., self.patch_size**2 // 2 + 1 :: self.patch_size**2],
                                               values[..., -1:]], dim=2)

    shape = (1, 4, 4)
    data, x = images(5, shape), images(2, shape, seed=5)
    reference = brute_force_patch_mean(x, 0.5, data, shape, 3, True)
    assert relative_error(PatchField(data, shape, 3).posterior_mean(x, 0.5), reference) <= 1e-9
    assert relative_error(OffCentre(data, shape, 3).posterior_mean(x, 0.5), reference) > 1e-2


def test_patch_velocity():
    shape = (1, 4, 4)
    data, x = images(5, shape), images(2, shape, seed=6)
    field = PatchField(data, shape, 3)
    expected = (brute_force_patch_mean(x, 0.3, data, shape, 3, True) - x) / 0.7
    assert relative_error(field.velocity(x, 0.3), expected) <= 1e-9
    with pytest.raises(ValueError, match="t = 1"):
        field.velocity(x, 1.0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"patch_size": 4}, "even"),
        ({"patch_size": 0}, "positive odd"),
        ({"patch_size": 17}, "larger than the image"),
        ({"patch_size": 3, "image_shape": (7, 9)}, "must match"),
        ({"patch_size": 3, "image_shape": (8,)}, r"\(H, W\) or \(C, H, W\)"),
        ({"patch_size": 3, "chunk_size": 0}, "chunk_size"),
        ({"patch_size": 3, "equivariant": 1}, "equivariant"),
    ],
)
def test_patch_field_bad_input(kwargs, match):
    arguments = {"image_shape": (8, 8), **kwargs}
    with pytest.raises(ValueError, match=match):
        PatchField(torch.zeros(3, 64), **arguments)


# ---------------------------------------------------------------- SmoothedField


def test_smoothed_field_without_smoothing_is_the_exact_field():
    """Mutation: sigma = 0 is the exact closed form; any sigma > 0 is measurably not."""
    data, x = images(20, (5,)), images(6, (5,), seed=7)
    exact = ClosedFormField(data).velocity(x, 0.6)
    assert relative_error(SmoothedField(data, 0.0).velocity(x, 0.6), exact) <= 1e-12
    assert relative_error(SmoothedField(data, 0.3).velocity(x, 0.6), exact) > 1e-2


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_smoothed_field_matches_brute_force_with_the_same_draws(dtype):
    data, x = images(11, (4,)), images(5, (4,), seed=8)
    field = SmoothedField(data.to(dtype), 0.4, n_samples=7, seed=3, chunk_size=3)
    eps = torch.randn(7, 5, 4, generator=torch.Generator().manual_seed(3), dtype=dtype).double()
    expected = torch.stack([brute_force_posterior_mean(x + 0.4 * e, 0.7, data) for e in eps]).mean(dim=0)
    assert relative_error(field.posterior_mean(x.to(dtype), 0.7), expected) <= TOLERANCE[dtype]
    velocity = SmoothedField(data.to(dtype), 0.4, n_samples=7, seed=3).velocity(x.to(dtype), 0.7)
    assert relative_error(velocity, (expected - x) / 0.3) <= TOLERANCE[dtype] * 4


def test_smoothed_field_converges_to_the_gaussian_average():
    """d = 1: the Monte-Carlo mean is within 4 standard errors of E D(x + sigma eps) by Gauss-Hermite quadrature."""
    data = torch.tensor([[-1.0], [0.2], [1.5]], dtype=torch.float64)
    x = torch.tensor([[0.1], [0.9]], dtype=torch.float64)
    sigma, t, k = 0.5, 0.6, 20000
    nodes, weights = np.polynomial.hermite_e.hermegauss(80)
    exact = ClosedFormField(data)
    points = torch.tensor(nodes, dtype=torch.float64).reshape(-1, 1)
    expected = [float((exact.posterior_mean(xi + sigma * points, t)[:, 0] * torch.tensor(weights)).sum())
                / weights.sum() for xi in x]
    field = SmoothedField(data, sigma, n_samples=k, seed=0)
    eps = torch.randn(k, 2, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    spread = torch.stack([exact.posterior_mean(x + sigma * e, t) for e in eps[:2000]]).std(dim=0)[:, 0]
    got = field.posterior_mean(x, t)[:, 0]
    assert torch.all((got - torch.tensor(expected)).abs() <= 4 * spread / k**0.5)


def test_smoothed_field_same_seed_same_draws_and_t_one():
    data, x = images(8, (3,)), images(4, (3,), seed=9)
    a, b = SmoothedField(data, 0.2, seed=5), SmoothedField(data, 0.2, seed=5)
    assert torch.equal(a.posterior_mean(x, 0.5), b.posterior_mean(x, 0.5))
    assert not torch.equal(a.posterior_mean(x, 0.5), b.posterior_mean(x, 0.4))
    t = torch.tensor([0.1, 1.0, 0.5, 1.0], dtype=torch.float64)
    assert a.posterior_mean(x, t).shape == x.shape
    with pytest.raises(ValueError, match="t = 1"):
        a.velocity(x, t)


@pytest.mark.parametrize("kwargs, match", [({"sigma": -0.1}, "sigma"), ({"sigma": float("nan")}, "sigma"),
                                           ({"sigma": 0.1, "n_samples": 0}, "n_samples")])
def test_smoothed_field_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SmoothedField(torch.zeros(3, 2), **kwargs)


# ---------------------------------------------------------------- LinearField


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("t", [0.0, 0.2, 0.7, 0.99])
def test_linear_field_matches_brute_force(dtype, t):
    data, x = images(40, (6,)) * torch.linspace(0.2, 2.0, 6, dtype=torch.float64) + 1.0, images(5, (6,), seed=10)
    field = LinearField(data.to(dtype), chunk_size=7)
    expected = brute_force_linear_mean(x, t, data)
    assert relative_error(field.posterior_mean(x.to(dtype), t), expected) <= TOLERANCE[dtype]
    assert relative_error(field.velocity(x.to(dtype), t), (expected - x) / (1 - t)) <= TOLERANCE[dtype] / (1 - t) * 4


def test_linear_field_flow_is_the_gaussian_transport():
    """The flow is x(t) = t mu + ((1 - t)^2 I + t^2 Sigma)^(1/2) x0, a Gaussian transport."""
    data = images(30, (3,)) @ torch.tensor([[1.5, 0.3, 0.0], [0.0, 0.7, 0.2], [0.0, 0.0, 0.4]], dtype=torch.float64)
    field = LinearField(data)
    x0 = images(8, (3,), seed=11)
    mu, sigma = data.mean(0), torch.cov(data.T, correction=0)
    lam, vec = torch.linalg.eigh(sigma)
    def flow(t):
        return t * mu + x0 @ (vec @ torch.diag(((1 - t) ** 2 + t**2 * lam).sqrt()) @ vec.T)

    assert relative_error(integrate(field, x0, time_grid(100, t_end=0.99), method="rk4").x, flow(0.99)) <= 1e-9
    result = integrate(field, x0, time_grid(200), method="rk4").x  # last step: the denoiser, error O(h^2)
    assert relative_error(result, flow(1.0)) <= 1e-4


def test_linear_field_rank_deficient_and_t_one():
    """Data on a plane in R^3: at t = 1 D projects x onto the plane; no division by a zero eigenvalue."""
    g = torch.Generator().manual_seed(12)
    data = torch.cat([torch.randn(10, 2, generator=g, dtype=torch.float64), torch.full((10, 1), 0.5,
                                                                                      dtype=torch.float64)], 1)
    x = torch.randn(4, 3, generator=g, dtype=torch.float64)
    mean = LinearField(data).posterior_mean(x, 1.0)
    assert torch.allclose(mean[:, :2], x[:, :2], atol=1e-10) and torch.allclose(mean[:, 2], torch.tensor(0.5,
                                                                                dtype=torch.float64), atol=1e-10)
    assert torch.isfinite(LinearField(data).velocity(x, 0.999)).all()


def test_linear_mutation_wrong_time_power_is_caught():
    """Mutation: t Sigma instead of t^2 Sigma in the inverse breaks the brute-force check."""

    class WrongGain(LinearField):
        def gains(self, t):
            t64 = t.double().unsqueeze(1)
            return (t64 * self.eigenvalues / (t64 * self.eigenvalues + (1 - t64) ** 2)).to(self.data.dtype)

    data, x = images(30, (4,)) * 2.0, images(3, (4,), seed=13)
    expected = brute_force_linear_mean(x, 0.5, data)
    assert relative_error(LinearField(data).posterior_mean(x, 0.5), expected) <= 1e-9
    assert relative_error(WrongGain(data).posterior_mean(x, 0.5), expected) > 1e-2
