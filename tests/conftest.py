"""Shared fixtures: small images with known noise and tiny training configurations."""

from __future__ import annotations

import gc

import numpy as np
import pytest

from napari_gr2r.sample_data import load_sample


@pytest.fixture(scope="session")
def clean2d() -> np.ndarray:
    """A 96x96 crop of the bundled 2D nuclei reference, scaled to 0..200 (float32)."""
    _, clean, _ = load_sample("nuclei2d")
    crop = clean[40:136, 60:156].astype(np.float32)
    crop = (crop - crop.min()) / (crop.max() - crop.min()) * 200
    return crop


@pytest.fixture(scope="session")
def gaussian2d(clean2d: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(1)
    return (clean2d + rng.normal(0, 25, clean2d.shape)).astype(np.float32)


@pytest.fixture(scope="session")
def poisson2d(clean2d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Poisson-Gaussian noise at low light (peak 20 photons, read noise 1), as uint16 counts."""
    rng = np.random.default_rng(2)
    photons = clean2d / clean2d.max() * 20
    counts = rng.poisson(photons) + rng.normal(0, 1, photons.shape) + 10
    return np.clip(np.round(counts), 0, None).astype(np.uint16), (photons + 10).astype(np.float32)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Move what collection imported (torch, napari, Qt, the project: millions of objects
    that live as long as the session) out of the cycle collector's reach (``gc.freeze``).
    A full collection, which napari runs as each viewer closes and ``napari-gr2r train``
    when it ends, then walks only the objects the tests create, instead of the whole heap
    each time."""
    gc.collect()
    gc.freeze()


@pytest.fixture(autouse=True, scope="module")
def _freeze_what_outlives_a_module():
    """The same for what a test module leaves alive (modules imported on first use, caches,
    session fixtures): frozen once, not walked again by every later collection. Garbage is
    collected first; objects freed by reference counting are still freed."""
    yield
    gc.collect()
    gc.freeze()


@pytest.fixture(autouse=True)
def _torch_threads_restored():
    """A test that sets torch's thread count (the benchmarks' ``main`` run on one thread)
    leaves it as it found it for the tests after it."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def pytest_configure(config: pytest.Config) -> None:
    """Each of pytest-xdist's worker processes (``-n auto`` in ``pyproject.toml``) gives torch
    its share of the cores: two workers on two cores, each with torch's default of one thread
    per core, would run four threads on two cores, and OpenMP threads that wait for each other
    on an oversubscribed machine are slower than fewer threads."""
    import os

    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        import torch

        torch.set_num_threads(max(1, torch.get_num_threads() // workers))
