"""The experiments wing: what each chapter computes, as functions returning dataclasses, and the
verdict rules of its claims (:mod:`fmlib.experiments.verdicts`).

One module per chapter topic. It imports the numerics (every other fmlib module) and never the
book (:mod:`fmlib.book`), so each computation and each rule is unit-tested without running a
notebook.
"""
