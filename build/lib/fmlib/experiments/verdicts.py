"""Verdicts on the sources' claims, computed by rules written before the run.

A chapter never writes a verdict: it measures, then calls the rule of the claim (a function of the
measured numbers in the chapter's experiments module, with its criterion — threshold, interval
containing the paper's value, sign — in its docstring and in :attr:`Finding.rule`), and records the
:class:`Finding` it returns (:func:`fmlib.book.report.record_finding`). Each rule is unit-tested on
numbers that give each of the three outcomes.

Two kinds of claim, two behaviours:

- a theorem or an identity (the closed form equals the Bayes posterior mean; the off-span part
  follows its exact law): when it breaks, the run stops: :func:`require` raises
  :class:`ClaimBroken`, whose message names the claim's ledger key;
- an empirical claim (a trend, a threshold seen in a paper's figure): when our numbers contradict
  it, the finding says :attr:`Verdict.NOT_REPRODUCED` and the run completes, so the ledger shows it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

__all__ = ["ClaimBroken", "Finding", "Verdict", "graded", "require"]


class Verdict(str, Enum):
    """The three outcomes of a rule."""

    REPRODUCED = "reproduced"
    PARTLY = "partly reproduced"
    NOT_REPRODUCED = "not reproduced"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Finding:
    """A claim's verdict with its evidence.

    Attributes:
        claim: the claim's ledger key (a key of :data:`fmlib.book.claims.CLAIMS`).
        verdict: what the rule decided.
        number: our measured number(s), as the ledger prints them.
        rule: the criterion, in words (what would have given each other verdict).
    """

    claim: str
    verdict: Verdict
    number: str
    rule: str

    def __post_init__(self) -> None:
        if not isinstance(self.verdict, Verdict):
            raise TypeError(f"verdict must be a Verdict, got {self.verdict!r}")
        if not self.claim or not self.number or not self.rule:
            raise ValueError("a Finding needs its claim key, the measured number and the rule")


class ClaimBroken(AssertionError):
    """A theorem or identity the book relies on failed: the message names the claim's ledger key."""

    def __init__(self, claim: str, message: str) -> None:
        self.claim = claim
        super().__init__(f"[{claim}] {message}")


def require(condition: bool, claim: str, message: str) -> None:
    """Stop the run with :class:`ClaimBroken` (naming ``claim``) unless ``condition`` holds."""
    if not bool(condition):
        raise ClaimBroken(claim, message)


def graded(full: bool, partial: bool) -> Verdict:
    """The verdict of a rule with two tiers: REPRODUCED if ``full``, PARTLY if ``partial``, else NOT_REPRODUCED."""
    if full:
        return Verdict.REPRODUCED
    return Verdict.PARTLY if partial else Verdict.NOT_REPRODUCED
