r"""Velocity fields split along the data's span: OSDNet in *our rendering*, with its basis and rank tools.

Gao & Li (arXiv 2410.23594, Section 5) describe OSDNet as a velocity network split into a part
inside the span of the training data, with a basis from an SVD of the data matrix, and an
off-subspace part modelled with a diagonal matrix. Our copy of the paper has its mathematics
stripped (``shared/notes/gao_li_2410.23594.md``), so the parametrisation below is **our rendering**,
consistent with that description, not the paper's definition:

.. math::

    v(x, t) = U f(U^\top x, t) + (I - U U^\top)\, \operatorname{diag}(a(t))\, x,
    \qquad a(t) = \frac{b(t)}{1 - t},

with :math:`U \in \mathbb{R}^{d \times k}` orthonormal (:math:`U^\top U = I_k`) spanning the data,
:math:`f: \mathbb{R}^k \times [0, 1] \to \mathbb{R}^k` a small network, and :math:`b(t)` learned,
piecewise linear in t on a fixed grid of knots, shared by all coordinates or one per coordinate.
Writing :math:`a = b / (1 - t)` is also our choice: under the optimal field
:math:`u^*` the off-span part of :math:`x_t` is :math:`(1 - t) P x_0` and its velocity
:math:`-P x_0`, so the optimal coefficient is :math:`a^*(t) = -1/(1 - t)`, i.e. :math:`b^* \equiv -1`
(``notebooks/05_subspace.md``), and :math:`b` stays of order one where :math:`a` does not. b starts at 0.

Also here: :func:`numerical_rank` (singular values against a relative tolerance) and
:func:`span_basis` (the SVD basis, computed once, with its checks; :func:`span_svd` and
:func:`sketched_span` compute it, by a certified random sketch where the data lie on a
low-dimensional subspace).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from fmlib._checks import check_choice, check_data, check_positive_int
from fmlib.nets import VelocityMLP, register_net

__all__ = ["OSDNet", "RankReport", "SpanSVD", "check_basis", "make_osdnet", "numerical_rank", "sketched_span",
           "span_basis", "span_svd"]


@dataclass(frozen=True)
class RankReport:
    r"""The numerical rank of a data matrix.

    Attributes:
        rank: the number of singular values above ``tolerance``.
        singular_values: (r,) float64 CPU tensor, decreasing: all min(n, d) of them when computed
            exactly, the sketch's w >= rank leading ones when :func:`span_svd` certified a sketch.
        tolerance: the absolute threshold, ``rtol`` times the largest singular value.
        centred: whether the mean was subtracted first (then the rank is that of the affine hull).
    """

    rank: int
    singular_values: Tensor
    tolerance: float
    centred: bool


def numerical_rank(data: Tensor, *, centre: bool = False, rtol: float | None = None) -> RankReport:
    r"""The numerical rank of the (n, d) matrix of ``data``, in float64.

    .. math::

        \operatorname{rank} = \#\{ i : \sigma_i > \text{rtol} \cdot \sigma_1 \}, \qquad
        \text{rtol} = \max(n, d)\, \varepsilon_{\text{dtype}} \ \text{by default}

    (numpy's ``matrix_rank`` convention, with the machine epsilon of the data's dtype: float32 data
    carry round-off of relative size 1e-7, which a float64 tolerance would count as rank). With
    ``centre=True`` the column means are subtracted
    first: the rank of the affine hull, e.g. of the digits after centring. The linear span, which
    the optimal field's samples stay in, is that of the uncentred data (``centre=False``). The
    singular values come from :func:`span_svd`: a certified sketch for data of low rank, else exactly.

    Args:
        data: (n, d) float32 or float64, any device.
        centre: subtract the mean point first.
        rtol: relative tolerance in (0, 1), or None for the default.

    Returns:
        a :class:`RankReport`.
    """
    check_data(data)
    if rtol is None:
        rtol = max(data.shape) * torch.finfo(data.dtype).eps
    x = data.detach().to(dtype=torch.float64)
    if centre:
        x = x - x.mean(dim=0, keepdim=True)
    svd = span_svd(x, rtol=rtol)
    sigma = svd.singular_values.cpu()
    return RankReport(rank=svd.rank, singular_values=sigma, tolerance=float(svd.rtol * sigma[0]), centred=centre)


_OVERSAMPLING = 8
"""Extra columns of the random sketch beyond k (Halko, Martinsson & Tropp 2011, Section 4.2, suggest 5 to 10)."""
_GRAM_RTOL = 1e-7
"""Smallest rank tolerance the float64 Gram matrix resolves with a margin (its error: 1.5e-8 of sigma_1)."""


def span_basis(data: Tensor, k: int | None = None, *, rtol: float | None = None) -> Tensor:
    r"""An orthonormal basis :math:`U` (d, k) of the span of the data rows: its leading k right singular vectors.

    .. math:: Y = \tilde U \Sigma V^\top \ (\text{SVD of } Y \in \mathbb{R}^{n \times d}), \qquad U = V_{:, 1:k}

    Computed once, in float64, in one of two ways:

    * **a certified sketch** (:func:`sketched_span`) when the sketch width :math:`w = k + 8` (k given)
      or :math:`w = 16, 32, \dots` (k None) is at most :math:`\min(n, d) / 6`: the SVD of Y restricted to
      a random w-dimensional slice of its row space, kept only if the residual certifies that Y has no
      singular value above the rank tolerance outside that slice. Cost :math:`6 n d w` flops, for
      data on a low-dimensional subspace (the OSDNet setting) a small fraction of one pass of the
      closed form over B = n queries (:math:`2 n^2 d`);
    * **the exact decomposition** otherwise (or when the certificate fails): LAPACK's thin SVD at
      float64's default tolerance; at float32's (any rtol >= 1e-7) the eigendecomposition of the
      float64 Gram matrix, :math:`Y^\top Y = V \Sigma^2 V^\top` when n >= d, else
      :math:`Y Y^\top = \tilde U \Sigma^2 \tilde U^\top` and :math:`V = Y^\top \tilde U \Sigma^{-1}`
      (re-orthonormalised by a QR); its singular values carry
      an error of about :math:`\sqrt{\varepsilon_{64}} \sigma_1 \approx 1.5 \cdot 10^{-8} \sigma_1`, below
      such a tolerance. This costs :math:`n d \min(n, d)` flops and an eigendecomposition of size
      :math:`\min(n, d)`: up to about three passes of the closed form when n is close to d (data of high
      rank, where OSDNet has little to split off).

    Ratios against one pass of the closed form: ``benchmarks/span_basis.py``.

    Args:
        data: (n, d) training points (the linear span: not centred).
        k: the subspace dimension, 1 <= k <= min(d, numerical rank); None: the numerical rank.
        rtol: relative tolerance of :func:`numerical_rank` (default: max(n, d) times the dtype's epsilon).

    Returns:
        (d, k) float64 tensor on the data's device, :math:`U^\top U = I_k`.

    Raises:
        ValueError: k > d (before any work), or k larger than the data's numerical rank.
    """
    check_data(data)
    if k is not None:
        k = check_positive_int(k, "k")
        if k > data.shape[1]:
            raise ValueError(f"k={k} exceeds the dimension d={data.shape[1]}; a subspace of R^d has dimension k <= d")
    svd = span_svd(data, k, rtol=rtol)
    if k is None:
        k = svd.rank
    if k > svd.rank:
        raise ValueError(
            f"k={k} is larger than the numerical rank {svd.rank} of the data (singular values below "
            f"{svd.rtol:.1e} x the largest count as zero); a basis of the span has at most {svd.rank} vectors: "
            f"use k <= {svd.rank}"
        )
    return svd.vectors[:, :k].contiguous()


@dataclass(frozen=True)
class SpanSVD:
    r"""The leading part of the SVD of a data matrix, as :func:`span_svd` computed it.

    Attributes:
        vectors: (d, r) float64, orthonormal leading right singular vectors, r >= ``rank``.
        singular_values: (r,) float64, decreasing.
        rank: the numerical rank, ``#{sigma_i > rtol * sigma_1}``.
        rtol: the relative tolerance used.
        sketched: True when a certified sketch gave it (:func:`sketched_span`), False for the exact decomposition.
    """

    vectors: Tensor
    singular_values: Tensor
    rank: int
    rtol: float
    sketched: bool


def span_svd(data: Tensor, k: int | None = None, *, rtol: float | None = None) -> SpanSVD:
    r"""The leading right singular vectors of the (n, d) data, by a certified sketch or exactly (:func:`span_basis`).

    The sketch is tried with width k + 8 (k given) or 16, 32, ... (k None) while 6 times the width is at
    most min(n, d), the range where it is cheaper than the exact decomposition. The exact method is
    the eigendecomposition of the float64 Gram matrix when rtol >= 1e-7 (its singular values carry an
    error of about :math:`\sqrt{\varepsilon_{64}} \sigma_1 = 1.5 \cdot 10^{-8} \sigma_1`, so it resolves
    such a tolerance; float32's default is at least :math:`2.4 \cdot 10^{-7}`), else LAPACK's thin SVD.
    """
    check_data(data)
    n, d = data.shape
    if rtol is None:
        rtol = max(n, d) * torch.finfo(data.dtype).eps
    elif not 0.0 < rtol < 1.0:
        raise ValueError(f"rtol must lie in (0, 1), got {rtol!r}")
    x = data.detach().to(dtype=torch.float64)
    width = 16 if k is None else k + _OVERSAMPLING
    while 6 * width <= min(n, d):
        sketch = sketched_span(x, width, rtol=rtol)
        if sketch is not None:
            vectors, sigma = sketch
            return SpanSVD(vectors, sigma, int((sigma > rtol * sigma[0]).sum()), rtol, sketched=True)
        if k is not None:  # k + 8 columns did not hold the data: their rank is above the sketch's
            break
        width *= 2
    vectors, sigma = _exact_span(x, rtol=rtol, gram=rtol >= _GRAM_RTOL)
    return SpanSVD(vectors, sigma, int((sigma > rtol * sigma[0]).sum()), rtol, sketched=False)


def sketched_span(x: Tensor, width: int, *, rtol: float, seed: int = 0) -> tuple[Tensor, Tensor] | None:
    r"""The SVD of Y on a random w-dimensional slice of its row space, if a residual certifies it; else None.

    .. math::

        Q = \operatorname{qr}(Y^\top G), \quad C = Y Q = \tilde W \Sigma W^\top, \quad
        E = Y - C Q^\top, \qquad \text{certified when } \|E\|_F \le \text{rtol}\, \sigma_1(C)

    with G an (n, w) standard Gaussian matrix (Halko, Martinsson & Tropp 2011, Algorithms 4.1 and
    5.1). Q spans a slice of the row space of Y, so every singular value of Y outside it is at most
    :math:`\|E\|_2 \le \|E\|_F`; under the certificate Y has numerical rank at most w, and its
    singular values differ from those of C, and its leading right singular vectors from those of
    :math:`Q W`, by no more than the rank tolerance (Weyl, Wedin). Data of rank at most w pass with
    a residual at the level of round-off; data of higher rank fail, and the caller falls back to
    the exact decomposition. Cost: three (n, d, w) products, a QR of (d, w) and an SVD of (n, w).

    Args:
        x: (n, d) float64 data.
        width: sketch width w, 1 <= w <= min(n, d).
        rtol: the relative rank tolerance the residual must meet.
        seed: seed of G (fixed: the basis is a deterministic function of the data).

    Returns:
        ``(vectors, sigma)``: (d, w) orthonormal right singular vectors and their (w,) decreasing
        singular values, or None when the residual exceeds the tolerance.
    """
    generator = torch.Generator(device=x.device).manual_seed(seed)
    g = torch.randn(x.shape[0], width, generator=generator, dtype=x.dtype, device=x.device)
    q = torch.linalg.qr(x.T @ g).Q  # (d, w)
    c = x @ q  # (n, w)
    _, sigma, wh = torch.linalg.svd(c, full_matrices=False)
    if not torch.linalg.matrix_norm(torch.addmm(x, c, q.T, alpha=-1.0)) <= rtol * sigma[0]:  # ||Y - C Q^T||_F
        return None
    return q @ wh.T, sigma


def _exact_span(x: Tensor, *, rtol: float, gram: bool) -> tuple[Tensor, Tensor]:
    r"""Right singular vectors and singular values of the float64 x: thin SVD, or the eigh of its Gram matrix.

    With ``gram`` and n < d the eigenvectors of :math:`x x^\top` are mapped to the row space,
    :math:`V = x^\top \tilde U \Sigma^{-1}` (re-orthonormalised by a QR), for the singular values above
    the tolerance only (the others have no direction to map).
    """
    if not gram:
        _, sigma, vh = torch.linalg.svd(x, full_matrices=False)
        return vh.T, sigma
    n, d = x.shape
    eigenvalues, eigenvectors = torch.linalg.eigh(x.T @ x if n >= d else x @ x.T)
    sigma, vectors = eigenvalues.flip(0).clamp(min=0.0).sqrt(), eigenvectors.flip(1)
    if n >= d:
        return vectors, sigma
    kept = int((sigma > rtol * sigma[0]).sum())
    return torch.linalg.qr(x.T @ (vectors[:, :kept] / sigma[:kept])).Q, sigma[:kept]


def check_basis(basis: Tensor, *, atol: float = 1e-5) -> Tensor:
    r"""Check that ``basis`` is a (d, k) matrix with k <= d, of full column rank and orthonormal columns.

    Orthonormal means :math:`\max_{ij} |(U^\top U - I_k)_{ij}| \le` ``atol``.

    Raises:
        ValueError: not 2-D or not floating; k > d; rank-deficient (a smallest singular value below
            ``atol``); not orthonormal. Each message says how to obtain a valid basis.
    """
    if not isinstance(basis, Tensor) or basis.dim() != 2 or not basis.is_floating_point():
        raise ValueError(f"basis must be a floating (d, k) tensor, got {getattr(basis, 'shape', type(basis))}")
    d, k = basis.shape
    if k == 0:
        raise ValueError("basis has k = 0 columns; expected 1 <= k <= d")
    if k > d:
        raise ValueError(f"basis has k={k} columns in dimension d={d}; k > d vectors cannot be a basis: use k <= d")
    u = basis.detach().double()
    sigma = torch.linalg.svdvals(u)
    if float(sigma[-1]) < atol:
        raise ValueError(
            f"basis is rank-deficient (smallest singular value {float(sigma[-1]):.2e} < {atol:g}): its columns "
            "are linearly dependent; build it with span_basis(data, k) with k <= the data's rank"
        )
    error = float((u.T @ u - torch.eye(k, dtype=u.dtype, device=u.device)).abs().max())
    if error > atol:
        raise ValueError(
            f"basis is not orthonormal (max |U^T U - I| = {error:.2e} > {atol:g}); orthonormalise it "
            "(torch.linalg.qr) or build it with span_basis(data, k)"
        )
    return basis


class OSDNet(nn.Module):
    r"""OSDNet, **our rendering**: an in-span network plus a diagonal off-span part (module docstring).

    .. math::

        v(x, t) = U f(U^\top x, t) + (I - U U^\top)\, \operatorname{diag}(a(t))\, x, \qquad
        a(t) = \frac{b(t)}{\max(1 - t,\ 10^{-6})}

    ``f`` is :class:`fmlib.nets.VelocityMLP` in dimension k (input :math:`[z, t, \phi(t)]`). ``b`` is
    piecewise linear in t on ``knots`` equally spaced knots of [0, 1], one value per knot
    (``coefficients="shared"``) or one per knot and coordinate (``"coordinate"``), starting at 0. The clamp of 1 - t
    only matters at t = 1, where the denoiser form :math:`x + (1 - t) v` of the last solver step stays finite.

    Args:
        basis: (d, k) orthonormal basis of the data's span (:func:`span_basis`), checked by
            :func:`check_basis`; stored as a float32 buffer. A list of lists is accepted (so that
            :mod:`fmlib.train` can key a checkpoint by it).
        width, depth, activation, time_features: of the in-span network f.
        coefficients: ``"shared"`` (one b(t)) or ``"coordinate"`` (d of them).
        knots: number of knots of b, >= 2.
    """

    basis: Tensor

    def __init__(
        self,
        basis: Tensor | list[list[float]],
        *,
        width: int = 64,
        depth: int = 2,
        activation: str = "silu",
        time_features: int = 16,
        coefficients: str = "shared",
        knots: int = 17,
    ) -> None:
        super().__init__()
        if not isinstance(basis, Tensor):
            basis = torch.tensor(basis, dtype=torch.float64)
        check_basis(basis)
        d, k = basis.shape
        check_choice(coefficients, ("shared", "coordinate"), "coefficients")
        knots = check_positive_int(knots, "knots")
        if knots < 2:
            raise ValueError(f"knots must be >= 2 (b(t) is piecewise linear between knots), got {knots}")
        self.register_buffer("basis", basis.detach().to(torch.float32).clone())
        self.inner = VelocityMLP(k, width=width, depth=depth, activation=activation, time_features=time_features)
        self.knots = knots
        self.b = nn.Parameter(torch.zeros(1 if coefficients == "shared" else d, knots))

    def coefficient(self, t: Tensor) -> Tensor:
        r""":math:`b(t)`, (B, 1) shared or (B, d) per coordinate, for times ``t`` (B,) in [0, 1]."""
        position = t.to(self.b.dtype).clamp(0.0, 1.0) * (self.knots - 1)
        left = position.floor().long().clamp(max=self.knots - 2)
        weight = (position - left).unsqueeze(1)
        return (1.0 - weight) * self.b[:, left].T + weight * self.b[:, left + 1].T

    def off_span_rate(self, t: Tensor) -> Tensor:
        r""":math:`a(t) = b(t) / \max(1 - t, 10^{-6})`, (B, 1) or (B, d); optimal :math:`-1/(1 - t)`."""
        gap = (1.0 - t.to(self.b.dtype)).clamp(min=1e-6).unsqueeze(1)
        return self.coefficient(t) / gap

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        """The velocity at ``x`` (B, d) and times ``t`` (B,), shape (B, d)."""
        u = self.basis.to(x.dtype)
        inside = self.inner(x @ u, t) @ u.T
        scaled = self.off_span_rate(t).to(x.dtype) * x
        return inside + scaled - (scaled @ u) @ u.T


def make_osdnet(
    d: int,
    *,
    basis: list[list[float]] | None = None,
    width: int = 64,
    depth: int = 2,
    activation: str = "silu",
    time_features: int = 16,
    coefficients: str = "shared",
    knots: int = 17,
) -> OSDNet:
    """The factory of :data:`fmlib.nets.NETS` ``"osdnet"``: an :class:`OSDNet` for dimension d.

    ``basis`` (d lists of k floats: JSON, so that :mod:`fmlib.train` keys the checkpoint by it) is
    required; build it with ``span_basis(data, k).tolist()``.
    """
    if basis is None:
        raise ValueError("net 'osdnet' needs the option basis: span_basis(data, k).tolist(), (d, k) orthonormal")
    net = OSDNet(basis, width=width, depth=depth, activation=activation, time_features=time_features,
                 coefficients=coefficients, knots=knots)
    if net.basis.shape[0] != d:
        raise ValueError(f"basis has d={net.basis.shape[0]} rows but the data have d={d}; build it from these data")
    return net


register_net("osdnet", make_osdnet)
