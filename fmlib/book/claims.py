"""The claims of the sources that the book checks, typed once; verdicts come from the chapters' runs.

Each chapter records the :class:`~fmlib.experiments.verdicts.Finding` of a claim's rule with
:func:`fmlib.book.report.record_finding`; the claims ledger page (:mod:`fmlib.book.ledger`) joins
this catalogue with those verdicts. A claim no run has checked stays in the ledger, marked "not
checked yet". Where the sources' numbering differs
between versions, ``where`` describes the content; what could be read of each source is said on the
references page of the book (``book/references.md``, label ``sources-read``).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CLAIMS", "Claim"]


@dataclass(frozen=True)
class Claim:
    """One statement of a source: which paper, where in it, and what it says (in our words)."""

    paper: str
    where: str
    statement: str


_GAO = "Gao & Li (arXiv 2410.23594)"
_BERTRAND = "Bertrand et al. (arXiv 2506.03719)"
_REU = "Reu et al. (arXiv 2510.18118)"
_BIROLI = "Biroli et al. (Nat. Commun. 2024)"
_SCARVELIS = "Scarvelis et al. (arXiv 2310.12395)"
_KAMB = "Kamb & Ganguli (arXiv 2412.20292)"

CLAIMS: dict[str, Claim] = {
    "closed-form": Claim(
        _BERTRAND, "Proposition 1 (also Gao & Li, Section 4.1)",
        "The optimal velocity for n training points is the softmax-weighted average of (x_i - x)/(1 - t), "
        "i.e. the posterior mean of the conditional target.",
    ),
    "cfm-minimiser": Claim(
        _BERTRAND, "CFM and FM losses differ by a constant",
        "u* minimises the conditional flow matching loss, with t, x0 ~ N(0, I) and x1 drawn jointly; the CFM loss "
        "and the FM loss E||v - u*||^2 differ by a constant that does not depend on the field v.",
    ),
    "memorisation": Claim(
        _GAO, "Theorem 4.6 and the abstract (the theorem's exact wording could not be read in our copy)",
        "Generating with the optimal velocity field from a Gaussian prior reproduces the training points: the "
        "generated samples memorise the real data.",
    ),
    "span": Claim(
        _GAO, "abstract, Sections 4-5 (sample data subspace)",
        "Samples generated with the optimal field lie in the span of the training data (they represent the sample "
        "data subspace exactly).",
    ),
    "span-ode-law": Claim(
        _GAO, "Sections 4-5 (sample data subspace); the exact law is our derivation",
        "Along the optimal field's ODE the part of x(t) off the span of the data is exactly (1 - t) P x(0), so "
        "samples end in the span; every fixed-step solver (Euler, Heun, RK4) keeps this law to round-off.",
    ),
    "off-subspace-decay": Claim(
        _GAO, "Section 5 (OSDNet, off-subspace part)",
        "For samples to lie in the data's span, a learned field's off-subspace part must decay; an unconstrained "
        "network trained on the CFM loss need not learn this, a diagonal off-subspace part does (in our rendering "
        "its optimal coefficient is -1/(1 - t)).",
    ),
    "teacher-student-bound": Claim(
        _GAO, "Section 5 (teacher-student training)",
        "Training a student field to match a teacher bounds the distance between their samples by the student's "
        "error (our rendering: Gronwall's inequality with a Lipschitz constant of the student).",
    ),
    "concentration": Claim(
        _GAO, "Theorem 4.4, Section 4.2 (its constant, threshold and assumptions could not be read)",
        "The probability that the softmax weights are not concentrated on one training point is bounded by a "
        "function of the separation of the data, t and N that does not depend on d and goes to 0 fast as t -> 1.",
    ),
    "osdnet": Claim(
        _GAO, "Section 5 (OSDNet)",
        "Splitting the field into a part in the span of the data and a decaying off-subspace part lets the "
        "subspace part generalise.",
    ),
    "cosine-high-d": Claim(
        _BERTRAND, "Fig. 1 (cosine alignment)",
        "In high dimension (CIFAR-10, d = 3072, n = 50,000) the cosine between u*(x_t, t) and x1 - x0 is about 1 "
        "from about t = 0.2 on: the target is stochastic only at small t ('non-stochasticity arises very early, "
        "before t = 0.2'); in 2-D it stays stochastic over most of [0, 1].",
    ),
    "dimension-sweep": Claim(
        _BERTRAND, "Fig. 1 (Imagenette at resolutions 8 to 256)",
        "As d grows, the transition of the fraction of points with cosine > 0.9 sharpens and moves to smaller t "
        "(seen in t; the book measures the sharpening as a width in log-SNR, log(t / (1 - t))).",
    ),
    "collapse-time": Claim(
        _BIROLI, "collapse time (cited by Bertrand et al.)",
        "For Gaussian data the collapse time scales like log(n)/d; moved to the path x_t = (1 - t) x0 + t x1 by "
        "matching the signal-to-noise ratio (our transcription), t*/(1 - t*) grows like sqrt(log(n)/d). Tested in "
        "chapter 3: the shape of this scaling, the exponents of log(n)/d, of log n and of d fitted freely to a "
        "cosine-based t* on Gaussian data, each about 1/2; no constant is fixed, so the level of the time is not "
        "tested here (collapse-prediction tests it).",
    ),
    "losses-equivalence": Claim(
        _BERTRAND, "abstract",
        "'In high-dimensional settings, the stochastic and closed-form versions of the flow matching loss yield "
        "nearly equivalent losses.' The abstract does not say which quantity was compared; the book uses "
        "E||x1 - x0 - u*(x_t, t)||^2 / E||x1 - x0||^2 (t ~ U(0, 1), and per t), the share of the CFM loss that no "
        "field can remove.",
    ),
    "efm-unbiased": Claim(
        _BERTRAND, "Empirical Flow Matching, its properties",
        "The EFM target with the generating point in the pool is unbiased for u* and has lower variance than "
        "x1 - x0.",
    ),
    "capacity": Claim(
        _BERTRAND, "Fig. 2 (a fixed U-Net on 10 to 10,000 CIFAR-10 images) and a talk on it (Massias, COLT 2025 "
        "workshop)",
        "With few training images the network's samples sit on training images; they move away from them from about "
        "3,000 images on. The talk: the trained model has trouble learning u* near t ~ 0.2 and near t ~ 0.9.",
    ),
    "hybrid-tau": Claim(
        _BERTRAND, "Fig. 3 (hybrid models on CIFAR-10 and CelebA 64)",
        "Following u* on [0, tau] and the trained network on [tau, 1]: following u* until tau >= 0.3 yields a model "
        "that is not able to generalise (the figure's caption); generalisation is decided early.",
    ),
    "efm-fid": Claim(
        _BERTRAND, "Fig. 4 and appendix tables",
        "Regressing on a more deterministic target (EFM) gives equal or slightly better FID than CFM.",
    ),
    "pairing-zero-variance": Claim(
        _REU, "deterministic regime",
        "The field consistent with a deterministic pairing has zero loss and zero gradient variance, also for a "
        "non-OT pairing.",
    ),
    "rotation-example": Claim(
        _REU, "180-degree example",
        "With segments that all cross at t = 1/2, deterministic training still learns the pairing and reproduces "
        "the training pairs.",
    ),
    "noise-generalises": Claim(
        _REU, "noisy interpolant, sigma = 0.05",
        "A little interpolant noise breaks the pairing's bijection and restores generalisation.",
    ),
    "smoothing-creates": Claim(
        _SCARVELIS, "abstract (smoothed closed-form diffusion models)",
        "Smoothing the closed-form score gives a training-free model that generates novel samples, where the "
        "unsmoothed closed form only reproduces its training data.",
    ),
    "patch-creates": Claim(
        _KAMB, "abstract (equivariant local score machine)",
        "Locality and equivariance prevent the optimal (memorising) denoiser: the resulting training-free local "
        "score machines create novel images, mosaics of local training patches.",
    ),
    "collapse-prediction": Claim(
        _BIROLI, "collapse time for Gaussian data, large d (abstract read; formula as given to us when chapter 7 was "
        "planned, not checked against the paper's text)",
        "For n i.i.d. N(0, sigma^2 I_d) data points, d large at fixed log(n)/d, the backward dynamics collapses onto "
        "the training points at OU time tau_C = 1/2 log(1 + sigma^2/(n^(2/d) - 1)); on our path, by matching "
        "signal-to-noise ratios, t_C/(1 - t_C) = sqrt(n^(2/d) - 1)/sigma. Tested in chapter 7: the level, each "
        "measured t* against this formula with no fitted constant (measured over predicted t/(1 - t), within about "
        "25%); how the time scales with n and d, at the precision of fitted exponents, is collapse-time's test.",
    ),
    "speciation-prediction": Claim(
        _BIROLI, "speciation time (abstract: from a spectral analysis of the correlation matrix; formula as "
        "given to us when chapter 7 was planned)",
        "The class structure appears at OU time tau_S = 1/2 log Lambda, Lambda the largest eigenvalue of the data "
        "covariance; on our path t_S/(1 - t_S) = 1/sqrt(Lambda - 1).",
    ),
}
