"""Shared pytest setup: quiet progress bars, one thread, a seeded RNG per test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# Set before any cpnas module reads it: progress bars would only clutter test logs.
os.environ.setdefault("CPNAS_PROGRESS", "0")
# The test machines are small and shared; one intra-op thread also makes CPU
# reductions run in one fixed order.
torch.set_num_threads(1)

DATA_DIR = Path(__file__).parent / "data"


@pytest.fixture
def seed() -> int:
    """Seed torch's global RNG so that a test's random tensors are the same on every run."""
    torch.manual_seed(0)
    return 0


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """``tests/data``: the published genotypes used as fixtures."""
    return DATA_DIR


@pytest.fixture
def fresh_dispatch(monkeypatch, tmp_path):
    """:mod:`cpnas.dispatch` with no memory, an empty cache folder and no forced forms, before and after."""
    from cpnas import dispatch

    monkeypatch.setenv("CPNAS_CACHE", str(tmp_path))
    monkeypatch.delenv("CPNAS_FORMS", raising=False)
    dispatch.reset()
    yield
    dispatch.reset()


@pytest.fixture
def force_forms(monkeypatch):
    """``force_forms(op=form, …)``: force kernel forms for one test, on top of those ``$CPNAS_FORMS`` already
    forces (CI runs the unit tests again with every non-default form forced: ``make test-forms``).

    A test comparing 1-bit outputs of two implementations forces the forms it compares: a form
    that sums in another order changes last bits, which a sign turns into flipped activations.
    """
    from cpnas import dispatch

    def force(**forms: str) -> None:
        merged = {**dispatch.forced(), **forms}
        monkeypatch.setenv("CPNAS_FORMS", ",".join(f"{op}={form}" for op, form in merged.items()))

    return force


@pytest.fixture
def default_forms(monkeypatch):
    """Every op's default kernel form forced, unless ``$CPNAS_FORMS`` already forces forms: for modules comparing
    the simulated network with another implementation (``pytestmark = pytest.mark.usefixtures(...)``)."""
    import os

    from cpnas import dispatch

    if not os.environ.get(dispatch.FORCE_ENV):
        monkeypatch.setenv(dispatch.FORCE_ENV, ",".join(f"{op}={forms[0]}" for op, forms in dispatch.FORMS.items()))
    dispatch.reset()
    yield
    dispatch.reset()
