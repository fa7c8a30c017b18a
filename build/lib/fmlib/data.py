r"""Training sets by name: ``make_<name>(n, *, ..., generator, device, dtype)`` returns an (n, d) tensor.

Every function is deterministic given ``generator`` (a :class:`torch.Generator`; None uses torch's
global generator). Random numbers are drawn in float64 on the generator's device (on ``device`` when
``generator`` is None) and the result is then cast to ``dtype`` and moved to ``device``, so a seeded
generator gives the same points on every device and, up to rounding, in both dtypes. ``device="auto"``
means CUDA when present, else CPU. Each docstring states the scaling of its data set.

:func:`make_dataset` builds any of them by name from :data:`DATASETS`, translating a requested
dimension ``d`` into the options of each set (e.g. the resolution of image patches).
"""

from __future__ import annotations

import functools
import inspect
import math
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from fmlib._checks import check_choice, check_dtype, check_float, check_positive_int, generator_device, resolve_device

__all__ = [
    "DATASETS",
    "Dataset",
    "dataset_names",
    "make_cifar10",
    "make_dataset",
    "make_digits",
    "make_gaussian",
    "make_gaussian_mixture",
    "make_image_patches",
    "make_simplex",
    "make_subspace",
    "make_two_moons",
]

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"
"""Where the official CIFAR-10 python files (cifar-10-python.tar.gz) are published."""

_CIFAR10_FILES = {"train": [f"data_batch_{k}" for k in range(1, 6)], "test": ["test_batch"]}

_PATCH_FIELD_OF_VIEW = 32
"""Default side of image crops, in pixels, for resolutions up to it (the size of CIFAR-10 images)."""

_GATHER_ELEMENTS = 1 << 22
"""Pixels gathered per chunk when cutting image patches (bounds the temporary memory)."""


def _seed(generator: torch.Generator | None) -> int:
    """A 31-bit seed for NumPy-based code (scikit-learn), drawn from ``generator``."""
    return int(torch.randint(2**31 - 1, (1,), generator=generator, device=generator_device(generator)))


