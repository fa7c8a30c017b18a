"""The book wing: running, storing and rendering chapters.

``chapters`` (the repository root, chapter lookup, atomic writes), ``params`` (a chapter's
parameters cell and the checks of overrides), ``run`` (papermill execution into the store),
``store`` (the results store), ``sweep`` (grids of runs), ``report`` (what a chapter glues and
stores: numbers, figures, tables, findings), ``claims`` (the catalogue of the sources' claims),
``ledger`` and ``course`` (generated pages), ``build`` (the whole book), ``sphinxext`` (Sphinx
hooks). It imports the experiments and the numerics; nothing below imports it.
"""
