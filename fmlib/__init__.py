"""fmlib: the closed-form optimal velocity of flow matching, and the tools the book's chapters use.

Modules, one job each: ``closed_form`` (the field), ``ode`` (solvers), ``data`` (data sets),
``metrics``, ``theory`` (the papers' bounds), ``report`` (glue results from a chapter),
``run`` / ``results`` / ``sweep`` (executing chapters and storing their results), ``plots``.
"""

from fmlib.closed_form import ClosedFormField, posterior_mean, velocity

__all__ = ["ClosedFormField", "posterior_mean", "velocity"]
__version__ = "0.1.0"
