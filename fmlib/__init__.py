"""fmlib: the closed-form optimal velocity of flow matching, and the tools the book's chapters use.

The public face: :class:`ClosedFormField` (the field), :func:`integrate` and :func:`time_grid`
(the solvers), :func:`make_dataset` and :func:`dataset_names` (the data sets). Numerics live in
one module per concept (``path``, ``closed_form``, ``neighbours``, ``ode``, ``data``, ``stats``,
``metrics``, ``theory``, ``nets``, ``losses``, ``train``, ``generalisation``, ``plots``);
``experiments`` holds what each chapter computes with its verdict rules, and ``book`` runs, stores
and renders the chapters (see CONTRIBUTING.md).

Importing any part of fmlib imports this package first, and with it the modules that register a
loss, a batch coupling or a net by name (``couplings``, ``osdnet``, ``teacher``): a checkpoint
stored with ``loss="paired"`` or ``net="osdnet"`` loads in a fresh process that imports only
:mod:`fmlib.train`.
"""

import fmlib.couplings
import fmlib.osdnet
import fmlib.teacher  # noqa: F401  registers the "closed-form-teacher" loss
from fmlib.closed_form import ClosedFormField, posterior_mean, velocity
from fmlib.data import dataset_names, make_dataset
from fmlib.ode import integrate, time_grid

__all__ = ["ClosedFormField", "dataset_names", "integrate", "make_dataset", "posterior_mean", "time_grid", "velocity"]
__version__ = "0.1.0"
