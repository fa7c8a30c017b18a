"""fmlib.data: shapes, dtypes, devices, determinism, documented scalings, exact geometry, errors."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from fmlib._checks import resolve_device
from fmlib.data import (
    DATASETS,
    dataset_names,
    make_cifar10,
    make_dataset,
    make_digits,
    make_gaussian,
    make_gaussian_mixture,
    make_image_patches,
    make_simplex,
    make_subspace,
    make_two_moons,
)
from fmlib.neighbours import nearest_index
from tests.problems import brute_force_pairwise

SYNTHETIC = [name for name in dataset_names() if name != "cifar10"]
"""Every data set that needs no files on disk."""

DEFAULT_D = {
    "gaussian": 2,
    "gaussian_mixture": 2,
    "subspace": 16,
    "simplex": 6,
    "two_moons": 2,
    "digits": 64,
    "image_patches": 192,
}
"""The dimension of 7 points of each synthetic set with default options."""


def _seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_registry_names() -> None:
    assert dataset_names() == sorted(DATASETS)
    assert set(dataset_names()) == {*SYNTHETIC, "cifar10"}
    assert set(DEFAULT_D) == set(SYNTHETIC)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", SYNTHETIC)
def test_shape_dtype_device_determinism(name: str, dtype: torch.dtype) -> None:
    x = make_dataset(name, 7, generator=_seeded(0), device="cpu", dtype=dtype)
    assert x.shape == (7, DEFAULT_D[name]) and x.dtype == dtype and x.device.type == "cpu"
    assert torch.isfinite(x).all()
    torch.testing.assert_close(
        x, make_dataset(name, 7, generator=_seeded(0), device="cpu", dtype=dtype), rtol=0, atol=0
    )
    assert not torch.equal(x, make_dataset(name, 7, generator=_seeded(1), device="cpu", dtype=dtype))


@pytest.mark.parametrize("name", SYNTHETIC)
def test_dtypes_agree_up_to_rounding_and_auto_device(name: str) -> None:
    x32 = make_dataset(name, 5, generator=_seeded(2))
    x64 = make_dataset(name, 5, generator=_seeded(2), dtype=torch.float64)
    assert x32.device.type == resolve_device("auto").type
    torch.testing.assert_close(x32.cpu().double(), x64.cpu(), rtol=1e-6, atol=1e-6)


def test_gaussian_moments() -> None:
    x = make_gaussian(4000, d=3, generator=_seeded(), device="cpu", dtype=torch.float64)
    assert float(x.mean(dim=0).abs().max()) < 0.1
    assert float((x.var(dim=0) - 1).abs().max()) < 0.1


@pytest.mark.parametrize("d", [1, 2, 5])
def test_gaussian_mixture_means_on_sphere(d: int) -> None:
    x = make_gaussian_mixture(200, d=d, components=4, radius=3.0, std=0.0, generator=_seeded(), device="cpu")
    means = torch.unique(x, dim=0)
    assert means.shape[0] <= 4
    if d == 1:
        torch.testing.assert_close(means.flatten(), torch.tensor([-3.0, -1.0, 1.0, 3.0]))
    else:
        torch.testing.assert_close(means.norm(dim=1), torch.full((means.shape[0],), 3.0))
    if d == 2:
        torch.testing.assert_close(brute_force_pairwise(means).min().item(), 3.0 * 2**0.5, rtol=1e-6, atol=0.0)


def test_gaussian_mixture_std() -> None:
    x = make_gaussian_mixture(2000, components=1, radius=1.0, std=0.5, generator=_seeded(), dtype=torch.float64)
    torch.testing.assert_close(x.mean(dim=0).cpu(), torch.tensor([1.0, 0.0], dtype=torch.float64), atol=0.05, rtol=0)
    torch.testing.assert_close(x.std(dim=0).cpu(), torch.full((2,), 0.5, dtype=torch.float64), atol=0.03, rtol=0)


@pytest.mark.parametrize(("d", "k"), [(1, 1), (6, 1), (6, 3), (6, 6)])
def test_subspace_rank(d: int, k: int) -> None:
    x = make_subspace(12, d=d, k=k, generator=_seeded(), dtype=torch.float64)
    assert x.shape == (12, d)
    assert int(torch.linalg.matrix_rank(x)) == k
    more = make_subspace(30, d=d, k=k, generator=_seeded(), dtype=torch.float64)
    assert int(torch.linalg.matrix_rank(torch.cat([x, more]))) == k  # the subspace does not depend on n


@pytest.mark.parametrize(("n", "d"), [(2, None), (3, 2), (6, 5), (6, 40), (30, None)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_simplex_pairwise_distances_exact(n: int, d: int | None, dtype: torch.dtype) -> None:
    x = make_simplex(n, d=d, separation=2.5, generator=_seeded(), dtype=dtype)
    assert x.shape == (n, max(n - 1, 1) if d is None else d)
    distances = brute_force_pairwise(x)
    tolerance = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(distances, torch.full_like(distances, 2.5), rtol=tolerance, atol=0.0)
    torch.testing.assert_close(
        x.double().sum(dim=0).cpu(), torch.zeros(x.shape[1], dtype=torch.float64), atol=1e-5, rtol=0
    )


def test_simplex_single_point_and_random_rotation() -> None:
    assert torch.equal(make_simplex(1, d=3, device="cpu"), torch.zeros(1, 3))
    a, b = make_simplex(4, generator=_seeded(0)), make_simplex(4, generator=_seeded(1))
    assert not torch.allclose(a, b)


def test_two_moons_scaling() -> None:
    x = make_two_moons(101, noise=0.0, generator=_seeded(), device="cpu", dtype=torch.float64)
    assert x.shape == (101, 2)
    assert float(x[:, 0].min()) >= -1 - 1e-12 and float(x[:, 0].max()) <= 2 + 1e-12
    assert float(x[:, 1].min()) >= -0.5 - 1e-12 and float(x[:, 1].max()) <= 1 + 1e-12


def test_digits_scaling_and_subsample() -> None:
    x = make_digits(300, generator=_seeded(), device="cpu", dtype=torch.float64)
    assert x.shape == (300, 64)
    grey = 8.0 * (x + 1.0)
    torch.testing.assert_close(grey, grey.round(), rtol=0, atol=1e-12)
    assert float(x.min()) == -1.0 and float(x.max()) == 1.0
    assert make_digits(1797, generator=_seeded(), device="cpu").shape == (1797, 64)


@pytest.mark.parametrize("resolution", [1, 2, 5])
def test_image_patches_shape_and_range(resolution: int) -> None:
    x = make_image_patches(40, resolution=resolution, generator=_seeded(), device="cpu")
    assert x.shape == (40, 3 * resolution**2)
    assert float(x.min()) >= -1.0 and float(x.max()) <= 1.0
    assert torch.unique(x, dim=0).shape[0] > 30


def test_image_patches_high_resolution() -> None:
    x = make_image_patches(3, resolution=74, generator=_seeded(), device="cpu")
    assert x.shape == (3, 16428)
    assert make_dataset("image_patches", 2, d=16428, device="cpu").shape == (2, 16428)


def test_image_patches_are_pooled_crops_channel_major() -> None:
    """resolution 2 from crops of 4: every row is a 2 x 2 grid of 2 x 2 block means of one crop."""
    from fmlib.data import _sample_images

    x = make_image_patches(25, resolution=2, patch=4, generator=_seeded(), device="cpu", dtype=torch.float64)
    block_means = F.avg_pool2d(_sample_images().double(), kernel_size=2, stride=1)
    crops = F.unfold(block_means, kernel_size=2, dilation=2)  # (2, 3 * 2 * 2, positions), channel-major
    candidates = (crops.transpose(1, 2).reshape(-1, 12) / 127.5 - 1.0).contiguous()
    _, sq_dist = nearest_index(x, candidates)
    assert float(sq_dist.max()) < 1e-12  # one grey level of a block mean is (1 / 510)^2 = 4e-6


def test_image_patches_distinct_positions_exhaust() -> None:
    """At resolution = patch = 427 there are 2 x 214 crops: all of them can be drawn, no more."""
    x = make_image_patches(428, resolution=1, patch=427, generator=_seeded(), device="cpu", dtype=torch.float64)
    assert x.shape == (428, 3)
    with pytest.raises(ValueError, match=r"n=429 exceeds the 428 distinct crops of side 427"):
        make_image_patches(429, resolution=1, patch=427)


def _write_fake_cifar(root: Path, rows_per_batch: int = 3) -> Tensor:
    """Fake official files under root; returns all train rows (5 rows_per_batch, 3072) as uint8."""
    root.mkdir(parents=True)
    generator = np.random.default_rng(0)
    rows = []
    for name in [*(f"data_batch_{k}" for k in range(1, 6)), "test_batch"]:
        data = generator.integers(0, 256, size=(rows_per_batch, 3072), dtype=np.uint8)
        data[0, 0], data[0, 1] = 0, 255
        with (root / name).open("wb") as file:
            pickle.dump({b"data": data, b"labels": list(range(rows_per_batch))}, file)
        if name != "test_batch":
            rows.append(data)
    return torch.from_numpy(np.concatenate(rows))


def test_cifar10_from_fake_files(tmp_path: Path) -> None:
    root = tmp_path / "cifar-10-batches-py"
    train = _write_fake_cifar(root)
    x = make_cifar10(15, root=root, generator=_seeded(), device="cpu", dtype=torch.float64)
    assert x.shape == (15, 3072) and x.dtype == torch.float64
    assert float(x.min()) == -1.0 and float(x.max()) == 1.0
    pixels = ((x + 1.0) * 127.5).round()
    torch.testing.assert_close(pixels.sort(dim=0).values, train.double().sort(dim=0).values, rtol=0, atol=0)
    assert make_cifar10(3, root=str(root), split="test", device="cpu").shape == (3, 3072)
    assert make_dataset("cifar10", 4, d=3072, root=root, device="cpu").shape == (4, 3072)
    torch.testing.assert_close(
        x, make_cifar10(15, root=root, generator=_seeded(), device="cpu", dtype=torch.float64), rtol=0, atol=0
    )


def test_cifar10_errors(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match=r"nowhere.*cifar-10-python\.tar\.gz.*kriz/cifar\.html"):
        make_cifar10(2, root=missing)
    root = tmp_path / "cifar-10-batches-py"
    _write_fake_cifar(root)
    (root / "data_batch_4").unlink()
    with pytest.raises(FileNotFoundError, match=r"data_batch_4.*cifar-10-python\.tar\.gz"):
        make_cifar10(2, root=root)
    with pytest.raises(ValueError, match=r"n=4 exceeds the 3 images of the CIFAR-10 test split"):
        make_cifar10(4, root=root, split="test")
    with pytest.raises(ValueError, match=r"split='tets' is not one of 'test', 'train'; did you mean 'test'\?"):
        make_cifar10(2, root=root, split="tets")


def test_make_dataset_translates_d() -> None:
    assert make_dataset("image_patches", 3, d=12, device="cpu").shape == (3, 12)
    assert make_dataset("gaussian", 3, d=9, device="cpu").shape == (3, 9)
    x = make_dataset("simplex", 4, d=5, separation=2.0, generator=_seeded(), dtype=torch.float64)
    torch.testing.assert_close(brute_force_pairwise(x), torch.full((6,), 2.0, dtype=torch.float64))
    assert make_dataset("digits", 3, d=64).shape == (3, 64)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (
            lambda: make_dataset("gausian", 3),
            r"name='gausian' is not one of 'cifar10', .*'two_moons'; did you mean 'gaussian'\?",
        ),
        (
            lambda: make_dataset("digits", 3, d=10),
            r"d=10 is not available for 'digits': its dimension is fixed at d=64",
        ),
        (lambda: make_dataset("image_patches", 3, d=13), r"d must be 3 r\^2 .*\(nearest: 12 or 27\)"),
        (lambda: make_dataset("image_patches", 3, d=12, resolution=2), r"give d or resolution for 'image_patches'"),
        (lambda: make_dataset("gaussian", 3, std=1.0), r"'gaussian' does not take option\(s\) std; it takes d, dtype"),
        (lambda: make_gaussian(0), r"n must be a positive integer, got 0"),
        (
            lambda: make_gaussian(3, dtype=torch.float16),
            r"dtype must be torch\.float32 or torch\.float64, got torch\.float16",
        ),
        (lambda: make_gaussian(3, device="nope"), r"device='nope' is not a device"),
        (lambda: make_gaussian_mixture(3, std=-1.0), r"std must lie in \[0, inf\), got -1\.0"),
        (lambda: make_subspace(3, d=2, k=3), r"k=3 exceeds d=2"),
        (lambda: make_simplex(6, d=4), r"d=4 is too small for the n=6 vertices .* expected d >= n - 1 = 5"),
        (lambda: make_simplex(3, separation=0.0), r"separation must lie in \(0, inf\), got 0\.0"),
        (lambda: make_digits(1798), r"n=1798 exceeds the 1797 images of scikit-learn's digits"),
        (
            lambda: make_image_patches(3, resolution=8, patch=4),
            r"patch=4 must lie between resolution=8 and the image height 427",
        ),
        (
            lambda: make_image_patches(3, resolution=500),
            r"resolution=500 exceeds the height .* expected resolution <= 427",
        ),
        (lambda: make_two_moons(3, noise=float("nan")), r"noise must be a real number, got nan"),
    ],
)
def test_errors(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()
