r"""Training-free fields that change the closed form a little: smoothed, patch-wise (local) and linear.

The exact closed form (:mod:`fmlib.closed_form`) only memorises: its posterior over the n training
points concentrates on one of them and the flow ends on it. Three small changes are known to give
fields that produce new samples without any training. Each class here has the interface of
:class:`fmlib.closed_form.ClosedFormField` (``velocity(x, t)``, ``posterior_mean(x, t)``, x (B, d),
t a float or a (B,) tensor in [0, 1], results (B, d) with the dtype and device of the data), so every
solver and metric of the package takes them as they are. Convention: :math:`x_t = (1 - t) x_0 + t x_1`,
:math:`u(x, t) = (D(x, t) - x) / (1 - t)` with :math:`D` the field's denoiser.

* :class:`SmoothedField`: the closed-form denoiser averaged over Gaussian perturbations of its input,

  .. math:: D_\sigma(x, t) = E_{\varepsilon \sim N(0, I)}\big[D(x + \sigma \varepsilon, t)\big],

  estimated by Monte Carlo. This is the form issue 17 gives for the smoothing of Scarvelis, Borde
  and Solomon (arXiv 2310.12395, "Closed-Form Diffusion Models"), who smooth the closed-form score
  of a diffusion model; their exact estimator (a nearest-neighbour one) is not reproduced here.
* :class:`PatchField`: each pixel is denoised from the posterior over training *patches* around it
  (Kamb & Ganguli, arXiv 2412.20292, their local and equivariant local score machines; Niedoba et
  al., arXiv 2411.19339): with :math:`\Pi_p x` the P x P patch of x centred at pixel p (all channels,
  zero outside the image) and :math:`c(\cdot)` the centre pixel of a patch,

  .. math::

      D(x, t)_p = \sum_{(i, q) \in Q(p)} w_{iq}\, c(\Pi_q y_i), \qquad
      w_{iq} = \operatorname{softmax}_{(i, q) \in Q(p)}
      \Big(-\frac{\|\Pi_p x - t\, \Pi_q y_i\|^2}{2 (1 - t)^2}\Big),

  with :math:`Q(p)` every training image i at every position q (``equivariant=True``, translation
  equivariant up to the boundary) or at the same position only, q = p (``equivariant=False``).
  The padded zeros take part in the distance, as in a convolutional network with zero padding:
  near the boundary, patches from the boundary fit best. When every pixel's patch covers the whole
  image (P = 2 max(H, W) - 1) and q = p, each distance is :math:`\|x - t y_i\|^2` and the field *is*
  the exact closed form, which memorises.
* :class:`LinearField`: the optimal field for the Gaussian :math:`N(\mu, \Sigma)` fitted to the data
  (the Wiener filter; issue 17 cites Lukoianov et al., arXiv 2509.09672, for its closeness to trained
  networks at small t),

  .. math:: D(x, t) = \mu + t\, \Sigma \big(t^2 \Sigma + (1 - t)^2 I\big)^{-1} (x - t \mu),

  evaluated through the eigendecomposition :math:`\Sigma = V \operatorname{diag}(\lambda) V^\top`,
  computed once in float64 (:math:`\mu`, :math:`\Sigma` the mean and the 1/n covariance of the data).
  It never memorises: its flow maps N(0, I) onto :math:`N(\mu, \Sigma)`.

Evaluation of the patch field. The logits of a chunk of training patches are one batched matrix
product (:math:`\|\Pi_p x - t \Pi_q y\|^2 = \|\Pi_p x\|^2 - 2 t \langle \Pi_p x, \Pi_q y \rangle +
t^2 \|\Pi_q y\|^2`, the first term cancels), the training patches are cut chunk by chunk
(a strided view of the padded images) and never all held at once, and the chunks are combined with a
running maximum, sum and weighted sum exactly as in :mod:`fmlib.closed_form`; the sum rides in the
weighted-sum product as an extra column of ones. Shifted logits are clamped before ``exp`` at the
same floors as there.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from fmlib._checks import as_time, check_chunk_size, check_data, check_float, check_points, check_positive_int
from fmlib.closed_form import ClosedFormField

__all__ = ["LinearField", "PatchField", "SmoothedField", "softmax_average"]

_EXP_FLOOR = {torch.float32: -87.0, torch.float64: -708.0}
"""Smallest shifted logit kept before ``exp`` (as in :mod:`fmlib.closed_form`)."""

CHUNK_ELEMENTS = 1 << 24
"""Size of the block of logits (query patches x training patches) that :class:`PatchField` aims for."""

QUERY_ROWS = 8192
"""Query patches per block in the equivariant patch field."""

CACHE_ELEMENTS = 1 << 25
"""A :class:`PatchField` keeps all its training patches (cut once) when they hold at most this many numbers."""


def _prepare(x: Tensor, t: float | Tensor, like: Tensor) -> tuple[Tensor, Tensor, Tensor, float | None]:
    """Checked ``x``; ``t`` and ``1 - t`` as (B,) tensors; ``t`` as a float when given as a number.

    ``1 - t`` of a float ``t`` is taken in double precision before the cast (as in ClosedFormField).
    """
    check_points(x, like)
    t_tensor = as_time(t, x.shape[0], x)
    if isinstance(t, (int, float)) and not isinstance(t, bool):
        return x, t_tensor, torch.full_like(t_tensor, 1.0 - float(t)), float(t)
    return x, t_tensor, 1.0 - t_tensor, None


def _check_below_one(t: Tensor, scalar: float | None) -> None:
    """ValueError when some t is 1, where the velocity divides by zero."""
    if (scalar >= 1) if scalar is not None else bool((t >= 1).any()):
        raise ValueError(
            "velocity is undefined at t = 1 (it divides by 1 - t); "
            "use posterior_mean(x, 1.0) for the limit, or integrate with fmlib.ode"
        )


def _velocity(denoised: Tensor, x: Tensor, gap: Tensor) -> Tensor:
    r""":math:`(D - x) / (1 - t)` in place in ``denoised``; ``gap`` is 1 - t, (B,)."""
    return denoised.sub_(x).div_(gap.unsqueeze(1))


def softmax_average(
    queries: Tensor, a: Tensor, b: Tensor, chunks: Iterator[tuple[Tensor, Tensor, Tensor]]
) -> Tensor:
    r"""Softmax-weighted averages of values over keys streamed in chunks, for G groups at once.

    .. math::

        \mathrm{out}_{gm} = \frac{\sum_j e^{\ell_{gmj}} v_{gj}}{\sum_j e^{\ell_{gmj}}}, \qquad
        \ell_{gmj} = a_m \langle q_{gm}, k_{gj} \rangle - b_m \|k_{gj}\|^2,

    with a running maximum over the chunks (a chunk that raises it rescales the running sums by
    ``exp(m_old - m_new)``); shifted logits are clamped at -87 (float32) / -708 (float64) before
    ``exp``. With :math:`a = t / (1 - t)^2`, :math:`b = t^2 / (2 (1 - t)^2)` the weights are the
    posterior :math:`\operatorname{softmax}_j(-\|q - t k_j\|^2 / (2 (1 - t)^2))`.

    Args:
        queries: (G, M, k).
        a, b: (M,) coefficients per query row.
        chunks: an iterator of ``(keys (G, c, k), key_sq (G, c), values (G, c, m + 1))`` whose values'
            last column is all ones (it carries the normaliser); c may vary between chunks.

    Returns:
        (G, M, m).
    """
    scaled = queries * a.view(1, -1, 1)
    neg_b = -b.view(1, -1, 1)
    floor = _EXP_FLOOR[queries.dtype]
    running_max = weighted = None  # weighted is kept transposed, (G, m + 1, M): a faster product when m is small
    for keys, key_sq, values in chunks:
        logits = torch.bmm(scaled, keys.transpose(1, 2)).addcmul_(neg_b, key_sq.unsqueeze(1))
        chunk_max = logits.amax(dim=2, keepdim=True)
        if running_max is None:
            running_max = chunk_max
            weights = logits.sub_(running_max).clamp_(min=floor).exp_()
            weighted = torch.bmm(values.transpose(1, 2), weights.transpose(1, 2))
            continue
        new_max = torch.maximum(running_max, chunk_max)
        weighted.mul_((running_max - new_max).exp_().transpose(1, 2))
        running_max = new_max
        weights = logits.sub_(new_max).clamp_(min=floor).exp_()
        weighted.baddbmm_(values.transpose(1, 2), weights.transpose(1, 2))
    if weighted is None:
        raise ValueError("softmax_average needs at least one chunk of keys")
    return (weighted[:, :-1] / weighted[:, -1:]).transpose(1, 2)


def _nearest_values(queries: Tensor, chunks: Iterator[tuple[Tensor, Tensor, Tensor]]) -> Tensor:
    r"""The value of the nearest key for each query (the t = 1 limit of :func:`softmax_average`).

    Ranks keys by :math:`\|k\|^2 - 2 \langle q, k \rangle`; ties go to the earlier chunk. Same
    arguments as :func:`softmax_average` (the ones column of the values is dropped); returns (G, M, m).
    """
    best = best_value = None
    for keys, key_sq, values in chunks:
        score = torch.baddbmm(key_sq.unsqueeze(1), queries, keys.transpose(1, 2), alpha=-2.0)
        value, index = score.min(dim=2)
        chosen = values[..., :-1].gather(1, index.unsqueeze(2).expand(-1, -1, values.shape[2] - 1))
        if best is None:
            best, best_value = value, chosen
            continue
        better = value < best
        best = torch.where(better, value, best)
        best_value = torch.where(better.unsqueeze(2), chosen, best_value)
    if best_value is None:
        raise ValueError("_nearest_values needs at least one chunk of keys")
    return best_value


class SmoothedField:
    r"""The closed-form denoiser averaged over Gaussian perturbations of its input (Monte Carlo).

    .. math::

        D_\sigma(x, t) \approx \frac1K \sum_{k=1}^K D(x + \sigma \varepsilon_k, t), \qquad
        u_\sigma(x, t) = \frac{D_\sigma(x, t) - x}{1 - t}, \qquad \varepsilon_k \sim N(0, I_d),

    with D the exact denoiser of :class:`fmlib.closed_form.ClosedFormField`. Every call draws fresh
    :math:`\varepsilon_k` (K per query row) from the field's own generator, seeded by ``seed``: two
    fields with the same seed called in the same order draw the same perturbations. The K
    perturbed copies of a batch go through the closed form as one batch of K B rows (one streaming
    pass over the data). :math:`\sigma = 0` is the exact closed form (no draw is made).

    Args:
        data: (n, d) training points, float32 or float64, on any device.
        sigma: standard deviation of the perturbation, >= 0, in the units of x.
        n_samples: K >= 1, perturbations per query point.
        seed: seed of the generator of the perturbations.
        chunk_size: rows of data per chunk of the closed form (None: its default).
    """

    def __init__(self, data: Tensor, sigma: float, *, n_samples: int = 16, seed: int = 0,
                 chunk_size: int | None = None) -> None:
        self.exact = ClosedFormField(data, chunk_size=chunk_size)
        self.sigma = check_float(sigma, "sigma", low=0.0)
        self.n_samples = check_positive_int(n_samples, "n_samples")
        self.generator = torch.Generator(device=data.device).manual_seed(int(seed))

    @property
    def data(self) -> Tensor:
        """The (n, d) training points."""
        return self.exact.data

    def posterior_mean(self, x: Tensor, t: float | Tensor) -> Tensor:
        r"""The smoothed denoiser :math:`D_\sigma(x, t)`, (B, d); at t = 1 the average of nearest points."""
        x, t_tensor, _, scalar = _prepare(x, t, self.data)
        if self.sigma == 0.0:
            return self.exact.posterior_mean(x, t)
        k, (batch, d) = self.n_samples, x.shape
        eps = torch.randn(k, batch, d, generator=self.generator, dtype=x.dtype, device=x.device)
        perturbed = (x.unsqueeze(0) + self.sigma * eps).reshape(k * batch, d)
        times = scalar if scalar is not None else t_tensor.repeat(k)
        return self.exact.posterior_mean(perturbed, times).reshape(k, batch, d).mean(dim=0)

    def velocity(self, x: Tensor, t: float | Tensor) -> Tensor:
        r""":math:`u_\sigma(x, t) = (D_\sigma(x, t) - x) / (1 - t)`, (B, d); ValueError at t = 1."""
        x, t_tensor, gap, scalar = _prepare(x, t, self.data)
        _check_below_one(t_tensor, scalar)
        return _velocity(self.posterior_mean(x, t), x, gap)


def _image_shape(shape: Sequence[int], d: int) -> tuple[int, int, int]:
    """``shape`` as (C, H, W), checked against the data's dimension d = C H W."""
    dims = tuple(shape)
    if len(dims) == 2:
        dims = (1, *dims)
    if len(dims) != 3 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in dims):
        raise ValueError(f"image_shape must be (H, W) or (C, H, W) of positive integers, got {shape!r}")
    if math.prod(dims) != d:
        raise ValueError(
            f"image_shape={shape!r} has {math.prod(dims)} entries but the data have d={d}; they must match"
        )
    return dims