def _randperm(size: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
    """A random permutation of range(size) drawn with ``generator``, returned on the CPU."""
    return torch.randperm(size, generator=generator, device=generator_device(generator, device)).cpu()


def _check_common(n: int, device: str | torch.device | None, dtype: torch.dtype) -> torch.device:
    """Check ``n`` and ``dtype`` and resolve ``device``."""
    check_positive_int(n, "n")
    check_dtype(dtype)
    return resolve_device(device)


def make_gaussian(
    n: int,
    *,
    d: int = 2,
    generator: torch.Generator | None = None,
    device: str | torch.device | None = "auto",
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    r"""n independent draws from the standard normal :math:`N(0, I_d)`.

    .. math:: x_i \sim N(0, I_d)

    Scaling: unit variance per coordinate, :math:`E\|x\|^2 = d`.

    Returns:
        (n, d) tensor of ``dtype`` on ``device``.
    """
    device = _check_common(n, device, dtype)
    d = check_positive_int(d, "d")
    x = torch.randn(n, d, generator=generator, dtype=torch.float64, device=generator_device(generator, device))
    return x.to(device=device, dtype=dtype)


def make_gaussian_mixture(
    n: int,
    *,
    d: int = 2,
    components: int = 8,
    radius: float = 2.0,
    std: float = 0.2,
    generator: torch.Generator | None = None,
    device: str | torch.device | None = "auto",
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    r"""n draws from an equal-weight mixture of ``components`` isotropic Gaussians with means on a sphere.

    .. math::

        x_i = \mu_{c_i} + \sigma z_i, \qquad c_i \sim \mathrm{Uniform}\{1, \dots, k\}, \quad
        z_i \sim N(0, I_d), \quad \|\mu_j\| = r

    Means :math:`\mu_j = r u_j`: for d = 2 evenly spaced on the circle,
    :math:`u_j = (\cos 2\pi j / k, \sin 2\pi j / k)` (the classic "8 Gaussians"); for d >= 3
    independent uniform directions on the unit sphere, drawn with ``generator`` (nearly orthogonal
    in high d); for d = 1 evenly spaced on [-1, 1] (0 when k = 1). The means are drawn first, so
    they do not depend on n.

    Scaling: means at distance ``radius`` from the origin, standard deviation ``std`` per coordinate.

    Returns:
        (n, d) tensor of ``dtype`` on ``device``.
    """
    device = _check_common(n, device, dtype)
    d = check_positive_int(d, "d")
    k = check_positive_int(components, "components")
    radius = check_float(radius, "radius", low=0.0)
    std = check_float(std, "std", low=0.0)
    source = generator_device(generator, device)
    if d == 1:
        u = torch.linspace(-1.0, 1.0, k, dtype=torch.float64) if k > 1 else torch.zeros(1, dtype=torch.float64)
        u = u.unsqueeze(1).to(source)
    elif d == 2:
        angle = 2.0 * math.pi * torch.arange(k, dtype=torch.float64, device=source) / k
        u = torch.stack([angle.cos(), angle.sin()], dim=1)
    else:
        u = torch.randn(k, d, generator=generator, dtype=torch.float64, device=source)
        u = u / u.norm(dim=1, keepdim=True)
    labels = torch.randint(k, (n,), generator=generator, device=source)
    z = torch.randn(n, d, generator=generator, dtype=torch.float64, device=source)
    return (radius * u[labels] + std * z).to(device=device, dtype=dtype)


def _random_orthonormal(d: int, k: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
    """(d, k) float64 matrix with orthonormal columns, Haar-distributed (QR of a Gaussian, signs fixed)."""
    g = torch.randn(d, k, generator=generator, dtype=torch.float64, device=device)
    q, r = torch.linalg.qr(g)
    return q * torch.sign(torch.diagonal(r)).unsqueeze(0)


def make_subspace(
    n: int,
    *,
    d: int = 16,
    k: int = 2,
    generator: torch.Generator | None = None,
    device: str | torch.device | None = "auto",
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    r"""n points on a random k-dimensional linear subspace of :math:`\mathbb{R}^d`, Gaussian within it.

    .. math:: x_i = U z_i, \qquad z_i \sim N(0, I_k), \quad U \in \mathbb{R}^{d \times k},\ U^\top U = I_k

    U is uniform over orthonormal k-frames (drawn first with ``generator``, so it does not depend
    on n); the points span a subspace of rank min(n, k).

    Scaling: standard normal coordinates in the subspace, :math:`E\|x\|^2 = k`.

    Returns:
        (n, d) tensor of ``dtype`` on ``device``.
    """
    device = _check_common(n, device, dtype)
    d = check_positive_int(d, "d")
    k = check_positive_int(k, "k")
    if k > d:
        raise ValueError(f"k={k} exceeds d={d}; a subspace of R^d has dimension k <= d")
    source = generator_device(generator, device)
    basis = _random_orthonormal(d, k, generator, source)
    z = torch.randn(n, k, generator=generator, dtype=torch.float64, device=source)
    return (z @ basis.T).to(device=device, dtype=dtype)


def _helmert_vertices(n: int) -> Tensor:
    r"""(n, n - 1) float64 rows: the vertices of a regular simplex with all pairwise distances sqrt(2).

    The columns of the Helmert matrix, :math:`h_j = (1, \dots, 1, -j, 0, \dots, 0) / \sqrt{j (j + 1)}`
    (j ones), are an orthonormal basis of :math:`1^\perp`; its rows are the centred basis vectors
    :math:`e_i - \mathbf{1}/n` in that basis, hence :math:`\|h_{i\cdot} - h_{k\cdot}\|^2 = 2`.
    """
    i = torch.arange(n, dtype=torch.float64).unsqueeze(1)
    j = torch.arange(1, n, dtype=torch.float64).unsqueeze(0)
    scale = 1.0 / torch.sqrt(j * (j + 1.0))
    return torch.where(i < j, scale, torch.where(i == j, -j * scale, torch.zeros((), dtype=torch.float64)))


def make_simplex(
    n: int,
    *,
    d: int | None = None,
    separation: float = 1.0,
    generator: torch.Generator | None = None,
    device: str | torch.device | None = "auto",
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    r"""The n vertices of a regular simplex in :math:`\mathbb{R}^d`, every pairwise distance equal to ``separation``.

    .. math:: x_i = \frac{s}{\sqrt 2}\, Q h_i, \qquad \|x_i - x_j\| = s \ (i \ne j), \qquad \textstyle\sum_i x_i = 0

    where :math:`h_i \in \mathbb{R}^{n-1}` are the rows of the Helmert matrix (pairwise distances
    :math:`\sqrt 2`) and :math:`Q \in \mathbb{R}^{d \times (n-1)}` has orthonormal columns drawn
    uniformly with ``generator`` (a random rotation). Used to control the separation of the
    training set exactly.

    Scaling: centred at the origin, pairwise distances exactly ``separation`` (to float64 round-off
    before the cast), every point at distance :math:`s \sqrt{(n - 1) / (2 n)}` from the origin.

    Args:
        d: ambient dimension, at least n - 1; default max(n - 1, 1).

    Returns:
        (n, d) tensor of ``dtype`` on ``device``.
    """
    device = _check_common(n, device, dtype)
    d = max(n - 1, 1) if d is None else check_positive_int(d, "d")
    if d < n - 1:
        raise ValueError(
            f"d={d} is too small for the n={n} vertices of a regular simplex; expected d >= n - 1 = {n - 1}"
        )
    separation = check_float(separation, "separation", low=0.0, low_open=True)
    if n == 1:
        return torch.zeros(1, d, dtype=dtype, device=device)
    source = generator_device(generator, device)
    rotation = _random_orthonormal(d, n - 1, generator, source)
    vertices = _helmert_vertices(n).to(source)
    return (separation / math.sqrt(2.0) * vertices @ rotation.T).to(device=device, dtype=dtype)


def make_two_moons(
    n: int,
    *,
    noise: float = 0.05,
    generator: torch.Generator | None = None,
    device: str | torch.device | None = "auto",
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    r"""n points of scikit-learn's two interleaving half circles (``sklearn.datasets.make_moons``), d = 2.

    .. math::

        \text{upper: } (\cos\theta, \sin\theta), \quad
        \text{lower: } (1 - \cos\theta, \tfrac12 - \sin\theta), \quad \theta \in [0, \pi],
        \quad \text{plus } N(0, \text{noise}^2 I_2)

    ``n // 2`` points on the upper moon and the rest on the lower, shuffled; the seed passed to
    scikit-learn is drawn from ``generator``.

    Scaling: scikit-learn's, unchanged: x in [-1, 2] and y in [-0.5, 1] before the noise.

    Returns:
        (n, 2) tensor of ``dtype`` on ``device``.
    """
    from sklearn.datasets import make_moons  # deferred: importing sklearn.datasets takes about a second

    device = _check_common(n, device, dtype)
    noise = check_float(noise, "noise", low=0.0)
    x, _ = make_moons(n_samples=n, noise=noise, random_state=_seed(generator))
    return torch.from_numpy(x).to(device=device, dtype=dtype)


@functools.cache
def _digits() -> Tensor:
    """scikit-learn's digits as a (1797, 64) float64 CPU tensor of grey levels 0..16, loaded once."""
    from sklearn.datasets import load_digits  # deferred: importing sklearn.datasets takes about a second

    return torch.from_numpy(load_digits().data.astype(np.float64))


def make_digits(
    n: int,
    *,
    generator: torch.Generator | None = None,
    device: str | torch.device | None = "auto",
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    r"""n distinct images of scikit-learn's handwritten digits (``load_digits``: 1797 images of 8 x 8), d = 64.

    .. math:: x = g / 8 - 1, \qquad g \in \{0, \dots, 16\}^{64} \text{ the grey levels}

    A uniformly random subset of size n (in random order) drawn with ``generator``; pixels in
    row-major order.

    Scaling: each pixel in [-1, 1] (0 -> -1, 16 -> 1).

    Returns:
        (n, 64) tensor of ``dtype`` on ``device``.
    """
    device = _check_common(n, device, dtype)
    grey = _digits()
    if n > grey.shape[0]:
        raise ValueError(f"n={n} exceeds the {grey.shape[0]} images of scikit-learn's digits; expected n <= 1797")
    index = _randperm(grey.shape[0], generator, device)[:n]
    return (grey[index] / 8.0 - 1.0).to(device=device, dtype=dtype)


@functools.cache
def _sample_images() -> Tensor:
    """scikit-learn's sample images china.jpg and flower.jpg as a (2, 3, 427, 640) uint8 CPU tensor, loaded once."""
    from sklearn.datasets import load_sample_images  # deferred: importing sklearn.datasets takes about a second

    images = np.stack(load_sample_images().images)
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()


def make_image_patches(
    n: int,
    *,
    resolution: int = 8,
    patch: int | None = None,
    generator: torch.Generator | None = None,
    device: str | torch.device | None = "auto",
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    r"""n distinct square crops of scikit-learn's two sample photographs, area-downsampled to r x r, d = 3 r^2.

    .. math::

        x = \frac{\operatorname{pool}_{r \times r}(I[c,\, a:a+p,\, b:b+p])}{127.5} - 1, \qquad
        d = 3 r^2

    Crops of side p = ``patch`` are cut at positions (image, top, left) drawn uniformly without
    replacement with ``generator`` from all positions in ``china.jpg`` and ``flower.jpg``
    (``sklearn.datasets.load_sample_images``, 427 x 640 each), so no two points come from the
    same crop; each is averaged over an r x r grid of (near-)equal blocks
    (``adaptive_avg_pool2d``, exact block means when r divides p) and flattened channel-major,
    (3, r, r), like a CIFAR-10 row. The default ``patch`` is the smallest multiple of r that is at
    least 32, so the field of view is about 32 pixels at every resolution up to 32 (the size of a
    CIFAR-10 image) and r itself above; d runs from 3 (r = 1) to beyond 16,384 (r = 74). There are
    2 (428 - p)(641 - p) distinct crops: about 480,000 at p = 32, 400,000 at p = 74.

    Scaling: pixel values / 127.5 - 1, in [-1, 1].

    Args:
        resolution: r, side of the output in pixels (1 to 427).
        patch: p, side of the crops in pixels, r <= p <= 427.

    Returns:
        (n, 3 r^2) tensor of ``dtype`` on ``device``.
    """
    device = _check_common(n, device, dtype)
    images = _sample_images()
    height, width = images.shape[-2:]
    r = check_positive_int(resolution, "resolution")
    if r > height:
        raise ValueError(f"resolution={r} exceeds the height of the sample images; expected resolution <= {height}")
    p = r * math.ceil(_PATCH_FIELD_OF_VIEW / r) if patch is None else check_positive_int(patch, "patch")
    if not r <= p <= height:
        raise ValueError(f"patch={p} must lie between resolution={r} and the image height {height}")
    rows, cols = height - p + 1, width - p + 1
    positions = images.shape[0] * rows * cols
    if n > positions:
        raise ValueError(f"n={n} exceeds the {positions} distinct crops of side {p}; expected n <= {positions}")
    index = _randperm(positions, generator, device)[:n]
    image, rest = index // (rows * cols), index % (rows * cols)
    top, left = rest // cols, rest % cols
    stride_image, stride_channel, stride_row, stride_col = images.stride()
    crops_at = images.as_strided(
        (images.shape[0], rows, cols, 3, p, p),
        (stride_image, stride_row, stride_col, stride_channel, stride_row, stride_col),
    )
    out = torch.empty(n, 3 * r * r, dtype=dtype)
    chunk = max(1, _GATHER_ELEMENTS // (3 * p * p))
    for start in range(0, n, chunk):
        crops = crops_at[image[start : start + chunk], top[start : start + chunk], left[start : start + chunk]]
        pooled = crops if p == r else F.adaptive_avg_pool2d(crops.to(dtype), r)
        out[start : start + chunk] = pooled.flatten(1)
    out.div_(127.5).sub_(1.0)
    return out.to(device)


def make_cifar10(
    n: int,
    *,
    root: str | Path = "data/cifar-10-batches-py",
    split: str = "train",
    generator: torch.Generator | None = None,
    device: str | torch.device | None = "auto",
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    r"""n distinct CIFAR-10 images read from the official python files, d = 3072.

    .. math:: x = v / 127.5 - 1, \qquad v \in \{0, \dots, 255\}^{3072}

    Reads ``data_batch_1`` .. ``data_batch_5`` (split ``"train"``, 50,000 images) or ``test_batch``
    (``"test"``, 10,000) under ``root`` (relative paths are relative to the current directory):
    pickled dicts whose ``b"data"`` is a uint8 array (10000, 3072), each row channel-major
    (3, 32, 32). Pickle runs code from the file: use the official files only. A uniformly random
    subset of size n (in random order) is drawn with ``generator``. Source: Krizhevsky (2009),
    https://www.cs.toronto.edu/~kriz/cifar.html.

    Scaling: pixel values / 127.5 - 1, in [-1, 1].

    Returns:
        (n, 3072) tensor of ``dtype`` on ``device``.

    Raises:
        FileNotFoundError: ``root`` or one of its files is missing (the message says how to get them).
    """
    device = _check_common(n, device, dtype)
    split = check_choice(split, _CIFAR10_FILES, "split")
    root = Path(root)
    how = (
        f"download cifar-10-python.tar.gz from {CIFAR10_URL} and extract it into data/ "
        "(tar -xzf cifar-10-python.tar.gz -C data), which creates data/cifar-10-batches-py"
    )
    if not root.is_dir():
        raise FileNotFoundError(f"CIFAR-10 directory {root} (resolved: {root.resolve()}) not found; {how}")
    batches = []
    for name in _CIFAR10_FILES[split]:
        path = root / name
        if not path.is_file():
            raise FileNotFoundError(f"CIFAR-10 file {path} (resolved: {path.resolve()}) not found; {how}")
        with path.open("rb") as file:
            batches.append(np.asarray(pickle.load(file, encoding="bytes")[b"data"], dtype=np.uint8))
    pixels = torch.from_numpy(np.concatenate(batches))
    if n > pixels.shape[0]:
        raise ValueError(f"n={n} exceeds the {pixels.shape[0]} images of the CIFAR-10 {split} split")
    index = _randperm(pixels.shape[0], generator, device)[:n]
    return (pixels[index].to(torch.float64) / 127.5 - 1.0).to(device=device, dtype=dtype)


def _d_is_free(name: str, d: int) -> dict[str, int]:
    """Options for a data set of any dimension: d itself."""
    return {"d": d}


def _d_is_fixed(dimension: int) -> Callable[[str, int], dict[str, int]]:
    """Options for a data set of fixed dimension: none, after checking that d matches."""

    def options(name: str, d: int) -> dict[str, int]:
        if d != dimension:
            raise ValueError(f"d={d} is not available for {name!r}: its dimension is fixed at d={dimension}")
        return {}

    return options


def _d_of_patches(name: str, d: int) -> dict[str, int]:
    """Options for image patches: the resolution r with d = 3 r^2."""
    r = math.isqrt(d // 3)
    if 3 * r * r != d:
        near = sorted({3 * max(r, 1) ** 2, 3 * (r + 1) ** 2})
        raise ValueError(
            f"d={d} is not available for {name!r}: d must be 3 r^2 for an integer resolution r "
            f"(nearest: {' or '.join(map(str, near))})"
        )
    return {"resolution": r}


@dataclass(frozen=True)
class Dataset:
    """A registered data set: the one place that knows its facts.

    Attributes:
        name: its key in :data:`DATASETS`.
        make: its ``make_<name>(n, *, generator, device, ...)`` function.
        options_for_d: how a dimension d maps to its options (raises for a d it cannot take).
        dimension: its fixed dimension, or None when d is free (or set by a resolution).
        largest_n: how many distinct points it has, or None when it draws as many as asked.
    """

    name: str
    make: Callable[..., Tensor]
    options_for_d: Callable[[str, int], dict[str, int]]
    dimension: int | None = None
    largest_n: int | None = None

    def dimensions(self, free: Sequence[int], resolutions: Sequence[int]) -> list[int]:
        """The dimensions a sweep visits: its own fixed d, 3 r^2 per resolution (patches), or ``free``."""
        if self.dimension is not None:
            return [self.dimension]
        if self.options_for_d is _d_of_patches:
            return sorted({3 * r * r for r in resolutions})
        return sorted(set(free))

    def check_n(self, n: int, name: str = "n") -> int:
        """``n`` if the data set has that many points, else a ValueError naming the largest."""
        if self.largest_n is not None and n > self.largest_n:
            raise ValueError(f"{name}={n} exceeds the {self.largest_n} points of {self.name!r}; "
                             f"use {name} <= {self.largest_n}")
        return n


def _fixed(name: str, make: Callable[..., Tensor], dimension: int, largest_n: int | None = None) -> Dataset:
    return Dataset(name, make, _d_is_fixed(dimension), dimension, largest_n)


DATASETS: dict[str, Dataset] = {
    "gaussian": Dataset("gaussian", make_gaussian, _d_is_free),
    "gaussian_mixture": Dataset("gaussian_mixture", make_gaussian_mixture, _d_is_free),
    "subspace": Dataset("subspace", make_subspace, _d_is_free),
    "simplex": Dataset("simplex", make_simplex, _d_is_free),
    "two_moons": _fixed("two_moons", make_two_moons, 2),
    "digits": _fixed("digits", make_digits, 64, largest_n=1797),
    "image_patches": Dataset("image_patches", make_image_patches, _d_of_patches),
    "cifar10": _fixed("cifar10", make_cifar10, 3072, largest_n=50_000),
}
"""The data sets by name."""


def dataset_names() -> list[str]:
    """The names of the registered data sets, sorted."""
    return sorted(DATASETS)


def make_dataset(
    name: str,
    n: int,
    *,
    d: int | None = None,
    generator: torch.Generator | None = None,
    device: str | torch.device | None = "auto",
    **options: object,
) -> Tensor:
    """n points of the data set ``name`` (see :data:`DATASETS`), of dimension ``d`` when given.

    ``d`` is translated into the set's own option (``d`` itself, or the ``resolution`` r of image
    patches with d = 3 r^2; fixed-dimension sets only accept their own d); ``options`` are passed
    to ``make_<name>`` (e.g. ``std``, ``k``, ``separation``, ``dtype``).

    Returns:
        (n, d) tensor on ``device``; see the ``make_<name>`` function for the scaling.

    Raises:
        ValueError: unknown name (the message lists the names and suggests the closest), a d the
            set cannot take, or an option ``make_<name>`` does not accept.
    """
    entry = DATASETS[check_choice(name, DATASETS, "name")]
    accepted = [p for p in inspect.signature(entry.make).parameters if p not in ("n", "generator", "device")]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"{name!r} does not take option(s) {', '.join(unknown)}; it takes {', '.join(accepted)}")
    if d is not None:
        from_d = entry.options_for_d(name, check_positive_int(d, "d"))
        clash = sorted(set(from_d) & set(options))
        if clash:
            raise ValueError(f"give d or {clash[0]} for {name!r}, not both")
        options = {**options, **from_d}
    return entry.make(n, generator=generator, device=device, **options)
