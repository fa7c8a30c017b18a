"""The experiments wing: what each chapter computes, as functions returning dataclasses, and the
verdict rules of its claims (:mod:`fmlib.experiments.verdicts`).

One module per chapter topic, and beside it a ``<topic>_figures`` module where its figure code is
large (chapters 2 and 3), which draws what the topic module computes and is never imported by it.
They import the numerics (every other fmlib module) and never the book (:mod:`fmlib.book`), so
each computation and each rule is unit-tested without running a notebook.
"""