class PatchField:
    r"""Each pixel denoised from the posterior over training patches around it (local score machines).

    .. math::

        D(x, t)_p = \sum_{(i, q) \in Q(p)} \operatorname{softmax}_{(i, q)}
        \Big(-\frac{\|\Pi_p x - t\, \Pi_q y_i\|^2}{2 (1 - t)^2}\Big)\, c(\Pi_q y_i),
        \qquad u(x, t) = \frac{D(x, t) - x}{1 - t},

    where :math:`\Pi_p x` is the P x P patch of x centred at pixel p (all channels, zero outside the
    image), :math:`c` takes its centre pixel, and :math:`Q(p)` holds every training image at every
    position (``equivariant=True``, the equivariant local score machine of Kamb & Ganguli, arXiv
    2412.20292) or at position p only (``equivariant=False``, their local score machine). With
    ``equivariant=False`` and P = 2 max(H, W) - 1 each patch holds the whole image and the field is
    the exact closed form (module docstring). At t = 1 each pixel takes the centre of its nearest
    training patch.

    Cost per call: B H W query patches against n H W (equivariant) or n (local, per position)
    training patches of C P^2 numbers, in chunks of ``chunk_size`` training images.

    Args:
        data: (n, d) training images, flattened row-major from (C, H, W), float32 or float64.
        image_shape: (H, W) or (C, H, W), with C H W = d.
        patch_size: P, odd (the patch needs a centre), 1 <= P <= 2 max(H, W) - 1 (at that size every
            pixel's patch already covers the whole image; a larger one would only add padding).
        equivariant: patches from every position (True) or from the same position only (False).
        chunk_size: training images per chunk (None: as many as keep a block of logits near 2^24
            numbers).
    """

    def __init__(self, data: Tensor, image_shape: Sequence[int], patch_size: int, *, equivariant: bool = True,
                 chunk_size: int | None = None) -> None:
        self.data = check_data(data)
        self.shape = _image_shape(image_shape, data.shape[1])
        _, height, width = self.shape
        largest = 2 * max(height, width) - 1
        if isinstance(patch_size, bool) or not isinstance(patch_size, int) or patch_size < 1:
            raise ValueError(f"patch_size must be a positive odd integer, got {patch_size!r}")
        if patch_size % 2 == 0:
            raise ValueError(f"patch_size={patch_size} is even; a patch needs a centre pixel: use {patch_size - 1} "
                             f"or {patch_size + 1}")
        if patch_size > largest:
            raise ValueError(f"patch_size={patch_size} is larger than the image allows: at {largest} = "
                             f"2 max(H, W) - 1 every pixel's patch already covers the whole {height} x {width} image; "
                             f"use patch_size <= {largest}")
        if not isinstance(equivariant, bool):
            raise ValueError(f"equivariant must be True or False, got {equivariant!r}")
        self.patch_size, self.equivariant = patch_size, equivariant
        self.chunk_size = check_chunk_size(chunk_size)
        self._cache: tuple[Tensor, Tensor, Tensor] | None = None

    @property
    def n(self) -> int:
        """Number of training images."""
        return self.data.shape[0]

    @property
    def pixels(self) -> int:
        """H W, the number of patch centres per image."""
        return self.shape[1] * self.shape[2]

    def _patches(self, images: Tensor) -> Tensor:
        """Patches of flattened images (N, d) centred at every pixel: (N, H W, C P^2), zero padded.

        Cut as a strided view of the padded images and copied once (``F.unfold`` does the same,
        several times slower on a CPU); each patch is flattened channel-major, (C, P, P).
        """
        channels, height, width = self.shape
        r = self.patch_size // 2
        padded = F.pad(images.reshape(-1, channels, height, width), (r, r, r, r))
        s_image, s_channel, s_row, s_col = padded.stride()
        view = padded.as_strided(
            (padded.shape[0], height, width, channels, self.patch_size, self.patch_size),
            (s_image, s_row, s_col, s_channel, s_row, s_col),
        )
        return view.reshape(padded.shape[0], height * width, channels * self.patch_size**2)

    def _images_per_chunk(self, query_rows: int) -> int:
        if self.chunk_size is not None:
            return self.chunk_size
        per_image = self.pixels * query_rows  # logits per training image: H W keys x rows, or H W groups x B
        return max(1, min(self.n, CHUNK_ELEMENTS // max(per_image, 1)))

    def _keys(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Training patches of ``images``: keys (G, c, C P^2), squared norms (G, c), centres + ones (G, c, C + 1).

        G = 1 with c = images x H W (equivariant), or G = H W with c = images (local).
        """
        patches = self._patches(images)  # (images, HW, C P^2)
        keys = patches.reshape(1, -1, patches.shape[2]) if self.equivariant else patches.transpose(0, 1)
        keys = keys.contiguous()
        centres = keys[..., self.patch_size**2 // 2 :: self.patch_size**2]  # the centre pixel of each channel
        ones = torch.ones(*centres.shape[:2], 1, dtype=keys.dtype, device=keys.device)
        return keys, keys.square().sum(dim=2), torch.cat([centres, ones], dim=2)

    def _chunks(self, images_per_chunk: int) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        """:meth:`_keys` chunk by chunk of ``images_per_chunk`` training images.

        When all training patches fit in :data:`CACHE_ELEMENTS` numbers they are cut once, on the
        first call, and the chunks are views of them; otherwise each chunk is cut when needed.
        """
        size = self.n * self.pixels * self.shape[0] * self.patch_size**2
        if self._cache is None and size <= CACHE_ELEMENTS:
            self._cache = self._keys(self.data)
        for start in range(0, self.n, images_per_chunk):
            stop = min(start + images_per_chunk, self.n)
            if self._cache is None:
                yield self._keys(self.data[start:stop])
                continue
            rows = slice(start * self.pixels, stop * self.pixels) if self.equivariant else slice(start, stop)
            keys, key_sq, values = self._cache
            yield keys[:, rows], key_sq[:, rows], values[:, rows]

    def _query_patches(self, x: Tensor) -> Tensor:
        """(G, M, C P^2): (1, B H W, .) equivariant, (H W, B, .) local."""
        patches = self._patches(x)
        if self.equivariant:
            return patches.reshape(1, -1, patches.shape[2])
        return patches.transpose(0, 1).contiguous()

    def _to_images(self, centres: Tensor, batch: int) -> Tensor:
        """Centre values (G, M, C) back to flattened images (B, C H W)."""
        channels = self.shape[0]
        per_pixel = centres.reshape(batch, self.pixels, channels) if self.equivariant else centres.permute(1, 0, 2)
        return per_pixel.permute(0, 2, 1).reshape(batch, channels * self.pixels)

    def _denoise(self, x: Tensor, t: Tensor, gap: Tensor) -> Tensor:
        """The denoiser for rows with t < 1 (t, gap = 1 - t as (B,) tensors)."""
        batch = x.shape[0]
        inv = 1.0 / gap**2
        a, b = t * inv, 0.5 * t * t * inv
        if not self.equivariant:
            queries = self._query_patches(x)
            out = softmax_average(queries, a, b, self._chunks(self._images_per_chunk(batch)))
            return self._to_images(out, batch)
        a, b = a.repeat_interleave(self.pixels), b.repeat_interleave(self.pixels)
        queries = self._query_patches(x)
        rows = min(queries.shape[1], QUERY_ROWS)
        per_chunk = self._images_per_chunk(rows)
        parts = [softmax_average(queries[:, s : s + rows], a[s : s + rows], b[s : s + rows], self._chunks(per_chunk))
                 for s in range(0, queries.shape[1], rows)]
        return self._to_images(torch.cat(parts, dim=1), batch)

    def _nearest(self, x: Tensor) -> Tensor:
        """The t = 1 limit: each pixel takes the centre of its nearest training patch."""
        queries = self._query_patches(x)
        return self._to_images(_nearest_values(queries, self._chunks(self._images_per_chunk(min(
            queries.shape[1], QUERY_ROWS)))), x.shape[0])

    def posterior_mean(self, x: Tensor, t: float | Tensor) -> Tensor:
        r"""The patch denoiser :math:`D(x, t)`, (B, d)."""
        x, t_tensor, gap, scalar = _prepare(x, t, self.data)
        if scalar is not None:
            return self._denoise(x, t_tensor, gap) if scalar < 1 else self._nearest(x)
        inner = t_tensor < 1
        out = torch.empty_like(x)
        if bool(inner.any()):
            out[inner] = self._denoise(x[inner], t_tensor[inner], gap[inner])
        if not bool(inner.all()):
            out[~inner] = self._nearest(x[~inner])
        return out

    def velocity(self, x: Tensor, t: float | Tensor) -> Tensor:
        r""":math:`u(x, t) = (D(x, t) - x) / (1 - t)`, (B, d); ValueError at t = 1."""
        x, t_tensor, gap, scalar = _prepare(x, t, self.data)
        _check_below_one(t_tensor, scalar)
        return _velocity(self._denoise(x, t_tensor, gap), x, gap)


class LinearField:
    r"""The optimal field of the Gaussian fitted to the data (the Wiener filter).

    .. math::

        D(x, t) = \mu + V \operatorname{diag}\Big(\frac{t \lambda_k}{t^2 \lambda_k + (1 - t)^2}\Big)
        V^\top (x - t \mu), \qquad u(x, t) = \frac{D(x, t) - x}{1 - t},

    with :math:`\mu = \frac1n \sum_i y_i`, :math:`\Sigma = \frac1n \sum_i (y_i - \mu)(y_i - \mu)^\top
    = V \operatorname{diag}(\lambda) V^\top`, accumulated over chunks of the data in float64 and
    decomposed once (``torch.linalg.eigh``). Eigenvalues below :math:`d\, \epsilon\, \lambda_{max}`
    (round-off) are set to 0; at t = 1 the coefficient is its limit, :math:`1 / \lambda_k` or 0, so
    :math:`D(x, 1)` projects x onto the affine span of the data.

    Args:
        data: (n, d) training points, float32 or float64, on any device.
        chunk_size: rows of data per chunk of the accumulation (default 8192).
    """

    def __init__(self, data: Tensor, *, chunk_size: int | None = None) -> None:
        self.data = check_data(data)
        chunk = check_chunk_size(chunk_size) or 8192
        total = torch.zeros(data.shape[1], dtype=torch.float64, device=data.device)
        for y in data.split(chunk):
            total += y.double().sum(dim=0)
        mean = total / data.shape[0]
        second = torch.zeros(data.shape[1], data.shape[1], dtype=torch.float64, device=data.device)
        for y in data.split(chunk):
            centred = y.double() - mean
            second.addmm_(centred.T, centred)
        eigenvalues, eigenvectors = torch.linalg.eigh(second / data.shape[0])
        tolerance = data.shape[1] * torch.finfo(torch.float64).eps * eigenvalues.abs().max()
        self.eigenvalues = torch.where(eigenvalues > tolerance, eigenvalues, torch.zeros_like(eigenvalues))
        self.mean64, self.mean = mean, mean.to(data.dtype)
        self.eigenvectors = eigenvectors.to(data.dtype)

    def gains(self, t: Tensor) -> Tensor:
        r""":math:`t \lambda_k / (t^2 \lambda_k + (1 - t)^2)` for each row of t (B,): (B, d), dtype of the data."""
        t64 = t.double().unsqueeze(1)
        lam = self.eigenvalues.unsqueeze(0)
        denominator = t64**2 * lam + (1.0 - t64) ** 2
        safe = torch.where(denominator > 0, denominator, torch.ones_like(denominator))
        return torch.where(denominator > 0, t64 * lam / safe, torch.zeros_like(safe)).to(self.data.dtype)

    def posterior_mean(self, x: Tensor, t: float | Tensor) -> Tensor:
        r"""The Wiener denoiser :math:`D(x, t)`, (B, d)."""
        x, t_tensor, _, _ = _prepare(x, t, self.data)
        centred = x - t_tensor.unsqueeze(1) * self.mean
        coefficients = (centred @ self.eigenvectors).mul_(self.gains(t_tensor))
        return torch.addmm(self.mean.unsqueeze(0), coefficients, self.eigenvectors.T)

    def velocity(self, x: Tensor, t: float | Tensor) -> Tensor:
        r""":math:`u(x, t) = (D(x, t) - x) / (1 - t)`, (B, d); ValueError at t = 1."""
        x, t_tensor, gap, scalar = _prepare(x, t, self.data)
        _check_below_one(t_tensor, scalar)
        return _velocity(self.posterior_mean(x, t), x, gap)
