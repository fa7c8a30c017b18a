"""Shared test set-up: tests import the package from the checkout and write results to a temporary store."""

from __future__ import annotations

import pytest
import torch

torch.set_default_dtype(torch.float32)


@pytest.fixture
def results_store(tmp_path, monkeypatch):
    """A private, empty results store for the test (``$FMLIB_RESULTS``)."""
    store = tmp_path / "results"
    monkeypatch.setenv("FMLIB_RESULTS", str(store))
    return store
