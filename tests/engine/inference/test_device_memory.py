"""A GPU without memory for a whole batch of tiles: the batch runs in parts, same result."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_gr2r import engine
from napari_gr2r.engine import DeviceMemoryError
from tests.helpers import tiny_model


def _noisy(shape: tuple[int, ...]) -> np.ndarray:
    return (np.random.default_rng(0).poisson(300, shape) + 100).astype(np.float32)


def _short_of_memory(model, most: int) -> list[int]:
    """Make ``model``'s network fail as a device without memory does for batches of more
    than ``most`` tiles; returns the batch sizes it was called with."""
    forward, seen = model.net.forward, []

    def limited(x: torch.Tensor) -> torch.Tensor:
        seen.append(int(x.shape[0]))
        if x.shape[0] > most:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return forward(x)

    model.net.forward = limited
    return seen


def test_a_batch_without_memory_runs_in_parts_with_the_same_result(tmp_path):
    image = _noisy((200, 200))
    expected = engine.denoise(tiny_model(), image, "YX", tile=64, batch_size=8)
    model = tiny_model()
    seen = _short_of_memory(model, most=2)
    np.testing.assert_array_equal(engine.denoise(model, image, "YX", tile=64, batch_size=8),
                                  expected)
    # tried once at the full batch and once at half, then kept at the size that fit
    assert seen[:3] == [8, 4, 2]
    assert max(seen[2:]) == 2  # (groups of edge tiles may hold one)
    # out of core, block by block, alike
    model = tiny_model()
    _short_of_memory(model, most=1)
    out = engine.denoise_to_zarr(model, image, "YX", tmp_path / "o.zarr", batch_size=4)
    np.testing.assert_allclose(out[:], engine.denoise(tiny_model(), image, "YX"), atol=1e-2)


def test_no_memory_for_one_tile_says_what_to_change():
    model = tiny_model()
    _short_of_memory(model, most=0)
    with pytest.raises(DeviceMemoryError, match=r"one tile of 64×64 pixels; give a smaller tile"):
        engine.denoise(model, _noisy((100, 100)), "YX", tile=64, batch_size=4)
    # any other runtime error is not taken for a shortage of memory
    model.net.forward = lambda x: (_ for _ in ()).throw(RuntimeError("shape mismatch"))
    with pytest.raises(RuntimeError, match="shape mismatch"):
        engine.denoise(model, _noisy((100, 100)), "YX", tile=64)
